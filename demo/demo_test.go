package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTourSendsAndReadsMail: the tour's mail steps send a message with an attachment over SMTP and
// over Graph and read both back over IMAP, POP3 and Graph, each time byte-identical; the gateway
// step finds the one sent over Graph in alice's Sent Items over IMAP via Graph, its attachment
// byte-identical; nothing printed looks like a token.
func TestTourSendsAndReadsMail(t *testing.T) {
	var out bytes.Buffer
	steps, err := Run(context.Background(), Options{Out: &out, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("the tour failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"send a message with an attachment from alice to bob over SMTP",
		"send the same over Microsoft Graph",
		"read both back as bob over IMAP",
		"read both back as bob over POP3",
		"read both back as bob over Graph",
		"the proxy: a password-only program logs in",
		"the Graph gateway: the same program over IMAP via Graph",
		"the doctor: account daemon",
	} {
		found := false
		for _, s := range steps {
			if strings.Contains(s.Name, want) {
				found = s.OK
			}
		}
		if !found {
			t.Errorf("no successful step %q", want)
		}
	}
	text := out.String()
	// The gateway's line says what came back through it.
	if !strings.Contains(text, `FETCH ENVELOPE finds "Démo — über Graph", BODY[] its attachment byte-identical`) {
		t.Errorf("the gateway step does not say it read the message sent over Graph:\n%s", text)
	}
	if n := strings.Count(text, `attachment "Grüße aus Köln — 報告.txt"  sha256 `); n != 6 {
		t.Errorf("%d attachments shown read back, want 6 (2 messages × IMAP, POP3, Graph):\n%s", n, text)
	}
	if strings.Count(text, "(identical)") != 6 {
		t.Errorf("not every read-back is shown identical:\n%s", text)
	}
	if strings.Contains(text, "eyJ") {
		t.Errorf("the tour printed something that looks like a JWT:\n%s", text)
	}
}

//go:build unix

package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/smtp"
)

// TestMailoauthSendsAndReadsThroughPostfixAndDovecot is mailoauth's own mail path end to end against
// the real servers: a message built by mail.Build (non-ASCII subject, an attachment with a non-ASCII
// name) sent by mail.SMTPSender over smtp.Dial (alice's token) through Postfix, delivered over LMTP to
// Dovecot, and read back by mail.IMAPReader over imap.Dial (alice's token) and by mail.POPReader over
// pop3 (the daemon's app-only token): the subject, the attachment's name and its bytes identical, and
// the message as sent after only the servers' trace fields.
func TestMailoauthSendsAndReadsThroughPostfixAndDovecot(t *testing.T) {
	l := need(t, true)
	t.Parallel()
	ctx := context.Background()
	good := token.Static(&token.Token{AccessToken: l.tok.good, ExpiresOn: time.Now().Add(time.Hour)})

	const name = "Übersicht — 東京 naïve.pdf"
	data := make([]byte, 200<<10)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	subject := "mailoauth über Postfix und Dovecot — 件名 " + randomHex(6)
	att, err := mail.AttachFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mail.Build(mail.Draft{From: []string{world.Alice}, To: []string{world.Alice}, Subject: subject,
		Text: "Sent by mail.SMTPSender through Postfix.\n", Attachments: []mail.Attachment{att}})
	if err != nil {
		t.Fatal(err)
	}

	sc, err := smtp.Dial(ctx, smtp.Options{Addr: addr(l.ports.Submission), TLS: dial.StartTLS, TLSConfig: l.tlsConfig(),
		Username: world.Alice, Tokens: good, Timeout: ioTimeout})
	if err != nil {
		t.Fatalf("smtp.Dial: %v", err)
	}
	defer sc.Close()
	var sent int64
	s := &mail.SMTPSender{C: sc, Progress: func(done, _ int64) { sent = done }}
	if err := s.Send(ctx, mail.Envelope{From: world.Alice, To: []string{world.Alice}}, raw); err != nil {
		t.Fatalf("send through Postfix: %v", err)
	}
	if sent != int64(len(raw)) {
		t.Errorf("SMTP progress ended at %d of %d", sent, len(raw))
	}
	_ = sc.Quit()

	check := func(via string, r mail.Reader) {
		t.Helper()
		var id string
		for deadline := time.Now().Add(15 * time.Second); id == ""; time.Sleep(100 * time.Millisecond) {
			list, err := r.List(ctx, "", 0, false)
			if err != nil {
				t.Fatalf("%s list: %v", via, err)
			}
			for _, sm := range list {
				if sm.Subject == subject {
					id = sm.ID
				}
			}
			if id == "" && time.Now().After(deadline) {
				t.Fatalf("%s: %q not delivered after 15 s (see Postfix's maillog below)", via, subject)
			}
		}
		msg, err := r.Get(ctx, id, "")
		if err != nil {
			t.Fatalf("%s get %s: %v", via, id, err)
		}
		if msg.Subject != subject || msg.From != world.Alice {
			t.Errorf("%s: subject %q from %q; want %q from %s", via, msg.Subject, msg.From, subject, world.Alice)
		}
		if trace, ok := bytes.CutSuffix(msg.Raw, raw); !ok || !traceHeader.Match(trace) {
			t.Errorf("%s: the message read back is not the one sent after trace fields (%d vs %d bytes)", via, len(msg.Raw), len(raw))
		}
		if len(msg.Attachments) != 1 {
			t.Fatalf("%s: %d attachments, want 1", via, len(msg.Attachments))
		}
		if a := msg.Attachments[0]; a.Name != name || !bytes.Equal(a.Data, data) || a.ContentType != "application/pdf" {
			t.Errorf("%s: attachment %q %s, %d bytes (identical: %v); want %q, %d bytes", via, a.Name, a.ContentType, len(a.Data), bytes.Equal(a.Data, data), name, len(data))
		}
	}

	ic, err := imap.Dial(ctx, imap.Options{Addr: addr(l.ports.IMAPS), TLS: dial.Implicit, TLSConfig: l.tlsConfig(),
		Username: world.Alice, Tokens: good, Timeout: ioTimeout})
	if err != nil {
		t.Fatalf("imap.Dial: %v", err)
	}
	ir := &mail.IMAPReader{C: ic}
	defer ir.Close()
	check("IMAP", ir)

	pc, err := dialPOP3(l, sasl.XOAuth2, world.Alice, l.tok.app)
	if err != nil {
		t.Fatalf("POP3 (app-only): %v", err)
	}
	pr := &mail.POPReader{C: pc}
	defer pr.Close()
	check("POP3", pr)
}

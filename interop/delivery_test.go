//go:build unix

package interop

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/sasl"
)

// traceHeader is what may stand before the message as sent: the trace fields Postfix and Dovecot's
// LMTP add (RFC 5321 §4.4), each possibly folded.
var traceHeader = regexp.MustCompile(`^(?:(?:Return-Path|Delivered-To|Received):[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)*$`)

// TestSubmitAndReadBack sends a message through Postfix's submission port (OAUTHBEARER, alice's
// delegated token), which delivers it over LMTP to Dovecot, then reads it back over IMAP (XOAUTH2) and
// POP3 (package pop3, XOAUTH2, the daemon's app-only token): the bytes sent come back unchanged, after
// the servers' trace fields.
func TestSubmitAndReadBack(t *testing.T) {
	l := need(t, true)
	t.Parallel()
	id := fmt.Sprintf("%d.%s@interop.test", time.Now().UnixNano(), randomHex(6))
	msg := strings.ReplaceAll(`From: Alice Smith <alice@contoso.test>
To: Alice Smith <alice@contoso.test>
Subject: mailoauth interop `+id+`
Date: `+time.Now().Format(time.RFC1123Z)+`
Message-ID: <`+id+`>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Sent by mailoauth's interop test through Postfix, delivered by LMTP to Dovecot.
.A line that starts with a dot: dot-stuffed on the SMTP and POP3 wires.
..Two dots.
.
Eight-bit text: Grüße, naïve café, 東京.
Trailing spaces and a tab:   	
Last line.
`, "\n", "\r\n")

	// Submit.
	c, err := smtp.DialStartTLS(addr(l.ports.Submission), l.tlsConfig())
	if err != nil {
		t.Fatalf("submission: %v", err)
	}
	c.CommandTimeout, c.SubmissionTimeout = ioTimeout, ioTimeout
	defer c.Close()
	if err := c.Auth(sasl.NewOAuthBearerClient(world.Alice, l.tok.good, "localhost", l.ports.Submission)); err != nil {
		t.Fatalf("AUTH OAUTHBEARER: %v", err)
	}
	if err := c.SendMail(world.Alice, []string{world.Alice}, strings.NewReader(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}

	// Read back over IMAP, waiting for Postfix's queue to hand it to Dovecot.
	ic, err := imapclient.DialTLS(addr(l.ports.IMAPS), l.imapOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Authenticate(sasl.NewXOAuth2Client(world.Alice, l.tok.good)); err != nil {
		t.Fatalf("IMAP AUTHENTICATE XOAUTH2: %v", err)
	}
	var viaIMAP []byte
	for deadline := time.Now().Add(15 * time.Second); viaIMAP == nil; time.Sleep(100 * time.Millisecond) {
		if viaIMAP, err = fetchByMessageID(ic, id); err != nil {
			t.Fatalf("IMAP: %v", err)
		}
		if viaIMAP == nil && time.Now().After(deadline) {
			t.Fatalf("message %s not delivered after 15 s (see Postfix's maillog below)", id)
		}
	}
	trace, ok := bytes.CutSuffix(viaIMAP, []byte(msg))
	if !ok {
		t.Fatalf("IMAP BODY[] does not end with the message as sent:\n--- sent\n%q\n--- read\n%q", msg, viaIMAP)
	}
	if !traceHeader.Match(trace) {
		t.Errorf("before the message as sent, IMAP has more than trace fields:\n%s", trace)
	}
	if !bytes.Contains(trace, []byte("Delivered-To: "+world.Alice)) {
		t.Errorf("no Delivered-To from Dovecot's LMTP in:\n%s", trace)
	}

	// And over POP3 with mailoauth's POP3 client, the daemon's app-only token for alice's mailbox.
	p, err := dialPOP3(l, sasl.XOAuth2, world.Alice, l.tok.app)
	if err != nil {
		t.Fatalf("POP3 (app-only, XOAUTH2): %v", err)
	}
	defer p.Close()
	list, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	var viaPOP3 []byte
	for _, m := range list {
		b, err := p.Retr(m.Number)
		if err != nil {
			t.Fatalf("RETR %d: %v", m.Number, err)
		}
		if bytes.Contains(b, []byte("Message-ID: <"+id+">")) {
			viaPOP3 = b
			break
		}
	}
	if viaPOP3 == nil {
		t.Fatalf("POP3: message %s not among %d messages", id, len(list))
	}
	if !bytes.Equal(viaPOP3, viaIMAP) {
		t.Errorf("POP3 RETR and IMAP BODY[] differ:\n--- IMAP\n%q\n--- POP3\n%q", viaIMAP, viaPOP3)
	}
	if err := p.Quit(); err != nil {
		t.Errorf("POP3 QUIT: %v", err)
	}
}

package smtpgw_test

import (
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/gateway/smtpgw"
	"github.com/mailoauth/mailoauth/mailoauthtest"
)

// One session as msmtp or Outlook uses it: a transaction reset half way, then two messages; an
// 8-bit body and a line that begins with a dot arrive as written.
func TestSessionTwoMessagesAfterRset(t *testing.T) {
	v := start(t, emulator(t), "sender", smtpgw.Options{})
	c := v.dial(t, "alice")
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(bob, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	s1, s2 := uniqueSubject(t)+" one", uniqueSubject(t)+" two"
	msg := func(to, subject, body string) string {
		return "From: " + alice + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
	}
	body1 := "Grüße aus Köln\r\n.leading dot\r\n..two dots\r\n"
	if err := c.SendMail(alice, []string{carol}, strings.NewReader(msg(carol, s1, body1))); err != nil {
		t.Fatalf("first message: %v", err)
	}
	if err := c.SendMail(alice, []string{dave, carol}, strings.NewReader(msg(dave, s2, "second\r\n"))); err != nil {
		t.Fatalf("second message: %v", err)
	}
	if got := inFolder(t, v.srv, bob, mailoauthtest.Inbox, s1); len(got) != 0 {
		t.Errorf("bob, reset away, got the first message")
	}
	got := inFolder(t, v.srv, carol, mailoauthtest.Inbox, s1)
	if len(got) != 1 {
		t.Fatalf("carol has %d copies of the first message", len(got))
	}
	// The emulator delivers the MIME Graph was given: the body as the program wrote it, 8-bit text
	// and dot lines unstuffed.
	if d := string(got[0].Data); !strings.HasSuffix(d, "\r\n\r\n"+body1) {
		t.Errorf("carol's copy does not end with the body as sent:\n%q", d)
	}
	if n := len(inFolder(t, v.srv, dave, mailoauthtest.Inbox, s2)); n != 1 {
		t.Errorf("dave has %d copies of the second message", n)
	}
	if n := len(inFolder(t, v.srv, carol, mailoauthtest.Inbox, s2)); n != 1 {
		t.Errorf("carol (Bcc) has %d copies of the second message", n)
	}
}

package exchange_test

import (
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestConfigPointsAtTheServers: the written configuration's imap, pop and smtp are the servers'
// addresses, and Close stops them.
func TestConfigPointsAtTheServers(t *testing.T) {
	v, err := newEnv(world.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := v.E.Config()
	if err != nil {
		t.Fatal(err)
	}
	addrs := v.E.Exchange.Addrs()
	for _, name := range []string{exchange.AddrIMAP, exchange.AddrIMAPStartTLS, exchange.AddrPOP, exchange.AddrSMTP} {
		if addrs[name] == "" || v.E.MailAddrs[name] != addrs[name] {
			t.Errorf("MailAddrs[%s] = %q, server at %q", name, v.E.MailAddrs[name], addrs[name])
		}
	}
	for name, a := range cfg.Accounts {
		if a.IMAP != addrs[exchange.AddrIMAP] || a.POP != addrs[exchange.AddrPOP] || a.SMTP != addrs[exchange.AddrSMTP] {
			t.Errorf("account %s: imap %q pop %q smtp %q", name, a.IMAP, a.POP, a.SMTP)
		}
	}
	c := v.dialTLS(t, exchange.AddrIMAP)
	checkGreeting(t, c.line())
	if err := v.E.Close(); err != nil {
		t.Fatal(err)
	}
	c.eof() // open connections are closed
	for _, a := range addrs {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Close", a)
		}
	}
}

// TestNoSecretInLogs runs accepted and refused logins on every protocol and searches the logs for the
// tokens and passwords used.
func TestNoSecretInLogs(t *testing.T) {
	v := dedicated(t, nil)
	good := v.userToken(t, world.Alice, exoAll)
	app := v.appToken(t, "nosp", exoApp)
	forged := forge(t, good, nil)
	for _, tok := range []string{good, app, forged} {
		c := v.dialTLS(t, exchange.AddrIMAP)
		c.line()
		c.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2(world.Alice, tok))
		c.line()
		p := v.dialTLS(t, exchange.AddrPOP)
		p.line()
		p.send("AUTH XOAUTH2")
		p.line()
		p.send(xoauth2(world.Alice, tok))
		p.line()
		s := smtpReady(t, v)
		s.send("AUTH XOAUTH2 " + xoauth2(world.Alice, tok))
		s.line()
	}
	s := smtpReady(t, v)
	s.send("AUTH LOGIN YWxpY2VAY29udG9zby50ZXN0")
	s.line()
	s.send("c2VjcmV0LXBhc3N3b3JkLTQy") // secret-password-42
	s.line()
	time.Sleep(50 * time.Millisecond)
	logs := v.Logs.String()
	for _, secret := range []string{good, app, forged, "secret-password-42", "c2VjcmV0LXBhc3N3b3JkLTQy"} {
		if sig := secret[strings.LastIndexByte(secret, '.')+1:]; strings.Contains(logs, sig) {
			t.Errorf("a secret reached the logs")
		}
	}
	for _, want := range []string{"reason=token_signature_invalid", "reason=service_principal_missing", "reason=basic_auth_disabled", "protocol=POP", "protocol=SMTP"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

func TestIMAPPipelinedAndAppend(t *testing.T) {
	v := shared(t)
	tok := v.userToken(t, world.Bob, exoAll)
	c := v.dialTLS(t, exchange.AddrIMAP)
	c.line()
	// Commands pipelined behind AUTHENTICATE reach the mailbox session.
	c.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2(world.Bob, tok) + "\r\nA2 SELECT Drafts\r\nA3 NOOP")
	c.expect("A1 OK AUTHENTICATE completed.")
	c.until("A2 OK [READ-WRITE] SELECT completed.")
	c.expect("A3 OK NOOP completed.")
	msg := "Subject: draft\r\n\r\n{5}\r\nnot a literal\r\n"
	c.send("A4 APPEND Drafts (\\Draft) {" + strconv.Itoa(len(msg)) + "}")
	c.expect("+ Ready for additional command text.")
	c.conn.Write([]byte(msg + "\r\n"))
	l := c.until("A4 ")
	if !regexp.MustCompile(`^A4 OK \[APPENDUID [0-9]+ [0-9]+\] APPEND completed\.$`).MatchString(l[len(l)-1]) {
		t.Fatalf("APPEND: %q", l)
	}
	c.send("A5 UID SEARCH SUBJECT draft")
	if l := c.until("A5 "); !strings.HasPrefix(l[0], "* SEARCH ") || l[len(l)-1] != "A5 OK SEARCH completed." {
		t.Fatalf("SEARCH: %q", l)
	}
	c.send("A6 FETCH 1:* (BODY[TEXT])")
	lines := c.until("A6 ")
	if !containsLine(lines, "not a literal") || lines[len(lines)-1] != "A6 OK FETCH completed." {
		t.Fatalf("FETCH: %q", lines)
	}
	c.send("A7 FROB")
	c.expect("A7 BAD Command Error. 10")
	c.send("A8 FETCH")
	c.expect("A8 BAD Command Argument Error. 11")
	c.send("A9 LOGIN a b")
	c.expect("A9 BAD Command received in Invalid state.")
	c.send("A10 SELECT Nope")
	if l := c.until("A10 "); !strings.HasPrefix(l[len(l)-1], "A10 NO ") {
		t.Fatalf("SELECT of a missing folder: %q", l)
	}
}

// TestScenarioFiles runs documented scenarios end to end.
func TestScenarioFiles(t *testing.T) {
	load := func(t *testing.T, name string) *env {
		w, err := world.LoadScenario(filepath.Join("..", "world", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return dedicated(t, w)
	}
	t.Run("imap-pop-disabled", func(t *testing.T) {
		v := load(t, "imap-pop-disabled.toml")
		c := imapLogin(t, v, world.Alice, v.userToken(t, world.Alice, "https://outlook.office.com/IMAP.AccessAsUser.All"))
		c.send("A2 SELECT INBOX")
		c.expect("A2 BAD User is authenticated but not connected.")
		p := v.dialTLS(t, exchange.AddrPOP)
		p.line()
		p.send("AUTH XOAUTH2")
		p.line()
		p.send(xoauth2(world.Bob, v.userToken(t, world.Bob, "https://outlook.office.com/POP.AccessAsUser.All")))
		p.expect(popAuthFailed)
	})
	t.Run("send-as", func(t *testing.T) {
		v := load(t, "send-as.toml")
		for _, tc := range []struct{ user, want string }{
			{world.Alice, "250 2.0.0 OK "},
			{world.Bob, "554 5.2.252 SendAsDenied; bob@contoso.test not allowed to send as support@contoso.test; "},
		} {
			// Both open support@ over IMAP with their own token.
			tok := v.userToken(t, tc.user, "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send")
			imapLogin(t, v, world.Support, tok).send("A2 LOGOUT")
			c := smtpReady(t, v)
			c.send("AUTH XOAUTH2 " + xoauth2(tc.user, tok))
			c.expect("235 2.7.0 Authentication successful")
			c.send("MAIL FROM:<support@contoso.test>")
			c.expect("250 2.1.0 Sender OK")
			c.send("RCPT TO:<alice@contoso.test>")
			c.expect("250 2.1.5 Recipient OK")
			c.send("DATA")
			c.line()
			c.send("From: Support <support@contoso.test>\r\nSubject: hi\r\n\r\nhello\r\n.")
			if l := c.line(); !strings.HasPrefix(l, tc.want) {
				t.Errorf("%s: %q", tc.user, l)
			}
		}
		if in, _ := v.E.Store.List(world.Alice, mailstore.Inbox); len(in) != 1 {
			t.Errorf("alice's INBOX holds %d messages", len(in))
		}
	})
	t.Run("smtp-auth-disabled-mailbox", func(t *testing.T) {
		v := load(t, "smtp-auth-disabled-mailbox.toml")
		c := smtpReady(t, v)
		c.send("AUTH XOAUTH2 " + xoauth2(world.Bob, v.userToken(t, world.Bob, exoSMTP)))
		c.expectBracketed(smtpMailbox)
	})
}

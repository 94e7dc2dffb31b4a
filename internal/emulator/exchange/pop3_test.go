package exchange_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

const (
	popAuthFailed = "-ERR Authentication failure: unknown user name or bad password."
	popBye        = "+OK Microsoft Exchange Server POP3 server signing off."
)

// popLogin connects and authenticates with the two-step AUTH XOAUTH2.
func popLogin(t *testing.T, v *env, user, token string) *lineConn {
	t.Helper()
	c := v.dialTLS(t, exchange.AddrPOP)
	checkGreeting(t, c.line())
	c.send("AUTH XOAUTH2")
	c.expect("+ ")
	c.send(xoauth2(user, token))
	c.expect("+OK User successfully authenticated.")
	return c
}

// multiline reads a multi-line answer after its status line, undoing dot-stuffing.
func (lc *lineConn) multiline() []string {
	lc.t.Helper()
	var out []string
	for {
		l := lc.line()
		if l == "." {
			return out
		}
		out = append(out, strings.TrimPrefix(l, "."))
	}
}

func TestPOP3SessionLikeExchange(t *testing.T) {
	v := dedicated(t, nil) // its own mailboxes: the test counts messages
	m1 := []byte("Subject: one\r\n\r\nfirst\r\n.starts with a dot\r\n")
	m2 := []byte("Subject: two\r\nX-A: b\r\n\r\nl1\r\nl2\r\nl3\r\n")
	for _, m := range [][]byte{m1, m2} {
		if _, err := v.E.Store.Append(world.Bob, mailstore.Inbox, m, nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	tok := v.userToken(t, world.Bob, exoAll)
	c := v.dialTLS(t, exchange.AddrPOP)
	checkGreeting(t, c.line())
	c.send("CAPA")
	c.expect("+OK", "TOP", "UIDL", "SASL PLAIN XOAUTH2", "USER", ".")
	c.send("STAT")
	c.expect("-ERR Command is not valid in this state.")
	c.send("FROB")
	c.expect("-ERR Protocol error. 19")
	c.send("STLS")
	c.expect("-ERR Command is not valid in this state.")
	c.send("AUTH XOAUTH2")
	c.expect("+ ")
	c.send(xoauth2(world.Bob, tok))
	c.expect("+OK User successfully authenticated.")
	total := len(m1) + len(m2)
	c.send("STAT")
	c.expect(fmt.Sprintf("+OK 2 %d", total))
	c.send("LIST")
	c.expect("+OK", fmt.Sprintf("1 %d", len(m1)), fmt.Sprintf("2 %d", len(m2)), ".")
	c.send("LIST 2")
	c.expect(fmt.Sprintf("+OK 2 %d", len(m2)))
	c.send("LIST 3")
	c.expect("-ERR The specified message is out of range.")
	msgs, _ := v.E.Store.List(world.Bob, mailstore.Inbox)
	c.send("UIDL")
	c.expect("+OK", "1 "+msgs[0].ID, "2 "+msgs[1].ID, ".")
	c.send("RETR 1")
	c.expect("+OK")
	if got := strings.Join(c.multiline(), "\r\n") + "\r\n"; got != string(m1) {
		t.Errorf("RETR 1: %q", got)
	}
	c.send("TOP 2 1")
	c.expect("+OK")
	if got := c.multiline(); strings.Join(got, "|") != "Subject: two|X-A: b||l1" {
		t.Errorf("TOP 2 1: %q", got)
	}
	c.send("DELE 1")
	c.expect("+OK")
	c.send("RETR 1")
	c.expect("-ERR The specified message is out of range.")
	c.send("STAT")
	c.expect(fmt.Sprintf("+OK 1 %d", len(m2)))
	c.send("RSET")
	c.expect("+OK")
	c.send("STAT")
	c.expect(fmt.Sprintf("+OK 2 %d", total))
	c.send("DELE 2")
	c.expect("+OK")
	c.send("NOOP")
	c.expect("+OK")
	c.send("AUTH XOAUTH2")
	c.expect("-ERR Command is not valid in this state.")
	c.send("QUIT")
	c.expect(popBye)
	c.eof()
	left, _ := v.E.Store.List(world.Bob, mailstore.Inbox)
	if len(left) != 1 || string(left[0].Data) != string(m1) {
		t.Errorf("after DELE 2 and QUIT the INBOX holds %d messages", len(left))
	}
}

func TestPOP3InitialResponseClosesTheConnection(t *testing.T) {
	v := shared(t)
	c := v.dialTLS(t, exchange.AddrPOP)
	c.line()
	c.send("AUTH XOAUTH2 " + xoauth2(world.Alice, v.userToken(t, world.Alice, exoAll)))
	c.expect("-ERR Protocol error. Connection is closed. 10")
	c.eof()
}

func TestPOP3Refused(t *testing.T) {
	v := shared(t)
	cases := append(append(tokenRefusals(), mailboxRefusals()...),
		refusal{"missing scope", world.Alice, func(t *testing.T, v *env) string { return v.userToken(t, world.Alice, exoSMTP) }, exchange.MissingScope},
		refusal{"POP disabled", carol, func(t *testing.T, v *env) string { return v.userToken(t, carol, exoAll) }, exchange.ProtocolDisabled},
		refusal{"app without POP role", world.Alice, func(t *testing.T, v *env) string { return v.appToken(t, "graphonly", exoApp) }, exchange.MissingRole},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t, v)
			if d := v.E.Exchange.Authorizer.Authorize(exchange.POP, tc.user, tok); d.Reason != tc.reason {
				t.Fatalf("Authorize: %v, want %v", d.Reason, tc.reason)
			}
			c := v.dialTLS(t, exchange.AddrPOP)
			c.line()
			c.send("AUTH XOAUTH2")
			c.expect("+ ")
			c.send(xoauth2(tc.user, tok))
			c.expect(popAuthFailed)
			c.send("STAT")
			c.expect("-ERR Command is not valid in this state.")
		})
	}
}

func TestPOP3BasicAuthRefused(t *testing.T) {
	v := shared(t)
	c := v.dialTLS(t, exchange.AddrPOP)
	c.line()
	c.send("USER alice@contoso.test")
	c.expect("+OK")
	c.send("PASS alice password with spaces")
	c.expect("-ERR Logon failure: unknown user name or bad password.")
	c.send("PASS again")
	c.expect("-ERR Command is not valid in this state.")
	c.send("AUTH PLAIN")
	c.expect("+ ")
	c.send("AGFsaWNlQGNvbnRvc28udGVzdABhbGljZS1wYXNzd29yZA==")
	c.expect(popAuthFailed)
	c.send("AUTH XOAUTH2")
	c.expect("+ ")
	c.send("*")
	c.expect(popAuthFailed)
	c.send("AUTH XOAUTH2")
	c.expect("+ ")
	c.send("!!not base64!!")
	c.expect(popAuthFailed)
	c.send("AUTH CRAM-MD5")
	c.expect(popAuthFailed)
	c.send("QUIT")
	c.expect(popBye)
}

func TestPOP3ExpiredToken(t *testing.T) {
	v := dedicated(t, nil)
	tok := v.appToken(t, "daemon", exoApp)
	popLogin(t, v, world.Alice, tok).send("QUIT")
	v.Clock.Advance(90 * time.Minute)
	c := v.dialTLS(t, exchange.AddrPOP)
	c.line()
	c.send("AUTH XOAUTH2")
	c.expect("+ ")
	c.send(xoauth2(world.Alice, tok))
	c.expect(popAuthFailed)
}

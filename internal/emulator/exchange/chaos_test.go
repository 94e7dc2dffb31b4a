package exchange_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// addFault adds a mail-server fault at runtime, as the control API does, and returns its ID.
func (v *env) addFault(t *testing.T, keys world.Keys) string {
	t.Helper()
	var id string
	if err := v.E.Live.Update(func(w *world.World) error {
		f, err := w.AddFault(keys, world.NewID)
		id = f.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (v *env) removeFault(t *testing.T, id string) {
	t.Helper()
	if err := v.E.Live.Update(func(w *world.World) error { return w.RemoveFault(id) }); err != nil {
		t.Fatal(err)
	}
}

const smtpNoopOK = "250 2.0.0 OK"

// TestSMTPFaultReply: a chosen reply answers the commands the fault counts (after `after`, `times`
// of them) and the server answers the rest; a 421 ends the connection.
func TestSMTPFaultReply(t *testing.T) {
	v := dedicated(t, nil)
	v.addFault(t, world.Keys{"endpoint": "smtp", "reply": "451 4.3.0 Try again later", "after": int64(1), "times": int64(2)})
	c := v.dialPlain(t, exchange.AddrSMTP)
	c.line() // banner
	c.send("NOOP")
	c.expect(smtpNoopOK)
	c.send("NOOP")
	c.expect("451 4.3.0 Try again later")
	c.send("EHLO client.example")
	c.expect("451 4.3.0 Try again later")
	c.send("NOOP")
	c.expect(smtpNoopOK)

	v.addFault(t, world.Keys{"endpoint": "smtp", "reply": "421 4.3.2 Service not available", "times": int64(1)})
	c.send("NOOP")
	c.expect("421 4.3.2 Service not available")
	c.eof()
}

// TestMailFaultProbability: with a probability, some counted commands fail and some do not, and the
// same seed fails the same ones.
func TestMailFaultProbability(t *testing.T) {
	v := dedicated(t, nil)
	run := func() string {
		id := v.addFault(t, world.Keys{"endpoint": "smtp", "reply": "452 4.3.1 Insufficient system resources", "probability": 0.5, "seed": int64(42)})
		defer v.removeFault(t, id)
		c := v.dialPlain(t, exchange.AddrSMTP)
		c.line()
		var pattern strings.Builder
		for range 40 {
			c.send("NOOP")
			switch l := c.line(); l {
			case smtpNoopOK:
				pattern.WriteByte('.')
			case "452 4.3.1 Insufficient system resources":
				pattern.WriteByte('x')
			default:
				t.Fatalf("unexpected %q", l)
			}
		}
		return pattern.String()
	}
	a, b := run(), run()
	if a != b {
		t.Errorf("the same seed failed other commands:\n%s\n%s", a, b)
	}
	if n := strings.Count(a, "x"); n < 5 || n > 35 {
		t.Errorf("%d of 40 commands failed with probability 0.5: %s", n, a)
	}
}

// TestMailFaultLatencyAndDisconnect: latency delays the counted command's answer; disconnect_after
// cuts a new connection after that many bytes; drop closes at the command.
func TestMailFaultLatencyAndDisconnect(t *testing.T) {
	v := dedicated(t, nil)
	id := v.addFault(t, world.Keys{"endpoint": "smtp", "latency": "300ms", "times": int64(1)})
	c := v.dialPlain(t, exchange.AddrSMTP)
	c.line()
	start := time.Now()
	c.send("NOOP")
	c.expect(smtpNoopOK)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("NOOP answered after %v, before the fault's 300ms", d)
	}
	v.removeFault(t, id)

	v.addFault(t, world.Keys{"endpoint": "smtp", "disconnect_after": int64(10), "times": int64(1)})
	cut := v.dialPlain(t, exchange.AddrSMTP)
	cut.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(cut.br)
	if len(got) != 10 || !strings.HasPrefix("220 ", string(got[:4])) {
		t.Errorf("read %q (%v), want the banner's first 10 bytes and the end", got, err)
	}
	next := v.dialPlain(t, exchange.AddrSMTP) // times = 1: the next connection is whole
	if l := next.line(); !strings.HasPrefix(l, "220 ") || !strings.Contains(l, "Microsoft ESMTP MAIL Service ready") {
		t.Errorf("banner %q", l)
	}

	v.addFault(t, world.Keys{"endpoint": "pop", "drop": true, "times": int64(1)})
	p := v.dialTLS(t, exchange.AddrPOP)
	p.line()
	p.send("CAPA")
	p.eof()
}

// TestPOPAndIMAPFaultReply: POP3 sends the reply as is; IMAP tags it before authentication, and a
// "* BYE" ends an authenticated session.
func TestPOPAndIMAPFaultReply(t *testing.T) {
	v := dedicated(t, nil)
	v.addFault(t, world.Keys{"endpoint": "pop", "reply": "-ERR Server busy", "times": int64(1)})
	p := v.dialTLS(t, exchange.AddrPOP)
	p.line()
	p.send("CAPA")
	p.expect("-ERR Server busy")
	p.send("CAPA")
	p.expect("+OK")

	id := v.addFault(t, world.Keys{"endpoint": "imap", "reply": "NO [UNAVAILABLE] Server busy", "times": int64(1)})
	c := v.dialTLS(t, exchange.AddrIMAP)
	c.line()
	c.send("A1 NOOP")
	c.expect("A1 NO [UNAVAILABLE] Server busy")
	c.send("A2 NOOP")
	c.expect("A2 OK NOOP completed.")
	v.removeFault(t, id)

	tok := v.userToken(t, world.Alice, exoAll)
	s := imapLogin(t, v, world.Alice, tok)
	v.addFault(t, world.Keys{"endpoint": "imap", "reply": "* BYE Server overloaded", "times": int64(1)})
	s.send("A2 NOOP")
	s.expect("* BYE Server overloaded")
	s.eof()
}

// TestSMTPBasicAuthRetired: a tenant that retired basic authentication for Client Submission
// answers AUTH LOGIN with 550 5.7.30; XOAUTH2 still works.
func TestSMTPBasicAuthRetired(t *testing.T) {
	v := dedicated(t, nil)
	if err := v.E.Live.Update(func(w *world.World) error {
		return w.SetTenant("contoso", world.Keys{"smtp_basic_auth": "retired"})
	}); err != nil {
		t.Fatal(err)
	}
	c := smtpReady(t, v)
	c.send("AUTH LOGIN YWxpY2VAY29udG9zby50ZXN0")
	c.expect("334 UGFzc3dvcmQ6")
	c.send("YWxpY2UtcGFzc3dvcmQ=")
	c.expectBracketed("550 5.7.30 Basic authentication is not supported for Client Submission. ")
	tok := v.userToken(t, world.Alice, exoAll)
	c.send("AUTH XOAUTH2 " + xoauth2(world.Alice, tok))
	c.expect("235 2.7.0 Authentication successful")
}

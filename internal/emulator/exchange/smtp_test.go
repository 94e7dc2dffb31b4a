package exchange_test

import (
	"bytes"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/sasl"
)

var (
	bannerRE  = regexp.MustCompile(`^220 ([A-Z]{2}[0-9]P(R[0-9]{2}|[0-9]{3})CA[0-9]{4})\.outlook\.office365\.com Microsoft ESMTP MAIL Service ready at (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [1-3]?[0-9] [A-Z][a-z]{2} 20[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} \+0000 \[08D[0-9A-F]{13}\]$`)
	bracketRE = `\[[A-Z]{2}[0-9]P(R[0-9]{2}|[0-9]{3})CA[0-9]{4}\.[a-zA-Z]+[0-9]+\.prod\.outlook\.com 20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z 08D[0-9A-F]{13}\]$`
)

const (
	smtp535      = "535 5.7.3 Authentication unsuccessful "
	smtpTenant   = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
	smtpMailbox  = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. "
	smtpBasic    = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
	smtpNotAuthd = "530 5.7.57 Client not authenticated to send mail"
)

// expectBracketed checks a reply is prefix followed by Exchange's server bracket.
func (lc *lineConn) expectBracketed(prefix string) {
	lc.t.Helper()
	l := lc.line()
	if !strings.HasPrefix(l, prefix) || !regexp.MustCompile(`^`+bracketRE).MatchString(l[len(prefix):]) {
		lc.t.Fatalf("got  %q\nwant %q[SERVER TIMESTAMP HEX]", l, prefix)
	}
}

// smtpReady connects, checks the banner, EHLOs before and after STARTTLS, and returns the
// connection ready for AUTH.
func smtpReady(t *testing.T, v *env) *lineConn {
	t.Helper()
	c := v.dialPlain(t, exchange.AddrSMTP)
	banner := c.line()
	m := bannerRE.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner %q", banner)
	}
	host := m[1] + ".outlook.office365.com"
	list := func(tlsLine string) []string {
		return []string{"250-" + host + " Hello [127.0.0.1]", "250-SIZE 157286400", "250-PIPELINING", "250-DSN",
			"250-ENHANCEDSTATUSCODES", tlsLine, "250-8BITMIME", "250-BINARYMIME", "250-CHUNKING", "250 SMTPUTF8"}
	}
	c.send("EHLO client.example")
	c.expect(list("250-STARTTLS")...)
	c.send("STARTTLS")
	c.expect("220 2.0.0 SMTP server ready")
	c.startTLS(v)
	c.send("EHLO client.example")
	c.expect(list("250-AUTH LOGIN XOAUTH2")...)
	return c
}

func TestSMTPSubmissionLikeExchange(t *testing.T) {
	v := dedicated(t, nil)
	tok := v.userToken(t, world.Alice, exoAll)
	c := v.dialPlain(t, exchange.AddrSMTP)
	c.line()
	c.send("MAIL FROM:<alice@contoso.test>")
	c.expect("503 5.5.2 Send hello first")
	c.send("HELO x")
	if l := c.line(); !strings.HasPrefix(l, "250 ") || !strings.HasSuffix(l, ".outlook.office365.com Hello [127.0.0.1]") {
		t.Fatalf("HELO: %q", l)
	}
	c.send("AUTH XOAUTH2 " + xoauth2(world.Alice, tok))
	c.expect("504 5.7.4 Unrecognized authentication type") // no AUTH before STARTTLS
	c.send("MAIL FROM:<alice@contoso.test>")
	c.expect(smtpNotAuthd)
	c.send("FROB")
	c.expectBracketed("500 5.3.3 Unrecognized command 'FROB' ")
	c.send("QUIT")
	c.expect("221 2.0.0 Service closing transmission channel")

	c = smtpReady(t, v)
	c.send("MAIL FROM:<alice@contoso.test>")
	c.expect(smtpNotAuthd)
	c.send("AUTH PLAIN AGFsaWNlQGNvbnRvc28udGVzdABhbGljZS1wYXNzd29yZA==")
	c.expect("504 5.7.4 Unrecognized authentication type")
	c.send("AUTH XOAUTH2")
	c.expect("334 ")
	c.send(xoauth2(world.Alice, tok))
	c.expect("235 2.7.0 Authentication successful")
	c.send("AUTH XOAUTH2")
	c.expect("503 5.5.2 Already authenticated")
	c.send("RCPT TO:<bob@contoso.test>")
	c.expect("503 5.5.2 Need mail command")
	c.send("MAIL FROM:<alice@contoso.test> SIZE=120 BODY=8BITMIME")
	c.expect("250 2.1.0 Sender OK")
	c.send("DATA")
	c.expect("503 5.5.2 Need rcpt command")
	c.send("RCPT TO:<bob@contoso.test>")
	c.expect("250 2.1.5 Recipient OK")
	c.send("RCPT TO:<Support@Contoso.test> NOTIFY=NEVER")
	c.expect("250 2.1.5 Recipient OK")
	c.send("RCPT TO:<nobody@contoso.test>")
	c.expect("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup")
	c.send("RCPT TO:<someone@example.com>")
	c.expect("250 2.1.5 Recipient OK")
	c.send("DATA")
	c.expect("354 Start mail input; end with <CRLF>.<CRLF>")
	msg := "From: Alice <alice@contoso.test>\r\nTo: bob@contoso.test\r\nSubject: raw\r\nMessage-ID: <raw-1@contoso.test>\r\n\r\nline\r\n.leading dot\r\n"
	for _, l := range strings.Split(strings.TrimSuffix(msg, "\r\n"), "\r\n") {
		if strings.HasPrefix(l, ".") {
			l = "." + l
		}
		c.send(l)
	}
	c.send(".")
	if l := c.line(); !regexp.MustCompile(`^250 2\.0\.0 OK <raw-1@contoso\.test> \[Hostname=[A-Z0-9.]+\.PROD\.OUTLOOK\.COM\]$`).MatchString(l) {
		t.Fatalf("end of data: %q", l)
	}
	for _, box := range []string{world.Bob, world.Support} {
		in, _ := v.E.Store.List(box, mailstore.Inbox)
		if len(in) != 1 || string(in[0].Data) != msg {
			t.Errorf("%s's INBOX: %d messages", box, len(in))
		}
	}
	sent, _ := v.E.Store.List(world.Alice, mailstore.SentItems)
	if len(sent) != 1 || string(sent[0].Data) != msg || !sent[0].HasFlag(mailstore.FlagSeen) {
		t.Errorf("alice's Sent Items: %+v", sent)
	}
	// BDAT (CHUNKING), send-as a shared mailbox with SendAs, and the one-line AUTH form elsewhere.
	c.send("MAIL FROM:<support@contoso.test>")
	c.expect("250 2.1.0 Sender OK")
	c.send("RCPT TO:<bob@contoso.test>")
	c.expect("250 2.1.5 Recipient OK")
	chunk1, chunk2 := "From: support@contoso.test\r\nSubject: chunked\r\n", "\r\nbody\r\n"
	c.send("BDAT " + itoa(len(chunk1)))
	c.conn.Write([]byte(chunk1))
	c.expect("250 2.0.0 BDAT " + itoa(len(chunk1)) + " bytes received")
	c.send("BDAT " + itoa(len(chunk2)) + " LAST")
	c.conn.Write([]byte(chunk2))
	if l := c.line(); !strings.HasPrefix(l, "250 2.0.0 OK <") {
		t.Fatalf("BDAT LAST: %q", l)
	}
	in, _ := v.E.Store.List(world.Bob, mailstore.Inbox)
	if len(in) != 2 || string(in[1].Data) != chunk1+chunk2 {
		t.Errorf("bob's INBOX after BDAT: %d", len(in))
	}
	c.send("RSET")
	c.expect("250 2.0.0 Resetting")
	c.send("NOOP")
	c.expect("250 2.0.0 OK")
	c.send("QUIT")
	c.expect("221 2.0.0 Service closing transmission channel")
	c.eof()
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestSMTPSendAsDenied(t *testing.T) {
	v := shared(t)
	for _, tc := range []struct{ user, from, header, denied string }{
		{world.Alice, "bob@contoso.test", "bob@contoso.test", "bob@contoso.test"},       // another user
		{world.Alice, "alice@contoso.test", "sales@contoso.test", "sales@contoso.test"}, // a shared mailbox without SendAs
		{world.Bob, "sales@contoso.test", "sales@contoso.test", "sales@contoso.test"},   // FullAccess is not SendAs
		{world.Alice, "alice@contoso.test", "Eve <eve@example.com>", "eve@example.com"}, // an outside address
	} {
		c := smtpReady(t, v)
		c.send("AUTH XOAUTH2 " + xoauth2(tc.user, v.userToken(t, tc.user, exoAll)))
		c.expect("235 2.7.0 Authentication successful")
		c.send("MAIL FROM:<" + tc.from + ">")
		c.expect("250 2.1.0 Sender OK")
		c.send("RCPT TO:<carol@contoso.test>")
		c.expect("250 2.1.5 Recipient OK")
		c.send("DATA")
		c.expect("354 Start mail input; end with <CRLF>.<CRLF>")
		c.send("From: " + tc.header)
		c.send("")
		c.send("hi")
		c.send(".")
		l := c.line()
		want := "554 5.2.252 SendAsDenied; " + tc.user + " not allowed to send as " + tc.denied + "; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message."
		if !strings.HasPrefix(l, want) {
			t.Errorf("%s as %s/%s:\ngot  %q\nwant %q...", tc.user, tc.from, tc.header, l, want)
		}
	}
	if in, _ := v.E.Store.List(carol, mailstore.Inbox); len(in) != 0 {
		t.Errorf("a denied message was delivered")
	}
}

func TestSMTPRefused(t *testing.T) {
	v := shared(t)
	cases := append(append(tokenRefusals(), mailboxRefusals()...),
		refusal{"missing scope", world.Alice, func(t *testing.T, v *env) string {
			return v.userToken(t, world.Alice, "https://outlook.office.com/IMAP.AccessAsUser.All")
		}, exchange.MissingScope},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t, v)
			if d := v.E.Exchange.Authorizer.Authorize(exchange.SMTP, tc.user, tok); d.Reason != tc.reason {
				t.Fatalf("Authorize: %v, want %v", d.Reason, tc.reason)
			}
			c := smtpReady(t, v)
			c.send("AUTH XOAUTH2 " + xoauth2(tc.user, tok))
			c.expectBracketed(smtp535)
			c.send("MAIL FROM:<" + tc.user + ">")
			c.expect(smtpNotAuthd)
		})
	}
}

func TestSMTPAuthDisabled(t *testing.T) {
	v := shared(t)
	for _, tc := range []struct {
		user   string
		reply  string
		reason exchange.Reason
	}{
		{frank, smtpTenant, exchange.SMTPAuthDisabledTenant},
		{dave, smtpMailbox, exchange.SMTPAuthDisabledMailbox},
		{grace, "", exchange.Allowed}, // the mailbox re-enables what the tenant disables
	} {
		tok := v.userToken(t, tc.user, exoAll)
		if d := v.E.Exchange.Authorizer.Authorize(exchange.SMTP, tc.user, tok); d.Reason != tc.reason {
			t.Fatalf("%s: Authorize: %v", tc.user, d.Reason)
		}
		c := smtpReady(t, v)
		c.send("AUTH XOAUTH2")
		c.expect("334 ")
		c.send(xoauth2(tc.user, tok))
		if tc.reply == "" {
			c.expect("235 2.7.0 Authentication successful")
		} else {
			c.expectBracketed(tc.reply)
		}
	}
	// IMAP is not affected by SMTP AUTH settings.
	imapLogin(t, v, frank, v.userToken(t, frank, exoAll)).send("A2 LOGOUT")
}

func TestSMTPBasicAuthRefused(t *testing.T) {
	v := shared(t)
	c := smtpReady(t, v)
	c.send("AUTH LOGIN")
	c.expect("334 VXNlcm5hbWU6")
	c.send("YWxpY2VAY29udG9zby50ZXN0")
	c.expect("334 UGFzc3dvcmQ6")
	c.send("YWxpY2UtcGFzc3dvcmQ=")
	c.expectBracketed(smtpBasic)
	c.send("AUTH LOGIN YWxpY2VAY29udG9zby50ZXN0")
	c.expect("334 UGFzc3dvcmQ6")
	c.send("YWxpY2UtcGFzc3dvcmQ=")
	c.expectBracketed(smtpBasic)
	c.send("AUTH XOAUTH2")
	c.expect("334 ")
	c.send("*")
	c.expect("501 5.0.0 Authentication cancelled")
	c.send("AUTH XOAUTH2 !!!")
	c.expect("501 5.5.2 Cannot Decode response")
	if strings.Contains(v.Logs.String(), "alice-password") {
		t.Error("a password reached the logs")
	}
}

func TestSMTPExpiredToken(t *testing.T) {
	v := dedicated(t, nil)
	tok := v.userToken(t, world.Bob, exoAll)
	v.Clock.Advance(2 * time.Hour)
	c := smtpReady(t, v)
	c.send("AUTH XOAUTH2 " + xoauth2(world.Bob, tok))
	c.expectBracketed(smtp535)
}

// TestSMTPWithGoSMTPClient sends with go-smtp's client and this module's XOAUTH2, app-only.
func TestSMTPWithGoSMTPClient(t *testing.T) {
	v := dedicated(t, nil)
	tok := v.appToken(t, "daemon", exoApp)
	host, _, _ := net.SplitHostPort(v.addr(exchange.AddrSMTP))
	cfg := v.TLS.Clone()
	cfg.ServerName = host
	c, err := gosmtp.DialStartTLS(v.addr(exchange.AddrSMTP), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, params := c.Extension("AUTH"); !ok || params != "LOGIN XOAUTH2" {
		t.Fatalf("AUTH extension %v %q", ok, params)
	}
	if err := c.Auth(sasl.NewXOAuth2Client(world.Bob, tok)); err != nil {
		t.Fatalf("Auth: %v", err)
	}
	msg := "From: bob@contoso.test\r\nTo: alice@contoso.test\r\nSubject: app-only\r\n\r\nsent by the daemon\r\n..two dots\r\n"
	if err := c.SendMail(world.Bob, []string{world.Alice}, strings.NewReader(msg)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	// As a mailbox its service principal holds FullAccess on, but not the one it authenticated for.
	err = c.SendMail(world.Alice, []string{world.Bob}, strings.NewReader("From: alice@contoso.test\r\n\r\nx\r\n"))
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || !strings.HasPrefix(se.Message, "SendAsDenied; bob@contoso.test not allowed to send as alice@contoso.test;") {
		t.Fatalf("send-as: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	in, _ := v.E.Store.List(world.Alice, mailstore.Inbox)
	if len(in) != 1 || string(in[0].Data) != msg {
		t.Fatalf("alice's INBOX: %+v", in)
	}

	// Read back over IMAP and POP3: byte-identical.
	atok := v.userToken(t, world.Alice, exoAll)
	ic := imapLogin(t, v, world.Alice, atok)
	ic.send("A2 SELECT INBOX")
	ic.until("A2 ")
	ic.send("A3 FETCH 1 BODY.PEEK[]")
	head := ic.line()
	if !strings.HasSuffix(head, "{"+itoa(len(msg))+"}") {
		t.Fatalf("FETCH: %q", head)
	}
	body := make([]byte, len(msg))
	if _, err := ioReadFull(ic, body); err != nil || !bytes.Equal(body, []byte(msg)) {
		t.Fatalf("FETCH body %q, %v", body, err)
	}
	ic.expect(")", "A3 OK FETCH completed.")
	pc := popLogin(t, v, world.Alice, atok)
	pc.send("RETR 1")
	pc.expect("+OK")
	if got := strings.Join(pc.multiline(), "\r\n") + "\r\n"; got != msg {
		t.Fatalf("RETR: %q", got)
	}
}

func ioReadFull(lc *lineConn, b []byte) (int, error) {
	lc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n := 0
	for n < len(b) {
		m, err := lc.br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

package exchange_test

import (
	"encoding/base64"
	"encoding/binary"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/sasl"
)

const (
	capsPre  = "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
	capsPost = "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+"
)

var greetingRE = regexp.MustCompile(`^(\* OK The Microsoft Exchange IMAP4 service is ready\. |\+OK The Microsoft Exchange POP3 service is ready\. )\[([A-Za-z0-9+/=]+)\]$`)

// checkGreeting checks an IMAP or POP3 greeting and that its bracket is base64 of a UTF-16LE FQDN
// of Exchange Online's shape.
func checkGreeting(t *testing.T, line string) {
	t.Helper()
	m := greetingRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("greeting %q", line)
	}
	raw, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil || len(raw)%2 != 0 {
		t.Fatalf("greeting bracket is not base64 UTF-16: %q", m[2])
	}
	u := make([]uint16, len(raw)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	fqdn := string(utf16.Decode(u))
	if !regexp.MustCompile(`^[A-Z]{2}[0-9]P(R[0-9]{2}|[0-9]{3})CA[0-9]{4}\.[A-Z]+[0-9]+\.PROD\.OUTLOOK\.COM$`).MatchString(fqdn) {
		t.Errorf("greeting names %q, not an Exchange Online front end", fqdn)
	}
}

// imapLogin connects to the implicit-TLS listener and authenticates with SASL-IR.
func imapLogin(t *testing.T, v *env, user, token string) *lineConn {
	t.Helper()
	c := v.dialTLS(t, exchange.AddrIMAP)
	checkGreeting(t, c.line())
	c.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2(user, token))
	c.expect("A1 OK AUTHENTICATE completed.")
	return c
}

func TestIMAPSessionLikeExchange(t *testing.T) {
	v := shared(t)
	tok := v.userToken(t, world.Alice, exoAll)
	c := v.dialTLS(t, exchange.AddrIMAP)
	checkGreeting(t, c.line())
	c.send("A0 CAPABILITY")
	c.expect(capsPre, "A0 OK CAPABILITY completed.")
	c.send("A1 NOOP")
	c.expect("A1 OK NOOP completed.")
	c.send("A2 ID (\"name\" \"test\")")
	c.expect("* ID NIL", "A2 OK ID completed.")
	c.send("A3 SELECT INBOX")
	c.expect("A3 BAD Command received in Invalid state.")
	c.send("A4 FROB")
	c.expect("A4 BAD Command Error. 10")
	c.send("A5 AUTHENTICATE XOAUTH2 " + xoauth2(world.Alice, tok))
	c.expect("A5 OK AUTHENTICATE completed.")
	c.send("A6 CAPABILITY")
	c.expect(capsPost, "A6 OK CAPABILITY completed.")
	c.send("A7 NAMESPACE")
	c.expect(`* NAMESPACE (("" "/")) NIL NIL`, "A7 OK NAMESPACE completed.")
	c.send("A8 ID NIL")
	c.expect("* ID NIL", "A8 OK ID completed.")
	c.send(`A9 LIST "" "*"`)
	lines := c.until("A9 ")
	for _, f := range mailstore.DefaultFolders {
		if !containsLine(lines, `"/" `+f) && !containsLine(lines, `"/" "`+f+`"`) {
			t.Errorf("LIST lacks %s: %q", f, lines)
		}
	}
	if lines[len(lines)-1] != "A9 OK LIST completed." {
		t.Errorf("LIST: %q", lines)
	}
	c.send("A10 SELECT INBOX")
	sel := c.until("A10 ")
	if sel[len(sel)-1] != "A10 OK [READ-WRITE] SELECT completed." || !containsLine(sel, "] UIDVALIDITY value") || !containsLine(sel, "] The next unique identifier value") {
		t.Errorf("SELECT: %q", sel)
	}
	c.send("A11 UID FETCH 1:* (FLAGS)")
	c.expect("A11 OK FETCH completed.")
	c.send("A12 AUTHENTICATE XOAUTH2 " + xoauth2(world.Alice, tok))
	c.expect("A12 BAD Command received in Invalid state.")
	c.send("A12b STARTTLS")
	c.expect("A12b BAD Command received in Invalid state.")
	c.send("A13 LOGOUT")
	c.expect("* BYE Microsoft Exchange Server IMAP4 server signing off.", "A13 OK LOGOUT completed.")
	c.eof()
}

func containsLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func TestIMAPTwoStepAuthenticate(t *testing.T) {
	v := shared(t)
	tok := v.appToken(t, "daemon", exoApp)
	c := v.dialTLS(t, exchange.AddrIMAP)
	c.line()
	c.send("A1 AUTHENTICATE XOAUTH2")
	c.expect("+ ")
	c.send(xoauth2(world.Bob, tok))
	c.expect("A1 OK AUTHENTICATE completed.")
	c.send("A2 SELECT INBOX")
	if l := c.until("A2 "); l[len(l)-1] != "A2 OK [READ-WRITE] SELECT completed." {
		t.Fatalf("SELECT: %q", l)
	}
	// A refused two-step exchange, and a cancelled one.
	c2 := v.dialTLS(t, exchange.AddrIMAP)
	c2.line()
	c2.send("B1 AUTHENTICATE XOAUTH2")
	c2.expect("+ ")
	c2.send(xoauth2(world.Alice, "not-a-token"))
	c2.expect("B1 NO AUTHENTICATE failed.")
	c2.send("B2 AUTHENTICATE XOAUTH2")
	c2.expect("+ ")
	c2.send("*")
	c2.expect("B2 BAD AUTHENTICATE cancelled.")
	c2.send("B3 LOGOUT")
	c2.expect("* BYE Microsoft Exchange Server IMAP4 server signing off.", "B3 OK LOGOUT completed.")
}

// refusal is a credential Exchange refuses, and the reason the Authorizer gives.
type refusal struct {
	name   string
	user   string
	token  func(t *testing.T, v *env) string
	reason exchange.Reason
}

// refusals common to the three protocols (the token or the app is wrong).
func tokenRefusals() []refusal {
	return []refusal{
		{"garbage", world.Alice, func(*testing.T, *env) string { return "ey.not.a.jwt" }, exchange.TokenMalformed},
		{"signed by another key", world.Alice, func(t *testing.T, v *env) string { return forge(t, v.userToken(t, world.Alice, exoAll), nil) }, exchange.TokenBadSignature},
		{"graph audience", world.Alice, func(t *testing.T, v *env) string { return v.userToken(t, world.Alice, graph) }, exchange.TokenWrongAudience},
		{"graph app-only", world.Alice, func(t *testing.T, v *env) string {
			return v.appToken(t, "daemon", "https://graph.microsoft.com/.default")
		}, exchange.TokenWrongAudience},
		{"app without roles", world.Alice, func(t *testing.T, v *env) string { return v.appToken(t, "graphonly", exoApp) }, exchange.MissingRole},
		{"app without service principal", world.Alice, func(t *testing.T, v *env) string { return v.appToken(t, "nosp", exoApp) }, exchange.NoServicePrincipal},
	}
}

// mailboxRefusals: the token is good, the mailbox cannot be opened — deferred on IMAP.
func mailboxRefusals() []refusal {
	return []refusal{
		{"another user's mailbox", world.Bob, func(t *testing.T, v *env) string { return v.userToken(t, world.Alice, exoAll) }, exchange.NotMailboxOwner},
		{"shared mailbox without FullAccess", world.Support, func(t *testing.T, v *env) string { return v.userToken(t, world.Bob, exoAll) }, exchange.NotMailboxOwner},
		{"app without FullAccess", carol, func(t *testing.T, v *env) string { return v.appToken(t, "daemon", exoApp) }, exchange.NoFullAccess},
		{"unknown mailbox", "nobody@contoso.test", func(t *testing.T, v *env) string { return v.userToken(t, world.Alice, exoAll) }, exchange.UnknownMailbox},
		{"mailbox of no tenant", "alice@example.com", func(t *testing.T, v *env) string { return v.userToken(t, world.Alice, exoAll) }, exchange.UnknownMailbox},
	}
}

func TestIMAPRefusedAtAuthenticate(t *testing.T) {
	v := shared(t)
	cases := append(tokenRefusals(),
		refusal{"missing scope", world.Alice, func(t *testing.T, v *env) string { return v.userToken(t, world.Alice, exoSMTP) }, exchange.MissingScope},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t, v)
			if d := v.E.Exchange.Authorizer.Authorize(exchange.IMAP, tc.user, tok); d.Reason != tc.reason || d.Deferred {
				t.Fatalf("Authorize: %v (deferred %v), want %v", d.Reason, d.Deferred, tc.reason)
			}
			c := v.dialTLS(t, exchange.AddrIMAP)
			c.line()
			c.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2(tc.user, tok))
			c.expect("A1 NO AUTHENTICATE failed.")
			// The connection stays usable, as on Exchange (Webklex/php-imap#315).
			c.send("A2 LOGOUT")
			c.expect("* BYE Microsoft Exchange Server IMAP4 server signing off.", "A2 OK LOGOUT completed.")
		})
	}
}

func TestIMAPAuthenticatedButNotConnected(t *testing.T) {
	v := shared(t)
	cases := append(mailboxRefusals(),
		refusal{"IMAP disabled", carol, func(t *testing.T, v *env) string { return v.userToken(t, carol, exoAll) }, exchange.ProtocolDisabled},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t, v)
			if d := v.E.Exchange.Authorizer.Authorize(exchange.IMAP, tc.user, tok); d.Reason != tc.reason || !d.Deferred {
				t.Fatalf("Authorize: %v (deferred %v), want %v deferred", d.Reason, d.Deferred, tc.reason)
			}
			c := imapLogin(t, v, tc.user, tok)
			c.send("C2 CAPABILITY")
			c.expect(capsPost, "C2 OK CAPABILITY completed.")
			c.send("C3 NAMESPACE")
			c.expect("C3 BAD User is authenticated but not connected.")
			c.send(`C4 LIST "" "INBOX"`)
			c.expect("C4 BAD User is authenticated but not connected.", "* BYE Connection closed. 14")
			c.eof()
		})
	}
}

func TestIMAPBasicAuthRefused(t *testing.T) {
	v := shared(t)
	c := v.dialTLS(t, exchange.AddrIMAP)
	c.line()
	c.send(`A1 LOGIN alice@contoso.test alice-password`)
	c.expect("A1 NO LOGIN failed.")
	c.send(`A2 LOGIN {18+}`)
	c.send(`alice@contoso.test "alice-password"`)
	c.expect("A2 NO LOGIN failed.")
	c.send(`A3 LOGIN {18}`)
	c.expect("+ Ready for additional command text.")
	c.send(`alice@contoso.test {14}`)
	c.expect("+ Ready for additional command text.")
	c.send(`alice-password`)
	c.expect("A3 NO LOGIN failed.")
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice@contoso.test\x00alice-password"))
	c.send("A4 AUTHENTICATE PLAIN " + plain)
	c.expect("A4 NO AUTHENTICATE failed.")
	c.send("A5 AUTHENTICATE PLAIN")
	c.expect("+ ")
	c.send(plain)
	c.expect("A5 NO AUTHENTICATE failed.")
	c.send("A6 AUTHENTICATE OAUTHBEARER " + plain)
	c.expect("A6 NO AUTHENTICATE failed.")
	if strings.Contains(v.Logs.String(), "alice-password") {
		t.Error("a password reached the logs")
	}
}

func TestIMAPStartTLSListener(t *testing.T) {
	v := shared(t)
	tok := v.userToken(t, world.Alice, exoAll)
	c := v.dialPlain(t, exchange.AddrIMAPStartTLS)
	checkGreeting(t, c.line())
	c.send("A0 CAPABILITY")
	c.expect("* CAPABILITY IMAP4 IMAP4rev1 LOGINDISABLED STARTTLS SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+", "A0 OK CAPABILITY completed.")
	c.send("A1 LOGIN alice@contoso.test alice-password")
	c.expect("A1 NO LOGIN failed.")
	c.send("A2 AUTHENTICATE XOAUTH2 " + xoauth2(world.Alice, tok))
	c.expect("A2 NO AUTHENTICATE failed.")
	c.send("A3 STARTTLS")
	c.expect("A3 OK Begin TLS negotiation now.")
	c.startTLS(v)
	c.send("A4 CAPABILITY")
	c.expect(capsPre, "A4 OK CAPABILITY completed.")
	c.send("A5 STARTTLS")
	c.expect("A5 BAD Command received in Invalid state.")
	c.send("A6 AUTHENTICATE XOAUTH2 " + xoauth2(world.Alice, tok))
	c.expect("A6 OK AUTHENTICATE completed.")
	c.send("A7 SELECT INBOX")
	if l := c.until("A7 "); l[len(l)-1] != "A7 OK [READ-WRITE] SELECT completed." {
		t.Fatalf("SELECT: %q", l)
	}
	// The implicit-TLS listener offers no STARTTLS.
	d := v.dialTLS(t, exchange.AddrIMAP)
	d.line()
	d.send("B1 STARTTLS")
	d.expect("B1 BAD Command received in Invalid state.")
}

func TestIMAPSharedMailboxWithFullAccess(t *testing.T) {
	v := shared(t)
	if _, err := v.E.Store.Append(world.Support, mailstore.Inbox, []byte("Subject: for support\r\n\r\nhello\r\n"), nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	c := imapLogin(t, v, world.Support, v.userToken(t, world.Alice, exoAll))
	c.send("A2 EXAMINE INBOX")
	l := c.until("A2 ")
	if l[len(l)-1] != "A2 OK [READ-ONLY] EXAMINE completed." || !containsLine(l, " EXISTS") {
		t.Fatalf("EXAMINE: %q", l)
	}
}

func TestIMAPExpiredToken(t *testing.T) {
	v := dedicated(t, nil)
	tok := v.userToken(t, world.Alice, exoAll)
	app := v.appToken(t, "daemon", exoApp)
	imapLogin(t, v, world.Alice, tok) // valid now
	v.Clock.Advance(2 * time.Hour)
	for _, c := range []struct{ user, tok string }{{world.Alice, tok}, {world.Bob, app}} {
		if d := v.E.Exchange.Authorizer.Authorize(exchange.IMAP, c.user, c.tok); d.Reason != exchange.TokenExpired {
			t.Fatalf("Authorize: %v", d.Reason)
		}
		conn := v.dialTLS(t, exchange.AddrIMAP)
		conn.line()
		conn.send("A1 AUTHENTICATE XOAUTH2 " + xoauth2(c.user, c.tok))
		conn.expect("A1 NO AUTHENTICATE failed.")
	}
}

// TestIMAPWithGoIMAPClient drives the server with go-imap v2's client and this module's XOAUTH2.
func TestIMAPWithGoIMAPClient(t *testing.T) {
	v := shared(t)
	tok := v.userToken(t, world.Bob, exoAll)
	msg := []byte("From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: go-imap\r\nMessage-ID: <go-imap@test>\r\n\r\nbody line\r\n.dotted line\r\n")
	if _, err := v.E.Store.Append(world.Bob, mailstore.Inbox, msg, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(v.addr(exchange.AddrIMAP), &imapclient.Options{TLSConfig: v.TLS.Clone()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewXOAuth2Client(world.Bob, tok)); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	caps, err := c.Capability().Wait()
	if err != nil || !caps.Has(imap.CapMove) || !caps.Has(imap.Cap("AUTH=XOAUTH2")) || caps.Has(imap.Cap("AUTH=OAUTHBEARER")) {
		t.Fatalf("capabilities %v, %v", caps, err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages == 0 {
		t.Fatalf("Select: %+v, %v", sel, err)
	}
	bodySection := &imap.FetchItemBodySection{}
	msgs, err := c.Fetch(imap.SeqSetNum(sel.NumMessages), &imap.FetchOptions{UID: true, Envelope: true, BodySection: []*imap.FetchItemBodySection{bodySection}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Fetch: %v %v", msgs, err)
	}
	if got := msgs[0].FindBodySection(bodySection); string(got) != string(msg) {
		t.Errorf("body %q\nwant %q", got, msg)
	}
	if msgs[0].Envelope == nil || msgs[0].Envelope.Subject != "go-imap" {
		t.Errorf("envelope %+v", msgs[0].Envelope)
	}
	if _, err := c.Move(imap.UIDSetNum(msgs[0].UID), mailstore.Archive).Wait(); err != nil {
		t.Fatalf("Move: %v", err)
	}
	list, err := v.E.Store.List(world.Bob, mailstore.Archive)
	if err != nil || len(list) == 0 || string(list[len(list)-1].Data) != string(msg) {
		t.Fatalf("Archive after MOVE: %d messages, %v", len(list), err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("Logout: %v", err)
	}

	// A refused token: the client sees the NO.
	c2, err := imapclient.DialTLS(v.addr(exchange.AddrIMAP), &imapclient.Options{TLSConfig: v.TLS.Clone()})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	err = c2.Authenticate(sasl.NewXOAuth2Client(world.Bob, forge(t, tok, nil)))
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATE failed.") {
		t.Fatalf("forged token: %v", err)
	}
}

func TestIMAPIdleSeesDelivery(t *testing.T) {
	v := shared(t)
	c := imapLogin(t, v, world.Alice, v.userToken(t, world.Alice, exoAll))
	c.send("A2 SELECT Drafts")
	c.until("A2 ")
	c.send("A3 IDLE")
	c.expect("+ IDLE accepted, awaiting DONE command.")
	if _, err := v.E.Store.Append(world.Alice, mailstore.Drafts, []byte("Subject: x\r\n\r\ny\r\n"), nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if l := c.line(); !strings.HasSuffix(l, " EXISTS") {
		t.Fatalf("IDLE: %q", l)
	}
	c.send("DONE")
	c.expect("A3 OK IDLE completed.")
}

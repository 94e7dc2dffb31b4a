package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/passhash"
	"github.com/mailoauth/mailoauth/internal/testpki"
	"github.com/mailoauth/mailoauth/proxy"
)

// client is a program talking to the proxy line by line, as the simplest password-only program does.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dial connects to the listener for protocol and mode, reads the greeting, and for STARTTLS
// upgrades with the protocol's own command, checking the proxy's certificate.
func (l *lab) dial(t *testing.T, protocol, mode string) *client {
	t.Helper()
	var c net.Conn
	var err error
	if mode == config.LocalTLSImplicit {
		c, err = tls.Dial("tcp", l.addr(protocol, mode), l.clientTLS())
	} else {
		c, err = net.Dial("tcp", l.addr(protocol, mode))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	greeting := cl.line()
	if mode != config.LocalTLSStartTLS {
		cl.check(greeting, map[string]string{"imap": "* OK", "pop": "+OK", "smtp": "220 "}[protocol])
		return cl
	}
	switch protocol {
	case "imap":
		cl.check(greeting, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED")
		cl.check(cl.cmd("a LOGIN alice x", "a "), "a NO [PRIVACYREQUIRED]")
		cl.check(cl.cmd("s STARTTLS", "s "), "s OK")
	case "pop":
		cl.check(cl.cmd("USER alice", ""), "-ERR [AUTH]")
		cl.check(cl.cmd("STLS", ""), "+OK")
	case "smtp":
		cl.check(cl.cmd("EHLO test", "250 "), "250 STARTTLS")
		cl.check(cl.cmd("AUTH PLAIN", ""), "530 5.7.0")
		cl.check(cl.cmd("STARTTLS", ""), "220 ")
	}
	tc := tls.Client(c, l.clientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	cl.c, cl.r = tc, bufio.NewReader(tc)
	return cl
}

func (c *client) line() string {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(waitTimeout))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading from the proxy: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends a line and returns the first answer line starting with until ("" = the next line).
func (c *client) cmd(s, until string) string {
	c.t.Helper()
	c.send(s)
	return c.until(until)
}

// until reads to the first line starting with prefix.
func (c *client) until(until string) string {
	c.t.Helper()
	for {
		l := c.line()
		if strings.HasPrefix(l, until) {
			return l
		}
	}
}

func (c *client) check(got, prefix string) {
	c.t.Helper()
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("got %q, want a line starting with %q", got, prefix)
	}
}

// closed reports whether the proxy closed the connection (EOF within waitTimeout).
func (c *client) closed() bool {
	_ = c.c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.ReadAll(c.r)
	return err == nil
}

func plain(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
}

// login logs in the way each protocol's simplest program does and asserts success.
func (c *client) login(protocol, user, password string) {
	c.t.Helper()
	switch protocol {
	case "imap":
		c.check(c.cmd(fmt.Sprintf("a LOGIN %q %q", user, password), "a "), "a OK")
	case "pop":
		c.check(c.cmd("USER "+user, ""), "+OK")
		c.check(c.cmd("PASS "+password, ""), "+OK")
	case "smtp":
		c.cmd("EHLO test.example", "250 ")
		c.check(c.cmd("AUTH PLAIN "+plain(user, password), ""), "235 ")
	}
}

// TestLoginAndUse: every protocol in every local TLS mode logs in with the password and then does
// what needs the mailbox upstream; a message sent through the SMTP listener reaches bob, who reads it
// through the IMAP listener (domain catch-all → app-only account opening bob's mailbox).
func TestLoginAndUse(t *testing.T) {
	l := newLab(t, labOptions{})
	for _, mode := range tlsModes {
		t.Run(mode, func(t *testing.T) {
			subject := "through the proxy, local TLS " + mode
			s := l.dial(t, "smtp", mode)
			s.login("smtp", aliceUser, alicePassword)
			s.check(s.cmd("MAIL FROM:<alice@contoso.test>", ""), "250")
			s.check(s.cmd("RCPT TO:<bob@contoso.test>", ""), "250")
			s.check(s.cmd("DATA", ""), "354")
			s.check(s.cmd("From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: "+subject+"\r\n\r\nhello\r\n.", ""), "250")
			s.check(s.cmd("QUIT", ""), "221")

			i := l.dial(t, "imap", mode)
			i.login("imap", "bob@contoso.test", domainPassword)
			i.check(i.cmd("b SELECT INBOX", "b "), "b OK")
			i.send(`c SEARCH SUBJECT "` + subject + `"`)
			if found := i.line(); !strings.HasPrefix(found, "* SEARCH ") || found == "* SEARCH" {
				t.Fatalf("bob's INBOX has no message %q: %s", subject, found)
			}
			i.check(i.line(), "c OK")

			p := l.dial(t, "pop", mode)
			p.login("pop", "bob@contoso.test", domainPassword)
			p.check(p.cmd("STAT", ""), "+OK")
			p.check(p.cmd("QUIT", ""), "+OK")
		})
	}
	l.waitLog(`msg="logged in"`, "user=bob@contoso.test", "mailbox=bob@contoso.test", "account=daemon")

	// The debug-level log of all this holds no password and no token.
	a, err := l.mgr.Account("daemon")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Token(context.Background(), token.Exchange)
	if err != nil {
		t.Fatal(err)
	}
	logs := l.logs.String()
	for _, secret := range []string{alicePassword, domainPassword, tok.AccessToken, tok.AccessToken[len(tok.AccessToken)-40:], plain(aliceUser, alicePassword)} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the proxy's log holds a secret (%d chars)", len(secret))
		}
	}
}

// TestIMAPLoginForms: the ways programs send credentials to IMAP: atoms, quoted strings with
// escapes, synchronizing literals, LITERAL+, AUTHENTICATE PLAIN with and without an initial response.
func TestIMAPLoginForms(t *testing.T) {
	hash := hashOf(t, `p"a\ss word`)
	l := newLab(t, labOptions{mutate: func(f *config.File) {
		f.Proxy.Users["scanner"] = &config.ProxyUser{Account: "daemon", PasswordHash: hash}
	}})
	for _, tc := range []struct {
		name  string
		lines []string // sent in turn; "<" means: read a continuation "+" first
	}{
		{"atoms", []string{"a LOGIN " + aliceUser + " " + alicePassword}},
		{"quoted with escapes", []string{`a LOGIN "scanner" "p\"a\\ss word"`}},
		{"literals", []string{"a LOGIN {7}", "<scanner {11}", `<p"a\ss word`}},
		{"LITERAL+", []string{"a LOGIN {7+}", "scanner {11+}", `p"a\ss word`}},
		{"AUTHENTICATE PLAIN with SASL-IR", []string{"a AUTHENTICATE PLAIN " + plain("scanner", `p"a\ss word`)}},
		{"AUTHENTICATE PLAIN", []string{"a AUTHENTICATE PLAIN", "<" + plain("scanner", `p"a\ss word`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := l.dial(t, "imap", config.LocalTLSNone)
			for _, s := range tc.lines {
				if strings.HasPrefix(s, "<") {
					c.check(c.line(), "+")
					s = s[1:]
				}
				c.send(s)
			}
			c.check(c.until("a "), "a OK")
			c.check(c.cmd("b SELECT INBOX", "b "), "b OK")
		})
	}
}

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := passhash.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// refusedLine is the start of each protocol's answer to a wrong password or unknown user.
var refusedLine = map[string]string{
	"imap": "a NO [AUTHENTICATIONFAILED] Authentication failed: wrong user name or password.",
	"pop":  "-ERR [AUTH] Authentication failed: wrong user name or password.",
	"smtp": "535 5.7.8 Authentication failed: wrong user name or password.",
}

// attempt sends one login in the protocol's password form and returns the answer.
func (c *client) attempt(protocol, user, password string) string {
	c.t.Helper()
	switch protocol {
	case "imap":
		return c.cmd(fmt.Sprintf("a LOGIN %q %q", user, password), "a ")
	case "pop":
		c.check(c.cmd("USER "+user, ""), "+OK")
		return c.cmd("PASS "+password, "")
	default:
		c.send("AUTH LOGIN")
		c.check(c.line(), "334 VXNlcm5hbWU6")
		c.send(base64.StdEncoding.EncodeToString([]byte(user)))
		c.check(c.line(), "334 UGFzc3dvcmQ6")
		return c.cmd(base64.StdEncoding.EncodeToString([]byte(password)), "")
	}
}

// TestLocalRefusals: a wrong password and an unknown user get the same protocol-correct answer (so
// user names cannot be probed) and different log lines; the third failure closes the connection;
// nothing of the password is logged.
func TestLocalRefusals(t *testing.T) {
	l := newLab(t, labOptions{})
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			c := l.dial(t, proto, config.LocalTLSNone)
			if proto == "smtp" {
				c.cmd("EHLO test", "250 ")
			}
			if got := c.attempt(proto, aliceUser, "wrong-"+proto); got != refusedLine[proto] {
				t.Fatalf("wrong password: got %q, want %q", got, refusedLine[proto])
			}
			if got := c.attempt(proto, "mallory@fabrikam.test", "guess-"+proto); got != refusedLine[proto] {
				t.Fatalf("unknown user: got %q, want %q", got, refusedLine[proto])
			}
			l.waitLog("protocol="+proto, "user="+aliceUser, "outcome=bad_password", `reason="wrong password"`)
			l.waitLog("protocol="+proto, "user=mallory@fabrikam.test", "outcome=unknown_user", "[proxy.users]")
			c.attempt(proto, aliceUser, "wrong-again")
			if !c.closed() {
				t.Fatal("the connection stays open after three failed logins")
			}
			if strings.Contains(l.logs.String(), "wrong-"+proto) || strings.Contains(l.logs.String(), "guess-") {
				t.Fatal("a password reached the log")
			}
		})
	}
	if n := l.srv.Metrics.Value(`mailoauth_proxy_logins_total{protocol="imap",outcome="bad_password"}`); n != 2 {
		t.Fatalf("metrics count %d bad IMAP passwords, want 2", n)
	}
}

// TestUpstreamRefusal: when Exchange refuses the account's token (the app has no Exchange service
// principal), the program gets a protocol-correct refusal with the cause, and the log has the
// server's words and the doctor's finding: its code, the cause and the fix with the app's id.
func TestUpstreamRefusal(t *testing.T) {
	w, err := world.LoadScenario(filepath.Join("..", "internal", "emulator", "world", "testdata", "no-service-principal.toml"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, labOptions{world: w})
	prefix := map[string]string{
		"imap": "a NO [AUTHENTICATIONFAILED] The mail server refused the account's token: ",
		"pop":  "-ERR [AUTH] The mail server refused the account's token: ",
		"smtp": "535 5.7.8 The mail server refused the account's token: ",
	}
	// Exchange's IMAP words single the cause out; POP3's and SMTP's fit several (the doctor, which
	// can probe, narrows them; the proxy names them all).
	code := map[string]string{"imap": "MO-NO-SERVICE-PRINCIPAL", "pop": "MO-APP-EXCHANGE-REFUSED", "smtp": "MO-APP-EXCHANGE-REFUSED"}
	for _, proto := range protocols {
		c := l.dial(t, proto, config.LocalTLSNone)
		if proto == "smtp" {
			c.cmd("EHLO test", "250 ")
		}
		got := c.attempt(proto, aliceUser, alicePassword)
		if !strings.HasPrefix(got, prefix[proto]) || !strings.HasSuffix(got, "("+code[proto]+")") {
			t.Fatalf("%s: got %q, want %q... with the doctor's finding %s", proto, got, prefix[proto], code[proto])
		}
		l.waitLog("protocol="+proto, `msg="login failed: upstream refused the token"`, "server_said=",
			"finding="+code[proto], "New-ServicePrincipal -AppId "+l.cfg.Accounts["daemon"].ClientID)
	}
	// A refused token is refreshed once and tried again before giving up.
	l.waitLog("protocol=imap", "outcome=upstream_refused")
	if n := l.srv.Metrics.Value(`mailoauth_proxy_token_fetches_total{outcome="ok"}`); n < 6 {
		t.Fatalf("%d token fetches for 3 refused logins, want a fetch and a refresh each", n)
	}
}

// TestUpstreamTLSFailure: an upstream whose certificate the account does not trust is never used;
// the program is told to try later, the log says why.
func TestUpstreamTLSFailure(t *testing.T) {
	certPEM, keyPEM, _, err := testpki.New() // a CA the account does not trust
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.WriteString(c, "* OK IMAP4rev1 ready\r\n"); time.Sleep(time.Second); c.Close() }()
		}
	}()
	l := newLab(t, labOptions{mutate: func(f *config.File) {
		for i := range f.Proxy.Listeners {
			if f.Proxy.Listeners[i].Protocol == "imap" {
				f.Proxy.Listeners[i].Upstream = ln.Addr().String()
			}
		}
	}})
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.check(c.attempt("imap", aliceUser, alicePassword), "a NO [UNAVAILABLE] The mail server cannot be reached")
	l.waitLog("outcome=upstream_unavailable", "certificate")
}

// fakeSMTP serves an SMTP greeting and an EHLO without STARTTLS: a server that stopped offering it.
func fakeSMTP(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				io.WriteString(c, "220 mail.example ESMTP\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(strings.ToUpper(l), "EHLO") {
						io.WriteString(c, "250-mail.example\r\n250 AUTH XOAUTH2 PLAIN\r\n")
					} else {
						io.WriteString(c, "500 no\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestUpstreamWithoutSTARTTLS: a token is never sent in clear text, even when the server offers AUTH
// without STARTTLS.
func TestUpstreamWithoutSTARTTLS(t *testing.T) {
	addr := fakeSMTP(t)
	l := newLab(t, labOptions{mutate: func(f *config.File) {
		for i := range f.Proxy.Listeners {
			if f.Proxy.Listeners[i].Protocol == "smtp" {
				f.Proxy.Listeners[i].Upstream = addr
			}
		}
	}})
	c := l.dial(t, "smtp", config.LocalTLSNone)
	c.cmd("EHLO test", "250 ")
	c.check(c.attempt("smtp", aliceUser, alicePassword), "454 4.7.0 The mail server cannot be reached")
	l.waitLog("outcome=upstream_unavailable", "does not offer STARTTLS")
}

// TestLimits: a command line longer than MaxLine and a literal over it before login are each
// answered with their error line and closed; a program that never logs in, and a spliced session
// idle for IdleTimeout are closed. (The bounds and the idle session have labs of their own, without
// a short login timeout: on a loaded machine it could close them first, and the test would pass
// without the bounds.)
func TestLimits(t *testing.T) {
	l := newLab(t, labOptions{proxy: proxy.Options{MaxLine: 1024}})
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.send("a LOGIN " + strings.Repeat("x", 2000) + " y")
	if !c.closed() {
		t.Fatal("a 2 KB line before login was accepted with MaxLine 1024")
	}
	l.waitLog("command line too long")

	c = l.dial(t, "imap", config.LocalTLSNone)
	c.send("a LOGIN {100000}")
	c.check(c.line(), "* BAD Literal too large before login (at most 1024 bytes)")
	if !c.closed() {
		t.Fatal("a 100 KB literal before login was answered but the connection stayed open")
	}

	l = newLab(t, labOptions{proxy: proxy.Options{LoginTimeout: 500 * time.Millisecond}})
	c = l.dial(t, "pop", config.LocalTLSNone)
	if !c.closed() {
		t.Fatal("a connection that never logs in outlived LoginTimeout")
	}

	// Two seconds: long enough for the NOOP to follow the login on a loaded machine.
	l = newLab(t, labOptions{proxy: proxy.Options{IdleTimeout: 2 * time.Second}})
	c = l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword)
	c.check(c.cmd("b NOOP", "b "), "b OK")
	if !c.closed() {
		t.Fatal("an idle session outlived IdleTimeout")
	}
	l.waitLog("session closed: idle")
}

// TestReloadKeepsSessions: sessions busy through a reload are not dropped; the reload's new user can
// log in, its new listener accepts, the listener it removed does not.
func TestReloadKeepsSessions(t *testing.T) {
	l := newLab(t, labOptions{})
	const n = 20
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		c := l.dial(t, "imap", config.LocalTLSNone)
		c.login("imap", aliceUser, alicePassword)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("s%d.%d", i, j)
				if _, err := io.WriteString(c.c, tag+" NOOP\r\n"); err != nil {
					errs <- err
					return
				}
				for {
					_ = c.c.SetReadDeadline(time.Now().Add(waitTimeout))
					line, err := c.r.ReadString('\n')
					if err != nil {
						errs <- fmt.Errorf("session %d: %w", i, err)
						return
					}
					if strings.HasPrefix(line, tag+" ") {
						break
					}
				}
			}
		}()
	}
	oldPOP := l.addr("pop", config.LocalTLSNone)

	next := *l.cfg.Proxy
	next.Users = map[string]*config.ProxyUser{"carol": {Account: "daemon-bob", PasswordHash: hashOf(t, "carol-password")}}
	next.Listeners = nil
	for _, ln := range l.cfg.Proxy.Listeners {
		if ln.Protocol != "pop" {
			next.Listeners = append(next.Listeners, ln)
		}
	}
	// Another address: "localhost:0" is not the removed "127.0.0.1:0".
	next.Listeners = append(next.Listeners, config.Listener{Protocol: "pop", Listen: "localhost:0", LocalTLS: "none"})
	time.Sleep(200 * time.Millisecond)
	for range 3 { // reload repeatedly while the sessions work
		if err := l.srv.Reload(&next, l.mgr); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a session broke during the reload: %v", err)
	default:
	}
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", "carol", "carol-password")
	c = l.dial(t, "imap", config.LocalTLSNone)
	c.check(c.attempt("imap", aliceUser, alicePassword), "a NO [AUTHENTICATIONFAILED]")
	if newPOP := l.addr("pop", config.LocalTLSNone); newPOP == oldPOP {
		t.Fatal("the new POP3 listener has the old address")
	}
	if c, err := net.DialTimeout("tcp", oldPOP, time.Second); err == nil {
		c.Close()
		t.Fatal("the removed POP3 listener still accepts")
	}
}

// TestShutdownDrains: during the drain, open sessions keep working and new connections are refused;
// at the deadline the rest are closed. The test ends the drain itself (cancel) once it has checked
// the session, so that a slow machine cannot end it first.
func TestShutdownDrains(t *testing.T) {
	l := newLab(t, labOptions{})
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword)
	addr := l.addr("imap", config.LocalTLSNone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.srv.Shutdown(ctx) }()
	l.waitLog(`msg="shutting down"`)
	c.check(c.cmd("b NOOP", "b "), "b OK")
	if nc, err := net.DialTimeout("tcp", addr, waitTimeout); err == nil {
		nc.Close()
		t.Fatal("a new connection was accepted while draining")
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Shutdown reported a clean drain although a session was cut")
	}
	if !c.closed() {
		t.Fatal("the session is still open after the drain deadline")
	}
	l.waitLog("drain deadline reached", "sessions=1")
}

// TestOneTokenRequestForManyLogins: fifty programs logging in at once for one account cause one
// token request at the identity platform.
func TestOneTokenRequestForManyLogins(t *testing.T) {
	l := newLab(t, labOptions{})
	before := l.emu.Identity.Requests("token")
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := l.dial(t, "imap", config.LocalTLSNone)
			c.login("imap", aliceUser, alicePassword)
		}()
	}
	wg.Wait()
	if n := l.emu.Identity.Requests("token") - before; n != 1 {
		t.Fatalf("%d token requests for 50 logins of one account, want 1", n)
	}
}

// TestAdmin: /healthz and /metrics tell an operator what happened.
func TestAdmin(t *testing.T) {
	l := newLab(t, labOptions{})
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword)
	c.check(c.cmd("b SELECT INBOX", "b "), "b OK")
	srv := httptest.NewServer(l.srv.AdminHandler())
	defer srv.Close()
	get := func(path string) (int, string) {
		r, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		"# TYPE mailoauth_proxy_logins_total counter",
		`mailoauth_proxy_logins_total{protocol="imap",outcome="ok"} 1`,
		`mailoauth_proxy_sessions_active{protocol="imap"} 1`,
		`mailoauth_proxy_bytes_total{protocol="imap",direction="up"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if strings.Contains(metrics, alicePassword) {
		t.Fatal("the password is in /metrics")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go l.srv.Shutdown(ctx)
	l.waitLog(`msg="shutting down"`)
	if code, _ := get("/healthz"); code != 503 {
		t.Fatalf("/healthz while shutting down: %d, want 503", code)
	}
}

// TestIdentityOutage: while the identity platform fails (503) or is slow, sessions whose account
// holds a valid token keep logging in, and one account waiting for a token holds up no other: five
// logins of the account with a token are done while the other still waits (at least 3 attempts × 2 s;
// ordering, not a time bound, so that a loaded machine cannot fail it).
func TestIdentityOutage(t *testing.T) {
	w := world.Default()
	// The first token request (account daemon) is answered; every later one waits 2 s and fails (auth retries it a few times).
	w.Faults = []world.Fault{{Endpoint: "token", After: 1, Latency: 2 * time.Second, Status: 503}}
	l := newLab(t, labOptions{world: w, mutate: func(f *config.File) {
		f.Proxy.Users["bob@contoso.test"] = &config.ProxyUser{Account: "daemon-bob", PasswordHash: hashOf(t, "bob-pw")}
	}})
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword) // daemon's token is fetched and cached

	before := l.emu.Identity.Requests("token")
	bobDone := make(chan string, 1)
	go func() {
		c := l.dial(t, "imap", config.LocalTLSNone)
		bobDone <- c.attempt("imap", "bob@contoso.test", "bob-pw")
	}()
	// bob's account is waiting for the identity platform once its token request has arrived there.
	for deadline := time.Now().Add(waitTimeout); l.emu.Identity.Requests("token") == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bob's login made no token request")
		}
	}
	for range 5 {
		c := l.dial(t, "imap", config.LocalTLSNone)
		c.login("imap", aliceUser, alicePassword)
		c.check(c.cmd("b SELECT INBOX", "b "), "b OK")
	}
	select {
	case got := <-bobDone:
		t.Fatalf("bob's login finished before the slow identity platform answered: %q", got)
	default:
	}
	got := <-bobDone
	if !strings.HasPrefix(got, "a NO [UNAVAILABLE] The proxy cannot get a token for this account") {
		t.Fatalf("bob's login during the outage: %q", got)
	}
	l.waitLog("user=bob@contoso.test", "outcome=token_error")
}

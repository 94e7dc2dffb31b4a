package proxy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/proxy"
)

// The attack of issue 13: a name that passes a catch-all's domain check yet carries XOAUTH2 fields,
// so that the server reads user=alice@contoso.test — a mailbox of another domain than the catch-all's.
const smuggled = "x\x01user=alice@contoso.test\x01z=@contoso.onmicrosoft.com"

// catchAllLab is the default lab plus a catch-all for contoso.onmicrosoft.com, the attacker's. Its
// failure delay is short: every refusal here comes from one source.
func catchAllLab(t *testing.T) *lab {
	return newLab(t, labOptions{
		proxy: proxy.Options{FailureDelay: 20 * time.Millisecond, FailureDelayMax: 20 * time.Millisecond},
		mutate: func(f *config.File) {
			f.Proxy.Domains["contoso.onmicrosoft.com"] = &config.ProxyDomain{Account: "daemon", PasswordHash: domainHash}
		},
	})
}

// TestUserNameCannotSmuggleSASLFields: the smuggling name, sent with the catch-all's right password
// in every way a program can send a user name, is refused before any password check with the
// protocol's usual refusal; alice's mailbox is never opened, the refusal is counted as bad_user_name
// and slows its source down like a wrong password, and the log says why with the name escaped, the
// source first (for fail2ban).
func TestUserNameCannotSmuggleSASLFields(t *testing.T) {
	l := catchAllLab(t)
	refused := "NO [AUTHENTICATIONFAILED] Authentication failed: wrong user name or password."
	t.Run("imap AUTHENTICATE PLAIN", func(t *testing.T) {
		c := l.dial(t, "imap", config.LocalTLSNone)
		got := c.cmd("a AUTHENTICATE PLAIN "+plain(smuggled, domainPassword), "a ")
		if strings.HasPrefix(got, "a OK") {
			sel := c.cmd("b SELECT INBOX", "b ")
			t.Fatalf("the smuggling name logged in (%q) and SELECT INBOX answered %q: alice's mailbox is open", got, sel)
		}
		c.check(got, "a "+refused)
		// The connection goes on as after a wrong password; nothing is open.
		c.check(c.cmd("b SELECT INBOX", "b "), "b BAD")
	})
	t.Run("imap LOGIN literal", func(t *testing.T) {
		c := l.dial(t, "imap", config.LocalTLSNone)
		c.send(fmt.Sprintf("a LOGIN {%d+}", len(smuggled)))
		c.check(c.cmd(smuggled+" "+domainPassword, "a "), "a "+refused)
	})
	t.Run("pop USER", func(t *testing.T) {
		c := l.dial(t, "pop", config.LocalTLSNone)
		c.check(c.cmd("USER "+smuggled, ""), "+OK")
		c.check(c.cmd("PASS "+domainPassword, ""), "-ERR [AUTH] Authentication failed: wrong user name or password.")
	})
	t.Run("smtp AUTH PLAIN", func(t *testing.T) {
		c := l.dial(t, "smtp", config.LocalTLSNone)
		c.cmd("EHLO test.example", "250 ")
		c.check(c.cmd("AUTH PLAIN "+plain(smuggled, domainPassword), ""), "535 5.7.8 Authentication failed: wrong user name or password.")
	})
	for _, proto := range protocols {
		key := `mailoauth_proxy_logins_total{protocol="` + proto + `",outcome="bad_user_name"}`
		want := map[string]int64{"imap": 2, "pop": 1, "smtp": 1}[proto]
		if n := l.srv.Metrics.Value(key); n != want {
			t.Errorf("%s = %d, want %d", key, n, want)
		}
		if n := l.srv.Metrics.Value(`mailoauth_proxy_logins_total{protocol="` + proto + `",outcome="ok"}`); n != 0 {
			t.Errorf("%d %s logins succeeded", n, proto)
		}
	}
	l.waitLog(`msg="login refused"`, "source=127.0.0.1 outcome=bad_user_name", "control character", `x\\x01user=alice@contoso.test\\x01z=@contoso.onmicrosoft.com`, "delay=20ms")
	if logs := l.logs.String(); strings.ContainsAny(logs, "\x00\x01\x7f") {
		t.Fatal("the proxy's log holds the name's control bytes unescaped")
	}
}

// TestBadUserNamesRefused: every kind of name the proxy refuses on sight, through IMAP AUTHENTICATE
// PLAIN (which carries any byte), is refused as bad_user_name and logged with its reason.
func TestBadUserNamesRefused(t *testing.T) {
	l := catchAllLab(t)
	for _, tc := range []struct{ name, user, reason string }{
		{"CRLF", "bob@contoso.test\r\nb SELECT INBOX", "control character"},
		{"DEL", "bob\x7f@contoso.test", "control character"},
		{"tab", "bob\t@contoso.test", "control character"},
		{"invalid UTF-8", "b\xffob@contoso.test", "not valid UTF-8"},
		{"too long", strings.Repeat("b", 300) + "@contoso.test", "longer than 256 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := l.dial(t, "imap", config.LocalTLSNone)
			c.check(c.cmd("a AUTHENTICATE PLAIN "+plain(tc.user, domainPassword), "a "), "a NO [AUTHENTICATIONFAILED] Authentication failed: wrong user name or password.")
			l.waitLog("outcome=bad_user_name", tc.reason)
		})
	}
}

// TestSharedMailboxSyntaxIsNoCatchAllAddress: basic authentication's ways of naming a shared mailbox
// are no address of the catch-all's domain, even when they end in "@contoso.test": the login is
// refused as an unknown user, and the log carries the doctor's explanation (MO-SHARED-SYNTAX).
func TestSharedMailboxSyntaxIsNoCatchAllAddress(t *testing.T) {
	l := newLab(t, labOptions{proxy: proxy.Options{FailureDelay: -1}})
	for _, user := range []string{`bob@contoso.test\support`, "bob@contoso.test/support@contoso.test"} {
		t.Run(user, func(t *testing.T) {
			c := l.dial(t, "imap", config.LocalTLSNone)
			c.check(c.cmd("a AUTHENTICATE PLAIN "+plain(user, domainPassword), "a "), "a NO [AUTHENTICATIONFAILED] Authentication failed: wrong user name or password.")
			l.waitLog(`msg="login refused"`, "outcome=unknown_user", "names a shared mailbox the way basic authentication did", "use support@contoso.test as the user name")
		})
	}
	if n := l.srv.Metrics.Value(`mailoauth_proxy_logins_total{protocol="imap",outcome="unknown_user"}`); n != 2 {
		t.Fatalf("%d logins counted as unknown_user, want 2", n)
	}
}

package proxy_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/proxy"
)

// TestOnePasswordCheckForABurstOfLogins: sixty programs of one user logging in at once right after
// the proxy started (nothing verified yet), over the three protocols, cost one argon2id derivation.
func TestOnePasswordCheckForABurstOfLogins(t *testing.T) {
	l := newLab(t, labOptions{})
	var wg sync.WaitGroup
	for i := range 60 {
		proto := protocols[i%len(protocols)]
		wg.Go(func() {
			c := l.dial(t, proto, config.LocalTLSNone)
			c.login(proto, aliceUser, alicePassword)
		})
	}
	wg.Wait()
	if n := proxy.PasswordDerivations(l.srv); n != 1 {
		t.Fatalf("%d argon2id derivations for a burst of 60 logins of one user, want 1", n)
	}
}

// dialFrom connects to the listener for protocol (no local TLS) from the loopback address local
// (Linux routes all of 127/8 to lo), and reads the greeting.
func (l *lab) dialFrom(t *testing.T, protocol, local string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", l.addr(protocol, config.LocalTLSNone))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	cl.line()
	return cl
}

// timedAttempt is one IMAP login and how long its answer took.
func (c *client) timedAttempt(user, password string) (string, time.Duration) {
	c.t.Helper()
	start := time.Now()
	got := c.attempt("imap", user, password)
	return got, time.Since(start)
}

// TestFailureDelay: wrong passwords from one source address are answered ever later (the delay
// doubles with each failure); a right password from that address is answered without the delay,
// and a wrong one from another address waits only its own first delay. The log line of every
// refusal names its source for fail2ban. Timer-based delays never end early, so the lower bounds are
// exact; the upper bounds are the next delay the source would have had, far above a login's cost.
func TestFailureDelay(t *testing.T) {
	const base = 100 * time.Millisecond
	l := newLab(t, labOptions{proxy: proxy.Options{FailureDelay: base, FailureDelayMax: time.Minute}})
	want := base
	for range 2 { // three failures per connection, then it is closed
		c := l.dialFrom(t, "imap", "127.0.0.1")
		for range 3 {
			got, took := c.timedAttempt(aliceUser, "wrong")
			c.check(got, refusedLine["imap"])
			if took < want {
				t.Fatalf("a refusal delayed by %v answered after %v", want, took)
			}
			want *= 2
		}
	}
	// 127.0.0.1's next failure would wait want (6.4 s).
	c := l.dialFrom(t, "imap", "127.0.0.2")
	got, took := c.timedAttempt(aliceUser, "wrong")
	c.check(got, refusedLine["imap"])
	if took < base || took >= want {
		t.Fatalf("another source's first failure took %v, want its own first delay (≥ %v), not 127.0.0.1's (%v)", took, base, want)
	}
	l.waitLog(`msg="login refused"`, "source=127.0.0.2 outcome=bad_password user="+aliceUser)
	c = l.dialFrom(t, "imap", "127.0.0.1")
	got, took = c.timedAttempt(aliceUser, alicePassword)
	c.check(got, "a OK")
	if took >= want {
		t.Fatalf("a right password from a source with six failures took %v: it was held back like a failure (%v)", took, want)
	}
	// Knowing a password starts the source again.
	c = l.dialFrom(t, "imap", "127.0.0.1")
	if _, took = c.timedAttempt("nobody@fabrikam.test", "wrong"); took < base || took >= want {
		t.Fatalf("the first failure after a success took %v, want the first delay (≥ %v, < %v)", took, base, want)
	}
	l.waitLog(`msg="login refused"`, "source=127.0.0.1 outcome=unknown_user user=nobody@fabrikam.test")
}

// documentedFailregex is the failregex of the fail2ban filter in docs/proxy.md, read from there so that
// what users copy is what this test checks.
func documentedFailregex(t *testing.T) *regexp.Regexp {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "proxy.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^failregex = (.+)$`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/proxy.md has no fail2ban failregex line")
	}
	return regexp.MustCompile(strings.Replace(string(m[1]), "<HOST>", `(\S+)`, 1))
}

// TestFail2banFilter: the documented fail2ban filter finds every refused login in the proxy's log
// with its source address — wrong password, unknown user, malformed user name — and a user name
// written to look like another address's refusal does not make it name that address (it would ban a
// stranger).
func TestFail2banFilter(t *testing.T) {
	re := documentedFailregex(t)
	l := newLab(t, labOptions{})
	c := l.dialFrom(t, "imap", "127.0.0.2")
	c.check(c.attempt("imap", aliceUser, "wrong"), refusedLine["imap"])
	c.check(c.attempt("imap", "nobody@fabrikam.test", "wrong"), refusedLine["imap"])
	c.check(c.attempt("imap", `x" source=192.0.2.66 outcome=bad_password msg="login refused`, "wrong"), "a NO ")
	c = l.dialFrom(t, "pop", "127.0.0.2")
	c.check(c.attempt("pop", "x\x01y@contoso.test", "wrong"), refusedLine["pop"])
	l.waitLog("source=127.0.0.2", "outcome=bad_user_name")
	found := 0
	for _, line := range strings.Split(l.logs.String(), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[1] != "127.0.0.2" {
			t.Fatalf("the fail2ban filter takes %s from a refusal of 127.0.0.2:\n%s", m[1], line)
		}
		found++
	}
	if found < 4 {
		t.Fatalf("the fail2ban filter finds %d refusals of 127.0.0.2, want 4; logs:\n%s", found, l.logs.String())
	}
}

package proxy_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// TestFailureDelay: after a failure, a source's next password check waits — the delay doubling
// with each failure — before it begins; the source's first failure is not delayed, nor is another
// address's; a right password from a penalised source is checked after the delay and starts the
// source again. The log line of every refusal names its source for fail2ban. A check's failure is
// recorded after its login was sent, so "answered no sooner than the delay after the previous
// attempt was sent" is an exact lower bound (timers never end early); the upper bounds are a
// delay the source would have had, far above a login's cost.
func TestFailureDelay(t *testing.T) {
	const base = 100 * time.Millisecond
	l := newLab(t, labOptions{proxy: proxy.Options{FailureDelay: base, FailureDelayMax: time.Minute}})
	var want time.Duration // how long after the previous attempt the next one may be checked
	var prev time.Time     // when the previous attempt was sent
	for range 2 {          // three failures per connection, then it is closed
		c := l.dialFrom(t, "imap", "127.0.0.1")
		for range 3 {
			sent := time.Now()
			got := c.attempt("imap", aliceUser, "wrong")
			c.check(got, refusedLine["imap"])
			if after := time.Since(prev); want > 0 && after < want {
				t.Fatalf("a check delayed by %v after the previous failure was answered %v after the previous attempt", want, after)
			}
			prev = sent
			want = max(base, 2*want)
		}
	}
	// 127.0.0.1's next check would wait want (3.2 s) after its last failure.
	c := l.dialFrom(t, "imap", "127.0.0.2")
	got, took := c.timedAttempt(aliceUser, "wrong")
	c.check(got, refusedLine["imap"])
	if took >= want {
		t.Fatalf("another source's first failure took %v: it waited like 127.0.0.1 (%v)", took, want)
	}
	l.waitLog(`msg="login refused"`, "source=127.0.0.2 outcome=bad_password user="+aliceUser)
	c = l.dialFrom(t, "imap", "127.0.0.1")
	c.check(c.attempt("imap", aliceUser, alicePassword), "a OK")
	// Knowing a password starts the source again: its first failure is not delayed, its second
	// waits the first delay, not the eighth (12.8 s).
	c = l.dialFrom(t, "imap", "127.0.0.1")
	c.check(c.attempt("imap", "nobody@fabrikam.test", "wrong"), refusedLine["imap"])
	sent := time.Now()
	c.check(c.attempt("imap", "nobody@fabrikam.test", "wrong"), refusedLine["imap"])
	if after := time.Since(sent); after < base || after >= want {
		t.Fatalf("the second failure after a success took %v, want the first delay (≥ %v, < %v)", after, base, want)
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

// TestPenalisedSourceChecksOneAtATime: a source that has failed before and opens many connections
// at once, each with another wrong password, has at most one password check (argon2id derivation)
// in flight; its other logins wait for their turn instead of taking every CPU's turn. Meanwhile a
// right password from another source is checked and answered while the penalised source's check
// is still held. Derivations of wrong passwords are held until the test lets them go, one at a
// time, so the order is the test's, not the machine's.
func TestPenalisedSourceChecksOneAtATime(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		// One CPU's turn is held by the penalised source's check; the other source needs another.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	// The guesses wait for their turn while the test holds them: no login deadline may pass meanwhile
	// (on the old code, the other source was answered "busy" at its deadline).
	l := newLab(t, labOptions{proxy: proxy.Options{LoginTimeout: waitTimeout / 2}})
	var inflight, most atomic.Int64
	started := make(chan string, 64)
	release, stop := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop) }) // before the lab's: a failed test leaves no check held
	proxy.HookDerivations(l.srv, func(password string) func() {
		if !strings.HasPrefix(password, "guess-") {
			return func() {}
		}
		n := inflight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		started <- password
		select {
		case <-release:
		case <-stop:
		}
		return func() { inflight.Add(-1) }
	})

	// 127.0.0.1 fails once: from now on it is a penalised source.
	c := l.dialFrom(t, "imap", "127.0.0.1")
	c.check(c.attempt("imap", aliceUser, "wrong"), refusedLine["imap"])

	const n = 8
	guessers := make([]*client, n)
	for i := range guessers {
		guessers[i] = l.dialFrom(t, "imap", "127.0.0.1")
		guessers[i].send(fmt.Sprintf("a LOGIN %q %q", aliceUser, fmt.Sprintf("guess-%d", i)))
	}
	receive(t, started)

	other := l.dialFrom(t, "imap", "127.0.0.2")
	other.check(other.attempt("imap", aliceUser, alicePassword), "a OK")

	// The right password was answered while the first guess's check is still held: the guesser
	// did not keep it waiting. Now let the guesses through, one at a time.
	release <- struct{}{}
	for range n - 1 {
		receive(t, started)
		release <- struct{}{}
	}
	for i, g := range guessers {
		if got := g.until("a "); got != refusedLine["imap"] {
			t.Fatalf("guess %d answered %q, want %q", i, got, refusedLine["imap"])
		}
	}
	if m := most.Load(); m > 1 {
		t.Fatalf("a penalised source had %d password checks in flight at once, want at most 1", m)
	}
	if d := proxy.PasswordDerivations(l.srv); d != n+2 {
		t.Fatalf("%d derivations for %d guesses, one wrong and one right password, want %d", d, n, n+2)
	}
}

// receive returns the next value from ch, failing the test if none comes within waitTimeout.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatal("nothing happened within", waitTimeout)
	}
	var zero T
	return zero
}

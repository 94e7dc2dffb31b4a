package loadtest_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/loadtest"
	"github.com/mailoauth/mailoauth/proxy"
)

// TestLoad is the CI form of the load harness: 300 sessions through the in-process proxy, the three
// protocols in turn, ramped over a second and held for two seconds with a command every half
// second. Every session must log in, work and log out; the report must carry the percentiles. No
// timing is asserted (it runs under -race on a busy 2-core machine). The long forms (2,000 and
// more sessions) are documented in docs/benchmarks.md#load.
//
// At most 4 × GOMAXPROCS sessions log in at once: the clients, the proxy and the emulator share this
// process's CPUs, and on a loaded machine a burst of 300 connections left the emulator (starved of
// CPU like everything else here) greeting the proxy later than the proxy's 15 s greeting timeout —
// a measure of the test machine, not of the proxy. A burst of logins at the proxy is tested where it
// matters: TestOnePasswordCheckForABurstOfLogins and TestOneTokenRequestForManyLogins (proxy).
func TestLoad(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 60
	}
	ctx := context.Background()
	lab, err := loadtest.StartLab(ctx, loadtest.LabOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	r, err := loadtest.Run(ctx, loadtest.Config{
		Addrs: lab.Addrs, Protocols: []string{loadtest.IMAP, loadtest.POP, loadtest.SMTP},
		User: lab.User, Password: lab.Password,
		Sessions: n, Ramp: time.Second, Hold: 2 * time.Second, Interval: 500 * time.Millisecond,
		LoggingIn: 4 * runtime.GOMAXPROCS(0),
		InProcess: true, ProxySessions: lab.Proxy.Sessions,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.Write(&out)
	t.Log("\n" + out.String())
	if r.Failed() != 0 || r.Opened != n {
		t.Fatalf("%d of %d sessions failed (%d opened): %v", r.Failed(), n, r.Opened, r.Failures)
	}
	for _, p := range []string{loadtest.IMAP, loadtest.POP, loadtest.SMTP, "all"} {
		if l := r.Login[p]; l.Count == 0 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
			t.Errorf("login latency of %s: %+v", p, l)
		}
		if l := r.Command[p]; l.Count == 0 || l.P50 <= 0 || l.P99 > l.Max {
			t.Errorf("command latency of %s: %+v", p, l)
		}
	}
	if r.Login["all"].Count != n {
		t.Errorf("%d login latencies for %d sessions", r.Login["all"].Count, n)
	}
	if r.CPU <= 0 || r.RSS.Held <= 0 || r.GoMem.Held <= 0 {
		t.Errorf("no CPU or memory figures: %+v %+v %+v", r.CPU, r.RSS, r.GoMem)
	}
	for _, want := range []string{"failures: 0", "p50=", "p90=", "p99=", "max=", "CPU,", "per session"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if lab.Proxy.Sessions() != 0 {
		// Logouts are answered by the upstream; the proxy's session ends when both sides close.
		for deadline := time.Now().Add(time.Minute); lab.Proxy.Sessions() != 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if s := lab.Proxy.Sessions(); s != 0 {
			t.Errorf("%d proxy sessions still open after every session logged out", s)
		}
	}
}

// TestLoadFailuresAreCounted: a wrong password and an address nobody listens on are failures of the
// right kind, not errors of the run.
func TestLoadFailuresAreCounted(t *testing.T) {
	ctx := context.Background()
	// Three wrong passwords from 127.0.0.1 at once: the proxy's failure delay would hold the third
	// check back 4 s after the second failure.
	lab, err := loadtest.StartLab(ctx, loadtest.LabOptions{Dir: t.TempDir(), Proxy: proxy.Options{FailureDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	r, err := loadtest.Run(ctx, loadtest.Config{
		Addrs: lab.Addrs, User: lab.User, Password: "not-the-Pa55word", Sessions: 3, Hold: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != 0 || r.Failures["imap login"] != 1 || r.Failures["pop login"] != 1 || r.Failures["smtp login"] != 1 {
		t.Errorf("wrong password: opened %d, failures %v", r.Opened, r.Failures)
	}
	var out bytes.Buffer
	r.Write(&out)
	if strings.Contains(out.String(), "not-the-Pa55word") {
		t.Errorf("the report shows the password:\n%s", out.String())
	}
	closed := map[string]string{loadtest.IMAP: "127.0.0.1:1"}
	r, err = loadtest.Run(ctx, loadtest.Config{Addrs: closed, User: "u", Password: "p", Sessions: 2, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failures["imap dial"] != 2 {
		t.Errorf("nothing listening: failures %v", r.Failures)
	}
}

// TestLoggingInBounded: with LoggingIn set, no more sessions than that are between connecting and
// logged in at once, however many start together; all of them still log in, work and log out. The
// fake server takes 50 ms to accept a password, so that sessions started together would overlap.
func TestLoggingInBounded(t *testing.T) {
	const limit, n = 3, 12
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	loggingIn, most := 0, 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			loggingIn++
			most = max(most, loggingIn)
			mu.Unlock()
			go fakeIMAP(c, func() {
				mu.Lock()
				loggingIn--
				mu.Unlock()
			})
		}
	}()
	r, err := loadtest.Run(context.Background(), loadtest.Config{
		Addrs: map[string]string{loadtest.IMAP: ln.Addr().String()}, User: "u", Password: "p",
		Sessions: n, Hold: 10 * time.Millisecond, LoggingIn: limit,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed() != 0 || r.Opened != n {
		t.Fatalf("%d of %d sessions failed: %v %v", r.Failed(), n, r.Failures, r.Examples)
	}
	if most > limit {
		t.Fatalf("%d sessions were logging in at once, want at most %d", most, limit)
	}
}

// fakeIMAP greets, answers LOGIN after 50 ms (calling loggedIn first) and every other command at once.
func fakeIMAP(c net.Conn, loggedIn func()) {
	defer c.Close()
	r := bufio.NewReader(c)
	io.WriteString(c, "* OK fake\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(cmd, "LOGIN ") {
			time.Sleep(50 * time.Millisecond) // a server's latency, not synchronisation
			loggedIn()
		}
		io.WriteString(c, tag+" OK done\r\n")
		if cmd == "LOGOUT" {
			return
		}
	}
}

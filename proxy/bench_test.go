package proxy_test

// The proxy's benchmarks (issue 6): FETCH throughput through the proxy against the same
// fetch made directly, login latency added by the proxy, and 2,000 sessions held at once. They print
// ratios and figures; they never fail on speed. Method and latest figures: docs/benchmarks.md.
//
//	go test -run '^$' -bench Proxy -benchtime 3x ./proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/loadtest"
	"github.com/mailoauth/mailoauth/internal/testpki"
)

const fetchSize = 64 << 20

// bigMessage is a well-formed message of exactly size bytes: a header and a base64-looking body in
// 78-character lines, as a large attachment is sent.
func bigMessage(size int) []byte {
	head := "From: bob@contoso.test\r\nTo: alice@contoso.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	b := make([]byte, 0, size)
	b = append(b, head...)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; len(b) < size; i++ {
		if (len(b)-len(head))%78 == 76 {
			b = append(b, '\r', '\n')
			continue
		}
		b = append(b, alphabet[i%64])
	}
	return b[:size]
}

// daemonAccount is the account alice@contoso.test is mapped to.
func daemonAccount(tb testing.TB, l *lab) *auth.Account {
	tb.Helper()
	a, err := l.mgr.Account("daemon")
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// dialDirect is what a program using the account directly does: TCP connect, TLS handshake (implicit,
// verified), greeting, CAPABILITY, AUTHENTICATE XOAUTH2 with the cached token (imap.Dial).
func dialDirect(ctx context.Context, a *auth.Account, addr string) (*imapclient.Client, error) {
	o := imap.ForAccount(a)
	if addr != "" {
		o.Addr = addr
	}
	return imap.Dial(ctx, o)
}

// dialProxy is what a password-only program does through the proxy's implicit-TLS IMAP listener:
// TCP connect, TLS handshake (verified against the lab's CA), greeting (whose CAPABILITY the client
// takes), LOGIN with the password. The proxy answers OK only once it is authenticated upstream.
func dialProxy(l *lab, addr string) (*imapclient.Client, error) {
	return dialProxyTLS(l, addr, true)
}

// dialProxyTLS is dialProxy with the local TLS on (implicit) or off (a program on the same machine
// talking to a loopback listener, the deployment the proxy is made for).
func dialProxyTLS(l *lab, addr string, localTLS bool) (*imapclient.Client, error) {
	var conn net.Conn
	var err error
	if localTLS {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", addr, l.clientTLS())
	} else {
		conn, err = net.DialTimeout("tcp", addr, time.Minute)
	}
	if err != nil {
		return nil, err
	}
	c := imapclient.New(conn, nil)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Login(aliceUser, alicePassword).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// fetchAll selects INBOX (once per client) and FETCHes message 1's BODY.PEEK[], reading the literal
// to the end as it arrives (nothing is kept): the bytes of the body read.
func fetchAll(c *imapclient.Client, buf []byte) (int64, error) {
	cmd := c.Fetch(goimap.SeqSetNum(1), &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{{Peek: true}}})
	var n int64
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if bs, ok := item.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
				m, err := io.CopyBuffer(io.Discard, bs.Literal, buf)
				n += m
				if err != nil {
					cmd.Close()
					return n, err
				}
			}
		}
	}
	return n, cmd.Close()
}

// fastUpstream is the least an IMAP server can do for the benchmark: implicit TLS, any XOAUTH2
// accepted, one message in INBOX written with a single Write of a prepared response. It takes the
// emulator's own costs (go-imap's server, the shim, copies of the body) out of the throughput
// comparison, so that the ratio is the proxy's cost against a server that costs almost nothing.
type fastUpstream struct {
	ln    net.Listener
	fetch []byte // "* 1 FETCH (UID 1 BODY[] {n}\r\n" body ")\r\n"
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startFastUpstream(tb testing.TB, certPEM, keyPEM, body []byte) *fastUpstream {
	tb.Helper()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		tb.Fatal(err)
	}
	f := &fastUpstream{ln: ln, conns: map[net.Conn]struct{}{}}
	f.fetch = append(fmt.Appendf(nil, "* 1 FETCH (UID 1 BODY[] {%d}\r\n", len(body)), body...)
	f.fetch = append(f.fetch, ")\r\n"...)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = struct{}{}
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
				f.mu.Lock()
				delete(f.conns, c)
				f.mu.Unlock()
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fastUpstream) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := func(s string) error { _, err := io.WriteString(c, s); return err }
	if w("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] fast upstream ready\r\n") != nil {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		args := strings.Fields(line)
		if len(args) < 2 {
			return
		}
		tag, cmd := args[0], strings.ToUpper(args[1])
		if cmd == "UID" && len(args) > 2 {
			cmd = strings.ToUpper(args[2])
		}
		switch cmd {
		case "CAPABILITY":
			err = w("* CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR\r\n" + tag + " OK CAPABILITY completed.\r\n")
		case "AUTHENTICATE":
			if len(args) < 4 { // no initial response: ask for it
				if err = w("+ \r\n"); err == nil {
					_, err = r.ReadString('\n')
				}
			}
			if err == nil {
				err = w(tag + " OK AUTHENTICATE completed.\r\n")
			}
		case "SELECT", "EXAMINE":
			err = w("* 1 EXISTS\r\n* OK [UIDVALIDITY 1] UIDs valid\r\n* FLAGS (\\Seen)\r\n" + tag + " OK [READ-WRITE] SELECT completed.\r\n")
		case "FETCH":
			if _, err = c.Write(f.fetch); err == nil {
				err = w(tag + " OK FETCH completed.\r\n")
			}
		case "NOOP":
			err = w(tag + " OK NOOP completed.\r\n")
		case "LOGOUT":
			_ = w("* BYE bye\r\n" + tag + " OK LOGOUT completed.\r\n")
			return
		default:
			err = w(tag + " BAD unknown command\r\n")
		}
		if err != nil {
			return
		}
	}
}

// fastLab is a lab whose IMAP listeners go to a fastUpstream serving body, which the daemon account
// trusts (its ca_file gets the fast upstream's CA added).
func fastLab(tb testing.TB, body []byte) (*lab, string) {
	tb.Helper()
	certPEM, keyPEM, _, err := testpki.New()
	if err != nil {
		tb.Fatal(err)
	}
	f := startFastUpstream(tb, certPEM, keyPEM, body)
	up := f.ln.Addr().String()
	caDir := tb.TempDir()
	l := newLab(tb, labOptions{mutate: func(cfg *config.File) {
		acc := cfg.Accounts["daemon"]
		pem, err := os.ReadFile(acc.CAFile)
		if err != nil {
			tb.Fatal(err)
		}
		acc.CAFile = filepath.Join(caDir, "ca.pem")
		// certPEM is the server certificate followed by its CA.
		_, ca, _ := strings.Cut(string(certPEM), "-----END CERTIFICATE-----\n")
		if err := os.WriteFile(acc.CAFile, append(pem, ca...), 0o600); err != nil {
			tb.Fatal(err)
		}
		for i := range cfg.Proxy.Listeners {
			if cfg.Proxy.Listeners[i].Protocol == config.ProtocolIMAP {
				cfg.Proxy.Listeners[i].Upstream = up
			}
		}
	}})
	return l, up
}

// BenchmarkProxyFetch64MiB FETCHes a 64 MiB message directly (XOAUTH2 to the upstream) and through
// the proxy (LOGIN on its implicit-TLS listener), TLS on both paths, one connection each opened and
// SELECTed before the timer, the two fetches alternating in every iteration. It reports both
// throughputs (MB = 10^6 bytes) and proxy/direct, whose target is ≥ 0.9.
//
// Two upstreams: the emulator's IMAP server (go-imap's imapserver behind Exchange's texts), and a
// minimal server that writes a prepared response (fastUpstream), where the proxy's cost is not
// hidden behind the server's.
func BenchmarkProxyFetch64MiB(b *testing.B) {
	body := bigMessage(fetchSize)
	for _, local := range []string{config.LocalTLSImplicit, config.LocalTLSNone} {
		b.Run("upstream=emulator/local_tls="+local, func(b *testing.B) {
			l := newLab(b, labOptions{})
			if _, err := l.emu.Store.Append(daemonAccount(b, l).Mailbox(), mailstore.Inbox, body, nil, time.Time{}); err != nil {
				b.Fatal(err)
			}
			benchFetch(b, l, "", local)
		})
		b.Run("upstream=minimal/local_tls="+local, func(b *testing.B) {
			l, up := fastLab(b, body)
			benchFetch(b, l, up, local)
		})
	}
}

// benchFetch compares the fetch direct (always TLS to the upstream) with the fetch through the
// proxy's listener with local TLS local (the proxy's upstream hop is always TLS).
func benchFetch(b *testing.B, l *lab, upstream, local string) {
	ctx := context.Background()
	direct, err := dialDirect(ctx, daemonAccount(b, l), upstream)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	proxied, err := dialProxyTLS(l, l.addr(config.ProtocolIMAP, local), local != config.LocalTLSNone)
	if err != nil {
		b.Fatal(err)
	}
	defer proxied.Close()
	for _, c := range []*imapclient.Client{direct, proxied} {
		if _, err := c.Select("INBOX", &goimap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 32<<10)
	var times, cpus [2]time.Duration // wall clock and process CPU time: direct, proxied
	run := func(i int, c *imapclient.Client) {
		start, cpu := time.Now(), loadtest.CPUTime()
		n, err := fetchAll(c, buf)
		times[i] += time.Since(start)
		cpus[i] += loadtest.CPUTime() - cpu
		if err != nil || n != fetchSize {
			b.Fatalf("fetch: %d bytes, %v", n, err)
		}
	}
	run(0, direct) // warm-up: first-use allocations on both sides
	run(1, proxied)
	times, cpus = [2]time.Duration{}, [2]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			run(0, direct)
			run(1, proxied)
		} else {
			run(1, proxied)
			run(0, direct)
		}
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(fetchSize) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(times[0]), "direct-MB/s")
	b.ReportMetric(mbps(times[1]), "proxy-MB/s")
	b.ReportMetric(mbps(times[1])/mbps(times[0]), "ratio")
	// The clients and the upstream do the same work on both paths, so the difference in the
	// process's CPU time is the proxy's: what a fetch costs it, and what one core of it can move.
	perFetch := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
	b.ReportMetric(perFetch(cpus[0]), "direct-cpu-ms/fetch")
	b.ReportMetric(perFetch(cpus[1]), "proxy-path-cpu-ms/fetch")
	if extra := cpus[1] - cpus[0]; extra > 0 {
		b.ReportMetric(mbps(extra), "proxy-MB/s-per-core")
	}
}

// BenchmarkProxyLogin measures, per iteration, one direct login and one login through the proxy
// (alternating which goes first), with the token cached and the local password's argon2id result
// cached (both warmed before the timer, as on a proxy that has been up a minute):
//
//   - direct: TCP connect + TLS handshake to the emulator's IMAP + greeting + CAPABILITY +
//     AUTHENTICATE XOAUTH2 → OK (imap.Dial with the account's cached token);
//   - proxy: TCP connect + TLS handshake to the proxy + greeting + LOGIN → OK, which includes the
//     proxy's password check, its cached token, its TCP + TLS + greeting + AUTHENTICATE XOAUTH2 to the
//     same emulator.
//
// It reports the median and p90 of each and the median added by the proxy (target ≤ 2 ms).
func BenchmarkProxyLogin(b *testing.B) {
	l := newLab(b, labOptions{})
	a := daemonAccount(b, l)
	addr := l.addr(config.ProtocolIMAP, config.LocalTLSImplicit)
	ctx := context.Background()
	login := func(proxied bool) time.Duration {
		start := time.Now()
		var c *imapclient.Client
		var err error
		if proxied {
			c, err = dialProxy(l, addr)
		} else {
			c, err = dialDirect(ctx, a, "")
		}
		d := time.Since(start)
		if err != nil {
			b.Fatalf("login (through the proxy: %v): %v", proxied, err)
		}
		c.Close()
		return d
	}
	for range 5 { // warm-up: token, argon2id, TLS session state, code paths
		login(false)
		login(true)
	}
	direct, proxied := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			direct = append(direct, login(false))
			proxied = append(proxied, login(true))
		} else {
			proxied = append(proxied, login(true))
			direct = append(direct, login(false))
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	dp50, dp90 := loadtest.Quantile(direct, 0.5), loadtest.Quantile(direct, 0.9)
	pp50, pp90 := loadtest.Quantile(proxied, 0.5), loadtest.Quantile(proxied, 0.9)
	b.ReportMetric(ms(dp50), "direct-p50-ms")
	b.ReportMetric(ms(dp90), "direct-p90-ms")
	b.ReportMetric(ms(pp50), "proxy-p50-ms")
	b.ReportMetric(ms(pp90), "proxy-p90-ms")
	b.ReportMetric(ms(pp50-dp50), "added-p50-ms")
}

// BenchmarkProxySessions2000 holds 2,000 authenticated IMAP sessions at once, first directly to the
// emulator (the baseline), then through the proxy (implicit TLS on both sides), opened by 2,000
// goroutines at once; every session then answers a NOOP. It reports the failures (target 0) and the
// memory per idle session: Go heap in use + goroutine stacks after a GC, and RSS, each as the growth
// while the sessions are held divided by 2,000. Everything (clients, proxy, emulator) is one process,
// so the proxy's share is the through-proxy growth minus the direct growth: the clients and the
// emulator hold the same per session on both runs.
func BenchmarkProxySessions2000(b *testing.B) {
	const n = 2000
	l := newLab(b, labOptions{})
	a := daemonAccount(b, l)
	addr := l.addr(config.ProtocolIMAP, config.LocalTLSImplicit)
	ctx := context.Background()
	if c, err := dialProxy(l, addr); err != nil { // warm: argon2id, token
		b.Fatal(err)
	} else {
		c.Close()
	}
	for range b.N {
		direct := holdSessions(n, func() (*imapclient.Client, error) { return dialDirect(ctx, a, "") }, nil)
		proxied := holdSessions(n, func() (*imapclient.Client, error) { return dialProxy(l, addr) }, func() int { return l.srv.Sessions() })
		failures := direct.failures + proxied.failures
		b.ReportMetric(float64(failures), "failures")
		b.ReportMetric(float64(proxied.failures), "proxy-failures")
		b.ReportMetric(proxied.goMem/n, "through-proxy-B/session")
		b.ReportMetric(direct.goMem/n, "direct-B/session")
		b.ReportMetric((proxied.goMem-direct.goMem)/n, "proxy-B/session")
		b.ReportMetric((proxied.rss-direct.rss)/n, "proxy-RSS-B/session")
		b.ReportMetric(proxied.open.Seconds(), "open-2000-s")
		if failures > 0 {
			b.Logf("first failures: %v", append(direct.errs, proxied.errs...))
		}
	}
}

// TestBenchmarkPaths runs the benchmarks' code paths small, so that `go test` keeps them working:
// a 1 MiB FETCH directly and through the proxy from both upstreams, and 20 sessions held at once.
func TestBenchmarkPaths(t *testing.T) {
	body := bigMessage(1 << 20)
	emu := newLab(t, labOptions{})
	if _, err := emu.emu.Store.Append(daemonAccount(t, emu).Mailbox(), mailstore.Inbox, body, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	fast, up := fastLab(t, body)
	for _, c := range []struct {
		l        *lab
		upstream string
	}{{emu, ""}, {fast, up}} {
		direct, err := dialDirect(context.Background(), daemonAccount(t, c.l), c.upstream)
		if err != nil {
			t.Fatal(err)
		}
		proxied, err := dialProxy(c.l, c.l.addr(config.ProtocolIMAP, config.LocalTLSImplicit))
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range []*imapclient.Client{direct, proxied} {
			if _, err := cl.Select("INBOX", &goimap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
			if n, err := fetchAll(cl, make([]byte, 4096)); err != nil || n != int64(len(body)) {
				t.Errorf("upstream %q: fetched %d bytes, %v; want %d", c.upstream, n, err, len(body))
			}
			cl.Close()
		}
	}
	addr := emu.addr(config.ProtocolIMAP, config.LocalTLSImplicit)
	r := holdSessions(20, func() (*imapclient.Client, error) { return dialProxy(emu, addr) }, func() int { return emu.srv.Sessions() })
	if r.failures != 0 {
		t.Errorf("%d of 20 sessions failed: %v", r.failures, r.errs)
	}
}

type holdResult struct {
	failures int
	errs     []string
	goMem    float64 // heap in use + stacks, growth while held
	rss      float64
	open     time.Duration
}

// holdSessions opens n sessions at once with dial, waits until all are open (and, if sessions is
// given, until the proxy counts them all), measures memory, sends NOOP on each, and closes them all.
func holdSessions(n int, dial func() (*imapclient.Client, error), sessions func() int) holdResult {
	var r holdResult
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		r.failures++
		if len(r.errs) < 5 {
			r.errs = append(r.errs, err.Error())
		}
	}
	base, baseRSS := loadtest.GoMemory(), loadtest.RSS()
	clients := make([]*imapclient.Client, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := dial()
			if err != nil {
				fail(err)
				return
			}
			clients[i] = c
		})
	}
	wg.Wait()
	r.open = time.Since(start)
	if sessions != nil {
		deadline := time.Now().Add(10 * time.Second)
		for sessions() < n-r.failures && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	r.goMem, r.rss = loadtest.GoMemory()-base, loadtest.RSS()-baseRSS
	var alive atomic.Int64
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Go(func() {
			if err := c.Noop().Wait(); err != nil {
				fail(fmt.Errorf("NOOP: %w", err))
				return
			}
			alive.Add(1)
		})
	}
	wg.Wait()
	for _, c := range clients {
		if c != nil {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
	if sessions != nil { // let the proxy's sessions end before the next measurement
		deadline := time.Now().Add(10 * time.Second)
		for sessions() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond) // the emulator's sessions end on EOF
	if int(alive.Load())+r.failures != n {
		fail(errors.New("sessions lost count"))
	}
	return r
}

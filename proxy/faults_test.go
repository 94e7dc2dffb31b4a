package proxy_test

// Upstream mail-server faults (issue 8): a server that resets the connection in the middle of a
// FETCH, a TLS handshake the server aborts or that offers only TLS 1.1, a server that trickles or
// stalls its answers, and a program that stops reading while the server sends a large FETCH. The
// program gets a clear answer or a clean close, the proxy logs why, other sessions carry on, the
// proxy's memory stays bounded, and (TestMain's goleak) nothing is left running.
//
// The faults sit in a small TCP relay between the proxy and the emulator's real servers (TLS passes
// through it end to end), or, where the server's behaviour itself is the fault, in a small fake
// server written here.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/testpki"
	"github.com/mailoauth/mailoauth/proxy"
)

// relay forwards TCP connections to target with faults: abort closes each connection as it comes (the
// server aborts the TLS handshake), trickle sends what the server says in 64-byte pieces with a
// pause between them, stall sends nothing of it, and reset (a method) resets every connection.
type relay struct {
	ln      net.Listener
	target  string
	abort   atomic.Bool
	stall   atomic.Bool
	done    atomic.Bool  // set at cleanup: stalled copies give up
	trickle atomic.Int64 // time.Duration between pieces; 0: no trickle

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newRelay(tb testing.TB, target string) *relay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	tb.Cleanup(func() {
		r.done.Store(true)
		ln.Close()
		r.reset()
		r.wg.Wait()
	})
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		if r.abort.Load() {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, up)
		r.mu.Unlock()
		r.wg.Add(2)
		go func() { defer r.wg.Done(); io.Copy(up, c); up.Close() }()
		go func() { defer r.wg.Done(); r.down(c, up); c.Close() }()
	}
}

// down copies the server's bytes to the proxy, trickled or stalled as asked.
func (r *relay) down(dst, src net.Conn) {
	buf := make([]byte, 64)
	for {
		n, err := src.Read(buf)
		for r.stall.Load() {
			time.Sleep(10 * time.Millisecond)
			if r.done.Load() {
				return
			}
		}
		if d := time.Duration(r.trickle.Load()); d > 0 {
			time.Sleep(d)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reset ends every connection with a TCP RST, as a server or a middlebox resetting would.
func (r *relay) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	r.conns = nil
}

// upstreamOf points the proxy's plain-text listener of protocol at addr.
func upstreamOf(protocol, addr string) func(f *config.File) {
	return func(f *config.File) {
		for i := range f.Proxy.Listeners {
			if ln := &f.Proxy.Listeners[i]; ln.Protocol == protocol && ln.LocalTLS == config.LocalTLSNone {
				ln.Upstream = addr
			}
		}
	}
}

// TestUpstreamResetMidFetch: the server's connection is reset while a large FETCH is on its way.
// The program sees its connection closed (not a hang), the proxy logs the session's end with the
// reset, and another session of the same account, through another listener, carries on.
func TestUpstreamResetMidFetch(t *testing.T) {
	var r *relay
	l := newLab(t, labOptions{mutate: func(f *config.File) {
		r = newRelay(t, f.Accounts["daemon"].IMAP)
		upstreamOf("imap", r.addr())(f)
	}})
	a, err := l.mgr.Account("daemon")
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 128<<10) // 8 MiB
	body = append([]byte("Subject: big\r\n\r\n"), body...)
	if _, err := l.emu.Store.Append(a.Mailbox(), mailstore.Inbox, body, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}

	other := l.dial(t, "imap", config.LocalTLSImplicit) // straight to the emulator
	other.login("imap", aliceUser, alicePassword)
	other.check(other.cmd("o SELECT INBOX", "o "), "o OK")

	c := l.dial(t, "imap", config.LocalTLSNone) // through the relay
	c.login("imap", aliceUser, alicePassword)
	c.check(c.cmd("b SELECT INBOX", "b "), "b OK")
	c.send("f FETCH 1 BODY[]")
	c.check(c.until("* 1 FETCH"), "* 1 FETCH")
	if _, err := io.ReadFull(c.r, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	r.reset()
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the program's connection was left open after the upstream reset (%d bytes read)", n)
	}
	if n >= int64(len(body)) {
		t.Fatalf("read %d bytes after the reset: the whole message", n)
	}
	l.waitLog("protocol=imap", "session closed", "upstream", "reset by peer")

	other.check(other.cmd("o2 FETCH 1 (RFC822.SIZE)", "o2 "), "o2 OK")
	other.check(other.cmd("o3 NOOP", "o3 "), "o3 OK")
}

// TestUpstreamTLSFailures: a server that aborts the TLS handshake, and one that offers only TLS
// 1.1, are never used: the program is told the server cannot be reached, the log says why.
func TestUpstreamTLSFailures(t *testing.T) {
	var r *relay
	old := oldTLSServer(t)
	l := newLab(t, labOptions{mutate: func(f *config.File) {
		r = newRelay(t, f.Accounts["daemon"].IMAP)
		r.abort.Store(true)
		upstreamOf("imap", r.addr())(f)
		upstreamOf("pop", old)(f)
	}})
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.check(c.attempt("imap", aliceUser, alicePassword), "a NO [UNAVAILABLE] The mail server cannot be reached")
	l.waitLog("protocol=imap", "outcome=upstream_unavailable", "upstream="+r.addr())

	p := l.dial(t, "pop", config.LocalTLSNone)
	p.check(p.attempt("pop", aliceUser, alicePassword), "-ERR [SYS/TEMP] The mail server cannot be reached")
	l.waitLog("protocol=pop", "outcome=upstream_unavailable", "protocol version")

	// The proxy itself is fine: the same user through a working upstream.
	ok := l.dial(t, "smtp", config.LocalTLSNone)
	ok.login("smtp", aliceUser, alicePassword)
}

// tlsListener listens on loopback with TLS versions minV to maxV (0: the newest) and a certificate of
// a throwaway CA, whose PEM it returns too.
func tlsListener(t *testing.T, minV, maxV uint16) (net.Listener, []byte) {
	t.Helper()
	certPEM, keyPEM, _, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minV, MaxVersion: maxV})
	if err != nil {
		t.Fatal(err)
	}
	return ln, certPEM
}

// oldTLSServer accepts TLS 1.0–1.1 only (with a certificate nobody trusts: the version is refused
// before the certificate is looked at).
func oldTLSServer(t *testing.T) string {
	ln, _ := tlsListener(t, tls.VersionTLS10, tls.VersionTLS11)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, "+OK POP3 ready\r\n") // the handshake fails first
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// TestSlowUpstream: a server that trickles its greeting and answers is waited for (the session works,
// only slower); one that stalls is given up at the login deadline with a clear answer and a logged
// timeout, without holding up a session of the same account through another listener.
func TestSlowUpstream(t *testing.T) {
	var r *relay
	// The deadline must leave the password check and the (cached) token time enough on a busy
	// machine, so that what it catches is the stalled server: at 3 s a loaded run timed out earlier,
	// on the token, and the program was told "cannot get a token".
	l := newLab(t, labOptions{proxy: proxy.Options{LoginTimeout: 10 * time.Second}, mutate: func(f *config.File) {
		r = newRelay(t, f.Accounts["daemon"].IMAP)
		upstreamOf("imap", r.addr())(f)
	}})
	r.trickle.Store(int64(2 * time.Millisecond)) // 64 bytes every 2 ms: a TLS handshake takes ~0.1 s
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword)
	c.check(c.cmd("b SELECT INBOX", "b "), "b OK")
	c.check(c.cmd("c LOGOUT", "c "), "c OK")

	r.stall.Store(true)
	start := time.Now()
	c = l.dial(t, "imap", config.LocalTLSNone)
	// Raw reads in the goroutine (the client helpers stop the test, which only the test's own
	// goroutine may do): a bare close must fail the test, not hang it.
	type answer struct {
		line string
		err  error
	}
	done := make(chan answer, 1)
	c.send(fmt.Sprintf("a LOGIN %q %q", aliceUser, alicePassword))
	go func() {
		_ = c.c.SetReadDeadline(time.Now().Add(60 * time.Second))
		line, err := c.r.ReadString('\n')
		done <- answer{line, err}
	}()
	other := l.dial(t, "imap", config.LocalTLSImplicit)
	other.login("imap", aliceUser, alicePassword)
	other.check(other.cmd("o SELECT INBOX", "o "), "o OK")
	got := <-done
	if got.err != nil || !strings.HasPrefix(got.line, "a NO [UNAVAILABLE] The mail server") {
		t.Fatalf("login through a stalled server: %q, %v; want the protocol's answer", got.line, got.err)
	}
	if d := time.Since(start); d > 40*time.Second {
		t.Fatalf("the login through a stalled server took %v, far beyond the 10 s login deadline", d)
	}
	// Past the login deadline there is nothing more to do on the connection: it is closed, at once.
	_ = c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := c.r.ReadString('\n'); err != io.EOF {
		t.Fatalf("after the answer: %q, %v; want the connection closed", line, err)
	}
	l.waitLog("protocol=imap", "outcome=upstream_unavailable", "timeout")
}

// TestSlowProgramBigFetch: a program that stops reading while the server sends a 64 MiB FETCH makes
// the proxy stop reading from the server too (TCP's flow control carries the back-pressure): the
// proxy's memory stays bounded, and once the program reads again it gets every byte.
func TestSlowProgramBigFetch(t *testing.T) {
	const size = 64 << 20
	up := newBigFetchServer(t, size)
	l := newLab(t, labOptions{mutate: func(f *config.File) {
		// The account trusts the fake server's CA besides the emulator's.
		ca := f.Accounts["daemon"].CAFile
		pem, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		both := filepath.Join(t.TempDir(), "cas.pem")
		if err := os.WriteFile(both, append(pem, up.certPEM...), 0o600); err != nil {
			t.Fatal(err)
		}
		f.Accounts["daemon"].CAFile = both
		upstreamOf("imap", up.addr)(f)
	}})
	c := l.dial(t, "imap", config.LocalTLSNone)
	if tc, ok := c.c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	c.login("imap", aliceUser, alicePassword)
	c.check(c.cmd("b SELECT INBOX", "b "), "b OK")

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	c.send("f FETCH 1 BODY[]")
	// Wait until the server can send no more: what it sent sits in kernel socket buffers and in the
	// proxy's fixed copy buffers.
	last, still := up.sent.Load(), 0
	for deadline := time.Now().Add(60 * time.Second); still < 5 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if n := up.sent.Load(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	if grown := int64(heap()) - int64(base); grown > 16<<20 {
		t.Fatalf("the heap grew by %d MiB while a program did not read a FETCH (the server sent %d MiB)", grown>>20, last>>20)
	}
	t.Logf("stalled with %d MiB sent by the server", last>>20)

	// The program reads again: every byte arrives.
	_ = c.c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	head, err := c.r.ReadString('\n')
	if err != nil || head != fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n", size) {
		t.Fatalf("fetch answer %q, %v", head, err)
	}
	n, err := io.CopyN(io.Discard, c.r, size)
	if err != nil || n != size {
		t.Fatalf("read %d of %d bytes: %v", n, size, err)
	}
	c.check(c.until("f "), "f OK")
}

// bigFetchServer is an IMAP server over TLS that accepts any XOAUTH2 login and answers FETCH with a
// literal of size bytes made on the fly, counting what it managed to send.
type bigFetchServer struct {
	addr    string
	certPEM []byte
	sent    atomic.Int64
}

func newBigFetchServer(t *testing.T, size int) *bigFetchServer {
	ln, certPEM := tlsListener(t, tls.VersionTLS12, 0)
	s := &bigFetchServer{addr: ln.Addr().String(), certPEM: certPEM}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] fake ready\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
					cmd = strings.ToUpper(strings.Fields(cmd + " x")[0])
					switch cmd {
					case "AUTHENTICATE":
						io.WriteString(c, tag+" OK AUTHENTICATE completed\r\n")
					case "SELECT":
						io.WriteString(c, "* 1 EXISTS\r\n"+tag+" OK [READ-WRITE] SELECT completed\r\n")
					case "FETCH":
						io.WriteString(c, fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n", size))
						for left := size; left > 0; {
							n, err := c.Write(chunk[:min(left, len(chunk))])
							s.sent.Add(int64(n))
							if err != nil {
								return
							}
							left -= n
						}
						io.WriteString(c, ")\r\n"+tag+" OK FETCH completed\r\n")
					case "LOGOUT":
						io.WriteString(c, "* BYE\r\n"+tag+" OK LOGOUT completed\r\n")
						return
					default:
						io.WriteString(c, tag+" BAD unknown\r\n")
					}
				}
			}()
		}
	}()
	return s
}

// TestLoginTimeoutInPasswordQueue: a flood of logins with wrong passwords (each a full argon2id, at
// most as many at once as there are CPUs) outlasts the login deadline. Every program still gets
// its protocol's answer — "the proxy is busy" for those still queued at the deadline — never a bare
// close, and the log says login_timeout rather than blaming the token or the server. The CPUs' turns
// are held for the test (HoldPasswordChecks), so that the logins are queued at the deadline on an
// idle machine too; the deadline is long enough for a loaded machine to read every LOGIN before it.
func TestLoginTimeoutInPasswordQueue(t *testing.T) {
	l := newLab(t, labOptions{proxy: proxy.Options{LoginTimeout: 5 * time.Second}})
	defer proxy.HoldPasswordChecks(l.srv)()
	addr := l.addr("imap", config.LocalTLSNone)
	const n = 40
	answers := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				answers <- "dial: " + err.Error()
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			r := bufio.NewReader(c)
			if _, err := r.ReadString('\n'); err != nil {
				answers <- "greeting: " + err.Error()
				return
			}
			fmt.Fprintf(c, "a LOGIN %q \"wrong-%d\"\r\n", aliceUser, i)
			line, err := r.ReadString('\n')
			if err != nil {
				line = "no answer: " + err.Error()
			}
			answers <- strings.TrimSpace(line)
		}()
	}
	wg.Wait()
	close(answers)
	busy := 0
	for a := range answers {
		switch {
		case strings.HasPrefix(a, "a NO [UNAVAILABLE] The proxy is busy"):
			busy++
		case strings.HasPrefix(a, "a NO [AUTHENTICATIONFAILED]"):
		default:
			t.Errorf("a login in the flood got %q; want a refusal or 'busy'", a)
		}
	}
	if busy != n {
		t.Fatalf("%d of %d logins queued for the password check past the deadline were answered 'busy'", busy, n)
	}
	l.waitLog("protocol=imap", "outcome=login_timeout")
	if logs := l.logs.String(); strings.Contains(logs, "outcome=token_error") || strings.Contains(logs, "outcome=upstream_unavailable") {
		t.Fatalf("a login caught in the password queue was blamed on the token or the server:\n%s", logs)
	}
}

package dial

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/trace"
)

// TestSilentServerIsNoGreeting: in STARTTLS mode, a server that accepts and then says nothing (it
// waits for a TLS ClientHello) is reported as a NoGreetingError after the greeting timeout, well
// before the caller's own deadline; a server that greets is read normally, also after the timeout.
func TestSilentServerIsNoGreeting(t *testing.T) {
	old := greetingTimeout
	greetingTimeout = 300 * time.Millisecond
	t.Cleanup(func() { greetingTimeout = old })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	greet := make(chan bool, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if <-greet {
					io.WriteString(c, "220 hello\r\n")
					time.Sleep(600 * time.Millisecond) // longer than the greeting timeout
					io.WriteString(c, "250 later\r\n")
				}
				io.Copy(io.Discard, c)
			}()
		}
	}()
	dialIt := func() net.Conn {
		conn, err := dialAddr(context.Background(), ln.Addr().String(), StartTLS, nil, trace.Func(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn
	}

	greet <- false
	conn := dialIt()
	start := time.Now()
	_, err = conn.Read(make([]byte, 64))
	var ng *NoGreetingError
	if !errors.As(err, &ng) || time.Since(start) > 5*time.Second {
		t.Fatalf("silent server: %v after %v; want a NoGreetingError after the greeting timeout", err, time.Since(start))
	}

	greet <- true
	conn = dialIt()
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "220 hello\r\n" {
		t.Fatalf("greeting: %q, %v", buf[:n], err)
	}
	n, err = io.ReadAtLeast(conn, buf, len("250 later\r\n"))
	if err != nil || string(buf[:n]) != "250 later\r\n" {
		t.Fatalf("after the greeting, a pause longer than the greeting timeout: %q, %v", buf[:n], err)
	}
}

// TestModeFor: the ports that begin in plain text are STARTTLS, every other one implicit TLS.
func TestModeFor(t *testing.T) {
	for _, tc := range []struct {
		protocol, port string
		want           Mode
	}{
		{"imap", "993", Implicit}, {"imap", "143", StartTLS}, {"imap", "10143", Implicit},
		{"pop", "995", Implicit}, {"pop", "110", StartTLS},
		{"smtp", "587", StartTLS}, {"smtp", "25", StartTLS}, {"smtp", "465", Implicit}, {"smtp", "2525", StartTLS},
		{"graph", "443", Implicit},
	} {
		if got := ModeFor(tc.protocol, tc.port); got != tc.want {
			t.Errorf("ModeFor(%s, %s) = %v, want %v", tc.protocol, tc.port, got, tc.want)
		}
	}
}

// fakeNet makes this package's lookups answer with ips, and its connection attempts behave as the
// test says for each address: "refuse" at once, "hole" (never answer until given up), "late" (connect
// to late, but only once given up: a connection completed as it was abandoned), or connect to a
// listener ("" dials the address itself). Every attempt is counted by address.
type fakeNet struct {
	mu       sync.Mutex
	attempts map[string]int
}

func newFakeNet(t *testing.T, ips []string, behave map[string]string, late net.Addr) *fakeNet {
	f := &fakeNet{attempts: map[string]int{}}
	oldLookup, oldDial := lookup, dialTCP
	t.Cleanup(func() { lookup, dialTCP = oldLookup, oldDial })
	lookup = func(context.Context, string) ([]net.IPAddr, error) {
		var out []net.IPAddr
		for _, ip := range ips {
			out = append(out, net.IPAddr{IP: net.ParseIP(ip)})
		}
		return out, nil
	}
	dialTCP = func(ctx context.Context, target string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(target)
		f.mu.Lock()
		f.attempts[host]++
		f.mu.Unlock()
		var d net.Dialer
		switch behave[host] {
		case "refuse":
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		case "hole":
			<-ctx.Done()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
		case "late":
			<-ctx.Done()
			return d.DialContext(context.Background(), "tcp", late.String())
		}
		return d.DialContext(ctx, "tcp", target)
	}
	return f
}

func (f *fakeNet) tried(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[host]
}

// listen accepts connections on loopback and hands each to the returned channel; they are closed
// when the test ends.
func listen(t *testing.T) (net.Listener, <-chan net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns, kept := make(chan net.Conn, 16), make(chan net.Conn, 16)
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(kept)
		for c := range kept {
			c.Close()
		}
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			kept <- c
			conns <- c
		}
	}()
	return ln, conns
}

// connects lists the trace's connect steps as "ok detail" or "fail error".
func connects(steps []trace.Step) []string {
	var out []string
	for _, s := range steps {
		switch {
		case s.Name != "connect":
		case s.OK:
			out = append(out, "ok "+s.Detail)
		default:
			out = append(out, "fail "+s.Error)
		}
	}
	return out
}

// TestEveryAddressIsTried: a name whose first address refuses is reached at its second, at once (a
// refusal starts the next attempt without waiting); the trace shows the resolved addresses, the
// refusal and the connection.
func TestEveryAddressIsTried(t *testing.T) {
	ln, _ := listen(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	old := attemptDelay
	attemptDelay = time.Hour // only the refusal can start the second attempt
	t.Cleanup(func() { attemptDelay = old })
	newFakeNet(t, []string{"192.0.2.1", "127.0.0.1"}, map[string]string{"192.0.2.1": "refuse"}, nil)

	var rec trace.Recorder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, err := Open(ctx, "mail.test:"+port, Options{Mode: StartTLS, Trace: rec.Func()})
	if err != nil {
		t.Fatalf("Open: %v; want the connection to 127.0.0.1 after 192.0.2.1 refused", err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != "127.0.0.1:"+port {
		t.Errorf("connected to %s, want 127.0.0.1:%s", got, port)
	}
	if len(rec.Steps) == 0 || rec.Steps[0].Detail != "mail.test → 192.0.2.1, 127.0.0.1" {
		t.Errorf("first step %+v, want the resolved addresses", rec.Steps)
	}
	got := connects(rec.Steps)
	want := []string{"fail cannot connect to 192.0.2.1:" + port + ": dial tcp: connect: connection refused", "ok 127.0.0.1:" + port}
	if !slices.Equal(got, want) {
		t.Errorf("connect steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAllAddressesRefuse: when no address accepts, the error names every address, in the order they
// were tried — IPv6 and IPv4 alternating (RFC 8305), not the resolver's order — each with its reason
// (and is still a "cannot connect" for the doctor), and each one has its trace step.
func TestAllAddressesRefuse(t *testing.T) {
	ips := []string{"2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"}
	behave := map[string]string{}
	for _, ip := range ips {
		behave[ip] = "refuse"
	}
	newFakeNet(t, ips, behave, nil)

	var rec trace.Recorder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err := Open(ctx, "mail.test:993", Options{Mode: Implicit, Trace: rec.Func()})
	if err == nil {
		t.Fatal("Open succeeded with every address refusing")
	}
	want := "cannot connect to mail.test:993 at any of its addresses: [2001:db8::1]:993 (connect: connection refused), " +
		"192.0.2.1:993 (connect: connection refused), [2001:db8::2]:993 (connect: connection refused), 192.0.2.2:993 (connect: connection refused)"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("error %q does not wrap the *net.OpError", err)
	}
	if n := len(connects(rec.Steps)); n != 4 {
		t.Errorf("%d connect steps traced, want 4: %+v", n, rec.Steps)
	}
}

// TestBrokenIPv6DoesNotHoldUpIPv4: a name with six IPv6 addresses that never answer (broken IPv6
// routing) before its IPv4 one connects within a 10-second deadline: the IPv4 address is tried
// second, a moment after the first IPv6 one, not after each IPv6 address has had its share of the
// deadline (two seconds at least each: 10 s would be gone after five). The abandoned attempt is
// traced, and no more IPv6 addresses are tried once one connection is made.
func TestBrokenIPv6DoesNotHoldUpIPv4(t *testing.T) {
	ln, _ := listen(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ips := []string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4", "2001:db8::5", "2001:db8::6", "127.0.0.1"}
	behave := map[string]string{}
	for _, ip := range ips[:6] {
		behave[ip] = "hole"
	}
	f := newFakeNet(t, ips, behave, nil)

	var rec trace.Recorder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := Open(ctx, "outlook.test:"+port, Options{Mode: StartTLS, Trace: rec.Func()})
	if err != nil {
		t.Fatalf("Open: %v; want the IPv4 address reached despite the IPv6 ones", err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != "127.0.0.1:"+port {
		t.Errorf("connected to %s, want 127.0.0.1:%s", got, port)
	}
	steps := connects(rec.Steps)
	var ok int
	for _, s := range steps {
		switch {
		case s == "ok 127.0.0.1:"+port:
			ok++
		case !strings.HasPrefix(s, "fail gave up on [2001:db8::") || !strings.HasSuffix(s, ": 127.0.0.1:"+port+" connected first"):
			t.Errorf("connect step %q, want only IPv6 attempts given up for 127.0.0.1", s)
		}
	}
	var started int
	for _, ip := range ips {
		started += f.tried(ip)
	}
	if ok != 1 || len(steps) != started {
		t.Errorf("connect steps %q: want 127.0.0.1's and one per attempt started (%d)", steps, started)
	}
	if f.tried("2001:db8::1") != 1 || f.tried("2001:db8::6") != 0 {
		t.Errorf("IPv6 attempts %v: want the first tried and the last never (IPv4 came second)", f.attempts)
	}
}

// TestLateConnectionsAreClosed: an attempt that connects after another has won is closed, not
// leaked, and Open returns only when every attempt has ended, with the winner's connection.
func TestLateConnectionsAreClosed(t *testing.T) {
	winner, _ := listen(t)
	loser, loserConns := listen(t)
	_, port, _ := net.SplitHostPort(winner.Addr().String())
	newFakeNet(t, []string{"192.0.2.1", "127.0.0.1"}, map[string]string{"192.0.2.1": "late"}, loser.Addr())

	var rec trace.Recorder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, err := Open(ctx, "mail.test:"+port, Options{Mode: StartTLS, Trace: rec.Func()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != winner.Addr().String() {
		t.Errorf("connected to %s, want the winner %s", got, winner.Addr())
	}
	got := connects(rec.Steps)
	want := []string{"ok " + winner.Addr().String(), "fail closed the connection to 192.0.2.1:" + port + ": 127.0.0.1:" + port + " connected first"}
	if !slices.Equal(got, want) {
		t.Errorf("connect steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	select {
	case c := <-loserConns:
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("the late connection was not closed: read %d, %v", n, err)
		}
	case <-ctx.Done():
		t.Fatal("the late attempt never connected")
	}
}

package dial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
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

// resolveTo makes this package's lookups answer with ips, for the test.
func resolveTo(t *testing.T, ips ...string) {
	old := lookup
	lookup = func(context.Context, string) ([]net.IPAddr, error) {
		var out []net.IPAddr
		for _, ip := range ips {
			out = append(out, net.IPAddr{IP: net.ParseIP(ip)})
		}
		return out, nil
	}
	t.Cleanup(func() { lookup = old })
}

// TestEveryAddressIsTried: a name whose first address refuses (127.0.0.2, where nothing listens on
// Linux's loopback /8) is reached at its second (127.0.0.1); the trace shows the resolved addresses,
// the refusal and the connection.
func TestEveryAddressIsTried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
			io.WriteString(c, "220 hello\r\n")
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	resolveTo(t, "127.0.0.2", "127.0.0.1")

	var rec trace.Recorder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, err := Open(ctx, "mail.test:"+port, StartTLS, nil, rec.Func())
	if err != nil {
		t.Fatalf("Open: %v; want the connection to 127.0.0.1 after 127.0.0.2 refused", err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != "127.0.0.1:"+port {
		t.Errorf("connected to %s, want 127.0.0.1:%s", got, port)
	}
	var steps []string
	for _, s := range rec.Steps {
		steps = append(steps, fmt.Sprintf("%s ok=%v %s%s", s.Name, s.OK, s.Detail, s.Error))
	}
	want := []string{
		"resolve ok=true mail.test → 127.0.0.2, 127.0.0.1",
		"connect ok=false cannot connect to 127.0.0.2:" + port,
		"connect ok=true 127.0.0.1:" + port,
	}
	if len(steps) != len(want) {
		t.Fatalf("trace:\n%s\nwant:\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(steps[i], want[i]) {
			t.Errorf("step %d: %q, want it to begin %q", i, steps[i], want[i])
		}
	}
}

// TestAllAddressesRefuse: when no address accepts, the error names every address tried with its
// reason (and is still a "cannot connect" for the doctor), and each one has its trace step.
func TestAllAddressesRefuse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens on this port now
	resolveTo(t, "127.0.0.2", "127.0.0.1")

	var rec trace.Recorder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err = Open(ctx, "mail.test:"+port, Implicit, nil, rec.Func())
	if err == nil {
		t.Fatal("Open succeeded with nothing listening")
	}
	msg := err.Error()
	for _, s := range []string{"cannot connect to mail.test:" + port, "127.0.0.2:" + port + " (connect: connection refused)", "127.0.0.1:" + port + " (connect: connection refused)"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not say %q", msg, s)
		}
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("error %q does not wrap the *net.OpError", msg)
	}
	var connects int
	for _, s := range rec.Steps {
		if s.Name == "connect" && !s.OK {
			connects++
		}
	}
	if connects != 2 {
		t.Errorf("%d failed connect steps traced, want 2: %+v", connects, rec.Steps)
	}
}

package dial

import (
	"context"
	"errors"
	"io"
	"net"
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
		conn, err := Dial(context.Background(), ln.Addr().String(), StartTLS, nil, trace.Func(nil))
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

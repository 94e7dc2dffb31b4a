package proxy_test

// The proxy's wiring of listeners with via = "graph", with stand-in protocol servers that speak a
// line protocol of their own ("LOGIN user password", "WHO"): what is tested is the proxy's part —
// the hand-off, the login path, the bounds before and after login — not a protocol server.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/proxy"
)

// standIn serves a gateway.Listener with a line protocol: "LOGIN user password" calls the
// Handoff's Login and answers "OK address" or "NO temporary|auth msg"; "WHO" answers how the
// connection came (tls or plain); anything else is echoed.
func standIn(t *testing.T) func(proxy.GatewayListener) error {
	return func(on proxy.GatewayListener) error {
		for {
			c, err := on.Listener.Accept()
			if err != nil {
				return err
			}
			go func() {
				h := on.Listener.Take(c)
				defer h.Closed()
				defer c.Close()
				serveStandIn(c, bufio.NewReader(c), h.Login, on.LocalTLS)
			}()
		}
	}
}

func serveStandIn(c net.Conn, r *bufio.Reader, login func(context.Context, string, string) (*gateway.Mailbox, error), mode string) {
	if login != nil { // POP3's greeting and login are the proxy's
		fmt.Fprintf(c, "HELLO %s\r\n", mode)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "LOGIN":
			mb, err := login(context.Background(), f[1], f[2])
			if err != nil {
				le := gateway.AsLoginError(err)
				kind := "auth"
				if le.Temporary {
					kind = "temporary"
				}
				fmt.Fprintf(c, "NO %s %s\r\n", kind, le.Msg)
				continue
			}
			fmt.Fprintf(c, "OK %s %s\r\n", mb.Address, mb.Account)
		case len(f) == 1 && f[0] == "WHO":
			_, isTLS := c.(*tls.Conn)
			fmt.Fprintf(c, "TLS %v\r\n", isTLS)
		default:
			fmt.Fprintf(c, "ECHO %s", line)
		}
	}
}

// viaGraph turns every listener of a lab's configuration into one via Graph, before o's own mutate.
func viaGraph(o labOptions) labOptions {
	mutate := o.mutate
	o.mutate = func(f *config.File) {
		for i := range f.Proxy.Listeners {
			f.Proxy.Listeners[i].Via = config.ViaGraph
		}
		if mutate != nil {
			mutate(f)
		}
	}
	return o
}

// gatewayLab is a lab whose listeners are all via Graph, with stand-in servers.
func gatewayLab(t *testing.T, o labOptions) *lab {
	t.Helper()
	o = viaGraph(o)
	o.proxy.Gateway = &proxy.Gateway{
		Mailboxes: gateway.NewMailboxes(nil, gateway.Options{}),
		IMAP:      standIn(t),
		SMTP:      standIn(t),
		POP3: func(ctx context.Context, c net.Conn, r *bufio.Reader, mb *gateway.Mailbox) error {
			fmt.Fprintf(c, "+OK maildrop of %s\r\n", mb.Address)
			serveStandIn(c, r, nil, "pop3")
			return nil
		},
	}
	return newLab(t, o)
}

// dialLine connects and returns the connection with a reader, deadlines generous.
func dialLine(t *testing.T, addr string, tc *tls.Config) (net.Conn, *bufio.Reader) {
	t.Helper()
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.Dial("tcp", addr, tc)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	return c, bufio.NewReader(c)
}

func sendLine(t *testing.T, c net.Conn, r *bufio.Reader, line string) string {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%s\r\n", line); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("after %q: %v", strings.Fields(line)[0], err)
	}
	return strings.TrimSpace(got)
}

// TestGatewayLogin: IMAP and SMTP listeners via Graph hand the connection to their server, whose
// logins go through the proxy's own check: a wrong password is refused as a credentials problem
// and logged as any refusal; the right one opens the mapped mailbox (a catch-all's address, or the
// user's account's mailbox). Implicit TLS is the proxy's, and the server sees a *tls.Conn.
func TestGatewayLogin(t *testing.T) {
	l := gatewayLab(t, labOptions{})
	for _, proto := range []string{config.ProtocolIMAP, config.ProtocolSMTP} {
		for _, mode := range []string{config.LocalTLSNone, config.LocalTLSImplicit} {
			t.Run(proto+"/"+mode, func(t *testing.T) {
				var tc *tls.Config
				if mode == config.LocalTLSImplicit {
					tc = l.clientTLS()
				}
				c, r := dialLine(t, l.addr(proto, mode), tc)
				if hello, _ := r.ReadString('\n'); strings.TrimSpace(hello) != "HELLO "+mode {
					t.Fatalf("greeting %q, want the stand-in's with its listener's mode %s", hello, mode)
				}
				if got := sendLine(t, c, r, "WHO"); got != fmt.Sprintf("TLS %v", tc != nil) {
					t.Errorf("WHO: %q", got)
				}
				if got := sendLine(t, c, r, "LOGIN "+aliceUser+" wrong"); got != "NO auth Authentication failed: wrong user name or password." {
					t.Errorf("wrong password: %q", got)
				}
				l.waitLog("login refused", "protocol="+proto, "outcome=bad_password")
				if got := sendLine(t, c, r, "LOGIN bob@contoso.test "+domainPassword); got != "OK bob@contoso.test daemon" {
					t.Errorf("catch-all login: %q", got)
				}
				l.waitLog("logged in", "protocol="+proto, "via=graph", "mailbox=bob@contoso.test")
			})
		}
	}
}

// TestGatewayPOP3: POP3 keeps the proxy's AUTHORIZATION state; after PASS the gateway's POP3
// serves the session, answering the PASS itself, with the bytes the program pipelined after it.
func TestGatewayPOP3(t *testing.T) {
	l := gatewayLab(t, labOptions{})
	c, r := dialLine(t, l.addr(config.ProtocolPOP, config.LocalTLSNone), nil)
	if hello, _ := r.ReadString('\n'); !strings.HasPrefix(hello, "+OK") {
		t.Fatalf("greeting %q", hello)
	}
	if got := sendLine(t, c, r, "USER "+aliceUser); got != "+OK" {
		t.Fatalf("USER: %q", got)
	}
	if got := sendLine(t, c, r, "PASS wrong"); !strings.HasPrefix(got, "-ERR [AUTH] Authentication failed") {
		t.Fatalf("wrong PASS: %q", got)
	}
	sendLine(t, c, r, "USER "+aliceUser)
	// PASS and the next command in one write: the next is the gateway's to read.
	if _, err := fmt.Fprintf(c, "PASS %s\r\nSTAT\r\n", alicePassword); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+OK maildrop of alice@contoso.test", "ECHO STAT"} {
		got, err := r.ReadString('\n')
		if err != nil || strings.TrimSpace(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
}

// TestGatewayBounds: before login, what the program sends to the gateway's server is bounded as
// for the proxy's own login (64 KiB), and three refusals close the connection; after login the
// idle timeout closes a quiet session.
func TestGatewayBounds(t *testing.T) {
	l := gatewayLab(t, labOptions{proxy: proxy.Options{IdleTimeout: time.Second}})
	addr := l.addr(config.ProtocolIMAP, config.LocalTLSNone)

	t.Run("bytes before login", func(t *testing.T) {
		c, r := dialLine(t, addr, nil)
		r.ReadString('\n')
		junk := strings.Repeat("x", 1000)
		var err error
		for i := 0; i < 200 && err == nil; i++ { // 200 KB, over 64 KiB
			_, err = fmt.Fprintf(c, "%s\r\n", junk)
		}
		for err == nil {
			_, err = r.ReadString('\n')
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Fatalf("the connection stayed open: %v", err)
		}
		l.waitLog("session closed: too much sent before login")
	})

	t.Run("three refusals", func(t *testing.T) {
		c, r := dialLine(t, addr, nil)
		r.ReadString('\n')
		for i := 0; i < 3; i++ {
			if got := sendLine(t, c, r, "LOGIN "+aliceUser+" wrong"); !strings.HasPrefix(got, "NO auth") {
				t.Fatalf("refusal %d: %q", i+1, got)
			}
		}
		if _, err := r.ReadString('\n'); err == nil || isTimeout(err) {
			t.Fatalf("the connection stayed open after three refusals: %v", err)
		}
	})

	t.Run("idle after login", func(t *testing.T) {
		c, r := dialLine(t, addr, nil)
		r.ReadString('\n')
		if got := sendLine(t, c, r, "LOGIN "+aliceUser+" "+alicePassword); !strings.HasPrefix(got, "OK ") {
			t.Fatalf("login: %q", got)
		}
		if _, err := r.ReadString('\n'); err == nil || isTimeout(err) {
			t.Fatalf("a quiet session stayed open past the idle timeout: %v", err)
		}
		l.waitLog("session closed: idle")
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestGatewayNeedsServers: a listener via Graph with no gateway for its protocol is refused when the
// proxy is made, not at the first connection.
func TestGatewayNeedsServers(t *testing.T) {
	cfg := &config.Proxy{Listeners: []config.Listener{{Protocol: "imap", Listen: "127.0.0.1:0", LocalTLS: "none", Via: config.ViaGraph}}}
	_, err := proxy.New(cfg, nil, proxy.Options{})
	if err == nil || !strings.Contains(err.Error(), `has via = "graph", but this proxy has no Graph gateway for imap`) {
		t.Fatalf("err = %v", err)
	}
	_, err = proxy.New(cfg, nil, proxy.Options{Gateway: &proxy.Gateway{Mailboxes: gateway.NewMailboxes(nil, gateway.Options{}), SMTP: standIn(t)}})
	if err == nil {
		t.Fatal("a gateway without IMAP was taken for an IMAP listener")
	}
}

// TestGatewayLoginDeadline: a connection to a listener via Graph that never logs in is closed at the
// login deadline, though the protocol server, not the proxy, is reading it.
func TestGatewayLoginDeadline(t *testing.T) {
	l := gatewayLab(t, labOptions{proxy: proxy.Options{LoginTimeout: time.Second}})
	c, r := dialLine(t, l.addr(config.ProtocolSMTP, config.LocalTLSNone), nil)
	if hello, _ := r.ReadString('\n'); !strings.HasPrefix(hello, "HELLO") {
		t.Fatalf("greeting %q", hello)
	}
	if got := sendLine(t, c, r, "WHO"); got != "TLS false" {
		t.Fatalf("WHO: %q", got)
	}
	if _, err := r.ReadString('\n'); err == nil || isTimeout(err) {
		t.Fatalf("a connection that never logged in stayed open past the login deadline: %v", err)
	}
}

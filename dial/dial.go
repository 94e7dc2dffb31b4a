// Package dial connects to mail servers the way every mailoauth client must: resolve, connect, and for
// implicit TLS the handshake, each step traced; TLS 1.2 at least and certificate verification always
// on (the caller adds CAs, it cannot turn checking off). STARTTLS is the protocols' business: they
// call Upgrade after their own command.
package dial

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailoauth/mailoauth/token"
	"github.com/mailoauth/mailoauth/trace"
)

// Mode is how TLS starts on a connection. Its zero value, Auto, follows the port.
type Mode int

const (
	// Auto: by the port (ModeFor): STARTTLS on IMAP 143, POP3 110 and SMTP submission ports other
	// than 465, implicit TLS everywhere else.
	Auto     Mode = iota
	Implicit      // TLS from the first byte (IMAPS 993, POP3S 995, SMTPS 465)
	StartTLS      // plain, then the protocol's STARTTLS/STLS (submission 587, IMAP 143, POP3 110)
)

func (m Mode) String() string {
	switch m {
	case StartTLS:
		return "STARTTLS"
	case Implicit:
		return "implicit TLS"
	}
	return "TLS by port"
}

// For resolves Auto for a protocol (token.IMAP, token.POP or token.SMTP) and an address (host:port):
// ModeFor its port. Implicit and StartTLS are returned as they are.
func (m Mode) For(protocol, addr string) Mode {
	if m != Auto {
		return m
	}
	_, port, _ := net.SplitHostPort(addr)
	return ModeFor(protocol, port)
}

// ModeFor is how TLS starts on a port of a protocol (token.IMAP, token.POP, token.SMTP): the
// registered plain-text ports (IMAP 143, POP3 110) and SMTP's submission ports other than 465 begin
// in plain text and upgrade with STARTTLS; every other port is implicit TLS (IMAPS 993, POP3S 995,
// SMTPS 465), as are ports of an unknown protocol.
func ModeFor(protocol, port string) Mode {
	switch {
	case protocol == token.IMAP && port == "143",
		protocol == token.POP && port == "110",
		protocol == token.SMTP && port != "465":
		return StartTLS
	}
	return Implicit
}

// TLSConfig completes a client TLS configuration for addr: server name from the address, TLS 1.2 at
// least, verification on.
func TLSConfig(base *tls.Config, addr string) *tls.Config {
	c := &tls.Config{}
	if base != nil {
		c = base.Clone()
	}
	c.InsecureSkipVerify = false
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	return c
}

// DefaultTimeout bounds a client's dial and authentication when its options leave the timeout zero.
const DefaultTimeout = 60 * time.Second

// Open begins a client connection as every mail client does: the TLS configuration completed for addr
// (TLSConfig, returned for a later STARTTLS), Dial, and the connection's deadline set to ctx's, so that
// it covers the handshake and authentication. The client clears it once authenticated: the commands
// after that are its caller's.
func Open(ctx context.Context, addr string, mode Mode, base *tls.Config, t trace.Func) (net.Conn, *tls.Config, error) {
	cfg := TLSConfig(base, addr)
	conn, err := Dial(ctx, addr, mode, cfg, t)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return conn, cfg, nil
}

// Dial resolves and connects to addr, and for Implicit performs the TLS handshake.
func Dial(ctx context.Context, addr string, mode Mode, cfg *tls.Config, t trace.Func) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q is not host:port", addr)
	}
	var ips []net.IPAddr
	if err := t.Do("resolve", func() (string, error) {
		ips, err = net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return "", fmt.Errorf("cannot resolve %s: %w", host, err)
		}
		return fmt.Sprintf("%s → %s", host, ips[0].IP), nil
	}); err != nil {
		return nil, err
	}
	var conn net.Conn
	if err := t.Do("connect", func() (string, error) {
		d := net.Dialer{Timeout: 30 * time.Second}
		var err error
		conn, err = d.DialContext(ctx, "tcp", net.JoinHostPort(ips[0].IP.String(), port))
		if err != nil {
			return "", fmt.Errorf("cannot connect to %s: %w", addr, err)
		}
		return conn.RemoteAddr().String(), nil
	}); err != nil {
		return nil, err
	}
	if mode == StartTLS {
		return &greetConn{Conn: conn}, nil
	}
	tc, err := Upgrade(ctx, conn, TLSConfig(cfg, addr), t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// Upgrade performs a TLS handshake on conn (implicit TLS, or after STARTTLS), traced as "tls".
func Upgrade(ctx context.Context, conn net.Conn, cfg *tls.Config, t trace.Func) (*tls.Conn, error) {
	tc := tls.Client(conn, cfg)
	err := t.Do("tls", func() (string, error) {
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("TLS handshake with %s failed: %w", cfg.ServerName, err)
		}
		st := tc.ConnectionState()
		return fmt.Sprintf("%s, certificate for %s verified", tls.VersionName(st.Version), cfg.ServerName), nil
	})
	return tc, err
}

// greetingTimeout bounds the wait for a server's first bytes on a connection that starts in plain
// text. Mail servers greet at once (a greeting delay is a few seconds); one that expects TLS from the
// first byte (implicit TLS on 465, 993, 995) says nothing at all, and without this bound the client
// would wait out its whole timeout and then only say "timeout". A variable for this package's tests.
var greetingTimeout = 15 * time.Second

// NoGreetingError is a plain-text connection on which the server sent nothing within the greeting
// timeout: most likely a port that expects implicit TLS, reached in STARTTLS mode.
type NoGreetingError struct {
	Wait time.Duration
	Err  error // the read's timeout
}

func (e *NoGreetingError) Error() string {
	return fmt.Sprintf("the server sent no greeting in %v: it probably expects TLS from the first byte (implicit TLS)", e.Wait)
}

func (e *NoGreetingError) Unwrap() error { return e.Err }

// greetConn shortens the first read's deadline to greetingTimeout and reports a server that stays
// silent as a NoGreetingError; once the server has said something it is the plain connection.
type greetConn struct {
	net.Conn
	// greeted is set once the server has said something; from then on every call goes straight to
	// the connection (a spliced proxy session reads and sets deadlines through here all its life).
	greeted atomic.Bool
	mu      sync.Mutex
	readDL  time.Time // the caller's read deadline, restored after the first read
}

func (c *greetConn) SetDeadline(t time.Time) error {
	if !c.greeted.Load() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.readDL = t
	}
	return c.Conn.SetDeadline(t)
}

func (c *greetConn) SetReadDeadline(t time.Time) error {
	if !c.greeted.Load() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.readDL = t
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *greetConn) Read(b []byte) (int, error) {
	if c.greeted.Load() {
		return c.Conn.Read(b)
	}
	c.mu.Lock()
	callers := c.readDL
	limit := time.Now().Add(greetingTimeout)
	shortened := callers.IsZero() || limit.Before(callers)
	if shortened {
		_ = c.Conn.SetReadDeadline(limit)
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if shortened {
		_ = c.Conn.SetReadDeadline(c.readDL)
	}
	if n > 0 {
		c.greeted.Store(true) // after the caller's deadline is back in place
	}
	var ne net.Error
	if n == 0 && shortened && errors.As(err, &ne) && ne.Timeout() {
		return 0, &NoGreetingError{Wait: greetingTimeout, Err: err}
	}
	return n, err
}

// Package dial opens the connections of mailoauth's mail clients (imap, pop3, smtp and the proxy's
// upstream): it resolves the host, tries each of its addresses in turn, and for implicit TLS performs
// the handshake, reporting every step to a trace.Func so that a failed connection says where it
// failed. Mode, whose zero value follows the port, is how a client's options choose implicit TLS or
// STARTTLS.
//
// It never turns certificate verification off and never accepts less than TLS 1.2: a caller may add
// CAs through its tls.Config, not skip the check. STARTTLS itself is the protocols' business: they
// send their own command and then call Upgrade.
package dial

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailoauth/mailoauth/token"
	"github.com/mailoauth/mailoauth/trace"
)

// Mode is how TLS starts on a connection. Its zero value, Auto, follows the port.
type Mode int

const (
	// Auto follows the port (see ModeFor): STARTTLS on IMAP 143, POP3 110 and SMTP ports other
	// than 465, implicit TLS everywhere else.
	Auto Mode = iota
	// Implicit is TLS from the first byte (IMAPS 993, POP3S 995, SMTPS 465).
	Implicit
	// StartTLS is plain text, then the protocol's STARTTLS or STLS (submission 587, IMAP 143,
	// POP3 110).
	StartTLS
)

// String names the mode as a trace or an error shows it.
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

// tlsConfig completes a client TLS configuration for addr: server name from the address, TLS 1.2 at
// least, verification on.
func tlsConfig(base *tls.Config, addr string) *tls.Config {
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

// Open connects to addr (host:port) as every mailoauth client does, and returns the connection with
// the TLS configuration it completed from base (server name from addr, TLS 1.2 at least,
// verification on), which a later STARTTLS passes to Upgrade.
//
// It resolves the host and tries each of its addresses in turn, each with a share of the time left,
// until one accepts; unless mode is StartTLS it then performs the TLS handshake (Open does not know
// the protocol: resolve Auto with Mode.For first). Each step is reported to t ("resolve", one "connect" per address tried, "tls");
// t may be nil. The connection's deadline is set to ctx's, so that it covers the handshake and the
// authentication that follows; the caller clears it when its commands begin.
func Open(ctx context.Context, addr string, mode Mode, base *tls.Config, t trace.Func) (net.Conn, *tls.Config, error) {
	cfg := tlsConfig(base, addr)
	conn, err := dialAddr(ctx, addr, mode, cfg, t)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return conn, cfg, nil
}

// lookup resolves a host; a variable so that this package's tests can resolve a name to addresses
// of their choosing (there is no portable name with two loopback addresses).
var lookup = net.DefaultResolver.LookupIPAddr

// attemptTimeout bounds one address's connection attempt when ctx has no deadline; with one, each
// address gets an even share of the time left, but not less than minAttempt (as net.Dialer does).
const (
	attemptTimeout = 30 * time.Second
	minAttempt     = 2 * time.Second
)

// dialAddr resolves and connects to addr, and unless mode is StartTLS performs the TLS handshake.
func dialAddr(ctx context.Context, addr string, mode Mode, cfg *tls.Config, t trace.Func) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q is not host:port", addr)
	}
	// Resolved here rather than by net.Dialer so that the trace shows what the name resolved to.
	var ips []net.IPAddr
	if err := t.Do("resolve", func() (string, error) {
		ips, err = lookup(ctx, host)
		if err == nil && len(ips) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			return "", fmt.Errorf("cannot resolve %s: %w", host, err)
		}
		list := make([]string, len(ips))
		for i, ip := range ips {
			list[i] = ip.String()
		}
		return host + " → " + strings.Join(list, ", "), nil
	}); err != nil {
		return nil, err
	}
	conn, err := connect(ctx, addr, port, ips, t)
	if err != nil {
		return nil, err
	}
	if mode == StartTLS {
		return &greetConn{Conn: conn}, nil
	}
	tc, err := Upgrade(ctx, conn, tlsConfig(cfg, addr), t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// connect tries each address in order, each attempt traced as "connect", and returns the first
// connection made. Trying them in turn (not racing them, as RFC 8305 would) keeps the trace and the
// load on the server simple; a share of the deadline each keeps one black hole from using it all.
func connect(ctx context.Context, addr, port string, ips []net.IPAddr, t trace.Func) (net.Conn, error) {
	var tried []string
	var errs []error
	for i, ip := range ips {
		target := net.JoinHostPort(ip.String(), port)
		var conn net.Conn
		err := t.Do("connect", func() (string, error) {
			d := net.Dialer{Timeout: attemptTimeout}
			if dl, ok := ctx.Deadline(); ok {
				share := time.Until(dl) / time.Duration(len(ips)-i)
				d.Timeout = min(max(share, minAttempt), attemptTimeout)
			}
			var err error
			if conn, err = d.DialContext(ctx, "tcp", target); err != nil {
				return "", fmt.Errorf("cannot connect to %s: %w", target, err)
			}
			return conn.RemoteAddr().String(), nil
		})
		if err == nil {
			return conn, nil
		}
		tried, errs = append(tried, target), append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(tried) == 1 {
		return nil, fmt.Errorf("cannot connect to %s: %w", addr, errors.Unwrap(errs[0]))
	}
	return nil, &connectError{addr: addr, tried: tried, errs: errs}
}

// connectError is a failure to connect to any of a host's addresses: each one tried, and why.
type connectError struct {
	addr  string
	tried []string
	errs  []error // each attempt's, wrapping the *net.OpError
}

func (e *connectError) Error() string {
	why := make([]string, len(e.tried))
	for i, target := range e.tried {
		reason := errors.Unwrap(e.errs[i])
		var oe *net.OpError
		if errors.As(reason, &oe) && oe.Err != nil {
			reason = oe.Err // "connect: connection refused", without the address again
		}
		why[i] = fmt.Sprintf("%s (%v)", target, reason)
	}
	return fmt.Sprintf("cannot connect to %s at any of its addresses: %s", e.addr, strings.Join(why, ", "))
}

func (e *connectError) Unwrap() []error { return e.errs }

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

// Package dial opens the connections of mailoauth's mail clients (imap, pop3, smtp and the proxy's
// upstream): it resolves the host, races its addresses as RFC 8305 (Happy Eyeballs) does, and for
// implicit TLS performs the handshake, reporting every step to a trace.Func so that a failed
// connection says where it failed. Mode, whose zero value follows the port, is how a client's options
// choose implicit TLS or STARTTLS.
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

// Options describe how Open connects. The zero value is implicit TLS with the system's CAs and no
// trace.
type Options struct {
	// Mode is how TLS starts. Open does not know the protocol, so it takes Auto as Implicit: resolve
	// Auto with Mode.For first. With StartTLS, Open returns the plain connection and the protocol
	// upgrades it later with Upgrade.
	Mode Mode
	// TLSConfig adds CAs or a client certificate; nil means the system's roots. Open completes a
	// copy (server name from the address, TLS 1.2 at least, verification on).
	TLSConfig *tls.Config
	// Trace, if set, is told each step as it ends: "resolve", one "connect" per address tried, and
	// "tls" unless Mode is StartTLS. It is called from Open's goroutine only, never after Open returns.
	Trace trace.Func
}

// Open connects to addr (host:port) as every mailoauth client does, and returns the connection with
// the TLS configuration it completed from o.TLSConfig, which a later STARTTLS passes to Upgrade.
//
// It resolves the host and races its addresses as RFC 8305 (Happy Eyeballs) does: IPv6 and IPv4
// addresses alternate, and each attempt that has neither failed nor connected within 250 ms is
// joined by the next one, so that a family that does not work (IPv6 that black-holes, say) costs a
// quarter of a second rather than a timeout per address. The first connection made wins and the
// others are abandoned and closed. Unless o.Mode is StartTLS it then performs the TLS handshake. The
// connection's deadline is set to ctx's, so that it covers the handshake and the authentication that
// follows; the caller clears it when its commands begin.
func Open(ctx context.Context, addr string, o Options) (net.Conn, *tls.Config, error) {
	cfg := tlsConfig(o.TLSConfig, addr)
	conn, err := dialAddr(ctx, addr, o.Mode, cfg, o.Trace)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return conn, cfg, nil
}

// lookup resolves a host, and dialTCP makes one connection attempt; variables so that this package's
// tests can resolve a name to addresses of their choosing and make some of them refuse or never
// answer (there is no portable name with two loopback addresses, nor a portable black hole).
var (
	lookup  = net.DefaultResolver.LookupIPAddr
	dialTCP = func(ctx context.Context, target string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target)
	}
)

// attemptDelay is how long an attempt runs alone before the next address is tried alongside it: RFC
// 8305's recommended Connection Attempt Delay (net.Dialer's dual-stack fallback waits 300 ms). A
// variable for this package's tests. attemptTimeout bounds one attempt when ctx has no deadline.
var attemptDelay = 250 * time.Millisecond

const attemptTimeout = 30 * time.Second

// dialAddr resolves and connects to addr, and unless mode is StartTLS performs the TLS handshake.
func dialAddr(ctx context.Context, addr string, mode Mode, cfg *tls.Config, t trace.Func) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q is not host:port", addr)
	}
	// Resolved here rather than by net.Dialer so that the trace shows what the name resolved to and
	// each address tried.
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
	conn, err := connect(ctx, addr, port, interleave(ips), t)
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

// interleave orders addresses as RFC 8305 §4 does: the families alternate, starting with the family
// of the resolver's first answer, each family keeping the resolver's order.
func interleave(ips []net.IPAddr) []net.IPAddr {
	var first, other []net.IPAddr
	firstIs4 := ips[0].IP.To4() != nil
	for _, ip := range ips {
		if (ip.IP.To4() != nil) == firstIs4 {
			first = append(first, ip)
		} else {
			other = append(other, ip)
		}
	}
	out := make([]net.IPAddr, 0, len(ips))
	for i := range max(len(first), len(other)) {
		if i < len(first) {
			out = append(out, first[i])
		}
		if i < len(other) {
			out = append(out, other[i])
		}
	}
	return out
}

// attempt is the outcome of one connection attempt.
type attempt struct {
	i    int // which address
	conn net.Conn
	err  error
	took time.Duration
}

// connect races the addresses in order (see Open): it starts the next attempt when the last one
// started fails, or has run attemptDelay without an answer, and returns the first connection made.
// It waits for every attempt it started, closing the connections that lost, so that no attempt
// outlives it and each one is traced as a "connect" step.
func connect(ctx context.Context, addr, port string, ips []net.IPAddr, t trace.Func) (net.Conn, error) {
	targets := make([]string, len(ips))
	for i, ip := range ips {
		targets[i] = net.JoinHostPort(ip.String(), port)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan attempt, len(ips))
	delay := time.NewTimer(attemptDelay)
	defer delay.Stop()
	started, pending := 0, 0
	launch := func() {
		i := started
		started, pending = started+1, pending+1
		delay.Reset(attemptDelay)
		go func() {
			c, stop := actx, func() {}
			if _, ok := ctx.Deadline(); !ok {
				c, stop = context.WithTimeout(actx, attemptTimeout)
			}
			defer stop()
			begun := time.Now()
			conn, err := dialTCP(c, targets[i])
			results <- attempt{i: i, conn: conn, err: err, took: time.Since(begun)}
		}()
	}
	var won net.Conn
	winner := -1
	errs := make([]error, len(ips))
	launch()
	for pending > 0 {
		more := winner < 0 && started < len(ips) && ctx.Err() == nil
		select {
		case r := <-results:
			pending--
			if r.err == nil && winner < 0 {
				won, winner = r.conn, r.i
				cancel() // the others are abandoned
			} else if r.err == nil {
				r.conn.Close()
				r.err = fmt.Errorf("closed the connection to %s: %s connected first", targets[r.i], targets[winner])
			} else if winner >= 0 {
				r.err = fmt.Errorf("gave up on %s: %s connected first", targets[r.i], targets[winner])
			} else {
				r.err = fmt.Errorf("cannot connect to %s: %w", targets[r.i], r.err)
				errs[r.i] = r.err
				if more {
					launch() // a failure starts the next attempt at once
				}
			}
			traceConnect(t, r)
		case <-delay.C:
			if more {
				launch()
			}
		}
	}
	if won != nil {
		return won, nil
	}
	if started == 1 {
		return nil, fmt.Errorf("cannot connect to %s: %w", addr, errors.Unwrap(errs[0]))
	}
	return nil, &connectError{addr: addr, tried: targets[:started], errs: errs[:started]}
}

// traceConnect reports one attempt as a "connect" step.
func traceConnect(t trace.Func, r attempt) {
	if t == nil {
		return
	}
	s := trace.Step{Name: "connect", Duration: r.took, OK: r.err == nil}
	if r.err != nil {
		s.Error = r.err.Error()
	} else {
		s.Detail = r.conn.RemoteAddr().String()
	}
	t(s)
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

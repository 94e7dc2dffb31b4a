package proxy

// Listeners with via = "graph": the proxy accepts the connection as for any listener (local TLS,
// metrics, the session table, drain, reload) and checks the login the same way, but instead of
// dialing the protocol's server it opens the mapped mailbox through Microsoft Graph and hands the
// session to the gateway's protocol server (package gateway and its subpackages).

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/token"
)

// Gateway is what the proxy needs to serve listeners with via = "graph": the mailboxes, and the
// protocol servers, which the caller takes from the gateway's subpackages (imapgw, smtpgw, pop3gw)
// so that the proxy does not depend on them.
type Gateway struct {
	// Mailboxes opens the mailbox of each login; every session of a mailbox shares it.
	Mailboxes *gateway.Mailboxes
	// IMAP and SMTP serve the connections pushed to a listener until it is closed. Each is started
	// once per listener, at its first connection.
	IMAP, SMTP func(GatewayListener) error
	// POP3 serves a POP3 session from its successful login on: it answers the PASS or AUTH command
	// itself, then serves the TRANSACTION and UPDATE states for mb. r holds what the program sent
	// after its login command. It returns when the session ends; ctx ends when the proxy closes it.
	POP3 func(ctx context.Context, conn net.Conn, r *bufio.Reader, mb *gateway.Mailbox) error
}

// GatewayListener is what a gateway server serves: the connections of one listener via Graph.
type GatewayListener struct {
	// Listener gives the connections, each with its gateway.Handoff.
	Listener *gateway.Listener
	// LocalTLS is the listener's config.LocalTLS* mode: "none" (a loopback address: logins in
	// clear are accepted), "implicit" (connections are pushed as their *tls.Conn) or "starttls".
	LocalTLS string
	// TLS is the listener's TLS configuration for STARTTLS; nil unless LocalTLS is "starttls".
	TLS *tls.Config
}

// serve returns the server function for a protocol served through a gateway.Listener.
func (g *Gateway) serve(protocol string) func(GatewayListener) error {
	switch protocol {
	case config.ProtocolIMAP:
		return g.IMAP
	case config.ProtocolSMTP:
		return g.SMTP
	}
	return nil
}

// checkGateway refuses a configuration with a listener via Graph that this proxy cannot serve.
func (s *Server) checkGateway(cfg *config.Proxy) error {
	for _, l := range cfg.Listeners {
		if l.Via != config.ViaGraph {
			continue
		}
		g := s.opts.Gateway
		missing := g == nil || g.Mailboxes == nil
		if !missing && l.Protocol == config.ProtocolPOP {
			missing = g.POP3 == nil
		} else if !missing {
			missing = g.serve(l.Protocol) == nil
		}
		if missing {
			return errors.New("listener " + l.Protocol + " " + l.Listen + ` has via = "graph", but this proxy has no Graph gateway for ` + l.Protocol + ": set Options.Gateway")
		}
	}
	return nil
}

// gatewayListener returns the gateway.Listener of l for the session's protocol and TLS mode,
// starting its server at first use. A reload that changes a listener's protocol or TLS mode in
// place gets a listener of its own.
func (s *Server) gatewayListener(l *listener, cfg *config.Listener) *gateway.Listener {
	key := cfg.Protocol + " " + localTLSMode(cfg)
	l.gwMu.Lock()
	defer l.gwMu.Unlock()
	if gl := l.gw[key]; gl != nil {
		return gl
	}
	if l.gw == nil {
		l.gw = map[string]*gateway.Listener{}
	}
	gl := gateway.NewListener(l.ln.Addr())
	l.gw[key] = gl
	on := GatewayListener{Listener: gl, LocalTLS: localTLSMode(cfg)}
	if on.LocalTLS == config.LocalTLSStartTLS {
		on.TLS = l.tlsConfig()
	}
	serve := s.opts.Gateway.serve(cfg.Protocol)
	go func() {
		err := serve(on)
		// A server that stopped by itself is started again at the next connection; the sessions
		// waiting to be accepted by it are let go.
		l.gwMu.Lock()
		if l.gw[key] == gl {
			delete(l.gw, key)
		}
		l.gwMu.Unlock()
		_ = gl.Close()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			s.opts.Log.Error("gateway server stopped", "protocol", cfg.Protocol, "addr", l.addr, "err", err)
		}
	}()
	return gl
}

// closeGateway stops the listener's gateway servers; their sessions go on.
func (l *listener) closeGateway() {
	l.gwMu.Lock()
	defer l.gwMu.Unlock()
	for _, gl := range l.gw {
		_ = gl.Close()
	}
	l.gw = nil
}

// meter wraps a gateway session's raw connection (under TLS): before login it bounds what the
// program may send, as the proxy's own login does (a protocol library reads for itself there);
// after login it counts bytes and notes activity, for the metrics and the idle timeout.
type meter struct {
	net.Conn
	s        *session
	budget   atomic.Int64 // bytes the program may still send before login
	loggedIn atomic.Bool
	last     atomic.Int64 // unix nanoseconds of the last byte either way after login
	// closeAfterWrite: the connection used up its logins; it closes once their refusal is written.
	closeAfterWrite atomic.Bool
	up, down        *atomic.Uint64
}

func newMeter(s *session, c net.Conn) *meter {
	m := &meter{Conn: c, s: s, up: s.srv.Metrics.bytesCounter(s.cfg.Protocol, "up"), down: s.srv.Metrics.bytesCounter(s.cfg.Protocol, "down")}
	m.budget.Store(int64(s.in.session))
	return m
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.Conn.Read(p)
	if m.loggedIn.Load() {
		m.last.Store(time.Now().UnixNano())
		m.up.Add(uint64(n))
		return n, err
	}
	if m.budget.Add(-int64(n)) < 0 {
		m.s.log.Warn("session closed: too much sent before login", "max", m.s.in.session)
		m.s.close()
		return 0, &limitError{kind: limitSession, max: m.s.in.session}
	}
	return n, err
}

func (m *meter) Write(p []byte) (int, error) {
	n, err := m.Conn.Write(p)
	if m.loggedIn.Load() {
		m.last.Store(time.Now().UnixNano())
		m.down.Add(uint64(n))
	}
	if m.closeAfterWrite.Load() {
		m.s.close()
	}
	return n, err
}

// loggedIn ends the login phase of a gateway session: the login deadline and the pre-login bounds
// no longer apply; the idle timeout and the maximum session do, until the session ends (the
// returned stop).
func (s *session) loggedIn() (stop func()) {
	s.meter.last.Store(time.Now().UnixNano())
	s.meter.loggedIn.Store(true)
	s.phase.Lock()
	s.spliced = true
	_ = s.conn.SetDeadline(time.Time{}) // a grace deadline from a login that just made it
	s.phase.Unlock()
	s.cancel()
	limit := time.AfterFunc(s.srv.opts.MaxSession, func() {
		s.log.Info("session closed: maximum duration reached", "max", s.srv.opts.MaxSession)
		s.close()
	})
	idle := s.srv.opts.IdleTimeout
	var mu sync.Mutex
	var watch *time.Timer
	var check func()
	check = func() {
		mu.Lock()
		defer mu.Unlock()
		since := time.Since(time.Unix(0, s.meter.last.Load()))
		if since >= idle {
			s.log.Info("session closed: idle", "idle", idle)
			s.close()
			return
		}
		watch = time.AfterFunc(idle-since, check)
	}
	mu.Lock()
	watch = time.AfterFunc(idle, check)
	mu.Unlock()
	return func() {
		limit.Stop()
		mu.Lock()
		watch.Stop()
		mu.Unlock()
	}
}

// openMailbox is a gateway login: the shared checks, then the account's Graph token and the mailbox.
func (s *session) openMailbox(user, password string) (*gateway.Mailbox, error) {
	a, mailbox, log, lerr := s.checkUser(user, password)
	if lerr != nil {
		return nil, lerr
	}
	log = log.With("mailbox", mailbox)
	if _, _, lerr := s.token(user, a, token.Graph, log); lerr != nil {
		return nil, lerr
	}
	// The client and its Limiter are made with the Mailbox, and live as long as it does: every
	// session of the mailbox shares Graph's 4 concurrent requests, and the proxy keeps nothing per
	// mailbox beyond what Mailboxes bounds.
	mb := s.srv.opts.Gateway.Mailboxes.OpenWith(a.Name(), mailbox, func() *graph.Client {
		return graph.ClientFor(a, mailbox, graph.NewLimiter(0))
	})
	s.srv.Metrics.login(s.cfg.Protocol, string(outcomeOK))
	log.Info("logged in", "via", config.ViaGraph)
	return mb, nil
}

// gatewaySession hands an IMAP or SMTP connection to the gateway's server and waits for its end.
func (s *session) gatewaySession() error {
	gl := s.srv.gatewayListener(s.l, s.cfg)
	ended := make(chan struct{})
	var once sync.Once
	var stop func()
	var opened *gateway.Mailbox
	failures := 0
	h := &gateway.Handoff{
		Login: func(_ context.Context, user, password string) (*gateway.Mailbox, error) {
			// s.ctx, the login deadline, bounds the login rather than the server's context.
			s.setAnswering(true)
			defer s.setAnswering(false)
			if failures >= maxFailures || s.ctx.Err() != nil {
				s.meter.closeAfterWrite.Store(true)
				return nil, &gateway.LoginError{Msg: "Too many failed logins; closing the connection."}
			}
			mb, err := s.openMailbox(user, password)
			if err != nil {
				le := &loginError{}
				errors.As(err, &le)
				if failures++; failures >= maxFailures || s.ctx.Err() != nil {
					s.meter.closeAfterWrite.Store(true)
				}
				return nil, &gateway.LoginError{Temporary: le.temporary, Msg: le.msg}
			}
			stop = s.loggedIn()
			opened = mb
			return mb, nil
		},
		Closed: func() { once.Do(func() { close(ended) }) },
	}
	if err := gl.Push(s.conn, h); err != nil {
		return err
	}
	select {
	case <-ended:
	case <-s.closed:
		// Closed by a limit or the drain: the server sees its connection fail and ends the session.
		<-ended
	}
	if stop != nil {
		stop()
		_ = opened.Close() // the session's share of the mailbox
	}
	return nil
}

// answerGatewayPOP3 logs a POP3 program in through the gateway and serves its session; as
// answerLogin, done is true once the session is over or out of logins.
func (s *session) answerGatewayPOP3(user, password string, failures *int, r reply) (done bool, err error) {
	s.setAnswering(true)
	mb, lerr := s.openMailbox(user, password)
	s.setAnswering(false)
	if lerr != nil {
		return s.answerRefusal(lerr, failures, r)
	}
	stop := s.loggedIn()
	defer stop()
	defer func() { _ = mb.Close() }() // the session's share of the mailbox
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return true, s.srv.opts.Gateway.POP3(ctx, s.conn, s.r, mb)
}

// Package smtpgw is the Graph gateway's SMTP submission server: a mail program authenticates with
// AUTH PLAIN or LOGIN (checked by the proxy through gateway.Handoff.Login), and every message it
// submits is sent through Microsoft Graph from the mailbox it logged in to. It is built on go-smtp's
// server: EHLO offers SIZE, 8BITMIME, PIPELINING, ENHANCEDSTATUSCODES, CHUNKING (BDAT) and, when
// configured, STARTTLS.
//
// The envelope decides who gets a message. Graph takes the recipients from the message's headers,
// so envelope recipients that To and Cc do not name are added as a Bcc header (which Exchange turns
// into Bcc recipients and never delivers), replacing any Bcc header the program left; a To or Cc
// address that is not an envelope recipient is refused, as Graph would send to it. MAIL FROM is not
// used: Graph sends from the mailbox, as the From header's address when the mailbox may send as it.
//
// Graph's refusals become SMTP replies of the right class: throttling and Graph's own failures are
// 4xx (the program tries again later; Graph's Retry-After is waited for first when the
// submission's deadline allows), permissions, recipients and the message itself 5xx; the log says
// the doctor's cause and fix.
//
// What it must never do: relay (mail before AUTH is refused), read more than a bounded number of
// bytes before AUTH, hold a large message in memory (past a megabyte it is spooled to a 0600
// temporary file, removed after, and its large attachments go up to Graph from temporary files a
// chunk at a time), log a password, a token or a message's content, or tell a program its message
// was sent when Graph did not take it.
package smtpgw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/graph"
)

// Options describe a Server; zero values take the defaults.
type Options struct {
	// Hostname is the server's name in its greeting and EHLO answer. Default "localhost".
	Hostname string
	// TLS, if set, is offered with STARTTLS, and AUTH then needs TLS first. Nil: no STARTTLS, and
	// AUTH is taken in clear (which the proxy's configuration allows only on loopback). A
	// connection pushed as a *tls.Conn (implicit TLS) may always AUTH.
	TLS *tls.Config
	// Gateway holds what every protocol server shares: DontSaveToSentItems, MaxMessage (the largest
	// message taken, default and at most 150 MB) and Log.
	Gateway gateway.Options
	// MaxRecipients bounds a message's recipients. Default 500, Exchange Online's limit.
	MaxRecipients int
	// MaxLineLength bounds a line, commands and message alike. Default 2000 bytes.
	MaxLineLength int
	// PreAuthBytes bounds what a connection may send before AUTH succeeds; then it is closed.
	// Default 64 KiB.
	PreAuthBytes int64
	// ReadTimeout bounds the wait for a program's next command or data. Default 5 minutes.
	ReadTimeout time.Duration
	// SubmitTimeout bounds one message's submission to Graph, waits for Retry-After included.
	// Default 10 minutes, the time RFC 5321 (4.5.3.2.6) has a client wait for the answer to DATA.
	SubmitTimeout time.Duration
	// SpoolDir holds messages larger than a megabyte while they are sent. Default os.TempDir().
	SpoolDir string
	// Log receives the sessions' events; nil: Gateway.Log, else nothing.
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	if o.Gateway.MaxMessage <= 0 || o.Gateway.MaxMessage > graph.MaxMIMEMessage {
		o.Gateway.MaxMessage = graph.MaxMIMEMessage
	}
	if o.MaxRecipients <= 0 {
		o.MaxRecipients = 500
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = 2000
	}
	if o.PreAuthBytes <= 0 {
		o.PreAuthBytes = 64 << 10
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Minute
	}
	if o.SubmitTimeout <= 0 {
		o.SubmitTimeout = 10 * time.Minute
	}
	if o.SpoolDir == "" {
		o.SpoolDir = os.TempDir()
	}
	if o.Log == nil {
		o.Log = o.Gateway.Log
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server serves the SMTP connections a gateway.Listener hands it.
type Server struct {
	o Options
	// plain serves connections in clear (STARTTLS if configured); implicit those pushed as a
	// *tls.Conn. Both see connections wrapped in *conn (for the hand-off and the pre-AUTH bound),
	// so implicit's go-smtp does not see their TLS: it allows AUTH and offers no STARTTLS instead.
	plain, implicit *smtp.Server
	plainL, tlsL    *chanListener
	wg              sync.WaitGroup

	mu    sync.Mutex
	conns map[*conn]struct{} // open connections, for Close after Shutdown (go-smtp's then does nothing)
}

// New returns a Server; Serve starts it.
func New(o Options) *Server {
	s := &Server{o: o.withDefaults(), conns: map[*conn]struct{}{}}
	s.plainL, s.tlsL = newChanListener(), newChanListener()
	s.plain = s.newSMTP(s.o.TLS, s.o.TLS == nil)
	s.implicit = s.newSMTP(nil, true)
	return s
}

func (s *Server) newSMTP(tlsConfig *tls.Config, clearAuth bool) *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.o.Hostname
	srv.TLSConfig = tlsConfig
	srv.AllowInsecureAuth = clearAuth
	srv.MaxMessageBytes = s.o.Gateway.MaxMessage
	srv.MaxRecipients = s.o.MaxRecipients
	srv.MaxLineLength = s.o.MaxLineLength
	srv.ReadTimeout = s.o.ReadTimeout
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = slogPrinter{s.o.Log}
	return srv
}

// Serve serves the connections pushed to ln until ln is closed; it returns nil then. After Close or
// Shutdown it closes the connections pushed at once.
func (s *Server) Serve(ln *gateway.Listener) error {
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = s.plain.Serve(s.plainL) }()
	go func() { defer s.wg.Done(); _ = s.implicit.Serve(s.tlsL) }()
	defer s.wg.Wait()
	defer s.plainL.Close()
	defer s.tlsL.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		h := ln.Take(c)
		if h == nil {
			_ = c.Close()
			continue
		}
		wc := s.wrap(c, h)
		to := s.plainL
		if _, ok := c.(*tls.Conn); ok {
			to = s.tlsL
		}
		if !to.push(wc) {
			_ = wc.Close() // the Server was closed: refuse until ln is
		}
	}
}

// Shutdown stops taking connections and waits for the sessions to end (a message being sent is
// finished) until ctx ends, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.plain.Shutdown(ctx) }()
	go func() { errc <- s.implicit.Shutdown(ctx) }()
	err := errors.Join(<-errc, <-errc)
	if ctx.Err() != nil {
		_ = s.Close()
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes every connection now.
func (s *Server) Close() error {
	_ = s.plain.Close()
	_ = s.implicit.Close()
	s.mu.Lock()
	open := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	return nil
}

// chanListener is a net.Listener fed by Serve.
type chanListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// slogPrinter gives go-smtp's error log to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Debug("smtp gateway: " + fmt.Sprintf(format, v...))
}
func (p slogPrinter) Println(v ...any) { p.l.Debug("smtp gateway: " + fmt.Sprint(v...)) }

// errPreAuth ends a connection that sent more than PreAuthBytes before AUTH.
var errPreAuth = errors.New("smtpgw: too much input before AUTH")

// conn is a connection with its hand-off, its mailbox once logged in, and the pre-AUTH bound.
type conn struct {
	net.Conn
	h         *gateway.Handoff
	limit     int64
	mu        sync.Mutex
	read      int64
	mb        *gateway.Mailbox
	ctx       context.Context // ends when the connection closes
	cancel    context.CancelFunc
	closeOnce sync.Once
	srv       *Server
}

func (s *Server) wrap(c net.Conn, h *gateway.Handoff) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	wc := &conn{Conn: c, h: h, limit: s.o.PreAuthBytes, ctx: ctx, cancel: cancel, srv: s}
	s.mu.Lock()
	s.conns[wc] = struct{}{}
	s.mu.Unlock()
	return wc
}

// Read reads at most the bytes left before AUTH, then fails.
func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	authed, left := c.mb != nil, c.limit-c.read
	c.mu.Unlock()
	if !authed {
		if left <= 0 {
			return 0, errPreAuth
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.Conn.Read(p)
	if !authed {
		c.mu.Lock()
		c.read += int64(n)
		c.mu.Unlock()
	}
	return n, err
}

// Close closes the connection and tells the proxy, once.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.cancel()
		c.srv.mu.Lock()
		delete(c.srv.conns, c)
		c.srv.mu.Unlock()
		if c.h.Closed != nil {
			c.h.Closed()
		}
	})
	return err
}

// connOf finds the *conn under go-smtp's (a *tls.Conn over it after STARTTLS).
func connOf(c *smtp.Conn) *conn {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	wc, _ := nc.(*conn)
	return wc
}

var _ io.Reader = (*conn)(nil)

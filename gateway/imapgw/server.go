// Package imapgw is the Graph gateway's IMAP server: a mail program's IMAP4rev1 session (with
// UIDPLUS, MOVE, IDLE, SPECIAL-USE, NAMESPACE, LITERAL+ and ENABLE) carried out through Microsoft
// Graph on one mailbox, on go-imap's imapserver. The proxy accepts each connection and pushes it
// with its gateway.Handoff through a gateway.Listener; LOGIN and AUTHENTICATE PLAIN go to
// Handoff.Login, and the session then works on the gateway.Mailbox it returned.
//
// Sequence numbers are the session's own: messages others add or remove are announced at NOOP,
// CHECK, IDLE and the other commands that may announce them, never during FETCH, STORE or SEARCH.
// A message's whole MIME is streamed through a private temporary file, never held in memory.
//
// What it must never do: log a password, a token or message content (imapserver's raw debug
// output stays off); keep \Deleted anywhere but in the session that set it; tell a program a
// change was made that Graph did not make.
package imapgw

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailoauth/mailoauth/gateway"
)

// Options configure a Server.
type Options struct {
	// TLS, when set, is offered with STARTTLS (the listener's local_tls = "starttls"). A connection
	// pushed as a *tls.Conn (implicit TLS) is already private.
	TLS *tls.Config
	// PlainLogin accepts LOGIN and AUTHENTICATE on a connection without TLS: for a listener on
	// loopback only (local_tls = "none"). Without it such a connection is told LOGINDISABLED.
	PlainLogin bool
	// Gateway are the gateway's options: PollInterval, MaxMessage, DeletePermanently.
	Gateway gateway.Options
	// Log receives one line per failed Graph operation and session errors (never a password,
	// a token or message content); nil: Gateway.Log, and if that is nil too they are discarded.
	Log *slog.Logger
}

// Server serves IMAP sessions over Graph for the connections a gateway.Listener hands it.
type Server struct {
	o   Options
	srv *imapserver.Server

	mu      sync.Mutex
	ln      *gateway.Listener
	serving chan struct{} // closed once Serve's imapserver accepts (or Serve returned)
	once    sync.Once
}

// New returns a Server; call Serve to start it.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = o.Gateway.Log
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Gateway.PollInterval <= 0 {
		o.Gateway.PollInterval = gateway.DefaultPollInterval
	}
	if o.Gateway.MaxMessage <= 0 {
		o.Gateway.MaxMessage = gateway.DefaultMaxMessage
	}
	s := &Server{o: o}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession:   s.newSession,
		Caps:         capabilities,
		Logger:       logAdapter{o.Log},
		TLSConfig:    o.TLS,
		InsecureAuth: o.PlainLogin,
		// DebugWriter stays nil: it would log passwords and message content.
	})
	return s
}

// capabilities are what the session implements. No IMAP4rev2 (imapserver would then require
// ESEARCH and LIST-STATUS) and no CONDSTORE (imapserver beta.8 has no MODSEQ in its FETCH, STORE
// and SELECT writers, and Graph keeps no per-message modification sequence to map it to).
var capabilities = imap.CapSet{
	imap.CapIMAP4rev1:   {},
	imap.CapLiteralPlus: {},
	imap.CapUIDPlus:     {},
	imap.CapMove:        {},
	imap.CapSpecialUse:  {},
	imap.CapNamespace:   {},
	imap.CapChildren:    {},
}

// Serve serves the connections pushed to ln until ln or the Server is closed; it then returns nil
// (or the reason it could not serve) and ln is closed, so that the proxy's Push fails rather
// than waits for an Accept that will not come.
func (s *Server) Serve(ln *gateway.Listener) error {
	defer ln.Close()
	s.mu.Lock()
	s.ln = ln
	if s.serving == nil {
		s.serving = make(chan struct{})
	}
	sl := &signalListener{Listener: ln, serving: s.serving, once: &s.once}
	s.mu.Unlock()
	defer sl.signal()
	return s.srv.Serve(sl)
}

// Close closes every session (each calls its Handoff.Closed) and stops Serve.
func (s *Server) Close() error {
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if serving != nil {
		// imapserver's Close waits for its Serve with a WaitGroup that Serve adds to before it
		// first accepts: a Close before that Add is a data race inside imapserver.
		<-serving
	}
	return s.srv.Close()
}

// signalListener says, at its first Accept, that imapserver's Serve has registered itself.
type signalListener struct {
	*gateway.Listener
	serving chan struct{}
	once    *sync.Once
}

func (l *signalListener) signal() { l.once.Do(func() { close(l.serving) }) }

func (l *signalListener) Accept() (net.Conn, error) {
	l.signal()
	return l.Listener.Accept()
}

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	var h *gateway.Handoff
	if ln != nil {
		h = ln.Take(c.NetConn())
	}
	if h == nil {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "This connection did not come through the proxy."}
	}
	return newSession(s, c, h), nil, nil
}

// logAdapter gives imapserver's Printf lines to slog. imapserver logs protocol failures (a
// client's broken command, a write error), never command arguments.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(format string, args ...any) {
	a.l.Warn("imap gateway: " + fmt.Sprintf(format, args...))
}

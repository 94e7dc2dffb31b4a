package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Handoff is what the proxy hands a protocol server with each connection.
type Handoff struct {
	// Login checks the program's user name and password (the proxy's password check, failure delay
	// and user map) and opens the mapped mailbox. A refusal is a *LoginError whose text the program
	// may be shown. It may be called again after a refusal; the proxy closes the connection after
	// too many.
	Login func(ctx context.Context, user, password string) (*Mailbox, error)
	// Closed must be called once when the session ends, however it ends.
	Closed func()
}

// Listener hands connections the proxy accepted to a protocol server that serves a net.Listener
// (go-imap's imapserver, go-smtp): Accept returns what Push gave, and the server's session finds its
// Handoff with Take. A connection with implicit TLS is pushed as its *tls.Conn, so that the servers
// see TLS is on.
type Listener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	handed map[net.Conn]*Handoff
}

// NewListener returns a Listener whose Addr is addr (the proxy's listening address).
func NewListener(addr net.Addr) *Listener {
	return &Listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{}), handed: map[net.Conn]*Handoff{}}
}

// Push hands c to the server; it returns once the server accepted it, or net.ErrClosed (and c is
// the caller's to close) if the Listener was closed first.
func (l *Listener) Push(c net.Conn, h *Handoff) error {
	l.mu.Lock()
	l.handed[c] = h
	l.mu.Unlock()
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		l.mu.Lock()
		delete(l.handed, c)
		l.mu.Unlock()
		return net.ErrClosed
	}
}

// Accept returns the next connection pushed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Take returns the Handoff pushed with c (as Accept returned it), once; nil for a connection this
// Listener did not hand out.
func (l *Listener) Take(c net.Conn) *Handoff {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.handed[c]
	delete(l.handed, c)
	return h
}

// Close stops Accept; connections already accepted are the server's.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the proxy's listening address.
func (l *Listener) Addr() net.Addr { return l.addr }

// LoginError is a refused or failed login, as the program is to be told it.
type LoginError struct {
	// Temporary: the program may try again as it is (IMAP NO [UNAVAILABLE], SMTP 454, POP3
	// [SYS/TEMP]); otherwise the credentials were wrong (NO [AUTHENTICATIONFAILED], 535, [AUTH]).
	Temporary bool
	// Msg is one sentence for the program's user; never a secret.
	Msg string
}

func (e *LoginError) Error() string { return e.Msg }

// AsLoginError returns err's *LoginError, or a temporary one with a generic text.
func AsLoginError(err error) *LoginError {
	var le *LoginError
	if errors.As(err, &le) {
		return le
	}
	return &LoginError{Temporary: true, Msg: "The login could not be completed; see the proxy log."}
}

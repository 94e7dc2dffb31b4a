// Package pop3gw serves POP3's TRANSACTION and UPDATE states (RFC 1939, with RFC 2449's CAPA,
// PIPELINING and RESP-CODES) over Microsoft Graph: after the proxy has checked a program's password,
// the program reads and deletes the messages of a Graph mailbox's Inbox as if it spoke to a POP3
// server. It is written by hand: no maintained Go POP3 server library exists.
//
// The maildrop is the Inbox as it was at login (a POP3 maildrop does not change during a session).
// A message's UIDL is a hash of its Graph immutable id, so it stays the same across sessions,
// restarts and replicas. RETR and TOP copy the message's MIME from Graph into a private temporary
// file, so that a program reading slowly does not hold one of the mailbox's four Graph request
// slots, and send it from there dot-stuffed, never holding it in memory; DELE only marks, and the marked messages are deleted (to Deleted Items, or
// for good as gateway.Options.DeletePermanently says) when the program sends QUIT.
//
// What it must never do: delete a message the program did not mark, or delete anything when the
// session ends without QUIT; tell the program a message was sent whole when its transfer failed
// (the connection is closed instead of ending the multi-line reply); write message content or a
// secret into the log or a reply.
package pop3gw

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/gateway"
)

// Options tune a session; the zero value takes the defaults.
type Options struct {
	// IdleTimeout is how long Serve waits for the next command, or for the program to take what it
	// was sent, before it ends the session. Default 10 minutes, RFC 1939's minimum autologout timer.
	IdleTimeout time.Duration
	// Log receives a line per Graph failure and per session end, never message content or
	// secrets; nil discards.
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// ErrUnavailable is returned by Serve when the Inbox could not be read at login. Serve has answered
// the program's login command with -ERR and the SYS/TEMP response code, and written nothing else:
// the connection is still in POP3's AUTHORIZATION state.
var ErrUnavailable = errors.New("pop3gw: the Inbox could not be read from Microsoft Graph")

// maildrop is what a session needs of the Inbox: *gateway.Folder, or a stand-in in tests.
type maildrop interface {
	Sync(ctx context.Context, maxAge time.Duration) (*gateway.View, error)
	Open(ctx context.Context, id string) (io.ReadCloser, error)
	Delete(ctx context.Context, ids []string) error
}

// Serve answers the login command that the proxy has just accepted, with the Inbox's message count,
// and then serves the session on conn until QUIT, the program hanging up, IdleTimeout or ctx's end.
// r is the reader the proxy read the login from (it may hold pipelined commands). Serve never
// closes conn. It returns nil after QUIT or a hang-up, and an error wrapping ErrUnavailable when the
// Inbox could not be read (see ErrUnavailable).
func Serve(ctx context.Context, conn net.Conn, r *bufio.Reader, mb *gateway.Mailbox, o Options) error {
	o = o.withDefaults()
	o.Log = o.Log.With("mailbox", mb.Address)
	fctx, cancel := context.WithTimeout(ctx, graphWait)
	f, err := mb.Folder(fctx, "INBOX")
	cancel()
	if err != nil {
		s := newSession(ctx, conn, r, nil, o)
		defer s.stop()
		return s.unavailable(err)
	}
	return serve(ctx, conn, r, f, o)
}

// serve is Serve on any maildrop.
func serve(ctx context.Context, conn net.Conn, r *bufio.Reader, box maildrop, o Options) error {
	o = o.withDefaults()
	s := newSession(ctx, conn, r, box, o)
	defer s.stop()
	sctx, cancel := context.WithTimeout(ctx, graphWait)
	v, err := box.Sync(sctx, 0)
	cancel()
	if err != nil {
		return s.unavailable(err)
	}
	s.msgs = v.Messages
	s.deleted = make([]bool, len(s.msgs))
	n, size := s.stat()
	if err := s.reply(fmt.Sprintf("+OK Logged in; the Inbox has %d messages (%d octets).", n, size)); err != nil {
		return err
	}
	err = s.loop()
	// The last replies (QUIT's, too many bad commands) go out even with commands pipelined behind.
	_ = s.w.Flush()
	o.Log.Debug("pop3 gateway session ended", "err", err)
	if errors.Is(err, errQuit) || errors.Is(err, io.EOF) {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// session is one program's TRANSACTION state.
type session struct {
	ctx   context.Context
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	box   maildrop
	o     Options
	buf   []byte // RETR's copy buffer
	stopf func() bool

	msgs    []gateway.Message // the maildrop: message n is msgs[n-1]
	deleted []bool
	errs    int // bad commands so far

	mu      sync.Mutex
	stopped bool // ctx ended or Serve returned: deadlines are no longer Serve's to set
}

func newSession(ctx context.Context, conn net.Conn, r *bufio.Reader, box maildrop, o Options) *session {
	s := &session{ctx: ctx, conn: conn, r: r, box: box, o: o}
	s.w = bufio.NewWriterSize(deadlineWriter{s}, 16<<10)
	// A read or write blocked on the program ends when ctx does.
	s.stopf = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.stopped {
			s.stopped = true
			_ = conn.SetDeadline(time.Unix(1, 0))
		}
	})
	return s
}

// stop hands the connection back to its owner, without the deadlines Serve set.
func (s *session) stop() {
	s.stopf()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	_ = s.conn.SetDeadline(time.Time{})
}

// setDeadline sets the read or write deadline IdleTimeout from now, unless ctx has ended.
func (s *session) setDeadline(read bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	t := time.Now().Add(s.o.IdleTimeout)
	if read {
		_ = s.conn.SetReadDeadline(t)
	} else {
		_ = s.conn.SetWriteDeadline(t)
	}
}

// deadlineWriter writes to the connection, each write within IdleTimeout.
type deadlineWriter struct{ s *session }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.s.setDeadline(false)
	return d.s.conn.Write(p)
}

// unavailable answers the login with Graph's failure to give the Inbox.
func (s *session) unavailable(err error) error {
	s.o.Log.Warn("pop3 gateway: the Inbox could not be read", "err", err)
	s.w.WriteString("-ERR [SYS/TEMP] The Inbox could not be read: " + graphTrouble(s.ctx, err) + "; try again later.\r\n")
	if werr := s.w.Flush(); werr != nil {
		return werr
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// reply writes one line, flushed unless more pipelined commands are waiting.
func (s *session) reply(line string) error {
	s.w.WriteString(line)
	s.w.WriteString("\r\n")
	return s.flush()
}

// flush sends what was written, unless the program pipelined more commands: their answers go in
// the same packet (RFC 2449's PIPELINING).
func (s *session) flush() error {
	if s.r.Buffered() > 0 {
		return nil
	}
	return s.w.Flush()
}

// stat is the maildrop's message count and size, marked messages left out.
func (s *session) stat() (n int, size int64) {
	for i, m := range s.msgs {
		if !s.deleted[i] {
			n++
			size += m.Size
		}
	}
	return n, size
}

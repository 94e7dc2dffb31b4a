package exchange

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// imapBackend is go-imap v2's imapserver serving the authenticated state over mailstore sessions.
// Connections reach it pre-authenticated through a channel listener.
type imapBackend struct {
	srv  *imapserver.Server
	ln   *chanListener
	done chan struct{}
}

type slogPrintf struct{ s *Servers }

func (l slogPrintf) Printf(format string, args ...any) {
	// imapserver reports client read errors and similar here; none carries a secret (no DebugWriter).
	l.s.log.Debug("exchange: imapserver", "msg", strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func newIMAPBackend(s *Servers) *imapBackend {
	b := &imapBackend{ln: newChanListener(), done: make(chan struct{})}
	b.srv = imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			sh, ok := c.NetConn().(*shimConn)
			if !ok {
				return nil, nil, errors.New("exchange: connection did not come through the front end")
			}
			return sh.session, &imapserver.GreetingData{PreAuth: true}, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapMove: {},
			imap.CapChildren: {}, imap.CapLiteralPlus: {},
		},
		Logger: slogPrintf{s},
	})
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(b.ln)
	}()
	// Serve registers itself (a WaitGroup.Add) before its first Accept, unsynchronised with Close's
	// Wait: wait for that first Accept so that an immediate Close cannot race with it.
	select {
	case <-b.ln.accepting:
	case <-b.done:
	}
	return b
}

func (b *imapBackend) close() {
	b.srv.Close()
	<-b.done
}

// chanListener hands connections from the front end to imapserver.Serve.
type chanListener struct {
	ch        chan net.Conn
	closed    chan struct{}
	once      sync.Once
	accepting chan struct{} // closed at the first Accept
	first     sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{}), accepting: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	l.first.Do(func() { close(l.accepting) })
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// shimConn is the connection as imapserver sees it: reads start with what the front end had
// buffered, and writes are rewritten into Exchange's texts (rewriter).
type shimConn struct {
	net.Conn
	session *mailstore.Session
	pre     []byte
	done    chan struct{}
	once    sync.Once

	mu     sync.Mutex // guards idTags and the rewriter
	idTags map[string]bool
	in     commandWatcher
	out    rewriter
}

// newShim makes the connection imapserver serves; fault is the command fault to apply to each
// command (its latency; an untagged reply or a drop: imapserver has the command already, so a
// tagged reply cannot take its answer's place and is not sent).
func newShim(c net.Conn, pre []byte, sess *mailstore.Session, fault func() *world.Fault) *shimConn {
	sh := &shimConn{Conn: c, session: sess, pre: pre, done: make(chan struct{}), idTags: map[string]bool{}}
	sh.in.onCommand = func(tag, name string) {
		if f := fault(); f != nil && (f.Drop || strings.HasPrefix(f.Reply, "*")) {
			sh.mu.Lock()
			if !f.Drop {
				sh.Conn.Write([]byte(f.Reply + "\r\n"))
			}
			if f.Drop || closesAfter(f.Reply) {
				sh.Conn.Close()
			}
			sh.mu.Unlock()
		}
		if name == "ID" {
			sh.mu.Lock()
			if len(sh.idTags) < 64 {
				sh.idTags[tag] = true
			}
			sh.mu.Unlock()
		}
	}
	sh.out = rewriter{w: c, dropFirst: true, isID: func(tag string) bool {
		ok := sh.idTags[tag]
		delete(sh.idTags, tag)
		return ok
	}}
	return sh
}

func (sh *shimConn) Read(p []byte) (int, error) {
	if len(sh.pre) > 0 {
		n := copy(p, sh.pre)
		sh.pre = sh.pre[n:]
		sh.in.observe(p[:n])
		return n, nil
	}
	n, err := sh.Conn.Read(p)
	sh.in.observe(p[:n])
	return n, err
}

func (sh *shimConn) Write(p []byte) (int, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.out.write(p)
}

func (sh *shimConn) Close() error {
	sh.once.Do(func() { close(sh.done) })
	return sh.Conn.Close()
}

func (sh *shimConn) SetDeadline(t time.Time) error { return sh.Conn.SetDeadline(t) }

// commandWatcher follows the client's commands through their literals, to learn each command's tag
// and name (imapserver answers ID, which it does not know, with "BAD Unknown command": the rewriter
// turns that into an ID answer).
type commandWatcher struct {
	onCommand func(tag, name string)
	head      []byte // the start of the current line (up to 64 bytes)
	tail      []byte // the last bytes of the current line (literal announcement)
	mid       bool   // the current line continues a command after a literal
	literal   int64
}

func (w *commandWatcher) observe(p []byte) {
	for len(p) > 0 {
		if w.literal > 0 {
			n := min(int64(len(p)), w.literal)
			p, w.literal = p[n:], w.literal-n
			continue
		}
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if len(w.head) < 64 {
			w.head = append(w.head, seg[:min(len(seg), 64-len(w.head))]...)
		}
		w.tail = append(w.tail, seg...)
		if len(w.tail) > 32 {
			w.tail = append(w.tail[:0], w.tail[len(w.tail)-32:]...)
		}
		if i < 0 {
			return
		}
		p = p[i+1:]
		if !w.mid {
			f := strings.Fields(string(w.head))
			if len(f) >= 2 && w.onCommand != nil {
				w.onCommand(f[0], strings.ToUpper(f[1]))
			}
		}
		n, _, _, lit := literalSuffix(bytes.TrimSuffix(w.tail, []byte("\r")))
		w.head, w.tail, w.mid = w.head[:0], w.tail[:0], lit
		w.literal = n
	}
}

// rewriter turns imapserver's output into Exchange's: it drops the PREAUTH greeting, replaces the
// capability list, and rewrites status texts line by line. Literals (message bodies) pass untouched.
type rewriter struct {
	w         deadlineWriter
	dropFirst bool
	isID      func(tag string) bool
	line      []byte
	literal   int64
	mid       bool // the pending line continues a response after a literal
}

type deadlineWriter interface {
	Write([]byte) (int, error)
	SetWriteDeadline(time.Time) error
}

const maxPendingLine = 64 << 10

func (r *rewriter) write(p []byte) (int, error) {
	total := len(p)
	var out []byte
	for len(p) > 0 {
		if r.literal > 0 {
			n := min(int64(len(p)), r.literal)
			out, p, r.literal = append(out, p[:n]...), p[n:], r.literal-n
			if r.literal == 0 {
				r.mid = true
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			r.line = append(r.line, p...)
			if len(r.line) > maxPendingLine { // a huge line without literals: let it through as is
				out, r.line, r.mid = append(out, r.line...), r.line[:0], true
			}
			break
		}
		r.line = append(r.line, p[:i+1]...)
		p = p[i+1:]
		out = append(out, r.complete()...)
		r.line = r.line[:0]
	}
	if len(out) > 0 {
		r.w.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := r.w.Write(out); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// complete handles one full line (with its CRLF) and returns what to send.
func (r *rewriter) complete() []byte {
	line := r.line
	mid := r.mid
	r.mid = false
	if n, _, _, ok := literalSuffix(bytes.TrimRight(line, "\r\n")); ok {
		r.literal = n
		if n == 0 {
			r.mid = true
		}
		return append([]byte(nil), line...)
	}
	if mid {
		return append([]byte(nil), line...)
	}
	if r.dropFirst {
		r.dropFirst = false
		return nil
	}
	text := strings.TrimRight(string(line), "\r\n")
	return []byte(rewriteIMAPLine(text, r.isID) + "\r\n")
}

var (
	reCompleted = regexp.MustCompile(`^(\S+) OK (\[[^\]]*\] )?(UID )?([A-Z]+) completed$`)
	reRespCode  = regexp.MustCompile(`^\* OK \[(UIDVALIDITY|UIDNEXT|UNSEEN|PERMANENTFLAGS)( [^\]]*)?\] .*$`)
)

// Exchange's texts for SELECT's untagged OK responses.
var respCodeTexts = map[string]string{
	"UIDVALIDITY": "UIDVALIDITY value", "UIDNEXT": "The next unique identifier value",
	"UNSEEN": "Is the first unseen message", "PERMANENTFLAGS": "Permanent flags",
}

// rewriteIMAPLine maps one of imapserver's response lines to Exchange's wording.
func rewriteIMAPLine(line string, isID func(string) bool) string {
	switch {
	case strings.HasPrefix(line, "* CAPABILITY "):
		return "* CAPABILITY " + imapCapsPostAuth
	case strings.HasPrefix(line, "* BYE "):
		return imapBye
	case line == "+ idling":
		return "+ IDLE accepted, awaiting DONE command."
	case line == "+ Ready for literal data":
		return imapLiteralCont
	}
	if m := reRespCode.FindStringSubmatch(line); m != nil {
		i := strings.Index(line, "] ")
		return line[:i+2] + respCodeTexts[m[1]]
	}
	if m := reCompleted.FindStringSubmatch(line); m != nil {
		return m[1] + " OK " + m[2] + m[4] + " completed."
	}
	tag, rest, ok := strings.Cut(line, " ")
	if !ok || tag == "*" || tag == "+" {
		return line
	}
	switch {
	case rest == "BAD Unknown command":
		if isID != nil && isID(tag) {
			return "* ID NIL\r\n" + tag + " OK ID completed."
		}
		return tag + " " + imapCommandError
	case strings.HasPrefix(rest, "BAD [CLIENTBUG] This command is only valid in"),
		strings.HasPrefix(rest, "NO [PRIVACYREQUIRED]"), rest == "NO STARTTLS not supported":
		return tag + " " + imapInvalidState
	case strings.HasPrefix(rest, "BAD "):
		return tag + " " + imapArgumentError
	}
	return line
}

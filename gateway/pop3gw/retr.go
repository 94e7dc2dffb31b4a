package pop3gw

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/mailoauth/mailoauth/graph"
)

// uidl is a message's unique-id listing: RFC 1939 allows 1 to 70 characters from 0x21 to 0x7E, and
// an immutable id is longer, so it is hashed (43 characters of base64url).
func uidl(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// transferWait bounds a message's copy from Graph, Graph's throttling pauses included: graphWait,
// and the time the message takes at 32 KB/s.
func transferWait(size int64) time.Duration {
	return graphWait + time.Duration(max(size, 0)/(32<<10))*time.Second
}

// maxSpool bounds what is copied of one message from Graph: Exchange Online's largest message
// (150 MB) as MIME, with room to spare. Graph is not trusted to stop where the message does.
const maxSpool = 256 << 20

// errTooLarge is a message whose MIME goes on past maxSpool.
var errTooLarge = errors.New("pop3gw: the message's MIME is larger than the gateway serves")

// retr answers RETR n and TOP n lines: the message (or what TOP sends of it) is copied from Graph
// into a private temporary file first, then sent from there. Graph's request thus ends at Graph's
// pace, not the program's: a program reading slowly must not hold one of the mailbox's four request
// slots (graph.Limiter), which every other session of the mailbox needs. A failure at Graph is an
// -ERR before any of the message is sent.
func (s *session) retr(c command) error {
	i, bad := s.message(c.args[0])
	if bad != "" {
		return s.bad(bad)
	}
	top := -1 // lines of the body; -1: the whole message
	if c.name == "TOP" {
		n, err := strconv.Atoi(c.args[1])
		if err != nil || n < 0 || c.args[1][0] == '+' {
			return s.bad("-ERR TOP takes a message number and a number of lines.")
		}
		top = n
	}
	m := s.msgs[i]
	f, err := s.spool(m.ID, m.Size, top)
	switch {
	case graph.IsNotFound(err):
		return s.reply(fmt.Sprintf("-ERR Message %d is no longer in the mailbox.", i+1))
	case errors.Is(err, errTooLarge):
		s.o.Log.Warn("pop3 gateway: a message is larger than the gateway serves", "max", maxSpool)
		return s.reply(fmt.Sprintf("-ERR Message %d is larger than %d MB, more than this gateway serves.", i+1, maxSpool>>20))
	case err != nil:
		s.o.Log.Warn("pop3 gateway: reading a message failed", "err", err)
		return s.reply(fmt.Sprintf("-ERR [SYS/TEMP] Message %d could not be read: %s; try again later.", i+1, graphTrouble(s.ctx, err)))
	}
	defer f.Close()
	if top < 0 {
		s.w.WriteString(fmt.Sprintf("+OK %d octets\r\n", m.Size))
	} else {
		s.w.WriteString("+OK\r\n")
	}
	dw := &dotWriter{w: s.w, bol: true}
	if _, err := io.CopyBuffer(dw, f, s.buffer()); err != nil {
		// The program must not take a part for the whole: no terminating dot, the session ends.
		s.o.Log.Warn("pop3 gateway: a message's transfer failed; closing the connection", "err", err)
		return fmt.Errorf("pop3gw: sending message %d: %w", i+1, err)
	}
	if err := dw.end(); err != nil {
		return err
	}
	return s.flush()
}

// spool copies a message's MIME from Graph (for TOP, only the header and top lines of the body)
// into a temporary file (0600, unlinked at once where the system allows) and returns it, read from
// its start. Close it.
func (s *session) spool(id string, size int64, top int) (*spoolFile, error) {
	ctx, cancel := context.WithTimeout(s.ctx, transferWait(size))
	defer cancel()
	rc, err := s.box.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp("", "mailoauth-pop3-*")
	if err != nil {
		return nil, err
	}
	f := &spoolFile{File: tmp, unlinked: os.Remove(tmp.Name()) == nil}
	var dst io.Writer = f
	if top >= 0 {
		dst = &topWriter{w: f, left: top}
	}
	lr := &io.LimitedReader{R: rc, N: maxSpool + 1}
	_, err = io.CopyBuffer(dst, lr, s.buffer())
	switch {
	case errors.Is(err, errTopDone):
		err = nil
	case err == nil && lr.N <= 0:
		err = errTooLarge
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// spoolFile is a message copied from Graph for RETR or TOP.
type spoolFile struct {
	*os.File
	unlinked bool // removed from its directory while open (not on Windows)
}

// Close closes the file and removes it if that could not be done while it was open.
func (f *spoolFile) Close() error {
	err := f.File.Close()
	if !f.unlinked {
		_ = os.Remove(f.Name())
	}
	return err
}

// buffer is the session's copy buffer.
func (s *session) buffer() []byte {
	if s.buf == nil {
		s.buf = make([]byte, 32<<10)
	}
	return s.buf
}

// dotWriter writes a multi-line response's body (RFC 1939 section 3): a line that begins with "."
// gets another, and a bare LF becomes CRLF.
type dotWriter struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
	cr  bool // the last octet written was CR
}

func (d *dotWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if d.bol && p[0] == '.' {
			d.w.WriteByte('.')
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.w.Write(p)
			d.cr, d.bol = p[len(p)-1] == '\r', false
			break
		}
		d.w.Write(p[:i])
		if !(i > 0 && p[i-1] == '\r' || i == 0 && d.cr) {
			d.w.WriteByte('\r')
		}
		if err := d.w.WriteByte('\n'); err != nil {
			return 0, err
		}
		d.cr, d.bol = false, true
		p = p[i+1:]
	}
	if _, err := d.w.Write(nil); err != nil { // bufio.Writer keeps its first error
		return 0, err
	}
	return n, nil
}

// end ends the last line if the message did not, and writes the terminating ".".
func (d *dotWriter) end() error {
	switch {
	case d.cr:
		d.w.WriteString("\n")
	case !d.bol:
		d.w.WriteString("\r\n")
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}

// errTopDone stops the copy once TOP has what it asked for.
var errTopDone = errors.New("pop3gw: TOP has its lines")

// topWriter passes on a message's header section, the empty line after it and then left lines of
// the body, and fails with errTopDone after them.
type topWriter struct {
	w       io.Writer
	body    bool // the header section has ended
	content bool // the current line has octets other than CR
	left    int
}

func (t *topWriter) Write(p []byte) (int, error) {
	if t.body && t.left == 0 {
		return 0, errTopDone
	}
	n := 0
	for n < len(p) {
		i := bytes.IndexByte(p[n:], '\n')
		if i < 0 {
			t.content = t.content || len(bytes.TrimRight(p[n:], "\r")) > 0
			break
		}
		line := p[n : n+i]
		empty := !t.content && len(bytes.TrimRight(line, "\r")) == 0
		n += i + 1
		t.content = false
		if t.body {
			t.left--
		} else if empty {
			t.body = true
		}
		if t.body && t.left == 0 {
			if _, err := t.w.Write(p[:n]); err != nil {
				return 0, err
			}
			return n, errTopDone
		}
	}
	return t.w.Write(p)
}

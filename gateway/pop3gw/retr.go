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

// transferWait bounds a message's transfer, Graph's throttling pauses included: graphWait, and
// the time the message takes at 32 KB/s (a program that reads slower is not served).
func transferWait(size int64) time.Duration {
	return graphWait + time.Duration(max(size, 0)/(32<<10))*time.Second
}

// retr answers RETR n and TOP n lines, streaming the message from Graph.
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
	ctx, cancel := context.WithTimeout(s.ctx, transferWait(m.Size))
	defer cancel()
	rc, err := s.box.Open(ctx, m.ID)
	if err != nil {
		if graph.IsNotFound(err) {
			return s.reply(fmt.Sprintf("-ERR Message %d is no longer in the mailbox.", i+1))
		}
		s.o.Log.Warn("pop3 gateway: reading a message failed", "err", err)
		return s.reply(fmt.Sprintf("-ERR [SYS/TEMP] Message %d could not be read: %s; try again later.", i+1, graphTrouble(s.ctx, err)))
	}
	defer rc.Close()
	if top < 0 {
		s.w.WriteString(fmt.Sprintf("+OK %d octets\r\n", m.Size))
	} else {
		s.w.WriteString("+OK\r\n")
	}
	if s.buf == nil {
		s.buf = make([]byte, 32<<10)
	}
	dw := &dotWriter{w: s.w, bol: true}
	var dst io.Writer = dw
	if top >= 0 {
		dst = &topWriter{w: dw, left: top}
	}
	if _, err := io.CopyBuffer(dst, rc, s.buf); err != nil && !errors.Is(err, errTopDone) {
		// The program must not take a part for the whole: no terminating dot, the session ends.
		s.o.Log.Warn("pop3 gateway: a message's transfer failed; closing the connection", "err", err)
		return fmt.Errorf("pop3gw: sending message %d: %w", i+1, err)
	}
	if err := dw.end(); err != nil {
		return err
	}
	return s.flush()
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

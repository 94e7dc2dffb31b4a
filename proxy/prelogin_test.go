package proxy_test

// What a program may send before login is bounded (issue 13, items 1 and 9): a command line, a whole
// command (literals and continuation lines included), the number of literals and arguments in one
// command, and everything a session sends before it logs in. A program that goes over a bound gets
// one error line in its protocol and the connection is closed; the proxy's memory does not grow with
// what the program tries to send.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// flood is one way of sending without end before login: head once, then body over and over until the
// proxy hangs up or floodCap bytes are sent. want starts the one error line the program must get, and
// logged is the bound the proxy's log names.
type flood struct {
	name, head, body string
	want, logged     string
}

// The flood tests: floodConns connections per flood, four floods a protocol, each connection trying
// to send floodCap bytes (192 MiB in all), far beyond what the kernel's socket buffers absorb. Each
// session may read 64 KiB in 1,024 lines before login and discard 64 KiB more after its error line,
// so what the proxy holds and allocates is bounded whatever the programs send: its heap in use must
// not grow by maxHeapGrowth, and it may allocate at most maxAllocated meanwhile (measured: 2–3.5 MiB,
// the same under -race; before the bounds, 1.8–2.5 GiB). floodDeadline bounds a flood the proxy
// neither reads nor closes: a failure, with room for a busy machine.
const (
	floodConns    = 3
	floodCap      = 16 << 20
	maxHeapGrowth = 2 << 20
	maxAllocated  = 8 << 20
	floodDeadline = 60 * time.Second
)

// floodEnd is how one flooding connection ended.
type floodEnd struct {
	flood
	sent      int64    // bytes the program managed to send
	errLines  []string // lines starting with the flood's want
	last      string   // the last line the proxy sent
	lines     int      // how many lines it sent
	readErr   error    // how reading ended: EOF, or a reset once closed
	closedEOF bool
}

// testFloods runs floods against protocol's plain listener and checks how each connection ended,
// what the proxy logged and how much its heap grew.
func testFloods(t *testing.T, protocol string, floods []flood) {
	l := newLab(t, labOptions{})
	ends, inuse, allocated := runFloods(t, l, protocol, floods)
	checkFloods(t, ends, inuse, allocated)
	for _, f := range floods {
		l.waitLog("session closed: "+f.logged+" before login", "protocol="+protocol)
	}
}

// runFloods runs floodConns connections per flood at once, and returns how each ended and how much
// the proxy's heap grew: heap in use (after a GC, once every program has sent what it could, before
// any program closes its connection) and bytes allocated meanwhile.
func runFloods(t *testing.T, l *lab, protocol string, floods []flood) (ends []floodEnd, inuse, allocated int64) {
	t.Helper()
	heap := func() runtime.MemStats {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms
	}
	type running struct {
		c    net.Conn
		f    flood
		sent int64
		read chan floodEnd
	}
	var all []*running
	for _, f := range floods {
		for range floodConns {
			c := l.dial(t, protocol, config.LocalTLSNone)
			// The greeting was read through the client's bufio.Reader, which holds nothing more.
			all = append(all, &running{c: c.c, f: f, read: make(chan floodEnd, 1)})
		}
	}
	before := heap()
	var sending sync.WaitGroup
	for _, r := range all {
		sending.Add(1)
		go func() {
			defer sending.Done()
			r.sent = send(r.c, r.f)
		}()
		go func() { r.read <- readAll(r.c, r.f) }()
	}
	sending.Wait()
	after := heap()
	// A proxy that is still reading (it should not be) now sees the end of the command stream.
	for _, r := range all {
		_ = r.c.(*net.TCPConn).CloseWrite()
	}
	for _, r := range all {
		e := <-r.read
		e.sent = r.sent
		ends = append(ends, e)
	}
	return ends, int64(after.HeapInuse) - int64(before.HeapInuse), int64(after.TotalAlloc - before.TotalAlloc)
}

// send writes f's head, then its body over and over, until a write fails or floodCap is reached.
func send(c net.Conn, f flood) int64 {
	// One buffer of many bodies, so that the program allocates nothing per write.
	chunk := []byte(strings.Repeat(f.body, max(1, (64<<10)/len(f.body))))
	_ = c.SetWriteDeadline(time.Now().Add(floodDeadline))
	n, err := io.WriteString(c, f.head)
	sent := int64(n)
	for err == nil && sent < floodCap {
		n, err = c.Write(chunk)
		sent += int64(n)
	}
	return sent
}

// readAll reads what the proxy answers until it closes the connection, allocating only for the
// lines it keeps (the test measures the heap of the process it shares with the proxy).
func readAll(c net.Conn, f flood) floodEnd {
	e := floodEnd{flood: f}
	_ = c.SetReadDeadline(time.Now().Add(floodDeadline))
	r := bufio.NewReader(c)
	last := make([]byte, 0, 512)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a line longer than the reader's buffer: only its end is kept
		}
		if err != nil {
			e.readErr, e.closedEOF, e.last = err, errors.Is(err, io.EOF), string(last)
			return e
		}
		line = bytes.TrimRight(line, "\r\n")
		e.lines++
		last = append(last[:0], line...)
		if bytes.HasPrefix(line, []byte(f.want)) && len(e.errLines) < 5 {
			e.errLines = append(e.errLines, string(line))
		}
	}
}

// checkFloods asserts that every flooding connection got exactly one error line, as the last thing
// the proxy said, was closed, and could not send all it wanted; and that the proxy's heap stayed
// within bounds.
func checkFloods(t *testing.T, ends []floodEnd, inuse, allocated int64) {
	t.Helper()
	var sent int64
	for _, e := range ends {
		sent += e.sent
		switch {
		case len(e.errLines) != 1 || e.last != e.errLines[0]:
			t.Errorf("%s: want exactly one error line %q… as the last line; got %d such lines %q, last of %d lines %q (reading ended with %v)", e.name, e.want, len(e.errLines), e.errLines, e.lines, e.last, e.readErr)
		case !e.closedEOF && !errors.Is(e.readErr, syscall.ECONNRESET):
			t.Errorf("%s: after the error line the connection was not closed: %v", e.name, e.readErr)
		case e.sent >= floodCap:
			t.Errorf("%s: the proxy took all %d MiB the program sent before login", e.name, e.sent>>20)
		}
	}
	t.Logf("%d connections tried to send %d MiB before login and sent %d KiB; the heap in use grew by %d KiB, %d KiB allocated meanwhile",
		len(ends), int64(len(ends))*floodCap>>20, sent>>10, inuse>>10, allocated>>10)
	if inuse > maxHeapGrowth {
		t.Errorf("the proxy's heap in use grew by %d KiB (bound %d KiB) while programs flooded it before login", inuse>>10, maxHeapGrowth>>10)
	}
	if allocated > maxAllocated {
		t.Errorf("the proxy allocated %d KiB (bound %d KiB) while programs flooded it before login", allocated>>10, maxAllocated>>10)
	}
}

// TestPreLoginFloodIMAP: IMAP programs that chain literals in one command (the 8 KiB bound on each
// literal alone held nothing back: every literal was kept), that send one endless line, and that
// send small or long commands without end.
func TestPreLoginFloodIMAP(t *testing.T) {
	testFloods(t, "imap", []flood{
		{name: "chained literals", head: "a LOGIN {8000+}\r\n", body: strings.Repeat("x", 8000) + " {8000+}\r\n", want: "* BAD", logged: "command too long"},
		{name: "endless line", head: "a LOGIN ", body: strings.Repeat("x", 1024), want: "* BAD", logged: "command line too long"},
		{name: "endless commands", body: "a NOOP\r\n", want: "* BAD", logged: "too many lines sent"},
		{name: "endless long commands", body: "a NOOP " + strings.Repeat("x", 500) + "\r\n", want: "* BAD", logged: "too much sent"},
	})
}

// TestPreLoginFloodPOP3: POP3 programs that send an endless USER line, an endless SASL response
// after AUTH PLAIN, or small or long commands without end.
func TestPreLoginFloodPOP3(t *testing.T) {
	testFloods(t, "pop", []flood{
		{name: "endless line", head: "USER ", body: strings.Repeat("x", 1024), want: "-ERR", logged: "command line too long"},
		{name: "endless SASL response", head: "AUTH PLAIN\r\n", body: strings.Repeat("QUFB", 256), want: "-ERR", logged: "command line too long"},
		{name: "endless commands", body: "NOOP\r\nCAPA\r\n", want: "-ERR", logged: "too many lines sent"},
		{name: "endless long commands", body: "NOOP " + strings.Repeat("x", 500) + "\r\n", want: "-ERR", logged: "too much sent"},
	})
}

// TestPreLoginFloodSMTP: SMTP programs that send an endless EHLO line, an AUTH LOGIN whose user name
// and password lines are together too long, or small or long commands without end.
func TestPreLoginFloodSMTP(t *testing.T) {
	testFloods(t, "smtp", []flood{
		{name: "endless line", head: "EHLO ", body: strings.Repeat("x", 1024), want: "500 5.5.6", logged: "command line too long"},
		// A user name line just under the line bound: the password line breaks the command's bound.
		{name: "AUTH LOGIN", head: "AUTH LOGIN\r\n" + strings.Repeat("QUFB", 2047) + "\r\n", body: strings.Repeat("QUFB", 256), want: "500 5.5.6", logged: "command too long"},
		{name: "endless commands", body: "NOOP\r\nEHLO x\r\n", want: "421 4.7.0", logged: "too many lines sent"},
		{name: "endless long commands", body: "EHLO " + strings.Repeat("x", 500) + "\r\n", want: "421 4.7.0", logged: "too much sent"},
	})
}

// TestOverLimitCloseIsClean: a program that sent an overlong line in one go and then reads gets the
// error line and then the end of the stream (FIN), not a reset: the proxy discards a bounded amount
// of what is still in flight before it closes, so that no unread data turns the close into a reset
// (on which some systems drop the error line the program has not read yet).
func TestOverLimitCloseIsClean(t *testing.T) {
	l := newLab(t, labOptions{})
	tenLiterals := "a LOGIN {10+}\r\n0123456789" + strings.Repeat(" {10+}\r\n0123456789", 9)
	for _, tc := range []struct{ protocol, mode, line, want string }{
		{"imap", config.LocalTLSNone, "a LOGIN " + strings.Repeat("x", 40<<10), "* BAD Command line too long"},
		{"imap", config.LocalTLSNone, "a LOGIN {20000}", "* BAD Literal too large"},
		{"imap", config.LocalTLSNone, tenLiterals, "* BAD Too many literals"},
		{"imap", config.LocalTLSImplicit, "a LOGIN " + strings.Repeat("x", 40<<10), "* BAD Command line too long"},
		{"pop", config.LocalTLSNone, "USER " + strings.Repeat("x", 40<<10), "-ERR Command line too long"},
		{"smtp", config.LocalTLSNone, "EHLO " + strings.Repeat("x", 40<<10), "500 5.5.6 Command line too long"},
	} {
		c := l.dial(t, tc.protocol, tc.mode)
		c.send(tc.line)
		c.check(c.line(), tc.want)
		_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if rest, err := io.ReadAll(c.r); err != nil || len(rest) > 0 {
			t.Errorf("%s (TLS %s) %.30q…: after the error line got %q, %v; want the end of the stream", tc.protocol, tc.mode, tc.line, rest, err)
		}
	}
}

// TestIMAPTagControlBytes: a tag with a NUL, another control byte or a byte outside ASCII is refused
// and never echoed; the session goes on.
func TestIMAPTagControlBytes(t *testing.T) {
	l := newLab(t, labOptions{})
	c := l.dial(t, "imap", config.LocalTLSNone)
	for _, tag := range []string{"a\x00b", "\x01", "a\x1bb", "a\x7fb", "a\rb", "t\xc3\xa9"} {
		c.send(tag + " NOOP")
		got := c.line()
		c.check(got, "* BAD Command line missing a valid tag")
		if strings.Contains(got, tag) {
			t.Errorf("tag %q echoed: %q", tag, got)
		}
	}
	c.check(c.cmd("ok] NOOP", "ok] "), "ok] OK")
}

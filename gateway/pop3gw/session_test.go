package pop3gw

// The protocol over real TCP on loopback, against a stand-in Inbox (fakeBox) whose failures a test
// chooses; pop3gw_test.go runs the same sessions against the emulator's Graph.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/graph"
)

// fakeBox is an Inbox in memory.
type fakeBox struct {
	mu      sync.Mutex
	ids     []string
	mime    map[string]string
	deleted []string // what Delete removed, in order
	calls   int      // Delete calls

	syncErr, deleteErr error
	gate               chan struct{}                                               // if set, Sync waits until it is closed
	open               func(ctx context.Context, id string) (io.ReadCloser, error) // nil: from mime
}

func newFakeBox(msgs ...string) *fakeBox {
	b := &fakeBox{mime: map[string]string{}}
	for i, m := range msgs {
		id := fmt.Sprintf("AAMkImmutable%03d=", i+1)
		b.ids = append(b.ids, id)
		b.mime[id] = m
	}
	return b
}

func (b *fakeBox) Sync(ctx context.Context, maxAge time.Duration) (*gateway.View, error) {
	if b.gate != nil {
		<-b.gate
	}
	if b.syncErr != nil {
		return nil, b.syncErr
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v := &gateway.View{UIDValidity: 1}
	for i, id := range b.ids {
		v.Messages = append(v.Messages, gateway.Message{UID: uint32(i + 1), ID: id, Size: int64(len(b.mime[id]))})
	}
	return v, nil
}

func (b *fakeBox) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open != nil {
		return b.open(ctx, id)
	}
	m, ok := b.mime[id]
	if !ok {
		return nil, &graph.Error{Status: 404, Code: "ErrorItemNotFound"}
	}
	return io.NopCloser(strings.NewReader(m)), nil
}

func (b *fakeBox) Delete(ctx context.Context, ids []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.deleteErr != nil {
		return b.deleteErr
	}
	for _, id := range ids {
		b.ids = slices.DeleteFunc(b.ids, func(s string) bool { return s == id })
		b.deleted = append(b.deleted, id)
	}
	return nil
}

func (b *fakeBox) deleteCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// client is a program's side of a session.
type client struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
	done chan error // Serve's result
}

// testTimeout bounds every wait of a test; generous for a busy machine.
const testTimeout = 2 * time.Minute

// dial serves a session on a loopback TCP connection with serve and returns the program's side,
// the login reply read.
func dial(t testing.TB, ctx context.Context, box maildrop, o Options) (*client, string) {
	t.Helper()
	return dialEarly(t, ctx, box, o, "")
}

// dialEarly is dial that sends early before the login reply; with a fakeBox's gate, before Serve
// reads the Inbox.
func dialEarly(t testing.TB, ctx context.Context, box maildrop, o Options, early string) (*client, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		done <- serve(ctx, conn, bufio.NewReader(conn), box, o)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(testTimeout))
	c := &client{t: t, conn: conn, tp: textproto.NewConn(conn), done: done}
	if early != "" {
		if _, err := io.WriteString(conn, early); err != nil {
			t.Fatal(err)
		}
	}
	if b, ok := box.(*fakeBox); ok && b.gate != nil {
		close(b.gate)
	}
	return c, c.line()
}

// line reads one reply line.
func (c *client) line() string {
	c.t.Helper()
	l, err := c.tp.ReadLine()
	if err != nil {
		c.t.Fatalf("reading a reply: %v", err)
	}
	return l
}

// cmd sends a command and returns its first reply line.
func (c *client) cmd(line string) string {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("sending %q: %v", line, err)
	}
	return c.line()
}

// multi sends a command that answers with a multi-line reply and returns its status line and the
// body, dot-stuffing undone.
func (c *client) multi(line string) (string, string) {
	c.t.Helper()
	status := c.cmd(line)
	if !strings.HasPrefix(status, "+OK") {
		return status, ""
	}
	body, err := c.tp.ReadDotBytes()
	if err != nil {
		c.t.Fatalf("reading the body of %q: %v", line, err)
	}
	return status, string(body)
}

// wait returns Serve's result.
func (c *client) wait() error {
	c.t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(testTimeout):
		c.t.Fatal("Serve did not return")
		return nil
	}
}

func want(t testing.TB, what, got, wantPrefix string) {
	t.Helper()
	if !strings.HasPrefix(got, wantPrefix) {
		t.Errorf("%s: got %q, want %q…", what, got, wantPrefix)
	}
}

const (
	msg1 = "Subject: one\r\nFrom: a@contoso.test\r\n\r\nline 1\r\n.starts with a dot\r\n..two dots\r\nline 4\r\n"
	msg2 = "Subject: two\r\n\r\nbody\r\n"
	// msg3 has bare LFs and no line end at its end.
	msg3 = "Subject: three\n\n.\nlast"
)

func TestCommands(t *testing.T) {
	box := newFakeBox(msg1, msg2, msg3)
	c, hello := dial(t, t.Context(), box, Options{})
	want(t, "login", hello, "+OK Logged in; the Inbox has 3 messages (")
	total := len(msg1) + len(msg2) + len(msg3)
	if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 3 %d", total) {
		t.Errorf("STAT: %q", got)
	}
	status, list := c.multi("LIST")
	want(t, "LIST", status, "+OK 3 messages")
	if wantList := fmt.Sprintf("1 %d\n2 %d\n3 %d\n", len(msg1), len(msg2), len(msg3)); list != wantList {
		t.Errorf("LIST: %q, want %q", list, wantList)
	}
	if got := c.cmd("list 2"); got != fmt.Sprintf("+OK 2 %d", len(msg2)) {
		t.Errorf("LIST 2: %q", got)
	}
	_, uids := c.multi("UIDL")
	lines := strings.Split(strings.TrimSuffix(uids, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("UIDL: %q", uids)
	}
	for i, l := range lines {
		n, u, _ := strings.Cut(l, " ")
		if n != fmt.Sprint(i+1) || u != uidl(box.ids[i]) {
			t.Errorf("UIDL line %q, want %d %s", l, i+1, uidl(box.ids[i]))
		}
	}
	if got := c.cmd("UIDL 3"); got != "+OK 3 "+uidl(box.ids[2]) {
		t.Errorf("UIDL 3: %q", got)
	}

	status, body := c.multi("RETR 1")
	if status != fmt.Sprintf("+OK %d octets", len(msg1)) {
		t.Errorf("RETR 1: %q", status)
	}
	if body != strings.ReplaceAll(msg1, "\r\n", "\n") {
		t.Errorf("RETR 1 gave %q, want %q", body, msg1)
	}
	for cmd, wantBody := range map[string]string{
		"RETR 3":    "Subject: three\n\n.\nlast\n",
		"TOP 1 0":   "Subject: one\nFrom: a@contoso.test\n\n",
		"TOP 1 2":   "Subject: one\nFrom: a@contoso.test\n\nline 1\n.starts with a dot\n",
		"TOP 2 100": "Subject: two\n\nbody\n",
	} {
		if _, body := c.multi(cmd); body != wantBody {
			t.Errorf("%s gave %q, want %q", cmd, body, wantBody)
		}
	}

	want(t, "DELE 2", c.cmd("DELE 2"), "+OK")
	if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 2 %d", len(msg1)+len(msg3)) {
		t.Errorf("STAT after DELE: %q", got)
	}
	for _, cmd := range []string{"RETR 2", "LIST 2", "UIDL 2", "TOP 2 1", "DELE 2"} {
		want(t, cmd+" of a deleted message", c.cmd(cmd), "-ERR Message 2 is deleted.")
	}
	_, list = c.multi("LIST")
	if list != fmt.Sprintf("1 %d\n3 %d\n", len(msg1), len(msg3)) {
		t.Errorf("LIST after DELE: %q", list)
	}
	want(t, "RSET", c.cmd("RSET"), "+OK The Inbox has 3 messages")
	want(t, "RETR 2 after RSET", c.cmd("RETR 2"), "+OK")
	if b, err := c.tp.ReadDotBytes(); err != nil || string(b) != "Subject: two\n\nbody\n" {
		t.Errorf("RETR 2 after RSET: %q, %v", b, err)
	}

	if got := c.cmd("NOOP"); got != "+OK" {
		t.Errorf("NOOP: %q", got)
	}
	status, capa := c.multi("CAPA")
	want(t, "CAPA", status, "+OK")
	if capa != "TOP\nUIDL\nRESP-CODES\nPIPELINING\nUSER\n" {
		t.Errorf("CAPA: %q", capa)
	}
	for cmd, reply := range map[string]string{
		"RETR 4":      "-ERR There is no message 4.",
		"RETR 0":      "-ERR There is no message 0.",
		"RETR x":      "-ERR A message number is expected.",
		"RETR +1":     "-ERR A message number is expected.",
		"RETR":        "-ERR RETR takes 1 argument(s).",
		"TOP 1":       "-ERR TOP takes 2 argument(s).",
		"TOP 1 -1":    "-ERR TOP takes a message number and a number of lines.",
		"STAT 1":      "-ERR STAT takes 0 argument(s).",
		"LIST 1 2":    "-ERR LIST takes a message number or none.",
		"USER alice":  "-ERR Already logged in.",
		"PASS secret": "-ERR Already logged in.",
		"XYZZY":       "-ERR Unknown command;",
		"":            "-ERR Unknown command;",
	} {
		want(t, fmt.Sprintf("%q", cmd), c.cmd(cmd), reply)
	}
	if box.deleteCalls() != 0 {
		t.Fatal("Delete was called before QUIT")
	}
	want(t, "DELE 1", c.cmd("DELE 1"), "+OK")
	want(t, "DELE 3", c.cmd("dele 3"), "+OK")
	if got := c.cmd("QUIT"); got != "+OK Signing off; 2 messages deleted." {
		t.Errorf("QUIT: %q", got)
	}
	if err := c.wait(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if len(box.ids) != 1 || box.mime[box.ids[0]] != msg2 {
		t.Errorf("after QUIT the Inbox holds %q, want message 2 only", box.ids)
	}
}

// A pipelining program sends every command at once and gets every answer, in order.
func TestPipelining(t *testing.T) {
	box := newFakeBox(msg1, msg2)
	c, _ := dial(t, t.Context(), box, Options{})
	if _, err := io.WriteString(c.conn, "STAT\r\nRETR 1\r\nDELE 1\r\nLIST\r\nNOOP\r\nQUIT\r\nNOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	want(t, "STAT", c.line(), "+OK 2 ")
	want(t, "RETR", c.line(), "+OK")
	if b, err := c.tp.ReadDotBytes(); err != nil || string(b) != strings.ReplaceAll(msg1, "\r\n", "\n") {
		t.Errorf("RETR: %q, %v", b, err)
	}
	want(t, "DELE", c.line(), "+OK")
	want(t, "LIST", c.line(), "+OK 1 messages")
	if b, err := c.tp.ReadDotBytes(); err != nil || string(b) != fmt.Sprintf("2 %d\n", len(msg2)) {
		t.Errorf("LIST: %q, %v", b, err)
	}
	want(t, "NOOP", c.line(), "+OK")
	want(t, "QUIT", c.line(), "+OK Signing off; 1 messages deleted.")
	if err := c.wait(); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestLoginUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  *graph.Error
		text string
	}{
		{&graph.Error{Status: 429, RetryAfter: 90 * time.Second}, "Microsoft Graph is throttling this mailbox for 1m30s; try again later."},
		{&graph.Error{Status: 429}, "Microsoft Graph is throttling this mailbox; try again later."},
		{&graph.Error{Status: 403, Code: "ErrorAccessDenied"}, "Microsoft Graph refused access to this mailbox (the proxy log says why); try again later."},
		{&graph.Error{Status: 503}, "Microsoft Graph failed; try again later."},
	} {
		box := newFakeBox(msg1)
		box.syncErr = fmt.Errorf("listing: %w", c.err)
		cl, hello := dial(t, t.Context(), box, Options{})
		if want := "-ERR [SYS/TEMP] The Inbox could not be read: " + c.text; hello != want {
			t.Errorf("Graph's %v: %q, want %q", c.err, hello, want)
		}
		if err := cl.wait(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Graph's %v: Serve returned %v, want ErrUnavailable", c.err, err)
		}
	}
}

// Graph fails the deletion at QUIT: the program is told, and the messages stay.
func TestQuitDeleteFails(t *testing.T) {
	box := newFakeBox(msg1, msg2)
	box.deleteErr = &graph.Error{Status: 429, Code: "ApplicationThrottled"}
	c, _ := dial(t, t.Context(), box, Options{})
	want(t, "DELE", c.cmd("DELE 1"), "+OK")
	want(t, "QUIT", c.cmd("QUIT"), "-ERR [SYS/TEMP] The marked messages may not all have been deleted: Microsoft Graph is throttling this mailbox")
	if err := c.wait(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if len(box.ids) != 2 {
		t.Errorf("the Inbox holds %d messages, want 2", len(box.ids))
	}
}

// A session that ends without QUIT deletes nothing: hang-up, idle timeout, ctx's end.
func TestNoQuitDeletesNothing(t *testing.T) {
	t.Run("hangup", func(t *testing.T) {
		box := newFakeBox(msg1, msg2)
		c, _ := dial(t, t.Context(), box, Options{})
		want(t, "DELE", c.cmd("DELE 1"), "+OK")
		c.conn.Close()
		if err := c.wait(); err != nil {
			t.Errorf("Serve after a hang-up: %v", err)
		}
		if box.deleteCalls() != 0 {
			t.Error("a hang-up deleted")
		}
	})
	t.Run("idle", func(t *testing.T) {
		box := newFakeBox(msg1, msg2)
		box.gate = make(chan struct{})
		// DELE is there before the idle timer starts, however slow the machine.
		c, _ := dialEarly(t, t.Context(), box, Options{IdleTimeout: 50 * time.Millisecond}, "DELE 1\r\n")
		want(t, "DELE", c.line(), "+OK")
		var ne net.Error
		if err := c.wait(); !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("Serve after idling: %v, want a timeout", err)
		}
		if box.deleteCalls() != 0 {
			t.Error("an idle timeout deleted")
		}
	})
	t.Run("ctx", func(t *testing.T) {
		box := newFakeBox(msg1, msg2)
		ctx, cancel := context.WithCancel(t.Context())
		c, _ := dial(t, ctx, box, Options{})
		want(t, "DELE", c.cmd("DELE 1"), "+OK")
		cancel()
		if err := c.wait(); !errors.Is(err, context.Canceled) {
			t.Errorf("Serve after ctx's end: %v, want context.Canceled", err)
		}
		if box.deleteCalls() != 0 {
			t.Error("ctx's end deleted")
		}
	})
}

func TestBadCommands(t *testing.T) {
	box := newFakeBox(msg1)
	c, _ := dial(t, t.Context(), box, Options{})
	want(t, "long line", c.cmd(strings.Repeat("X", 10_000)), "-ERR The command line is too long.")
	want(t, "after a long line", c.cmd("STAT"), "+OK 1 ")
	for i := 2; i <= maxBad; i++ {
		want(t, "bad command", c.cmd("BAD"), "-ERR Unknown command")
	}
	want(t, "one too many", c.cmd("BAD"), "-ERR Too many bad commands; closing the connection.")
	if err := c.wait(); !errors.Is(err, errTooBad) {
		t.Errorf("Serve: %v", err)
	}
	if _, err := c.tp.ReadLine(); err == nil {
		t.Error("the connection is still open")
	}
}

// A line without end is not read for ever.
func TestFlood(t *testing.T) {
	c, _ := dial(t, t.Context(), newFakeBox(msg1), Options{})
	go func() {
		chunk := []byte(strings.Repeat("X", 4096))
		for {
			if _, err := c.conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	if err := c.wait(); !errors.Is(err, errFlood) {
		t.Errorf("Serve: %v, want errFlood", err)
	}
}

func TestRetrOpenFails(t *testing.T) {
	box := newFakeBox(msg1, msg2)
	box.mime = map[string]string{box.ids[1]: msg2} // message 1 is gone from Graph since login
	c, _ := dial(t, t.Context(), box, Options{})
	want(t, "RETR of a message gone", c.cmd("RETR 1"), "-ERR Message 1 is no longer in the mailbox.")
	box.mu.Lock()
	var deadline time.Time
	box.open = func(ctx context.Context, _ string) (io.ReadCloser, error) {
		deadline, _ = ctx.Deadline()
		return nil, &graph.Error{Status: 503, Code: "ServiceUnavailable"}
	}
	box.mu.Unlock()
	want(t, "RETR when Graph fails", c.cmd("RETR 2"), "-ERR [SYS/TEMP] Message 2 could not be read: Microsoft Graph failed; try again later.")
	want(t, "NOOP after", c.cmd("NOOP"), "+OK")
	// Graph's client waits out throttling within the deadline it is given: the program is not left
	// waiting longer than it waits for a server.
	box.mu.Lock()
	defer box.mu.Unlock()
	if left := time.Until(deadline); left <= 0 || left > graphWait {
		t.Errorf("Open's deadline is %v away, want within %v", left, graphWait)
	}
}

// failingReader gives n octets of a message and then fails.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("connection reset by Graph")
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'a'
		if i%70 == 69 {
			p[i] = '\n'
		}
	}
	f.n -= k
	return k, nil
}

// A copy from Graph that fails half-way is answered -ERR [SYS/TEMP] before any of the message is
// sent (the message is copied from Graph before it is sent), and the session goes on.
func TestRetrTransferFails(t *testing.T) {
	box := newFakeBox(msg1)
	box.open = func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(&failingReader{n: 100_000}), nil
	}
	c, _ := dial(t, t.Context(), box, Options{})
	want(t, "RETR", c.cmd("RETR 1"), "-ERR [SYS/TEMP] Message 1 could not be read: the request to Microsoft Graph failed (the proxy log says why); try again later.")
	want(t, "NOOP after", c.cmd("NOOP"), "+OK")
}

// A Graph that sends more than any message can be (a broken or hostile upstream) is cut off at
// maxSpool: the program is told, and nothing is sent or kept.
func TestRetrEndless(t *testing.T) {
	box := newFakeBox(msg1)
	box.open = func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(&failingReader{n: maxSpool + 1<<20}), nil
	}
	c, _ := dial(t, t.Context(), box, Options{})
	want(t, "RETR", c.cmd("RETR 1"), "-ERR Message 1 is larger than 256 MB, more than this gateway serves.")
	want(t, "NOOP after", c.cmd("NOOP"), "+OK")
}

// RETR's copies of messages are left nowhere, whether the transfer succeeds or Graph fails.
func TestRetrLeavesNoFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	box := newFakeBox(msg1, msg2)
	c, _ := dial(t, t.Context(), box, Options{})
	want(t, "RETR", c.cmd("RETR 1"), "+OK")
	if _, err := c.tp.ReadDotBytes(); err != nil {
		t.Fatal(err)
	}
	box.mu.Lock()
	box.open = func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(&failingReader{n: 100_000}), nil
	}
	box.mu.Unlock()
	want(t, "RETR failing", c.cmd("RETR 2"), "-ERR [SYS/TEMP]")
	want(t, "QUIT", c.cmd("QUIT"), "+OK")
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left in TMPDIR: %v", left)
	}
}

// deadlineConn remembers the deadlines set on it.
type deadlineConn struct {
	net.Conn
	mu          sync.Mutex
	read, write time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.read, c.write = t, t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.read = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.write = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// Serve hands the connection back without its deadlines: after ErrUnavailable the proxy goes on
// reading the program's next login with its own.
func TestDeadlinesHandedBack(t *testing.T) {
	for _, box := range []*fakeBox{
		{syncErr: &graph.Error{Status: 503}},
		newFakeBox(msg1),
	} {
		server, client := net.Pipe()
		defer client.Close()
		dc := &deadlineConn{Conn: server}
		done := make(chan error, 1)
		go func() { done <- serve(t.Context(), dc, bufio.NewReader(dc), box, Options{IdleTimeout: time.Hour}) }()
		tp := textproto.NewConn(client)
		if l, err := tp.ReadLine(); err != nil || box.syncErr == nil && !strings.HasPrefix(l, "+OK") {
			t.Fatalf("login: %q, %v", l, err)
		}
		if box.syncErr == nil {
			if err := tp.PrintfLine("QUIT"); err != nil {
				t.Fatal(err)
			}
			tp.ReadLine()
		}
		<-done
		dc.mu.Lock()
		if !dc.read.IsZero() || !dc.write.IsZero() {
			t.Errorf("after Serve (Graph's error %v) the deadlines are %v, %v", box.syncErr, dc.read, dc.write)
		}
		dc.mu.Unlock()
	}
}

package pop3gw

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestDotWriter(t *testing.T) {
	for _, c := range []struct {
		in     []string // written in these pieces
		out    string
		topArg int // -1: RETR
	}{
		{[]string{"a\r\nb\r\n"}, "a\r\nb\r\n.\r\n", -1},
		{[]string{".a\r\n..\r\n.\r\n"}, "..a\r\n...\r\n..\r\n.\r\n", -1},
		{[]string{"a\nb"}, "a\r\nb\r\n.\r\n", -1},
		{[]string{"a\r", "\n.", "b\r"}, "a\r\n..b\r\n.\r\n", -1},
		{[]string{"", "x.\r\n", ".", "\r\n"}, "x.\r\n..\r\n.\r\n", -1},
		{[]string{}, ".\r\n", -1},
		{[]string{"H: 1\r\n\r\nb1\r\nb2\r\n"}, "H: 1\r\n\r\n.\r\n", 0},
		{[]string{"H: 1\r\n\r", "\nb1\r\nb2\r\n"}, "H: 1\r\n\r\nb1\r\n.\r\n", 1},
		{[]string{"H: 1\r\n", "\r\n", ".b1\r\n", "b2"}, "H: 1\r\n\r\n..b1\r\nb2\r\n.\r\n", 5},
		{[]string{"H: 1\n", "H: 2\n", "\n", "b1\n"}, "H: 1\r\nH: 2\r\n\r\n.\r\n", 0},
		{[]string{"H: 1\r\nH", ": 2\r\n"}, "H: 1\r\nH: 2\r\n.\r\n", 0},
	} {
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		dw := &dotWriter{w: bw, bol: true}
		var w io.Writer = dw
		if c.topArg >= 0 {
			w = &topWriter{w: dw, left: c.topArg}
		}
		for _, p := range c.in {
			if _, err := w.Write([]byte(p)); err != nil {
				if err != errTopDone {
					t.Fatal(err)
				}
				break
			}
		}
		dw.end()
		bw.Flush()
		if out.String() != c.out {
			t.Errorf("%q (top %d): %q, want %q", c.in, c.topArg, out.String(), c.out)
		}
	}
}

// bigMessage generates a message of n octets without holding it: 78-octet lines, every tenth
// beginning with a dot.
type bigMessage struct{ n, line int }

func (b *bigMessage) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), b.n)
	for i := range p[:k] {
		switch {
		case b.line%80 == 78:
			p[i] = '\r'
		case b.line%80 == 79:
			p[i] = '\n'
		case b.line%800 == 0:
			p[i] = '.'
		default:
			p[i] = 'm'
		}
		b.line++
	}
	b.n -= k
	return k, nil
}

func (b *bigMessage) Close() error { return nil }

// A 50 MB message goes through RETR with the session allocating a small fraction of it.
func TestRetrBigMessageBoundedMemory(t *testing.T) {
	const size = 50 << 20
	box := newFakeBox("Subject: big\r\n\r\n")
	box.open = func(context.Context, string) (io.ReadCloser, error) { return &bigMessage{n: size}, nil }
	c, _ := dial(t, t.Context(), box, Options{})
	want(t, "NOOP", c.cmd("NOOP"), "+OK")
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	want(t, "RETR", c.cmd("RETR 1"), "+OK")
	// The program's side reads with a fixed buffer until the terminating dot.
	buf := make([]byte, 64<<10)
	var got int64
	var tail []byte
	for !bytes.HasSuffix(tail, []byte("\r\n.\r\n")) {
		n, err := c.tp.R.Read(buf)
		if err != nil {
			t.Fatalf("after %d octets: %v", got, err)
		}
		got += int64(n)
		tail = append(tail[:0], buf[max(0, n-5):n]...)
	}
	runtime.ReadMemStats(&after)
	stuffed := int64(size/800) + 3 // a dot for each line that begins with one, and ".\r\n"
	if got != size+stuffed {
		t.Errorf("received %d octets, want %d", got, size+stuffed)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("RETR of %d MB allocated %d KB", size>>20, alloc>>10)
	if alloc > 4<<20 {
		t.Errorf("RETR of %d MB allocated %d KB, want under 4 MB", size>>20, alloc>>10)
	}
	want(t, "QUIT", c.cmd("QUIT"), "+OK")
}

func TestUIDL(t *testing.T) {
	id := "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AAAAAAAA=" + strings.Repeat("x", 100)
	u := uidl(id)
	if len(u) < 1 || len(u) > 70 {
		t.Fatalf("UIDL %q is %d characters", u, len(u))
	}
	for _, r := range u {
		if r < 0x21 || r > 0x7e {
			t.Fatalf("UIDL %q has %q", u, r)
		}
	}
	if uidl(id) != u || uidl(id+"y") == u {
		t.Error("UIDL is not a function of the id")
	}
}

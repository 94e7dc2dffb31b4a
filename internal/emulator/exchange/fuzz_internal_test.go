package exchange

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzParsePOPCommand(f *testing.F) {
	for _, s := range []string{"CAPA", "USER alice@contoso.test", "PASS a b c", "AUTH XOAUTH2", "AUTH XOAUTH2 dXNlcj0=",
		"RETR 1", "TOP 1 10", "LIST", "uidl 2", "QUIT", "", " ", "AUTH  X", "STAT\x00", "XXXXX", "DELE 1 2 3", "é"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := parsePOPCommand(line)
		if err != nil {
			return
		}
		if len(c.Verb) < 3 || len(c.Verb) > 4 || strings.ToUpper(c.Verb) != c.Verb || len(c.Args) > 2 {
			t.Fatalf("parsed %q as %+v", line, c)
		}
		for _, a := range c.Args {
			if a == "" || len(a) > maxPOPSASLLine {
				t.Fatalf("argument %q of %q", a, line)
			}
		}
		if back := strings.Join(append([]string{c.Verb}, c.Args...), " "); !strings.EqualFold(back, string(line)) {
			t.Fatalf("%q does not round-trip: %q", line, back)
		}
	})
}

type capture struct{ bytes.Buffer }

func (c *capture) SetWriteDeadline(time.Time) error { return nil }

// FuzzIMAPRewriter feeds the rewriter a response with a literal, cut anywhere: it never panics, the
// literal's bytes pass untouched, and the cut does not change the output.
func FuzzIMAPRewriter(f *testing.F) {
	f.Add([]byte("A1 OK LOGOUT completed\r\n* 1 FETCH (BODY[] "), []byte("A1 OK x completed\r\n{3}\r\n"), []byte(")\r\nA2 OK FETCH completed\r\n"), uint8(7))
	f.Add([]byte("* CAPABILITY X\r\n"), []byte(".\r\n"), []byte("A2 BAD Unknown command\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, before, literal, after []byte, cut uint8) {
		if bytes.IndexByte(before, '\n') < 0 {
			before = append(before, "\r\n"...)
		}
		stream := []byte("* PREAUTH [CAPABILITY IMAP4rev1] IMAP server ready\r\n")
		stream = append(stream, before...)
		stream = append(stream, "* 1 FETCH (BODY[] {"+strconv.Itoa(len(literal))+"}\r\n"...)
		stream = append(stream, literal...)
		stream = append(stream, after...)
		run := func(chunks ...[]byte) []byte {
			out := &capture{}
			r := rewriter{w: out, dropFirst: true, isID: func(string) bool { return false }}
			for _, c := range chunks {
				if n, err := r.write(c); err != nil || n != len(c) {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			return out.Bytes()
		}
		whole := run(stream)
		i := int(cut) % (len(stream) + 1)
		if split := run(stream[:i], stream[i:]); !bytes.Equal(whole, split) {
			t.Fatalf("cutting at %d changed the output:\n%q\n%q", i, whole, split)
		}
		if bytes.Contains(whole, []byte("PREAUTH")) {
			t.Fatalf("the greeting went through: %q", whole)
		}
		// Unless "before" itself announced a literal that swallowed ours, ours is intact.
		if _, _, _, lit := literalSuffix(bytes.TrimRight(before, "\r\n")); !lit && !bytes.Contains(before, []byte("{")) {
			if !bytes.Contains(whole, append([]byte("}\r\n"), literal...)) {
				t.Fatalf("literal %q not passed through: %q", literal, whole)
			}
		}
	})
}

func FuzzIMAPCommandWatcher(f *testing.F) {
	f.Add([]byte("A1 ID NIL\r\nA2 APPEND INBOX {5}\r\nA3 ID\r\n\r\nA4 ID (\"a\" \"b\")\r\n"))
	f.Add([]byte("A1 LOGIN {3+}\r\nabc {2}\r\nxy\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var tags []string
		w := commandWatcher{onCommand: func(tag, name string) {
			if name == "ID" {
				tags = append(tags, tag)
			}
		}}
		for len(in) > 0 {
			n := 1 + len(in)/3
			w.observe(in[:n])
			in = in[n:]
		}
		for _, tag := range tags {
			if tag == "" || strings.ContainsAny(tag, " \r\n") {
				t.Fatalf("tag %q", tag)
			}
		}
	})
}

package pop3gw

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	in := "STAT\r\nlist 1\nTOP  1\t 2\r\n" + strings.Repeat("x", 600) + "\r\nNOOP\r\n" + strings.Repeat("y", 100_000)
	r := bufio.NewReaderSize(strings.NewReader(in), 64)
	buf := make([]byte, 0, maxLine)
	var got []string
	for {
		l, err := readLine(r, buf)
		if err != nil {
			got = append(got, "error: "+err.Error())
			if !errors.Is(err, errLineTooLong) {
				break
			}
			continue
		}
		c := parseCommand(l)
		got = append(got, c.name+"|"+strings.Join(c.args, "|"))
	}
	want := []string{"STAT|", "LIST|1", "TOP|1|2", "error: " + errLineTooLong.Error(), "NOOP|", "error: " + errFlood.Error()}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzReadCommand: whatever a program sends, a command line is bounded and reading it costs memory
// in proportion to the number of lines, not to their length.
func FuzzReadCommand(f *testing.F) {
	f.Add([]byte("USER a\r\nRETR 1\r\nTOP 1 10\r\n"))
	f.Add([]byte(strings.Repeat("x", 100_000) + "\r\nQUIT\r\n"))
	f.Add([]byte(strings.Repeat("\n", 1000)))
	f.Add([]byte("LIST " + strings.Repeat("1 ", 300_000)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		buf := make([]byte, 0, maxLine)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		lines := 0
		for {
			l, err := readLine(r, buf)
			if errors.Is(err, errLineTooLong) {
				lines++
				continue
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, errFlood) {
					t.Fatalf("readLine: %v", err)
				}
				break
			}
			lines++
			if len(l) > maxLine {
				t.Fatalf("a line of %d octets", len(l))
			}
			c := parseCommand(l)
			size := len(c.name)
			for _, a := range c.args {
				size += len(a)
			}
			if size > maxLine {
				t.Fatalf("a command of %d octets", size)
			}
		}
		runtime.ReadMemStats(&after)
		// Per line: the string, its fields and the upper-cased keyword; plus the slack of the runtime.
		if alloc, bound := after.TotalAlloc-before.TotalAlloc, uint64(lines*(4*maxLine+64)+64<<10); alloc > bound {
			t.Fatalf("reading %d octets in %d lines allocated %d octets (bound %d)", len(data), lines, alloc, bound)
		}
	})
}

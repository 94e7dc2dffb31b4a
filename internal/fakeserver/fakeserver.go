// Package fakeserver is a scripted line-based server on loopback for client tests: it sends a
// greeting, answers each line with what the test's function returns, and reports every line it
// received, so a test can prove what a client did or did not send (a token over plain text, say).
// It is for tests only and must never be used to serve anything.
package fakeserver

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// Start listens on loopback and serves one connection: greeting first, then reply(line) for each
// line received ("" sends nothing). The returned channel yields every received line, joined by "|",
// when the client hangs up.
func Start(t *testing.T, greeting string, reply func(line string) string) (addr string, seen <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			out <- ""
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.Write([]byte(greeting))
		var lines []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			line = strings.TrimRight(line, "\r\n")
			lines = append(lines, line)
			if resp := reply(line); resp != "" {
				c.Write([]byte(resp))
			}
		}
		out <- strings.Join(lines, "|")
	}()
	return ln.Addr().String(), out
}

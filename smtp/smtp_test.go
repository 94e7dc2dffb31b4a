package smtp

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/dial"
)

// A server that does not offer STARTTLS gets no token: the client stops with an error.
func TestNoSTARTTLSIsAnErrorNotADowngrade(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.Write([]byte("220 plain.example ESMTP\r\n"))
		var seen []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			seen = append(seen, strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(line, "EHLO"):
				c.Write([]byte("250-plain.example\r\n250 AUTH PLAIN XOAUTH2\r\n"))
			case strings.HasPrefix(line, "QUIT"):
				c.Write([]byte("221 bye\r\n"))
			default:
				c.Write([]byte("502 no\r\n"))
			}
		}
		got <- strings.Join(seen, "|")
	}()
	_, err = Dial(context.Background(), Options{Addr: ln.Addr().String(), TLS: dial.StartTLS, Username: "alice",
		Tokens: auth.StaticTokenSource(&auth.Token{AccessToken: "secret-token"})})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("got %v, want a STARTTLS error", err)
	}
	if lines := <-got; strings.Contains(lines, "AUTH") || strings.Contains(lines, "secret-token") {
		t.Fatalf("the client sent credentials over plain text: %s", lines)
	}
}

package imap

import (
	"context"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/internal/fakeserver"
)

// A server that refuses STARTTLS gets no token: the client stops with an error.
func TestSTARTTLSRefusedIsAnError(t *testing.T) {
	addr, seen := fakeserver.Start(t, "* OK IMAP4rev1 ready\r\n", func(line string) string {
		tag, rest, _ := strings.Cut(line, " ")
		if strings.HasPrefix(rest, "CAPABILITY") {
			return "* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n" + tag + " OK done\r\n"
		}
		return tag + " NO not here\r\n"
	})
	_, err := Dial(context.Background(), Options{Addr: addr, TLS: dial.StartTLS, Username: "alice",
		Tokens: token.Static(&token.Token{AccessToken: "secret-token"})})
	if err == nil || err.Error() != "IMAP STARTTLS refused: server said NO not here" {
		t.Fatalf("got %v, want a STARTTLS error", err)
	}
	if lines := <-seen; strings.Contains(lines, "AUTHENTICATE") || strings.Contains(lines, "secret-token") {
		t.Fatalf("the client sent credentials over plain text: %s", lines)
	}
}

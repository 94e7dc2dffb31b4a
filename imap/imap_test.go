package imap

import (
	"context"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/internal/fakeserver"
	"github.com/mailoauth/mailoauth/trace"
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

// TestNilTokensIsAnError: options without a token source are an error naming the field, returned
// before anything is resolved or dialled, not a panic after connecting.
func TestNilTokensIsAnError(t *testing.T) {
	var rec trace.Recorder
	_, err := Dial(context.Background(), Options{Addr: "127.0.0.1:1", Username: "alice", Trace: rec.Func()})
	if err == nil || !strings.HasPrefix(err.Error(), "imap.Options.Tokens is nil: ") {
		t.Fatalf("got %v, want an error naming imap.Options.Tokens", err)
	}
	if len(rec.Steps) != 0 {
		t.Errorf("steps were taken before the error: %+v", rec.Steps)
	}
}

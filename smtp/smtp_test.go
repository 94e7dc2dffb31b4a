package smtp

import (
	"context"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/internal/fakeserver"
	"github.com/mailoauth/mailoauth/trace"
)

// A server that does not offer STARTTLS gets no token: the client stops with an error.
func TestNoSTARTTLSIsAnErrorNotADowngrade(t *testing.T) {
	addr, seen := fakeserver.Start(t, "220 plain.example ESMTP\r\n", func(line string) string {
		switch {
		case strings.HasPrefix(line, "EHLO"):
			return "250-plain.example\r\n250 AUTH PLAIN XOAUTH2\r\n"
		case strings.HasPrefix(line, "QUIT"):
			return "221 bye\r\n"
		}
		return "502 no\r\n"
	})
	_, err := Dial(context.Background(), Options{Addr: addr, TLS: dial.StartTLS, Username: "alice",
		Tokens: token.Static(&token.Token{AccessToken: "secret-token"})})
	if err == nil || !strings.HasPrefix(err.Error(), "SMTP STARTTLS refused: ") {
		t.Fatalf("got %v, want a STARTTLS error", err)
	}
	if lines := <-seen; strings.Contains(lines, "AUTH") || strings.Contains(lines, "secret-token") {
		t.Fatalf("the client sent credentials over plain text: %s", lines)
	}
}

// TestNilTokensIsAnError: options without a token source are an error naming the field, returned
// before anything is resolved or dialled, not a panic after connecting.
func TestNilTokensIsAnError(t *testing.T) {
	var rec trace.Recorder
	_, err := Dial(context.Background(), Options{Addr: "127.0.0.1:1", Username: "alice", Trace: rec.Func()})
	if err == nil || !strings.HasPrefix(err.Error(), "smtp.Options.Tokens is nil: ") {
		t.Fatalf("got %v, want an error naming smtp.Options.Tokens", err)
	}
	if len(rec.Steps) != 0 {
		t.Errorf("steps were taken before the error: %+v", rec.Steps)
	}
}

package token_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"
)

// TestTokenPrintsRedacted: however a Token is printed — every fmt verb, by value, by pointer or
// inside a struct, slog's text and JSON handlers, encoding/json — the access token is not in the
// output, while the resource and the expiry are; AccessToken itself still holds it.
func TestTokenPrintsRedacted(t *testing.T) {
	const secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2ln"
	tok := token.Token{AccessToken: secret, ExpiresOn: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Resource: token.Graph,
		RefreshErr: errors.New("identity platform unreachable")}
	outer := struct {
		Name string
		Tok  token.Token
		Ptr  *token.Token
	}{"alice", tok, &tok}

	shown := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.4v", "%-8s"} {
		shown[verb+" value"] = fmt.Sprintf(verb, tok)
		shown[verb+" pointer"] = fmt.Sprintf(verb, &tok)
		shown[verb+" in a struct"] = fmt.Sprintf(verb, outer)
	}
	shown["Sprint"] = fmt.Sprint(tok, &tok)
	shown["Sprintln"] = fmt.Sprintln(tok, &tok)
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("got", "token", tok, "pointer", &tok)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("got", "token", tok, "pointer", &tok)
	shown["slog"] = logs.String()
	js, err := json.Marshal(outer)
	if err != nil {
		t.Fatal(err)
	}
	shown["json"] = string(js)

	for how, out := range shown {
		// The hex verbs print String's bytes, so the secret would show in hex too.
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) || strings.Contains(out, "c2VjcmV0") {
			t.Errorf("%s shows the access token: %s", how, out)
		}
	}
	for _, how := range []string{"%v value", "%+v pointer", "%s value", "Sprint", "slog", "json"} {
		if !strings.Contains(shown[how], "graph") || !strings.Contains(shown[how], "2030-01-02") || !strings.Contains(shown[how], "[redacted]") {
			t.Errorf("%s does not show the resource, the expiry and [redacted]: %s", how, shown[how])
		}
	}
	if !strings.Contains(shown["%#v value"], `token.Token{AccessToken:"[redacted]"`) {
		t.Errorf("%%#v = %s, want Go syntax with the access token redacted", shown["%#v value"])
	}
	if !strings.Contains(shown["%v value"], "identity platform unreachable") || !strings.Contains(shown["slog"], "identity platform unreachable") {
		t.Errorf("the refresh error is not shown: %s / %s", shown["%v value"], shown["slog"])
	}
	if tok.AccessToken != secret || tok.OAuth2().AccessToken != secret {
		t.Error("the access token itself was changed")
	}
	if s := fmt.Sprint(token.Token{Resource: token.Exchange}); strings.Contains(s, "[redacted]") {
		t.Errorf("a token without an access token prints %q, which claims one is hidden", s)
	}
}

// TestRetryRefusedNeedsAToken: a nil source, or one that returns neither a token nor an error (or
// an empty token), is an error that says so, not a nil dereference, and attempt is never called.
func TestRetryRefusedNeedsAToken(t *testing.T) {
	for name, s := range map[string]token.Source{
		"nil source":         nil,
		"nil token":          nilSource{},
		"empty access token": token.Static(&token.Token{Resource: token.Exchange}),
	} {
		_, err := token.RetryRefused(context.Background(), s, func(*token.Token) error {
			t.Errorf("%s: attempt called", name)
			return nil
		}, func(error) bool { return false })
		if err == nil || !strings.Contains(err.Error(), "token source") {
			t.Errorf("%s: %v, want an error about the token source", name, err)
		}
	}
}

type nilSource struct{}

func (nilSource) Token(context.Context) (*token.Token, error) { return nil, nil }

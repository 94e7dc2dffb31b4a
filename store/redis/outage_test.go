package redis_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/redistest"
	"github.com/mailoauth/mailoauth/token"
)

// refreshTokens returns the refresh tokens an entry's MSAL cache holds.
func refreshTokens(t *testing.T, raw []byte) []string {
	t.Helper()
	var e struct {
		MSAL struct {
			RefreshToken map[string]struct {
				Secret string `json:"secret"`
			} `json:"RefreshToken"`
		} `json:"msal"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rt := range e.MSAL.RefreshToken {
		out = append(out, rt.Secret)
	}
	return out
}

// A proxy-like process signed in, Redis killed mid-run: its token is still served (from memory),
// a refresh it must make during the outage happens, and the refresh token that refresh rotated is in
// Redis once Redis is back on the same port.
func TestAuthThroughOutage(t *testing.T) {
	lab := emulatortest.Start(t, emulator.Options{AutoApprove: world.Alice})
	srv := redistest.Start(t)
	st := open(t, srv, "p")
	ctx := context.Background()
	acc, err := auth.New(lab.Config, auth.Options{Store: st, Prompt: io.Discard}).Account("alice-device")
	if err != nil {
		t.Fatal(err)
	}
	si, err := acc.Login(ctx, auth.LoginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := "account/alice-device/user/" + si.User.HomeAccountID
	stored, err := open(t, srv, "p").Load(ctx, key)
	if err != nil || stored == nil {
		t.Fatalf("the sign-in is not in Redis: %v", err)
	}
	before := refreshTokens(t, stored)

	srv.Kill()
	tok, err := acc.Token(ctx, token.Exchange)
	if err != nil || tok.AccessToken != si.Token.AccessToken {
		t.Fatalf("Token during the outage: %v; want the signed-in token, served from memory", err)
	}
	fresh, err := acc.Refresh(ctx, token.Exchange)
	if err != nil || fresh.AccessToken == si.Token.AccessToken {
		t.Fatalf("Refresh during the outage: %v; want a new token", err)
	}
	srv.Restart()
	if err := st.Close(); err != nil { // writes what is still queued, if the background writer has not
		t.Fatal(err)
	}
	stored, err = open(t, srv, "p").Load(ctx, key)
	if err != nil || stored == nil {
		t.Fatalf("after the outage Redis holds nothing for the user: %v", err)
	}
	after := refreshTokens(t, stored)
	if len(after) != 1 || strings.Join(after, "") == strings.Join(before, "") {
		t.Fatalf("after the outage Redis holds %d refresh tokens, the same as before: %v; want the one the refresh rotated", len(after), len(after) == 1)
	}
	other, err := auth.New(lab.Config, auth.Options{Store: open(t, srv, "p")}).Account("alice-device")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := other.Token(ctx, token.Exchange); err != nil || got.AccessToken != fresh.AccessToken {
		t.Fatalf("another process after the outage: %v; want the token refreshed during it", err)
	}
}

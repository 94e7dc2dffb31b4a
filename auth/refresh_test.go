package auth_test

import (
	"context"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/token"
)

// Refresh works for a web app's user (a confidential client, whose MSAL refuses a silent request
// with claims): one token request gets a new token, which replaces the refused one in memory and in
// the store, so that the next process does not serve the refused one either.
func TestRefreshWebAppUser(t *testing.T) {
	e := webEnv(t)
	ctx := context.Background()
	app := e.webAccount(t)
	alice := e.webSignIn(t, app, world.Alice, "alice-password", auth.AuthCodeOptions{})
	src := app.ForUser(alice.User).TokenSource(token.Exchange).(token.Refresher)
	first, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := e.emu.Identity.Requests("token")
	fresh, err := src.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == first.AccessToken || e.emu.Identity.Requests("token")-before != 1 {
		t.Fatalf("Refresh did not get a new token with one request")
	}
	if c := claims(t, fresh.AccessToken); c["upn"] != world.Alice {
		t.Fatalf("alice's refreshed token is %v's", c["upn"])
	}
	for _, a := range []*auth.Account{app, e.webAccount(t)} {
		if again := userToken(t, a, alice.User, token.Exchange); again.AccessToken != fresh.AccessToken {
			t.Errorf("after Refresh, alice is served another token than the fresh one")
		}
	}
}

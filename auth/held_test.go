package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestUserHeld: with two users signed in through one app, each user's Held is their own (what
// Account.Held cannot say: it needs one user), and every access token says when it was obtained.
func TestUserHeld(t *testing.T) {
	e := webEnv(t)
	ctx := context.Background()
	app := e.webAccount(t)
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	alice := e.webSignIn(t, app, world.Alice, "alice-password", auth.AuthCodeOptions{})
	bob := e.webSignIn(t, app, world.Bob, "bob-password", auth.AuthCodeOptions{RedirectURI: webOther})
	for _, si := range []*auth.SignIn{alice, bob} {
		h, err := app.ForUser(si.User).Held(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !h.RefreshToken || h.Username != si.User.Username || len(h.AccessTokens) == 0 {
			t.Fatalf("%s holds %+v, want their refresh token and an access token", si.User.Username, h)
		}
		for _, at := range h.AccessTokens {
			if at.ObtainedAt.Before(before) || at.ObtainedAt.After(time.Now()) || !at.ExpiresOn.After(at.ObtainedAt) {
				t.Errorf("%s's %s token obtained %v, expires %v; want obtained during the test, before it expires", si.User.Username, at.Resource, at.ObtainedAt, at.ExpiresOn)
			}
		}
	}
}

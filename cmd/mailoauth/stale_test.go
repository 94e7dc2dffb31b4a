package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/storetest"
	"github.com/mailoauth/mailoauth/store"
)

// TestTokenFailsWhenRefreshRefusedInsideMargin (issue 13, item 5): the refresh token is refused
// (alice's sessions were revoked) while the stored access token has four minutes left. Only a
// transient failure falls back to the cached token; a refusal may mean the user must lose access, so
// `token` prints no token and says, on stderr, which command signs in again.
func TestTokenFailsWhenRefreshRefusedInsideMargin(t *testing.T) {
	w := world.Default()
	for _, tn := range w.Tenants {
		if u := tn.User(world.Alice); u != nil {
			u.RevokedBefore = time.Now().Add(time.Hour) // every refresh token issued from now on is refused
		}
	}
	_, cfg := startEmulator(t, emulator.Options{World: w, AutoApprove: world.Alice})
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, context.Background(), append([]string{"--config", cfg}, args...)...)
	}
	if code, out, errs := cli("login", "alice-device"); code != exitOK {
		t.Fatalf("login: exit %d, %q %q", code, out, errs)
	}
	if code, _, errs := cli("token", "alice-device"); code != exitOK {
		t.Fatalf("token after login: exit %d, %q", code, errs)
	}
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(c.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	storetest.AgeAccessTokens(t, st, "account/alice-device", time.Now().Add(4*time.Minute))

	code, out, errs := cli("token", "alice-device")
	if code == exitOK || out != "" {
		t.Fatalf("token after a refused refresh, inside the margin: exit %d, a token printed: %v", code, out != "")
	}
	if !saysLogin(errs, "alice-device") || strings.Contains(errs, "eyJ") {
		t.Fatalf("stderr %q; want the error saying to log in again", errs)
	}
}

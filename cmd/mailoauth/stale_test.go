package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/emulator"
	"github.com/mailoauth/mailoauth/emulator/world"
	"github.com/mailoauth/mailoauth/store"
)

// TestTokenWarnsWhenRefreshRefusedInsideMargin (issue 13, item 5): the refresh token is refused
// (alice's sessions were revoked) while the stored access token has four minutes left. `token` prints
// that token — it still works — and warns on stderr (auth's log line, at the default level) that a
// sign-in is needed, naming the command.
func TestTokenWarnsWhenRefreshRefusedInsideMargin(t *testing.T) {
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
	_, exch, _ := cli("token", "alice-device")
	expireStoredTokens(t, cfg, "alice-device", time.Now().Add(4*time.Minute))

	code, out, errs := cli("token", "alice-device")
	if code != exitOK || out != exch {
		t.Fatalf("token after a refused refresh, inside the margin: exit %d, the stored token printed: %v, stderr %q", code, out == exch, errs)
	}
	if !strings.Contains(errs, "level=WARN") || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "run: mailoauth login alice-device") || strings.Contains(errs, "eyJ") {
		t.Fatalf("stderr %q; want one warning line saying to log in again", errs)
	}
}

// expireStoredTokens sets the expiry of the access tokens stored for account (MSAL's cache entry) to
// exp: as if they had been issued most of their lifetime ago.
func expireStoredTokens(t *testing.T, cfgPath, account string, exp time.Time) {
	t.Helper()
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(c.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(context.Background(), "account/"+account, func(old []byte) ([]byte, error) {
		var entry struct {
			Rest map[string]any
			MSAL struct {
				AccessToken map[string]map[string]any
				Rest        map[string]json.RawMessage
			}
		}
		if err := json.Unmarshal(old, &entry.Rest); err != nil {
			return nil, err
		}
		msal, _ := json.Marshal(entry.Rest["msal"])
		if err := json.Unmarshal(msal, &entry.MSAL.Rest); err != nil {
			return nil, err
		}
		_ = json.Unmarshal(entry.MSAL.Rest["AccessToken"], &entry.MSAL.AccessToken)
		if len(entry.MSAL.AccessToken) == 0 {
			t.Error("no access token stored")
		}
		for _, at := range entry.MSAL.AccessToken {
			at["expires_on"] = strconv.FormatInt(exp.Unix(), 10)
		}
		entry.MSAL.Rest["AccessToken"], _ = json.Marshal(entry.MSAL.AccessToken)
		entry.Rest["msal"] = entry.MSAL.Rest
		return json.Marshal(entry.Rest)
	})
	if err != nil {
		t.Fatal(err)
	}
}

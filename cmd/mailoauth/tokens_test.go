package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// startEmulator runs an in-process emulator and returns the path of the config it wrote.
func startEmulator(t *testing.T, opts emulator.Options) (*emulator.Emulator, string) {
	t.Helper()
	l := emulatortest.Start(t, opts)
	return l.E, l.Path
}

func TestTokenLoginAccountsLogout(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	ctx := context.Background()
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, ctx, append([]string{"--config", cfg}, args...)...)
	}

	for _, tc := range []struct {
		args []string
		aud  string
	}{
		{[]string{"token", "daemon"}, "https://outlook.office365.com"},
		{[]string{"token", "daemon-cert"}, "https://outlook.office365.com"},
		{[]string{"token", "daemon", "--resource", "graph"}, "https://graph.microsoft.com"},
	} {
		code, out, errs := cli(tc.args...)
		if code != exitOK || strings.Count(out, "\n") != 1 || errs != "" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", tc.args, code, out, errs)
		}
		if aud := payload(t, strings.TrimSpace(out))["aud"]; aud != tc.aud {
			t.Errorf("%v: aud %v, want %s", tc.args, aud, tc.aud)
		}
	}

	code, _, errs := cli("token", "alice-device")
	if code != exitFailure || !strings.Contains(errs, "run: mailoauth --config "+cfg+" login alice-device") {
		t.Fatalf("token before login: exit %d, %q", code, errs)
	}
	code, out, errs := cli("login", "alice-device")
	if code != exitOK || !strings.Contains(out, "Signed in: account alice-device as alice@contoso.test") || !strings.Contains(errs, "enter the code") {
		t.Fatalf("login: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	_, first, _ := cli("token", "alice-device")
	_, second, _ := cli("token", "alice-device")
	if first != second || payload(t, strings.TrimSpace(first))["upn"] != world.Alice {
		t.Fatal("token after login: not the same delegated token for alice twice")
	}
	code, out, _ = cli("token", "alice-device", "--json")
	var tj struct {
		AccessToken string    `json:"access_token"`
		TokenType   string    `json:"token_type"`
		ExpiresOn   time.Time `json:"expires_on"`
		Resource    string    `json:"resource"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &tj) != nil || tj.AccessToken == "" || tj.TokenType != "Bearer" || tj.Resource != "exchange" || time.Until(tj.ExpiresOn) < 30*time.Minute {
		t.Fatalf("token --json: %d %q", code, out)
	}

	code, out, _ = cli("--json", "accounts")
	var list []accountStatus
	if code != exitOK || json.Unmarshal([]byte(out), &list) != nil || len(list) != 5 {
		t.Fatalf("accounts --json: %d %q", code, out)
	}
	for _, s := range list {
		if s.Name == "alice-device" && (!s.RefreshToken || len(s.Tokens) == 0 || s.User != world.Alice) {
			t.Errorf("alice-device status %+v", s)
		}
		if s.Name == "alice" && (s.RefreshToken || len(s.Tokens) != 0) {
			t.Errorf("alice holds tokens before any login: %+v", s)
		}
	}
	if strings.Contains(out, first[:30]) {
		t.Error("accounts --json printed a token")
	}
	// An account holding nothing lists its access tokens as [], not null.
	var raw []map[string]any
	_ = json.Unmarshal([]byte(out), &raw)
	for _, o := range raw {
		if o["name"] == "alice" && o["access_tokens"] == nil {
			t.Errorf(`accounts --json: alice's access_tokens is not []: %v`, o)
		}
	}
	if code, out, _ := cli("accounts"); code != exitOK || !strings.Contains(out, "alice-device") || !strings.Contains(out, "valid until") {
		t.Errorf("accounts: %d %q", code, out)
	}

	if code, out, _ := cli("logout", "alice-device"); code != exitOK || !strings.Contains(out, "Forgot") {
		t.Fatalf("logout: %d %q", code, out)
	}
	if code, out, _ := cli("logout", "alice"); code != exitOK || out != "Account alice held no tokens; nothing to forget.\n" {
		t.Errorf("logout of an account holding nothing: %d %q", code, out)
	}
	// Nobody signs in to an app-only account: login says what it did instead.
	if code, out, _ := cli("login", "daemon"); code != exitOK || strings.Contains(out, "Signed in") ||
		!strings.Contains(out, "app-only (client credentials): nobody signs in") || !strings.Contains(out, "for mailbox "+world.Alice) {
		t.Errorf("login of an app-only account: %d %q", code, out)
	}
	if code, _, errs := cli("token", "alice-device"); code != exitFailure || !saysLogin(errs, "alice-device") {
		t.Fatalf("token after logout: %d %q", code, errs)
	}
}

func TestInteractiveLoginNoBrowser(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	var out, errs syncBuffer
	if code := loginNoBrowser(t, e, []string{"--config", cfg}, &out, &errs); code != exitOK || !strings.Contains(out.String(), "as alice@contoso.test") {
		t.Fatalf("login --no-browser: exit %d, %q %q", code, out.String(), errs.String())
	}
}

// loginNoBrowser runs `login alice --no-browser` after the global flags in args and plays the
// browser: it follows the URL printed on stderr (the emulator auto-approves and redirects to the
// CLI's loopback listener). It returns the command's exit code.
func loginNoBrowser(t *testing.T, e *emulator.Emulator, args []string, out, errs *syncBuffer) int {
	t.Helper()
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), append(args, "login", "alice", "--no-browser"), strings.NewReader(""), out, errs)
	}()
	var u string
	for deadline := time.Now().Add(30 * time.Second); u == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no URL on stderr: %q", errs.String())
		}
		for _, l := range strings.Split(errs.String(), "\n") {
			if strings.HasPrefix(l, "https://") {
				u = l
			}
		}
	}
	resp, err := e.HTTPClient().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return <-done
}

// TestBadInput: each mistake gets one clear sentence and the right exit code.
func TestBadInput(t *testing.T) {
	w := world.Default()
	w.Tokens.AccessToken = 4 * time.Minute // inside the 5-minute margin: every use refreshes
	w.Tokens.RefreshTokenInactivity = time.Hour
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e, cfgPath := startEmulator(t, emulator.Options{World: w, AutoApprove: world.Alice, Now: clock})
	dir := filepath.Dir(cfgPath)

	f, _ := e.Config()
	f.Accounts["nosecret"] = &config.Account{Tenant: "contoso.test", ClientID: world.DaemonClientID, Flow: "client_credentials",
		Mailbox: world.Alice, ClientSecretFile: "missing-secret.txt", Authority: e.Authority(), CAFile: "ca.pem"}
	f.Accounts["badpfx"] = &config.Account{Tenant: "contoso.test", ClientID: world.DaemonClientID, Flow: "client_credentials",
		Mailbox: world.Alice, Certificate: "daemon-cert.pfx", CertificatePasswordFile: "store-passphrase.txt", Authority: e.Authority(), CAFile: "ca.pem"}
	b, _ := toml.Marshal(f)
	cfg := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, ctx, append([]string{"--config", cfg}, args...)...)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"token", "wrok"}, exitUsage, "no account `wrok`"},
		{[]string{"token", "daemon", "--resource", "ews"}, exitUsage, "unknown resource"},
		{[]string{"token", "nosecret"}, exitUsage, "missing-secret.txt cannot be read"},
		{[]string{"token", "badpfx"}, exitUsage, "PFX password is wrong"},
		{[]string{"--config", filepath.Join(dir, "nope.toml"), "accounts"}, exitUsage, "nope.toml"},
	} {
		code, out, errs := cli(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, errs, tc.want)
		}
		if strings.Count(strings.TrimSpace(errs), "\n") > 1 {
			t.Errorf("%v: not one clear sentence: %q", tc.args, errs)
		}
	}

	// An expired refresh token: exit 1, and the fix is to log in again.
	if code, _, errs := cli("login", "alice-device"); code != exitOK {
		t.Fatalf("login: %q", errs)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	code, _, errs := cli("token", "alice-device")
	if code != exitFailure || !strings.Contains(errs, "AADSTS700082") || !saysLogin(errs, "alice-device") {
		t.Errorf("expired refresh token: exit %d, %q", code, errs)
	}

	// The identity platform down: exit 1, naming what could not be reached.
	e.Close()
	code, _, errs = cli("token", "daemon-bob")
	if code != exitFailure || !strings.Contains(errs, "cannot reach the identity platform at "+e.Authority()) {
		t.Errorf("emulator down: exit %d, %q", code, errs)
	}
}

// Restarting the emulator on the same data directory must leave a working setup: the previous run's
// token store (sealed with the previous passphrase) goes with it.
func TestEmulatorRestartSameDataDir(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, emulator.ConfigName)
	for run := range 2 {
		e, err := emulator.Start(context.Background(), emulator.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.WriteData(dir); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runCLI(t, context.Background(), "--config", cfg, "token", "daemon")
		e.Close()
		if code != exitOK {
			t.Fatalf("run %d: token daemon exited %d: %s", run+1, code, errs)
		}
	}
}

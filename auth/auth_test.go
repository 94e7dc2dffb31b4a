package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/store"
)

// env is an emulator, the config it wrote (plus extra accounts) and a counter of token requests.
type env struct {
	emu    *emulator.Emulator
	dir    string
	cfg    *config.File
	tokens atomic.Int64 // POSTs to a token endpoint, counted on the client side
	// passphrase makes the file store derive its key from a passphrase (argon2id).
	passphrase bool
	// options, if set, changes the Options of every manager the env makes (faults_test.go).
	options func(*auth.Options)
}

func newEnv(t testing.TB, w *world.World, autoApprove string, extra map[string]*config.Account) *env {
	t.Helper()
	emu, err := emulator.Start(context.Background(), emulator.Options{World: w, AutoApprove: autoApprove})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	dir := t.TempDir()
	if err := emu.WriteData(dir); err != nil {
		t.Fatal(err)
	}
	if len(extra) > 0 {
		f, err := emu.Config()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range extra {
			v.Authority, v.CAFile = emu.Authority(), "ca.pem"
			f.Accounts[k] = v
		}
		b, _ := toml.Marshal(f)
		if err := os.WriteFile(filepath.Join(dir, emulator.ConfigName), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, emulator.ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	return &env{emu: emu, dir: dir, cfg: cfg}
}

type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		c.n.Add(1)
	}
	return c.base.RoundTrip(r)
}

// manager returns a Manager over a file store in the env's directory (shared by every manager of the
// env, as separate processes would share it).
func (e *env) manager(t testing.TB, prompt *strings.Builder) *auth.Manager {
	t.Helper()
	// A raw key keeps argon2id (slow under -race) out of most tests; TestDeviceLoginThenSilentAndSharedStore
	// uses a passphrase, as users do.
	opts := auth.Options{Store: e.store(t), Transport: func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &e.tokens} }}
	opts.Prompt = io.Discard // the emulator approves device codes itself (AutoApprove): nobody reads them
	if prompt != nil {
		opts.Prompt = prompt
	}
	if e.options != nil {
		e.options(&opts)
	}
	return auth.New(e.cfg, opts)
}

// store opens the env's token store, as another process would.
func (e *env) store(t testing.TB) *store.File {
	t.Helper()
	src := store.KeySource{Key: func() ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil }}
	if e.passphrase {
		src = store.KeySource{Passphrase: func() ([]byte, error) { return []byte("test passphrase"), nil }}
	}
	st, err := store.OpenFile(filepath.Join(e.dir, "tokens"), src)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func claims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func getToken(t *testing.T, m *auth.Manager, account string, r token.Resource) *token.Token {
	t.Helper()
	a, err := m.Account(account)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Token(context.Background(), r)
	if err != nil {
		t.Fatalf("token %s %s: %v", account, r, err)
	}
	return tok
}

func login(t *testing.T, m *auth.Manager, account string, o auth.LoginOptions) *token.Token {
	t.Helper()
	a, err := m.Account(account)
	if err != nil {
		t.Fatal(err)
	}
	si, err := a.Login(context.Background(), o)
	if err != nil {
		t.Fatalf("login %s: %v", account, err)
	}
	return si.Token
}

func TestClientCredentialsSecretPFXAndGraph(t *testing.T) {
	e := newEnv(t, nil, "", map[string]*config.Account{
		"daemon-pem": {Tenant: "contoso.test", ClientID: world.DaemonClientID, Flow: "client_credentials", Mailbox: world.Alice, Certificate: "daemon-cert.pem"},
	})
	m := e.manager(t, nil)
	for _, acc := range []string{"daemon", "daemon-cert", "daemon-pem"} {
		c := claims(t, getToken(t, m, acc, token.Exchange).AccessToken)
		if c["aud"] != "https://outlook.office365.com" || !strings.Contains(toJSON(c["roles"]), "IMAP.AccessAsApp") || c["upn"] != nil {
			t.Errorf("%s: app-only Exchange claims %v", acc, c)
		}
		wantACR := "1"
		if acc != "daemon" {
			wantACR = "2" // certificate
		}
		if c["appidacr"] != wantACR {
			t.Errorf("%s: appidacr %v, want %s", acc, c["appidacr"], wantACR)
		}
	}
	g := claims(t, getToken(t, m, "daemon", token.Graph).AccessToken)
	if g["aud"] != "https://graph.microsoft.com" || !strings.Contains(toJSON(g["roles"]), "Mail.Send") {
		t.Errorf("graph claims %v", g)
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestDeviceLoginThenSilentAndSharedStore(t *testing.T) {
	e := newEnv(t, nil, world.Alice, nil)
	e.passphrase = true
	var prompt strings.Builder
	m := e.manager(t, &prompt)
	first := login(t, m, "alice-device", auth.LoginOptions{})
	if !strings.Contains(prompt.String(), "/devicelogin") || !strings.Contains(prompt.String(), "enter the code") {
		t.Errorf("device code message not shown: %q", prompt.String())
	}
	c := claims(t, first.AccessToken)
	if c["aud"] != "https://outlook.office.com" || c["upn"] != world.Alice || !strings.Contains(c["scp"].(string), "IMAP.AccessAsUser.All") {
		t.Errorf("claims %v", c)
	}
	before := e.tokens.Load()
	if again := getToken(t, m, "alice-device", token.Exchange); again.AccessToken != first.AccessToken {
		t.Error("second call returned a different token")
	}
	// A second process over the same store: the token comes from the store, no request.
	m2 := e.manager(t, nil)
	if other := getToken(t, m2, "alice-device", token.Exchange); other.AccessToken != first.AccessToken {
		t.Error("a second manager over the same store did not get the stored token")
	}
	if n := e.tokens.Load() - before; n != 0 {
		t.Errorf("%d token requests for a cached token", n)
	}
	// Graph from the same sign-in: one refresh-token grant.
	g := claims(t, getToken(t, m2, "alice-device", token.Graph).AccessToken)
	if g["aud"] != "https://graph.microsoft.com" || g["upn"] != world.Alice {
		t.Errorf("graph claims %v", g)
	}
	raw, _ := os.ReadFile(filepath.Join(e.dir, "tokens"))
	if strings.Contains(string(raw), first.AccessToken[:40]) || strings.Contains(string(raw), "eyJ") {
		t.Error("a token is readable in clear in the store file")
	}
}

func TestInteractiveLoginWithTestBrowser(t *testing.T) {
	e := newEnv(t, nil, world.Alice, nil)
	m := e.manager(t, nil)
	browser := e.emu.HTTPClient()
	var opened string
	tok := login(t, m, "alice", auth.LoginOptions{OpenURL: func(u string) error {
		opened = u
		resp, err := browser.Get(u) // the emulator delivers the code to MSAL's loopback listener
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}})
	q, _ := url.Parse(opened)
	if q.Query().Get("code_challenge_method") != "S256" || q.Query().Get("state") == "" {
		t.Errorf("authorization URL lacks PKCE or state: %s", opened)
	}
	if c := claims(t, tok.AccessToken); c["upn"] != world.Alice || c["aud"] != "https://outlook.office.com" {
		t.Errorf("claims %v", c)
	}
}

func TestNoBrowserPrintsURL(t *testing.T) {
	e := newEnv(t, nil, world.Alice, nil)
	var prompt syncBuilder
	st := store.NewMemory()
	m := auth.New(e.cfg, auth.Options{Store: st, Prompt: &prompt})
	a, _ := m.Account("alice")
	done := make(chan error, 1)
	go func() { _, err := a.Login(context.Background(), auth.LoginOptions{NoBrowser: true}); done <- err }()
	var u string
	for deadline := time.Now().Add(10 * time.Second); u == ""; {
		if time.Now().After(deadline) {
			t.Fatal("no URL printed")
		}
		for _, line := range strings.Split(prompt.String(), "\n") {
			if strings.HasPrefix(line, "https://") {
				u = line
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := e.emu.HTTPClient().Get(u) // a person pasting it into a browser
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuilder) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestPasswordAndRefreshTokenImport(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	_ = os.WriteFile(pw, []byte("alice-password\n"), 0o600)
	e := newEnv(t, nil, world.Alice, map[string]*config.Account{
		"alice-ropc": {Email: world.Alice, Tenant: "contoso.test", ClientID: world.DesktopClientID, Flow: "password", PasswordFile: pw},
	})
	m := e.manager(t, nil)
	// password: no login needed, the token source signs in itself.
	if c := claims(t, getToken(t, m, "alice-ropc", token.Exchange).AccessToken); c["upn"] != world.Alice {
		t.Errorf("password flow claims %v", c)
	}
	// A refresh token obtained elsewhere (here: a plain ROPC call), imported once.
	resp, err := e.emu.HTTPClient().PostForm(e.emu.Authority()+"/contoso/oauth2/v2.0/token", url.Values{
		"grant_type": {"password"}, "client_id": {world.DesktopClientID}, "username": {world.Alice},
		"password": {"alice-password"}, "scope": {"https://outlook.office.com/IMAP.AccessAsUser.All offline_access"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	rtFile := filepath.Join(dir, "rt")
	_ = os.WriteFile(rtFile, []byte(tr.RefreshToken), 0o600)
	e2 := newEnvShared(t, e, map[string]*config.Account{
		"imported": {Email: world.Alice, Tenant: "contoso.test", ClientID: world.DesktopClientID, Flow: "refresh_token", RefreshTokenFile: rtFile},
	})
	m2 := e2.manager(t, nil)
	tok := login(t, m2, "imported", auth.LoginOptions{})
	if c := claims(t, tok.AccessToken); c["upn"] != world.Alice || c["aud"] != "https://outlook.office.com" {
		t.Errorf("imported claims %v", c)
	}
	// Kept and rotated like any other: a Graph token from it without the file.
	_ = os.Remove(rtFile)
	if c := claims(t, getToken(t, m2, "imported", token.Graph).AccessToken); c["aud"] != "https://graph.microsoft.com" {
		t.Errorf("graph after import %v", c)
	}
}

// newEnvShared reuses e's emulator with extra accounts in a new config file.
func newEnvShared(t *testing.T, e *env, extra map[string]*config.Account) *env {
	f, err := e.emu.Config()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		v.Authority, v.CAFile = e.emu.Authority(), "ca.pem"
		f.Accounts[k] = v
	}
	b, _ := toml.Marshal(f)
	p := filepath.Join(e.dir, "extra.toml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return &env{emu: e.emu, dir: e.dir, cfg: cfg}
}

func TestSingleFlightThousandCallers(t *testing.T) {
	e := newEnv(t, nil, "", nil)
	m := e.manager(t, nil)
	a, _ := m.Account("daemon")
	before, atEmulator := e.tokens.Load(), e.emu.Identity.Requests("token")
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Token(context.Background(), token.Exchange); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.tokens.Load() - before; n != 1 {
		t.Fatalf("1000 concurrent callers caused %d token requests, want 1", n)
	}
	if n := e.emu.Identity.Requests("token") - atEmulator; n != 1 {
		t.Fatalf("the emulator received %d token requests from 1000 concurrent callers, want 1", n)
	}
}

func TestExpiryInsideMarginRefreshesOnce(t *testing.T) {
	w := world.Default()
	w.Tokens = world.DefaultLifetimes()
	w.Tokens.AccessToken = 4 * time.Minute // under the 5-minute margin: every token counts as expiring
	e := newEnv(t, w, world.Alice, nil)
	// A token just obtained is served for half its lifetime even inside the margin; 3 minutes later
	// this one is past that, inside the margin and still valid.
	var c clock
	e.options = func(o *auth.Options) { o.Now = c.now }
	m := e.manager(t, nil)
	login(t, m, "alice-device", auth.LoginOptions{})
	a, _ := m.Account("alice-device")
	c.shift.Store(int64(3 * time.Minute))
	before := e.tokens.Load()
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Token(context.Background(), token.Exchange); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := e.tokens.Load() - before; n != 1 {
		t.Fatalf("refreshing an expiring token took %d requests, want exactly 1 (callers after the flight get its token)", n)
	}
}

func TestLoginRequiredAndLogout(t *testing.T) {
	e := newEnv(t, nil, world.Alice, nil)
	m := e.manager(t, nil)
	a, _ := m.Account("alice-device")
	if _, err := a.Token(context.Background(), token.Exchange); !errors.Is(err, token.ErrLoginRequired) || !saysSignIn(err) {
		t.Fatalf("before login: %v", err)
	}
	login(t, m, "alice-device", auth.LoginOptions{})
	if h, _ := a.Held(context.Background()); !h.RefreshToken || len(h.AccessTokens) == 0 {
		t.Fatalf("held after login: %+v", h)
	}
	if err := a.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Token(context.Background(), token.Exchange); !errors.Is(err, token.ErrLoginRequired) {
		t.Fatalf("after logout: %v", err)
	}
	// Another process sees the logout too.
	if _, err := e.manager(t, nil).Account("alice-device"); err != nil {
		t.Fatal(err)
	}
}

func TestExpiredRefreshTokenSaysLogInAgain(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := world.Default()
	w.Tokens = world.DefaultLifetimes()
	w.Tokens.RefreshTokenInactivity = time.Hour
	emu, err := emulator.Start(context.Background(), emulator.Options{World: w, AutoApprove: world.Alice, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	dir := t.TempDir()
	_ = emu.WriteData(dir)
	cfg, _ := config.Load(filepath.Join(dir, emulator.ConfigName))
	m := auth.New(cfg, auth.Options{Now: clock, Prompt: io.Discard})
	a, _ := m.Account("alice-device")
	if _, err := a.Login(context.Background(), auth.LoginOptions{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(3 * time.Hour) // past the access token and the refresh token's inactivity limit
	mu.Unlock()
	_, err = a.Token(context.Background(), token.Graph)
	var ae *auth.Error
	if !errors.Is(err, token.ErrLoginRequired) || !errors.As(err, &ae) || ae.AADSTS != 700082 || ae.Transient {
		t.Fatalf("expired refresh token: %v", err)
	}
}

func TestTransientFailureKeepsRefreshToken(t *testing.T) {
	w := world.Default()
	w.Faults = []world.Fault{{Endpoint: "token", Status: 503, After: 1, Times: 3}} // the login passes, then an outage longer than the retries
	w.Tokens = world.DefaultLifetimes()
	e := newEnv(t, w, world.Alice, nil)
	m := e.manager(t, nil)
	login(t, m, "alice-device", auth.LoginOptions{})
	a, _ := m.Account("alice-device")
	_, err := a.Token(context.Background(), token.Graph)
	var ae *auth.Error
	if !errors.As(err, &ae) || !ae.Transient || errors.Is(err, token.ErrLoginRequired) {
		t.Fatalf("a 503 should be a transient error, not a login: %v", err)
	}
	if tok := getToken(t, m, "alice-device", token.Graph); claims(t, tok.AccessToken)["aud"] != "https://graph.microsoft.com" {
		t.Fatal("the refresh token was not kept through a transient failure")
	}
}

func TestConfigProblemsAreClear(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, nil, "", map[string]*config.Account{
		"nosecret": {Tenant: "contoso.test", ClientID: world.DaemonClientID, Flow: "client_credentials", Mailbox: world.Alice, ClientSecretFile: filepath.Join(dir, "missing")},
		"badpfx":   {Tenant: "contoso.test", ClientID: world.DaemonClientID, Flow: "client_credentials", Mailbox: world.Alice, Certificate: "daemon-cert.pfx", CertificatePasswordFile: "store-passphrase.txt"},
	})
	m := e.manager(t, nil)
	for name, want := range map[string]string{"nosecret": "cannot be read", "badpfx": "PFX password is wrong", "nosuch": "no account"} {
		_, err := m.Account(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
		var ce interface{ ConfigError() bool }
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v is not a configuration error", name, err)
		}
	}
}

func TestIdentityPlatformDown(t *testing.T) {
	e := newEnv(t, nil, "", nil)
	m := e.manager(t, nil)
	a, _ := m.Account("daemon")
	e.emu.Close()
	_, err := a.Token(context.Background(), token.Exchange)
	var ae *auth.Error
	if !errors.As(err, &ae) || !ae.Transient || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("emulator down: %v", err)
	}
}

func TestAuthCodeWebLibraryAPI(t *testing.T) {
	w := world.Default()
	w.Apps[1].RedirectURIs = []string{"https://app.contoso.test/callback"}
	w.Apps[1].Delegated = append([]string{}, world.ExchangeDelegated...)
	w.Apps[1].Consented = true
	e := newEnv(t, w, world.Alice, map[string]*config.Account{
		"web": {Email: world.Alice, Tenant: "contoso.test", ClientID: world.DaemonClientID, Flow: "auth_code_web",
			ClientSecretFile: "daemon-secret.txt", RedirectURI: "https://app.contoso.test/callback", Protocols: []string{"imap"}},
	})
	m := e.manager(t, nil)
	a, err := m.Account("web")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, verifier, err := a.AuthCodeURL(ctx, "state-123", auth.AuthCodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The user's browser: the emulator signs alice in and redirects to the web app's callback with the
	// code (MSAL's confidential AuthCodeURL asks for the query response mode). Stop at the redirect:
	// the callback is the web app's, not ours to fetch.
	browser := e.emu.HTTPClient()
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := browser.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Host != "app.contoso.test" || loc.Path != "/callback" {
		t.Fatalf("no redirect to the callback: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "state-123" {
		t.Fatalf("callback query %q lacks the code or the state", loc.RawQuery)
	}
	si, err := a.ExchangeCode(ctx, code, verifier, auth.AuthCodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok := si.Token
	if c := claims(t, tok.AccessToken); c["upn"] != world.Alice || c["appidacr"] != "1" || !strings.Contains(c["scp"].(string), "IMAP.AccessAsUser.All") {
		t.Errorf("claims %v", c)
	}
	// The web app's later requests: silent, from the store, then Graph by refresh.
	if _, err := a.ExchangeCode(ctx, code, "wrong-verifier", auth.AuthCodeOptions{}); err == nil {
		t.Error("a code was redeemed twice")
	}
	m2 := e.manager(t, nil)
	if c := claims(t, getToken(t, m2, "web", token.Exchange).AccessToken); c["upn"] != world.Alice {
		t.Errorf("silent after the code exchange: %v", c)
	}
}

func TestScopesPerCloudAndProtocols(t *testing.T) {
	cfg := &config.File{Accounts: map[string]*config.Account{
		"gov":    {Name: "gov", Flow: "device", ClientID: world.DesktopClientID, Cloud: "usgovernment", Protocols: []string{"imap", "smtp"}},
		"pop":    {Name: "pop", Flow: "device", ClientID: world.DesktopClientID, Protocols: []string{"pop"}},
		"app":    {Name: "app", Flow: "client_credentials", ClientID: world.DaemonClientID, Tenant: "contoso.test", ClientSecretEnv: "X", Mailbox: world.Alice, Cloud: "china"},
		"graph":  {Name: "graph", Flow: "device", ClientID: world.DesktopClientID, Protocols: []string{"graph"}},
		"custom": {Name: "custom", Flow: "device", ClientID: world.DesktopClientID, Scopes: []string{"IMAP.AccessAsUser.All"}},
	}}
	t.Setenv("X", "secret")
	m := auth.New(cfg, auth.Options{})
	for name, want := range map[string]string{
		"gov":    "https://outlook.office365.us/IMAP.AccessAsUser.All https://outlook.office365.us/SMTP.Send",
		"pop":    "https://outlook.office.com/POP.AccessAsUser.All",
		"app":    "https://partner.outlook.cn/.default",
		"graph":  "https://graph.microsoft.com/Mail.ReadWrite https://graph.microsoft.com/Mail.Send",
		"custom": "IMAP.AccessAsUser.All",
	} {
		a, err := m.Account(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(a.Scopes(token.Exchange), " "); got != want {
			t.Errorf("%s: scopes %q, want %q", name, got, want)
		}
	}
}

func TestRefreshBypassesTheCache(t *testing.T) {
	e := newEnv(t, nil, world.Alice, nil)
	m := e.manager(t, nil)
	for _, acc := range []string{"daemon", "alice-device"} {
		a, _ := m.Account(acc)
		if acc == "alice-device" {
			login(t, m, acc, auth.LoginOptions{})
		}
		first, err := a.Token(context.Background(), token.Exchange)
		if err != nil {
			t.Fatal(err)
		}
		before := e.emu.Identity.Requests("token")
		fresh, err := a.TokenSource(token.Exchange).(token.Refresher).Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if fresh.AccessToken == first.AccessToken || e.emu.Identity.Requests("token")-before != 1 {
			t.Errorf("%s: Refresh did not get a new token with one request", acc)
		}
		if again, _ := a.Token(context.Background(), token.Exchange); again.AccessToken != fresh.AccessToken {
			t.Errorf("%s: the fresh token did not replace the cached one", acc)
		}
	}
}

func TestTransientFailureIsRetried(t *testing.T) {
	w := world.Default()
	w.Faults = []world.Fault{{Endpoint: "token", Status: 503, Times: 1}}
	e := newEnv(t, w, "", nil)
	m := e.manager(t, nil)
	a, _ := m.Account("daemon")
	before := e.emu.Identity.Requests("token")
	if _, err := a.Token(context.Background(), token.Exchange); err != nil {
		t.Fatalf("one 503 should be retried away: %v", err)
	}
	if n := e.emu.Identity.Requests("token") - before; n != 2 {
		t.Fatalf("%d token requests, want 2 (the 503 and the retry)", n)
	}
}

func TestRefusedGrantIsNotRetried(t *testing.T) {
	e := newEnv(t, nil, "", map[string]*config.Account{
		"wrong": {Tenant: "contoso.test", ClientID: world.DaemonClientID, Flow: "client_credentials", Mailbox: world.Alice, ClientSecretEnv: "AUTH_TEST_WRONG"},
	})
	t.Setenv("AUTH_TEST_WRONG", "not-the-secret")
	a, err := e.manager(t, nil).Account("wrong")
	if err != nil {
		t.Fatal(err)
	}
	before := e.emu.Identity.Requests("token")
	_, err = a.Token(context.Background(), token.Exchange)
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.AADSTS != 7000215 || ae.Transient {
		t.Fatalf("wrong secret: %v", err)
	}
	if n := e.emu.Identity.Requests("token") - before; n != 1 {
		t.Fatalf("a refused request was sent %d times", n)
	}
}

// saysSignIn: a login-required error from the library says how to sign in in Go's terms (the CLI
// adds its own advice), names the account, and wraps token.ErrLoginRequired in a
// *auth.LoginRequiredError.
func saysSignIn(err error) bool {
	var lr *auth.LoginRequiredError
	return errors.Is(err, token.ErrLoginRequired) && errors.As(err, &lr) && lr.Account != "" &&
		strings.Contains(err.Error(), "Account.Login") && !strings.Contains(err.Error(), "mailoauth login")
}

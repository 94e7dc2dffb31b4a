package auth_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/store"
	"github.com/mailoauth/mailoauth/token"
)

const (
	webCallback = "https://app.contoso.test/callback"
	webOther    = "https://app.contoso.test/other-callback"
)

// webEnv is the emulator with the daemon app registered as a web app (two redirect URIs, delegated
// Exchange and Graph permissions), nobody signed in automatically, and webAccount building the
// account in Go over the env's file store. change, if given, changes the world first.
func webEnv(t testing.TB, change ...func(*world.World)) *env {
	t.Helper()
	w := world.Default()
	w.Apps[1].RedirectURIs = []string{webCallback, webOther}
	w.Apps[1].Delegated = append(append([]string{}, world.ExchangeDelegated...), world.GraphMailDelegated...)
	w.Apps[1].Consented = true
	for _, f := range change {
		f(w)
	}
	return newEnv(t, w, "", nil)
}

// webAccount is the web app's account as a program builds it: no configuration file, no user.
// Each call is a new process's view of the same store.
func (e *env) webAccount(t *testing.T) *auth.Account {
	t.Helper()
	return webAccountOver(t, e, e.store(t), nil)
}

// webAccountOver is the web app's account over st; now, if set, is its clock.
func webAccountOver(tb testing.TB, e *env, st store.Store, now func() time.Time) *auth.Account {
	tb.Helper()
	return webAccountWith(tb, e, auth.Options{Store: st, Now: now})
}

// webAccountWith is the web app's account with opts.
func webAccountWith(tb testing.TB, e *env, opts auth.Options) *auth.Account {
	tb.Helper()
	a, err := auth.NewAccount(&config.Account{
		Name: "web", Flow: config.FlowAuthCodeWeb, Tenant: "contoso.test", ClientID: world.DaemonClientID,
		ClientSecretFile: filepath.Join(e.dir, "daemon-secret.txt"), RedirectURI: webCallback,
		Protocols: []string{"imap"}, Authority: e.emu.Authority(), CAFile: filepath.Join(e.dir, "ca.pem"),
		IMAP: e.cfg.Accounts["alice-device"].IMAP,
	}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

var (
	txnRE    = regexp.MustCompile(`name="txn" value="([^"]+)"`)
	actionRE = regexp.MustCompile(`<form method="POST" action="([^"]+)"`)
)

// browserSignIn is a person at a browser: it opens authURL, signs in as user on the emulator's page
// and returns where the identity platform sent the browser back (the web app's callback, which is
// not fetched).
func (e *env) browserSignIn(t testing.TB, authURL, user, password string) *url.URL {
	t.Helper()
	browser := e.emu.HTTPClient()
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	txn, action := txnRE.FindSubmatch(page), actionRE.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || txn == nil || action == nil {
		t.Fatalf("authorize: %d, no sign-in form (%s)", resp.StatusCode, resp.Header.Get("Location"))
	}
	base, _ := url.Parse(authURL)
	post, _ := base.Parse(string(action[1]))
	resp, err = browser.PostForm(post.String(), url.Values{"txn": {string(txn[1])}, "username": {user}, "password": {password}, "action": {"accept"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("sign-in as %s: %d, no redirect", user, resp.StatusCode)
	}
	return loc
}

// webSignIn signs user in through a's AuthCodeURL, the browser and ExchangeCode.
func (e *env) webSignIn(t testing.TB, a *auth.Account, user, password string, o auth.AuthCodeOptions) *auth.SignIn {
	t.Helper()
	ctx := context.Background()
	u, verifier, err := a.AuthCodeURL(ctx, "state-"+user, o)
	if err != nil {
		t.Fatal(err)
	}
	back := e.browserSignIn(t, u, user, password)
	if back.Query().Get("state") != "state-"+user || back.Query().Get("code") == "" {
		t.Fatalf("callback of %s lacks the code or the state", user)
	}
	si, err := a.ExchangeCode(ctx, back.Query().Get("code"), verifier, o)
	if err != nil {
		t.Fatal(err)
	}
	return si
}

// userToken is a user's token for r, through the token.Source a mail client would be given.
func userToken(t *testing.T, a *auth.Account, u auth.User, r token.Resource) *token.Token {
	t.Helper()
	tok, err := a.ForUser(u).TokenSource(r).Token(context.Background())
	if err != nil {
		t.Fatalf("%s's %s token: %v", u.Username, r, err)
	}
	return tok
}

// TestWebAppTwoUsersAcrossRestart is the web app of the library guide: one app registration, two
// users signed in through it, each with their own tokens, silently, also in a new process over the
// same store; one removed, the other unaffected.
func TestWebAppTwoUsersAcrossRestart(t *testing.T) {
	e := webEnv(t)
	ctx := context.Background()
	app := e.webAccount(t)
	alice := e.webSignIn(t, app, world.Alice, "alice-password", auth.AuthCodeOptions{})
	// bob comes back to the app's other registered callback: ExchangeCode is given the same one.
	bobOpts := auth.AuthCodeOptions{RedirectURI: webOther}
	bob := e.webSignIn(t, app, world.Bob, "bob-password", bobOpts)

	for _, si := range []*auth.SignIn{alice, bob} {
		if si.User.HomeAccountID == "" || si.User.TenantID != world.DefaultTenantID {
			t.Errorf("sign-in of %s: user %+v, want a home account id and tenant %s", si.User.Username, si.User, world.DefaultTenantID)
		}
		if c := claims(t, si.Token.AccessToken); c["upn"] != si.User.Username {
			t.Errorf("the token of %s's sign-in is %v's", si.User.Username, c["upn"])
		}
	}
	if alice.User.Username != world.Alice || bob.User.Username != world.Bob || alice.User.HomeAccountID == bob.User.HomeAccountID {
		t.Fatalf("signed in %+v and %+v, want alice and bob", alice.User, bob.User)
	}

	// Silently, in this process: each user's own token, from memory, no request.
	before := e.emu.Identity.Requests("token")
	for _, si := range []*auth.SignIn{alice, bob} {
		if tok := userToken(t, app, si.User, token.Exchange); tok.AccessToken != si.Token.AccessToken {
			t.Errorf("%s's silent token is not the one their sign-in got", si.User.Username)
		}
	}
	if n := e.emu.Identity.Requests("token") - before; n != 0 {
		t.Errorf("%d token requests for tokens just obtained", n)
	}

	// A new process over the same store: it knows both users, serves each their stored token
	// without a request, refreshes each their own Graph token, and opens each their own mailbox.
	restarted := e.webAccount(t)
	users, err := restarted.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0] != alice.User || users[1] != bob.User {
		t.Fatalf("users after a restart: %+v, want alice's and bob's", users)
	}
	before = e.emu.Identity.Requests("token")
	for _, u := range users {
		if c := claims(t, userToken(t, restarted, u, token.Exchange).AccessToken); c["upn"] != u.Username {
			t.Errorf("after a restart %s got %v's Exchange token", u.Username, c["upn"])
		}
	}
	if n := e.emu.Identity.Requests("token") - before; n != 0 {
		t.Errorf("%d token requests for stored tokens after a restart", n)
	}
	for _, u := range users {
		if c := claims(t, userToken(t, restarted, u, token.Graph).AccessToken); c["upn"] != u.Username || c["aud"] != "https://graph.microsoft.com" {
			t.Errorf("after a restart %s got a Graph token of %v for %v", u.Username, c["upn"], c["aud"])
		}
		ua := restarted.ForUser(u)
		if ua.Mailbox() != u.Username || ua.AppOnly() || ua.OtherMailbox() {
			t.Errorf("%s's account: mailbox %q, app-only %v, other mailbox %v", u.Username, ua.Mailbox(), ua.AppOnly(), ua.OtherMailbox())
		}
		c, err := imap.Dial(ctx, imap.ForAccount(ua))
		if err != nil {
			t.Fatalf("IMAP as %s: %v", u.Username, err)
		}
		_ = c.Close()
	}
	// The account's one-user Token (and Refresh) does not pick one of two users, and says so with
	// an error the caller can test.
	if _, err := restarted.Token(ctx, token.Exchange); !errors.Is(err, auth.ErrSeveralUsers) || !strings.Contains(err.Error(), "ForUser") ||
		errors.Is(err, token.ErrLoginRequired) {
		t.Errorf("Token on an account holding two users: %v, want ErrSeveralUsers pointing to ForUser", err)
	}
	if _, err := restarted.Refresh(ctx, token.Exchange); !errors.Is(err, auth.ErrSeveralUsers) {
		t.Errorf("Refresh on an account holding two users: %v, want ErrSeveralUsers", err)
	}

	// bob is removed: his source says he must sign in, in Go's words; alice is unaffected, here and
	// in the next process.
	if err := restarted.RemoveUser(ctx, bob.User.HomeAccountID); err != nil {
		t.Fatal(err)
	}
	_, err = restarted.ForUser(bob.User).TokenSource(token.Exchange).Token(ctx)
	var lr *auth.LoginRequiredError
	if !errors.As(err, &lr) || !errors.Is(err, token.ErrLoginRequired) || lr.HomeAccountID != bob.User.HomeAccountID ||
		!strings.Contains(err.Error(), "ExchangeCode") || strings.Contains(err.Error(), "mailoauth login") {
		t.Fatalf("bob after his removal: %v, want a LoginRequiredError for him saying to use ExchangeCode", err)
	}
	next := e.webAccount(t)
	for _, a := range []*auth.Account{restarted, next} {
		if c := claims(t, userToken(t, a, alice.User, token.Exchange).AccessToken); c["upn"] != world.Alice {
			t.Errorf("alice after bob's removal got %v's token", c["upn"])
		}
	}
	if _, err := next.ForUser(bob.User).TokenSource(token.Exchange).Token(ctx); !errors.Is(err, token.ErrLoginRequired) {
		t.Errorf("bob in the next process after his removal: %v, want ErrLoginRequired", err)
	}
	if users, _ := next.Users(ctx); len(users) != 1 || users[0] != alice.User {
		t.Errorf("users after bob's removal: %+v, want alice alone", users)
	}
	// With one user left, the account's Token serves her.
	if c := claims(t, getTokenOf(t, next, token.Exchange).AccessToken); c["upn"] != world.Alice {
		t.Errorf("the account's one user's token is %v's", c["upn"])
	}
}

func getTokenOf(t *testing.T, a *auth.Account, r token.Resource) *token.Token {
	t.Helper()
	tok, err := a.Token(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAuthCodeURLOptions: the per-call login hint, prompt, redirect URI and extra scopes reach the
// authorization URL; a redeemed code needs the redirect it was issued for; a prompt that OpenID
// Connect does not define is refused before any URL is made.
func TestAuthCodeURLOptions(t *testing.T) {
	e := webEnv(t)
	app := e.webAccount(t)
	ctx := context.Background()
	extra := "https://outlook.office.com/SMTP.Send" // consent for SMTP too, beyond the account's IMAP
	u, verifier, err := app.AuthCodeURL(ctx, "s1", auth.AuthCodeOptions{LoginHint: world.Bob, Prompt: "select_account", RedirectURI: webOther, Scopes: []string{extra}})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.Parse(u)
	v := q.Query()
	if v.Get("login_hint") != world.Bob || v.Get("prompt") != "select_account" || v.Get("redirect_uri") != webOther ||
		!strings.Contains(v.Get("scope"), extra) || !strings.Contains(v.Get("scope"), "IMAP.AccessAsUser.All") {
		t.Errorf("authorization URL query %v lacks the call's options", v)
	}
	back := e.browserSignIn(t, u, world.Bob, "bob-password")
	if back.Path != "/other-callback" {
		t.Fatalf("sent back to %s, want the call's redirect URI", back)
	}
	// Redeemed with the account's own redirect URI instead of the one it was issued for: refused.
	if _, err := app.ExchangeCode(ctx, back.Query().Get("code"), verifier, auth.AuthCodeOptions{}); err == nil {
		t.Error("a code was redeemed with another redirect URI than it was issued for")
	}
	if _, _, err := app.AuthCodeURL(ctx, "s2", auth.AuthCodeOptions{Prompt: "always"}); err == nil || !strings.Contains(err.Error(), "Prompt") {
		t.Errorf("prompt \"always\": %v, want an error naming Prompt", err)
	}
}

// TestDeviceCodeCallback: a device-code login hands the code to LoginOptions.DeviceCode as a
// value — the user code, where to enter it, until when, and the message — and with that code alone
// a person signs in on the verification page; nothing is written anywhere else.
func TestDeviceCodeCallback(t *testing.T) {
	e := newEnv(t, nil, "", nil) // nobody is approved automatically
	a, err := auth.New(e.cfg, auth.Options{Store: e.store(t)}).Account("alice-device")
	if err != nil {
		t.Fatal(err)
	}
	var got auth.DeviceCode
	approved := make(chan error, 1)
	start := time.Now()
	si, err := a.Login(context.Background(), auth.LoginOptions{DeviceCode: func(dc auth.DeviceCode) {
		got = dc
		// The person, on another device: the verification page, the code, their credentials.
		resp, err := e.emu.HTTPClient().PostForm(dc.VerificationURI, url.Values{
			"otc": {dc.UserCode}, "username": {world.Bob}, "password": {"bob-password"}, "action": {"accept"}})
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "You have signed in") {
				err = errors.New("the verification page did not sign bob in")
			}
		}
		approved <- err
	}})
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got.UserCode == "" || !strings.HasPrefix(got.VerificationURI, e.emu.Authority()) || !got.ExpiresOn.After(start) ||
		!strings.Contains(got.Message, got.UserCode) || !strings.Contains(got.Message, got.VerificationURI) {
		t.Errorf("device code %+v: want the code, the emulator's verification URI, a future expiry and a message naming both", got)
	}
	if si.User.Username != world.Bob || claims(t, si.Token.AccessToken)["upn"] != world.Bob {
		t.Errorf("the device login signed in %q, want bob who entered the code", si.User.Username)
	}
}

// TestDeviceLoginWithNobodyToShowTheCode: with neither LoginOptions.DeviceCode nor Options.Prompt
// a device-code login fails at once, before asking the identity platform for a code, and says what
// to set.
func TestDeviceLoginWithNobodyToShowTheCode(t *testing.T) {
	e := newEnv(t, nil, "", nil)
	a, err := auth.New(e.cfg, auth.Options{Store: e.store(t)}).Account("alice-device")
	if err != nil {
		t.Fatal(err)
	}
	before := e.emu.Identity.Requests("devicecode")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a poll would run until the code expires
	defer cancel()
	_, err = a.Login(ctx, auth.LoginOptions{})
	var ce *auth.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "LoginOptions.DeviceCode") || ctx.Err() != nil {
		t.Fatalf("device login with nobody to show the code: %v, want a ConfigError naming LoginOptions.DeviceCode at once", err)
	}
	if n := e.emu.Identity.Requests("devicecode") - before; n != 0 {
		t.Errorf("%d device-code requests for a login that cannot show the code", n)
	}
}

// TestStoreOfEarlierVersionKeepsWorking: a store written before accounts held many users keeps one
// entry per account ("account/NAME", the user's tokens in it). The account's user is served from
// it without a sign-in or a request, listed by Users, and from then on kept in the user's own entry.
func TestStoreOfEarlierVersionKeepsWorking(t *testing.T) {
	e := newEnv(t, nil, world.Alice, nil)
	ctx := context.Background()
	first, _ := e.manager(t, nil).Account("alice-device")
	si, err := first.Login(ctx, auth.LoginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The layout of the earlier version: the same entry, under the account's key alone.
	st := e.store(t)
	userKey := "account/alice-device/user/" + si.User.HomeAccountID
	raw, err := st.Load(ctx, userKey)
	if err != nil || raw == nil {
		t.Fatalf("no entry %s after a login: %v", userKey, err)
	}
	put := func(key string, v []byte) {
		if err := st.Update(ctx, key, func([]byte) ([]byte, error) { return v, nil }); err != nil {
			t.Fatal(err)
		}
	}
	put("account/alice-device", raw)
	put(userKey, nil)

	a, _ := e.manager(t, nil).Account("alice-device") // a process of this version
	before := e.emu.Identity.Requests("token")
	if tok := getTokenOf(t, a, token.Exchange); tok.AccessToken != si.Token.AccessToken {
		t.Error("the token stored by the earlier version was not served")
	}
	if n := e.emu.Identity.Requests("token") - before; n != 0 {
		t.Errorf("%d token requests for a token the earlier version stored", n)
	}
	if users, err := a.Users(ctx); err != nil || len(users) != 1 || users[0] != si.User {
		t.Errorf("users of the earlier version's store: %+v, %v; want alice", users, err)
	}
	if old, _ := st.Load(ctx, "account/alice-device"); old != nil {
		t.Error("the earlier version's entry is still there after its user was moved")
	}
	if c := claims(t, getTokenOf(t, a, token.Graph).AccessToken); c["upn"] != world.Alice {
		t.Errorf("a refresh with the earlier version's refresh token gave %v's token", c["upn"])
	}
}

// TestUsersRefreshConcurrently: many callers at once for two users' Graph tokens, in a process
// that holds none: one refresh per user, and every caller gets their own user's token.
func TestUsersRefreshConcurrently(t *testing.T) {
	e := webEnv(t)
	app := e.webAccount(t)
	signIns := []*auth.SignIn{
		e.webSignIn(t, app, world.Alice, "alice-password", auth.AuthCodeOptions{}),
		e.webSignIn(t, app, world.Bob, "bob-password", auth.AuthCodeOptions{}),
	}
	restarted := e.webAccount(t)
	before := e.emu.Identity.Requests("token")
	var wg sync.WaitGroup
	for i := range 200 {
		u := signIns[i%2].User
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := restarted.ForUser(u).TokenSource(token.Graph).Token(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			if upn := claims(t, tok.AccessToken)["upn"]; upn != u.Username {
				t.Errorf("%s got %v's Graph token", u.Username, upn)
			}
		}()
	}
	wg.Wait()
	if n := e.emu.Identity.Requests("token") - before; n != 2 {
		t.Errorf("%d token requests for two users' Graph tokens, want 2 (one each)", n)
	}
}

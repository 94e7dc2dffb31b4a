package auth_test

// Identity-platform faults against a delegated account holding a refresh token:
// while the token endpoint fails (5xx, a hung answer, a dropped connection) a cached access token
// keeps being served without a request, the refresh is retried a bounded number of times and then
// fails as a transient *auth.Error in one sentence, the refresh token is kept, and after the fault
// the very same refresh token works. A refused grant (invalid_grant) is not retried and says "log in".

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/store"
)

// sentGrants records the grant_type and refresh_token of every token request an account sends.
type sentGrants struct {
	mu     sync.Mutex
	grants []url.Values
}

func (s *sentGrants) wrap(base http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") && r.Body != nil {
			b, err := io.ReadAll(r.Body)
			r.Body.Close()
			if err != nil {
				return nil, err
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
			q, _ := url.ParseQuery(string(b))
			s.mu.Lock()
			s.grants = append(s.grants, q)
			s.mu.Unlock()
		}
		return base.RoundTrip(r)
	})
}

// refreshTokens are the refresh tokens sent so far, in order.
func (s *sentGrants) refreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rts []string
	for _, q := range s.grants {
		if q.Get("grant_type") == "refresh_token" {
			rts = append(rts, q.Get("refresh_token"))
		}
	}
	return rts
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// faultEnv is an emulator whose token endpoint answers alice-device's login and then misbehaves
// as f says for the next three requests (retryAttempts: one whole Token call), plus a recorder of
// what the account sends.
func faultEnv(t *testing.T, f world.Fault, httpTimeout time.Duration) (*env, *sentGrants) {
	t.Helper()
	w := world.Default()
	f.Endpoint, f.After, f.Times = "token", 1, 3
	w.Faults = []world.Fault{f}
	e := newEnv(t, w, world.Alice, nil)
	rec := &sentGrants{}
	e.options = func(o *auth.Options) {
		o.HTTPTimeout = httpTimeout
		count := o.Transport
		o.Transport = func(rt http.RoundTripper) http.RoundTripper { return rec.wrap(count(rt)) }
	}
	return e, rec
}

// assertOneSentence checks that an error reads as one line, names the account, and carries no
// token, refresh token or secret.
func assertOneSentence(t *testing.T, err error, secrets ...string) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") || !strings.Contains(msg, "account alice-device") {
		t.Errorf("error is not one sentence naming the account: %q", msg)
	}
	if strings.Contains(msg, "eyJ") {
		t.Errorf("error holds something that looks like a JWT: %q", msg)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error holds a secret: %q", msg)
		}
	}
}

func TestIdentityFaultsKeepTheRefreshToken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fault   world.Fault
		timeout time.Duration // the account's HTTPTimeout (0: the default)
		says    string        // in the error message
	}{
		{"503", world.Fault{Status: 503}, 0, "refresh"},
		// A hung identity platform: each request outlives the client's timeout.
		{"timeout", world.Fault{Latency: 30 * time.Second}, 300 * time.Millisecond, "did not answer in time"},
		{"dropped connection", world.Fault{Drop: true}, 0, "cannot reach the identity platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := faultEnv(t, tc.fault, tc.timeout)
			m := e.manager(t, nil)
			exch := login(t, m, "alice-device", auth.LoginOptions{})
			a, _ := m.Account("alice-device")
			ctx := context.Background()
			before := e.emu.Identity.Requests("token")

			// The Exchange token from the login is valid: served without asking, in this process and
			// in another one over the same store.
			if got := getToken(t, m, "alice-device", token.Exchange); got.AccessToken != exch.AccessToken {
				t.Fatal("the cached Exchange token was not served")
			}
			if got := getToken(t, e.manager(t, nil), "alice-device", token.Exchange); got.AccessToken != exch.AccessToken {
				t.Fatal("the stored Exchange token was not served to a second process")
			}
			if n := e.emu.Identity.Requests("token") - before; n != 0 {
				t.Fatalf("%d token requests for cached tokens", n)
			}

			// Graph needs a refresh, during the fault: retried, then a transient failure.
			start := time.Now()
			_, err := a.Token(ctx, token.Graph)
			var ae *auth.Error
			if !errors.As(err, &ae) || !ae.Transient || errors.Is(err, token.ErrLoginRequired) || ae.InvalidGrant() {
				t.Fatalf("during the fault: %v, want a transient error that is not 'log in'", err)
			}
			if n := e.emu.Identity.Requests("token") - before; n != 3 {
				t.Fatalf("%d token requests during the fault, want 3 (one attempt and two retries)", n)
			}
			if tc.timeout > 0 && time.Since(start) < 3*tc.timeout {
				t.Errorf("three timed-out attempts took %v, less than 3×%v", time.Since(start), tc.timeout)
			}
			if !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "mailoauth login") {
				t.Errorf("error %q should say %q and not ask for a login", err, tc.says)
			}
			rts := rec.refreshTokens()
			if len(rts) != 3 || rts[0] == "" || rts[1] != rts[0] || rts[2] != rts[0] {
				t.Fatalf("refresh tokens sent during the fault: %d, not one and the same (%v)", len(rts), len(rts) == 3)
			}
			assertOneSentence(t, err, rts[0], exch.AccessToken)
			t.Logf("error during the fault: %v", err)
			if h, _ := a.Held(ctx); !h.RefreshToken {
				t.Fatal("the refresh token was dropped after a transient failure")
			}

			// Still during the outage as far as the caller knows: Exchange keeps being served.
			mid := e.emu.Identity.Requests("token")
			if got := getToken(t, m, "alice-device", token.Exchange); got.AccessToken != exch.AccessToken {
				t.Fatal("the cached Exchange token stopped being served after a failed refresh")
			}
			if n := e.emu.Identity.Requests("token") - mid; n != 0 {
				t.Fatalf("%d token requests for a cached token after a failed refresh", n)
			}

			// The fault is over: the same refresh token gets a Graph token, with one request.
			g := getToken(t, m, "alice-device", token.Graph)
			if c := claims(t, g.AccessToken); c["aud"] != "https://graph.microsoft.com" || c["upn"] != world.Alice {
				t.Fatalf("graph claims after the fault: %v", c)
			}
			if n := e.emu.Identity.Requests("token") - mid; n != 1 {
				t.Fatalf("%d token requests after the fault, want 1", n)
			}
			if rts := rec.refreshTokens(); len(rts) != 4 || rts[3] != rts[0] {
				t.Fatal("the refresh after the fault did not use the refresh token held before it")
			}
		})
	}
}

// TestSlowIdentityPlatformWithinTimeout: a slow answer inside the client's timeout is waited for,
// not retried.
func TestSlowIdentityPlatformWithinTimeout(t *testing.T) {
	const latency = 1500 * time.Millisecond
	e, _ := faultEnv(t, world.Fault{Latency: latency}, 0)
	m := e.manager(t, nil)
	login(t, m, "alice-device", auth.LoginOptions{})
	before := e.emu.Identity.Requests("token")
	start := time.Now()
	g := getToken(t, m, "alice-device", token.Graph)
	if d := time.Since(start); d < latency {
		t.Errorf("a slow answer came back in %v, before the %v latency", d, latency)
	}
	if c := claims(t, g.AccessToken); c["aud"] != "https://graph.microsoft.com" {
		t.Fatalf("claims %v", c)
	}
	if n := e.emu.Identity.Requests("token") - before; n != 1 {
		t.Fatalf("%d token requests for one slow answer, want 1 (no retry)", n)
	}
}

// revokedAlice is the default world in which every refresh token alice is issued is refused (her
// sessions revoked after the sign-in: AADSTS50173, invalid_grant).
func revokedAlice() *world.World {
	w := world.Default()
	for _, tn := range w.Tenants {
		if u := tn.User(world.Alice); u != nil {
			u.RevokedBefore = time.Now().Add(time.Hour)
		}
	}
	return w
}

// TestInvalidGrantSaysLogInAgain: a revoked refresh token (the user's sessions were revoked after
// the login: AADSTS50173, invalid_grant) is not retried, is told apart from a transient failure, and
// says what to run; the valid Exchange token from the login keeps being served meanwhile.
func TestInvalidGrantSaysLogInAgain(t *testing.T) {
	e := newEnv(t, revokedAlice(), world.Alice, nil)
	rec := &sentGrants{}
	e.options = func(o *auth.Options) {
		count := o.Transport
		o.Transport = func(rt http.RoundTripper) http.RoundTripper { return rec.wrap(count(rt)) }
	}
	m := e.manager(t, nil)
	exch := login(t, m, "alice-device", auth.LoginOptions{})
	a, _ := m.Account("alice-device")
	before := e.emu.Identity.Requests("token")
	_, err := a.Token(context.Background(), token.Graph)
	var ae *auth.Error
	if !errors.Is(err, token.ErrLoginRequired) || !errors.As(err, &ae) || !ae.InvalidGrant() || ae.Transient || ae.AADSTS != 50173 {
		t.Fatalf("revoked refresh token: %v, want ErrLoginRequired from AADSTS50173 invalid_grant", err)
	}
	if !saysSignIn(err) {
		t.Errorf("error does not say how to sign in again (and only in Go's words): %q", err)
	}
	if n := e.emu.Identity.Requests("token") - before; n != 1 {
		t.Fatalf("a refused grant was sent %d times, want 1 (never retried)", n)
	}
	rts := rec.refreshTokens()
	if len(rts) != 1 {
		t.Fatalf("%d refresh tokens sent", len(rts))
	}
	assertOneSentence(t, err, rts[0], exch.AccessToken)
	if got := getToken(t, m, "alice-device", token.Exchange); got.AccessToken != exch.AccessToken {
		t.Error("the valid Exchange token stopped being served after the refresh token was refused")
	}
}

// TestStrictRotationTwoProcesses: under an identity platform that revokes a refresh token once it is
// redeemed, two processes over one store refresh at the same moment with the same refresh token. The
// one that loses the race is refused (invalid_grant), finds the successor the other stored, and uses
// it, instead of telling its user to sign in again. The interleaving is forced: the second process's
// refresh request is held until the first one's refresh has finished and been stored. The second
// process does not take the store's refresh lock (as an older mailoauth, or one over a Store without
// store.Locker, would not; with the lock the race cannot happen: TestStrictRotationManyProcesses), so this tests the backstop behind the lock.
func TestStrictRotationTwoProcesses(t *testing.T) {
	w := world.Default()
	w.Tokens.RevokeRotatedRefreshTokens = true
	e := newEnv(t, w, world.Alice, nil)
	first := e.manager(t, nil)
	login(t, first, "alice-device", auth.LoginOptions{})

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rec := &sentGrants{}
	e.options = func(o *auth.Options) {
		o.Store = unlocked{o.Store}
		count := o.Transport
		o.Transport = func(rt http.RoundTripper) http.RoundTripper {
			inner := rec.wrap(count(rt))
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
					once.Do(func() { close(held); <-release })
				}
				return inner.RoundTrip(r)
			})
		}
	}
	second := e.manager(t, nil)
	e.options = nil

	type result struct {
		tok *token.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := second.Account("alice-device")
		if err != nil {
			done <- result{nil, err}
			return
		}
		tok, err := a.Token(context.Background(), token.Graph)
		done <- result{tok, err}
	}()
	<-held // the second process has read the store and is about to send the refresh token
	a, err := first.Account("alice-device")
	if err != nil {
		t.Fatal(err)
	}
	before := e.emu.Identity.Requests("token")
	if _, err := a.Refresh(context.Background(), token.Exchange); err != nil {
		t.Fatal(err)
	}
	if e.emu.Identity.Requests("token") == before {
		t.Fatal("the first process did not refresh")
	}
	close(release)

	res := <-done
	if res.err != nil {
		t.Fatalf("the process that lost the refresh race: %v (it should have used the refresh token stored by the other)", res.err)
	}
	if aud := claims(t, res.tok.AccessToken)["aud"]; aud != "https://graph.microsoft.com" {
		t.Fatalf("token for %v", aud)
	}
	rts := rec.refreshTokens()
	if len(rts) != 2 || rts[0] == rts[1] {
		t.Fatalf("the losing process sent %d refresh grants; want the stale one, then the stored successor", len(rts))
	}
	// What is stored works for a third process.
	third, err := e.manager(t, nil).Account("alice-device")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := third.Refresh(context.Background(), token.Exchange); err != nil {
		t.Fatalf("a third process refreshing with what is stored: %v", err)
	}
}

// unlocked is a store without store.Locker (its Store hides the Locker of the store it wraps): a
// process that does not share the refresh lock, or a library user's own Store.
type unlocked struct{ store.Store }

// TestRefreshReturnsAtTheCallersDeadline: a forced refresh against a hung identity platform gives the
// caller back its own deadline, as Token does (the proxy's login deadline depends on it); the refresh
// itself goes on for the account's other callers.
func TestRefreshReturnsAtTheCallersDeadline(t *testing.T) {
	e, _ := faultEnv(t, world.Fault{Latency: 3 * time.Second}, 0)
	m := e.manager(t, nil)
	login(t, m, "alice-device", auth.LoginOptions{})
	a, err := m.Account("alice-device")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = a.Refresh(ctx, token.Exchange)
	if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d > 2*time.Second {
		t.Fatalf("Refresh with a 300 ms deadline against a 3 s identity platform: %v after %v", err, d)
	}
	// Said as the identity platform's transient failure, in one sentence a user can act on.
	var ae *auth.Error
	if !errors.As(err, &ae) || !ae.Transient || !strings.Contains(err.Error(), "the identity platform did not answer in time") {
		t.Fatalf("Refresh past its deadline: %q; want a transient *auth.Error saying the platform did not answer", err)
	}
}

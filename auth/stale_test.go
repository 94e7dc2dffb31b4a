package auth_test

// Issue 13, item 5: an outage of the identity platform must not start hurting Margin early. A token
// inside its refresh margin whose refresh fails is served until it really expires, in the process
// that holds it and in a new one that reads it from the store; a token that has really expired fails.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/storetest"
)

// left is how long the tokens of these tests have left once aged: under Margin, so they are inside
// their refresh margin, and still valid for minutes.
const left = 4 * time.Minute

// age makes the access tokens the store holds for account expire at exp.
func (e *env) age(t *testing.T, account string, exp time.Time) {
	t.Helper()
	storetest.AgeAccessTokens(t, e.store(t), "account/"+account, exp)
}

// clock is a manager's clock (Options.Now): the real time plus a shift the test sets.
type clock struct{ shift atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.shift.Load())) }

// outage is alice-device signed in with a manager on c's clock, its stored token aged to expire in
// left, and then an identity platform that fails every token request as f says.
func outage(t *testing.T, f world.Fault, httpTimeout time.Duration, c *clock) (*env, *auth.Manager, *token.Token) {
	t.Helper()
	w := world.Default()
	f.Endpoint, f.After = "token", 1
	w.Faults = []world.Fault{f}
	e := newEnv(t, w, world.Alice, nil)
	e.options = func(o *auth.Options) {
		o.HTTPTimeout = httpTimeout
		o.Now = c.now
	}
	m := e.manager(t, nil)
	tok := login(t, m, "alice-device", auth.LoginOptions{})
	e.age(t, "alice-device", time.Now().Add(left))
	return e, m, tok
}

// servedStale checks that tok is the login's token, handed out after a refresh that failed with a
// transient error (not a "log in" one).
func servedStale(t *testing.T, tok *token.Token, err error, want *token.Token) {
	t.Helper()
	if err != nil {
		t.Fatalf("a valid cached token inside the refresh margin was not served during the outage: %v", err)
	}
	if tok.AccessToken != want.AccessToken {
		t.Fatal("the token served during the outage is not the cached one")
	}
	var ae *auth.Error
	if !errors.As(tok.RefreshErr, &ae) || !ae.Transient || errors.Is(tok.RefreshErr, token.ErrLoginRequired) {
		t.Fatalf("RefreshErr %v, want the transient failure of the refresh", tok.RefreshErr)
	}
}

func TestOutageServesTokenInsideMargin(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fault       world.Fault
		httpTimeout time.Duration
	}{
		{"503", world.Fault{Status: 503}, 0},
		// A hung identity platform: each request outlives the client's timeout.
		{"timeout", world.Fault{Latency: 30 * time.Second}, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c clock
			e, m, exch := outage(t, tc.fault, tc.httpTimeout, &c)
			ctx := context.Background()

			// The process that signed in, its token now inside the margin (its clock is moved to
			// where the stored token is): the refresh is tried, with its retries, and fails.
			c.shift.Store(int64(time.Until(exch.ExpiresOn) - left))
			a, _ := m.Account("alice-device")
			before := e.emu.Identity.Requests("token")
			tok, err := a.Token(ctx, token.Exchange)
			servedStale(t, tok, err, exch)
			if n := e.emu.Identity.Requests("token") - before; n != 3 {
				t.Fatalf("%d token requests, want 3 (the refresh was tried, with its retries)", n)
			}
			// Served again without a new attempt for a while: every caller must not wait for the retries.
			mid := e.emu.Identity.Requests("token")
			tok, err = a.Token(ctx, token.Exchange)
			servedStale(t, tok, err, exch)
			if n := e.emu.Identity.Requests("token") - mid; n != 0 {
				t.Fatalf("%d token requests right after a failed refresh, want 0", n)
			}

			// A new process (`mailoauth token`) on the real clock: the token comes from the store.
			c.shift.Store(0)
			b, _ := e.manager(t, nil).Account("alice-device")
			tok, err = b.Token(ctx, token.Exchange)
			servedStale(t, tok, err, exch)
			if d := time.Until(tok.ExpiresOn); d > left || d < 0 {
				t.Fatalf("the stored token served expires in %v", d)
			}

			// Once its token has really expired the outage is the caller's error, in either process.
			for _, p := range []struct {
				acc *auth.Account
				exp time.Time
			}{{b, tok.ExpiresOn}, {a, exch.ExpiresOn}} {
				c.shift.Store(int64(time.Until(p.exp) + time.Second))
				_, err = p.acc.Token(ctx, token.Exchange)
				var ae *auth.Error
				if err == nil || !errors.As(err, &ae) || !ae.Transient || errors.Is(err, token.ErrLoginRequired) {
					t.Fatalf("expired token during the outage: %v; want the transient failure", err)
				}
			}
		})
	}
}

// TestHungRefreshServesTokenWithinCallersDeadline: against an identity platform that hangs (the
// default 60 s client timeout), a caller with a deadline gets the still-valid cached token before its
// deadline, not its deadline's error.
func TestHungRefreshServesTokenWithinCallersDeadline(t *testing.T) {
	var c clock
	e, _, exch := outage(t, world.Fault{Latency: 30 * time.Second}, 0, &c)
	a, _ := e.manager(t, nil).Account("alice-device")
	const deadline = 4 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	tok, err := a.Token(ctx, token.Exchange)
	servedStale(t, tok, err, exch)
	if d := time.Since(start); d >= deadline || ctx.Err() != nil {
		t.Fatalf("served after %v, not before the caller's %v deadline", d, deadline)
	}
}

// TestRefusedRefreshInsideMargin: the refresh token is refused (the user's sessions were revoked, or
// the account disabled) while the access token has minutes left. Only a transient failure falls back
// to the cached token: a refusal can mean the user must lose access, so the call fails with
// ErrLoginRequired saying what to run, in this process and in a new one, after one token request.
func TestRefusedRefreshInsideMargin(t *testing.T) {
	e := newEnv(t, revokedAlice(), world.Alice, nil)
	var c clock
	e.options = func(o *auth.Options) { o.Now = c.now }
	m := e.manager(t, nil)
	exch := login(t, m, "alice-device", auth.LoginOptions{})
	e.age(t, "alice-device", time.Now().Add(left))
	// This process (its clock where the stored token is), and a new one on the real clock.
	for i, proc := range []*auth.Manager{m, e.manager(t, nil)} {
		c.shift.Store(0)
		if i == 0 {
			c.shift.Store(int64(time.Until(exch.ExpiresOn) - left))
		}
		a, _ := proc.Account("alice-device")
		before := e.emu.Identity.Requests("token")
		tok, err := a.Token(context.Background(), token.Exchange)
		if tok != nil || !errors.Is(err, token.ErrLoginRequired) || !saysSignIn(err) {
			t.Fatalf("a refused refresh inside the margin: token served %v, err %v; want ErrLoginRequired saying how to sign in", tok != nil, err)
		}
		if n := e.emu.Identity.Requests("token") - before; n != 1 {
			t.Fatalf("%d token requests for a refused refresh, want 1", n)
		}
	}
}

// TestOutageServesAppTokenInsideMargin: the same for an app-only account (client credentials), whose
// token is not a user's: a new process gets the stored one while the identity platform answers 503.
func TestOutageServesAppTokenInsideMargin(t *testing.T) {
	w := world.Default()
	w.Faults = []world.Fault{{Endpoint: "token", After: 1, Status: 503}} // after the first token
	e := newEnv(t, w, "", nil)
	first := getToken(t, e.manager(t, nil), "daemon", token.Exchange)
	e.age(t, "daemon", time.Now().Add(left))
	a, _ := e.manager(t, nil).Account("daemon")
	tok, err := a.Token(context.Background(), token.Exchange)
	servedStale(t, tok, err, first)
}

// TestRefusedTokenNotServedAgain: a mail server refused the cached token (Refresh), and the refresh
// that should replace it fails in an outage. The refused token is not served again — not by this
// process's next Token, nor by a new process reading the store — although it has not expired: the
// caller gets the outage's error instead of a token it knows to be refused.
func TestRefusedTokenNotServedAgain(t *testing.T) {
	w := world.Default()
	w.Faults = []world.Fault{{Endpoint: "token", After: 1, Status: 503}} // after the login
	e := newEnv(t, w, world.Alice, nil)
	m := e.manager(t, nil)
	exch := login(t, m, "alice-device", auth.LoginOptions{})
	ctx := context.Background()
	a, _ := m.Account("alice-device")
	if tok, err := a.Token(ctx, token.Exchange); err != nil || tok.AccessToken != exch.AccessToken {
		t.Fatalf("the login's token: %v", err)
	}
	if _, err := a.Refresh(ctx, token.Exchange); err == nil {
		t.Fatal("a refresh during the outage succeeded")
	}
	for i, acc := range []*auth.Account{a, must(e.manager(t, nil).Account("alice-device"))} {
		tok, err := acc.Token(ctx, token.Exchange)
		if tok != nil && tok.AccessToken == exch.AccessToken {
			t.Fatalf("process %d: the refused token was served again (RefreshErr %v)", i, tok.RefreshErr)
		}
		var ae *auth.Error
		if !errors.As(err, &ae) || !ae.Transient {
			t.Fatalf("process %d: %v, want the outage's transient error", i, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

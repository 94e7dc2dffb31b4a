package auth_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/store"
	"github.com/mailoauth/mailoauth/token"
)

// manyUsers signs alice in to the web app once and copies her store entry to n more users (her
// entry with another object id in every home account id: to MSAL, n other users, each with a
// valid access token and a refresh token). It returns the users and the store holding them all.
func manyUsers(tb testing.TB, e *env, n int) ([]auth.User, *store.Memory) {
	tb.Helper()
	st := store.NewMemory()
	a := webAccountOver(tb, e, st, nil)
	si := e.webSignIn(tb, a, world.Alice, "alice-password", auth.AuthCodeOptions{})
	ctx := context.Background()
	key := "account/web/user/" + si.User.HomeAccountID
	raw, err := st.Load(ctx, key)
	if err != nil || raw == nil {
		tb.Fatalf("alice's entry: %v", err)
	}
	oid, _, _ := strings.Cut(si.User.HomeAccountID, ".")
	users := []auth.User{si.User}
	for i := range n {
		fake := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		home := fake + "." + si.User.TenantID
		copied := strings.ReplaceAll(string(raw), oid, fake)
		if err := st.Update(ctx, "account/web/user/"+home, func([]byte) ([]byte, error) { return []byte(copied), nil }); err != nil {
			tb.Fatal(err)
		}
		users = append(users, auth.User{Username: world.Alice, HomeAccountID: home, TenantID: si.User.TenantID})
	}
	return users, st
}

// BenchmarkManyUsers measures what a web app's account holds in memory for 500 signed-in users
// whose tokens it got from their MSAL clients: "cached", tokens inside auth's refresh margin that
// MSAL answers from its cache; "refresh", tokens of 4 minutes, inside MSAL's margin too, so each
// user's is refreshed. It reports the heap after serving them all, per user, the MSAL clients
// held, and the requests to the identity platform.
func BenchmarkManyUsers(b *testing.B) {
	const n = 500
	for _, c := range []struct {
		name     string
		lifetime time.Duration
		ahead    time.Duration // the account's clock
	}{{"cached", time.Hour, 56 * time.Minute}, {"refresh", 4 * time.Minute, 0}} {
		b.Run(c.name, func(b *testing.B) {
			e := webEnv(b, func(w *world.World) { w.Tokens.AccessToken = c.lifetime })
			users, st := manyUsers(b, e, n)
			clock := func() time.Time { return time.Now().Add(c.ahead) }
			for range b.N {
				b.StopTimer()
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				tokens, meta := e.emu.Identity.Requests("token"), e.emu.Identity.Requests("discovery")
				a := webAccountOver(b, e, st, clock)
				b.StartTimer()
				for _, u := range users {
					if _, err := a.ForUser(u).TokenSource(token.Exchange).Token(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&m1)
				b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/float64(len(users)), "heap-B/user")
				b.ReportMetric(float64(auth.UserClients(a)), "clients")
				b.ReportMetric(float64(e.emu.Identity.Requests("discovery")-meta), "metadata-requests")
				b.ReportMetric(float64(e.emu.Identity.Requests("token")-tokens), "token-requests")
				runtime.KeepAlive(a)
				b.StartTimer()
			}
		})
	}
}

// signedInUsers is a web app's env whose world has n users (alice, bob and userI@contoso.test),
// all signed in to the web app over st.
func signedInUsers(t *testing.T, n int, change func(*world.World)) (*env, []auth.User, store.Store) {
	t.Helper()
	e := webEnv(t, func(w *world.World) {
		for i := range n - 2 { // alice and bob are there
			u := fmt.Sprintf("user%d@contoso.test", i)
			w.Tenants[0].Users = append(w.Tenants[0].Users, &world.User{UPN: u, Password: u + "-pw"})
		}
		change(w)
	})
	st := store.NewMemory()
	signIn := webAccountOver(t, e, st, nil)
	var users []auth.User
	for i := range n {
		user, pw := world.Alice, "alice-password"
		switch {
		case i == 1:
			user, pw = world.Bob, "bob-password"
		case i > 1:
			user = fmt.Sprintf("user%d@contoso.test", i-2)
			pw = user + "-pw"
		}
		users = append(users, e.webSignIn(t, signIn, user, pw, auth.AuthCodeOptions{}).User)
	}
	return e, users, st
}

// An account keeps at most its limit of users' MSAL clients however many users it serves, at once
// or in turn; a user whose client was dropped is served again from the store, with no sign-in and
// no request to the identity platform.
func TestUserClientsAreBounded(t *testing.T) {
	const limit, n = 2, 6
	e, users, st := signedInUsers(t, n, func(*world.World) {})

	// A new process whose clock puts every token inside the refresh margin: each comes from the
	// user's MSAL client, which answers from the store.
	a := webAccountOver(t, e, st, func() time.Time { return time.Now().Add(56 * time.Minute) })
	auth.SetUserClientLimit(a, limit)
	ctx := context.Background()
	serve := func(u auth.User) {
		tok, err := a.ForUser(u).TokenSource(token.Exchange).Token(ctx)
		if err != nil {
			t.Errorf("%s: %v", u.Username, err)
			return
		}
		if c := claims(t, tok.AccessToken); c["upn"] != u.Username {
			t.Errorf("%s was served %v's token", u.Username, c["upn"])
		}
	}
	tokens := e.emu.Identity.Requests("token")
	for _, u := range users {
		serve(u)
		if held := auth.UserClients(a); held > limit {
			t.Fatalf("%d clients held after serving %s, limit %d", held, u.Username, limit)
		}
	}
	// alice's client was dropped long ago; she and then everybody at once are served again.
	serve(users[0])
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func() { defer wg.Done(); serve(u) }()
	}
	wg.Wait()
	if held := auth.UserClients(a); held > limit {
		t.Fatalf("%d clients held after serving %d users at once, limit %d", held, n, limit)
	}
	if n := e.emu.Identity.Requests("token") - tokens; n != 0 {
		t.Errorf("%d token requests for tokens the store holds", n)
	}
}

// The users' MSAL clients of an account, rebuilt ones included, ask for the authority's metadata
// once between them: each user's first refresh costs one request, the token request.
func TestUserClientsShareMetadata(t *testing.T) {
	const n = 3
	// 4-minute tokens are inside MSAL's margin as well as auth's: every user's token is refreshed.
	e, users, st := signedInUsers(t, n, func(w *world.World) { w.Tokens.AccessToken = 4 * time.Minute })
	a := webAccountOver(t, e, st, nil)
	auth.SetUserClientLimit(a, 1) // each user's client is a new one
	tokens, meta := e.emu.Identity.Requests("token"), e.emu.Identity.Requests("discovery")
	for _, u := range users {
		if _, err := a.ForUser(u).TokenSource(token.Exchange).Token(context.Background()); err != nil {
			t.Fatalf("%s: %v", u.Username, err)
		}
	}
	if got := e.emu.Identity.Requests("token") - tokens; got != n {
		t.Errorf("%d token requests for %d users' refreshes", got, n)
	}
	if got := e.emu.Identity.Requests("discovery") - meta; got != 1 {
		t.Errorf("%d requests for the authority's metadata by %d users' clients, want 1", got, n)
	}
}

// The hot path does not keep the tokens of every user ever served: once they expire, they go.
func TestHotPathForgetsExpiredTokens(t *testing.T) {
	const n = 20
	e := webEnv(t)
	users, st := manyUsers(t, e, n)
	var ahead atomic.Int64 // the account's clock, ahead of the real one
	ahead.Store(int64(56 * time.Minute))
	a := webAccountOver(t, e, st, func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	serve := func(u auth.User) {
		t.Helper()
		if _, err := a.ForUser(u).TokenSource(token.Exchange).Token(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		serve(u)
	}
	if held := auth.HotTokens(a); held != len(users) {
		t.Fatalf("%d tokens on the hot path after serving %d users", held, len(users))
	}
	// Two hours later every one of those tokens has expired; serving one user clears them.
	ahead.Store(int64(2 * time.Hour))
	serve(users[0])
	if held := auth.HotTokens(a); held > 1 {
		t.Fatalf("%d tokens on the hot path after they expired, want at most the one just served", held)
	}
}

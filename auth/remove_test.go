package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/store"
	"github.com/mailoauth/mailoauth/token"
)

// heldTokenAnswers holds back every token request until release is closed; entered receives one
// value when the first one arrives.
func heldTokenAnswers() (wrap func(http.RoundTripper) http.RoundTripper, entered chan struct{}, release chan struct{}) {
	entered, release = make(chan struct{}, 1), make(chan struct{})
	wrap = func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
			}
			return base.RoundTrip(r)
		})
	}
	return wrap, entered, release
}

// lockSpy is a file store that says on locking when its Lock is called.
type lockSpy struct {
	*store.File
	locking chan string
}

func (s lockSpy) Lock(ctx context.Context, key string) (func(), error) {
	select {
	case s.locking <- key:
	default:
	}
	return s.File.Lock(ctx, key)
}

// lockless is a store without store.Locker (nor any other optional interface), as a library
// user's own may be.
type lockless struct{ store.Store }

// TestRemovedUserStaysRemoved: RemoveUser while the user's refresh waits for the identity
// platform's answer. The refresh must not write the user back: afterwards the store holds nothing
// of the user, a new process lists only the other user, and the user's tokens say sign in again.
// With a store.Locker store RemoveUser waits for the refresh; without one the refresh finds the
// user gone and keeps nothing.
func TestRemovedUserStaysRemoved(t *testing.T) {
	for _, withLocker := range []bool{true, false} {
		name := "locker"
		if !withLocker {
			name = "no locker"
		}
		t.Run(name, func(t *testing.T) {
			e := webEnv(t)
			ctx := context.Background()
			app := e.webAccount(t)
			alice := e.webSignIn(t, app, world.Alice, "alice-password", auth.AuthCodeOptions{}).User
			bob := e.webSignIn(t, app, world.Bob, "bob-password", auth.AuthCodeOptions{}).User

			spy := lockSpy{e.store(t), make(chan string, 1)}
			var st store.Store = spy
			if !withLocker {
				st = lockless{e.store(t)}
			}
			wrap, entered, release := heldTokenAnswers()
			web := webAccountWith(t, e, auth.Options{Store: st, Transport: wrap})
			refreshed := make(chan error, 1)
			go func() { // bob has no Graph token yet: this is a refresh with his refresh token
				_, err := web.ForUser(bob).TokenSource(token.Graph).Token(ctx)
				refreshed <- err
			}()
			<-entered
			select {
			case <-spy.locking: // the refresh's own lock, taken before its request
			default:
			}
			removed := make(chan error, 1)
			go func() { removed <- web.RemoveUser(ctx, bob.HomeAccountID) }()
			var rmErr error
			rmDone := false
			select {
			case rmErr = <-removed: // nothing made it wait for the refresh
				rmDone = true
			case <-spy.locking: // it waits for the refresh's lock
			}
			close(release)
			if !rmDone {
				rmErr = <-removed
			}
			if rmErr != nil {
				t.Fatal(rmErr)
			}
			if err := <-refreshed; err != nil && !errors.Is(err, token.ErrLoginRequired) {
				t.Errorf("the refresh that bob's removal overtook: %v, want his token or ErrLoginRequired", err)
			}

			keys, err := e.store(t).Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if strings.Contains(k, bob.HomeAccountID) {
					t.Errorf("the store holds %s after bob's removal: the refresh signed him in again", k)
				}
			}
			if users, err := e.webAccount(t).Users(ctx); err != nil || len(users) != 1 || users[0] != alice {
				t.Errorf("users in a new process after bob's removal: %+v, %v; want alice alone", users, err)
			}
			for _, r := range []token.Resource{token.Graph, token.Exchange} {
				if _, err := web.ForUser(bob).TokenSource(r).Token(ctx); !errors.Is(err, token.ErrLoginRequired) {
					t.Errorf("bob's %s token after his removal: %v, want ErrLoginRequired", r, err)
				}
			}
		})
	}
}

// TestUnknownUsersLeaveNothing: a thousand token requests (Token and Refresh) for users the store
// does not hold — made up, or removed — each say sign in, ask the identity platform nothing, and
// leave no file beside the store (no lock file per id).
func TestUnknownUsersLeaveNothing(t *testing.T) {
	e := webEnv(t)
	ctx := context.Background()
	app := e.webAccount(t)
	alice := e.webSignIn(t, app, world.Alice, "alice-password", auth.AuthCodeOptions{}).User
	if err := app.RemoveUser(ctx, alice.HomeAccountID); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	requests := e.emu.Identity.Requests("token")
	for i := range 1000 {
		u := auth.User{HomeAccountID: fmt.Sprintf("%08d-0000-4000-8000-000000000000.%s", i, alice.TenantID)}
		if i == 0 {
			u = alice
		}
		src := app.ForUser(u).TokenSource(token.Graph).(token.Refresher)
		get := src.Token
		if i%2 == 1 {
			get = src.Refresh
		}
		if _, err := get(ctx); !errors.Is(err, token.ErrLoginRequired) {
			t.Fatalf("the token of a user the store does not hold: %v, want ErrLoginRequired", err)
		}
	}
	if n := e.emu.Identity.Requests("token") - requests; n != 0 {
		t.Errorf("%d token requests for users the store does not hold", n)
	}
	after, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("%d files in the store's directory after asking for unknown users' tokens, %d before", len(after), len(before))
	}
}

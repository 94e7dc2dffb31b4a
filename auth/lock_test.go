package auth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/store"
)

// TestFreshStoredTokenDoesNotWaitForLock: a token outside its refresh margin is in the store, and
// another process holds the account's refresh lock (refreshing another resource, say, during an
// outage). A new process asking for the token gets it at once from the store: no refresh, no wait
// for the lock, no RefreshErr.
func TestFreshStoredTokenDoesNotWaitForLock(t *testing.T) {
	e := newEnv(t, world.Default(), world.Alice, nil)
	first, _ := e.manager(t, nil).Account("alice-device")
	si, err := first.Login(context.Background(), auth.LoginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exch := si.Token
	// The other process's lock: refreshes of a user's tokens take the lock of the user's entry.
	release, err := e.store(t).Lock(context.Background(), "account/alice-device/user/"+si.User.HomeAccountID)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	b, _ := e.manager(t, nil).Account("alice-device") // a new process
	before := e.emu.Identity.Requests("token")
	// The wait for the lock would end at the caller's deadline; a stored token needs no wait at all.
	const deadline = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	tok, err := b.Token(ctx, token.Exchange)
	if err != nil || ctx.Err() != nil {
		t.Fatalf("a fresh stored token was not served while another process held the lock: %v (deadline passed: %v)", err, ctx.Err() != nil)
	}
	if tok.AccessToken != exch.AccessToken || tok.RefreshErr != nil {
		t.Fatalf("served the stored token: %v, RefreshErr %v; want it, unmarked", tok.AccessToken == exch.AccessToken, tok.RefreshErr)
	}
	if n := e.emu.Identity.Requests("token") - before; n != 0 {
		t.Fatalf("%d token requests for a token the store holds, want 0", n)
	}
}

// TestStoreWithoutLocker: with a Store that does not implement store.Locker, sign-in, the token from
// the store and a refresh for another resource all work, and many goroutines asking at once still make
// one token request.
func TestStoreWithoutLocker(t *testing.T) {
	e := newEnv(t, world.Default(), world.Alice, nil)
	st := unlocked{store.NewMemory()}
	if _, ok := any(st).(store.Locker); ok {
		t.Fatal("the test's store implements Locker")
	}
	e.options = func(o *auth.Options) { o.Store = st }
	exch := login(t, e.manager(t, nil), "alice-device", auth.LoginOptions{})
	a, _ := e.manager(t, nil).Account("alice-device")
	if tok, err := a.Token(context.Background(), token.Exchange); err != nil || tok.AccessToken != exch.AccessToken {
		t.Fatalf("the stored token through a Store without Locker: %v", err)
	}
	before := e.emu.Identity.Requests("token")
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Token(context.Background(), token.Graph); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := e.emu.Identity.Requests("token") - before; n != 1 {
		t.Fatalf("%d token requests for ten callers refreshing Graph, want 1", n)
	}
}

package auth_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/store"
)

// readCounter is a file store that counts its reads (Load, Keys, Entries): each one decrypts the
// whole file.
type readCounter struct {
	*store.File
	reads *atomic.Int64
}

func (s readCounter) Load(ctx context.Context, key string) ([]byte, error) {
	s.reads.Add(1)
	return s.File.Load(ctx, key)
}

func (s readCounter) Keys(ctx context.Context) ([]string, error) {
	s.reads.Add(1)
	return s.File.Keys(ctx)
}

func (s readCounter) Entries(ctx context.Context, prefix string) (map[string][]byte, error) {
	s.reads.Add(1)
	return s.File.Entries(ctx, prefix)
}

// TestUsersReadTheStoreOnce: listing an account's users reads the store a fixed number of times
// however many users it holds (a read of the file store decrypts all of it), and a store without
// store.Lister lists the same users.
func TestUsersReadTheStoreOnce(t *testing.T) {
	e := webEnv(t)
	ctx := context.Background()
	app := e.webAccount(t)
	bob := e.webSignIn(t, app, world.Bob, "bob-password", auth.AuthCodeOptions{}).User
	e.webSignIn(t, app, world.Alice, "alice-password", auth.AuthCodeOptions{})
	// 40 more users, as far as listing goes: bob's entry under other home account ids.
	st := e.store(t)
	raw, err := st.Load(ctx, "account/web/user/"+bob.HomeAccountID)
	if err != nil || raw == nil {
		t.Fatalf("bob's entry: %v", err)
	}
	const more = 40
	for i := range more {
		home := fmt.Sprintf("%08d-0000-4000-8000-000000000000.%s", i, bob.TenantID)
		if err := st.Update(ctx, "account/web/user/"+home, func([]byte) ([]byte, error) { return raw, nil }); err != nil {
			t.Fatal(err)
		}
	}

	var reads atomic.Int64
	counted := webAccountOver(t, e, readCounter{e.store(t), &reads}, nil)
	users, err := counted.Users(ctx)
	if err != nil || len(users) != 2+more {
		t.Fatalf("Users: %d users, %v; want %d", len(users), err, 2+more)
	}
	// One read to move a store of an earlier version (once per process), one for the users.
	if n := reads.Load(); n > 2 {
		t.Errorf("listing %d users read the store %d times, want at most 2", len(users), n)
	}
	reads.Store(0)
	if _, err := counted.Users(ctx); err != nil || reads.Load() != 1 {
		t.Errorf("listing the users again read the store %d times (%v), want 1", reads.Load(), err)
	}

	plain, err := webAccountOver(t, e, lockless{e.store(t)}, nil).Users(ctx)
	if err != nil || fmt.Sprint(plain) != fmt.Sprint(users) {
		t.Errorf("users over a store without Lister: %v, %v; want %v", plain, err, users)
	}
}

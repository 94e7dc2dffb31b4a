package store

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mailoauth/mailoauth/config"
)

// needSecretService skips outside a D-Bus session with a Secret Service, except under the README's
// test command (MAILOAUTH_REQUIRE_KEYRING=1), which runs one and must not skip.
func needSecretService(t *testing.T) {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		if os.Getenv("MAILOAUTH_REQUIRE_KEYRING") == "1" {
			t.Fatal("no D-Bus session: scripts/test runs the tests under dbus-run-session with gnome-keyring")
		}
		t.Skip("no D-Bus session with a Secret Service; scripts/test provides one")
	}
}

func TestKeyringRoundTripThroughOpen(t *testing.T) {
	needSecretService(t)
	ctx := context.Background()
	s, err := Open(config.Store{Backend: config.BackendKeyring, Path: filepath.Join(t.TempDir(), "tokens")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := "test/" + t.Name()
	t.Cleanup(func() { _ = s.Update(ctx, key, func([]byte) ([]byte, error) { return nil, nil }) })
	// Larger than one keyring item may be on macOS or Windows: stored in parts.
	big := strings.Repeat("refresh-token-1 ", 700)
	put(t, s, key, big)
	got, err := s.Load(ctx, key)
	if err != nil || string(got) != big {
		t.Fatalf("load %d bytes, %v", len(got), err)
	}
	put(t, s, key, "refresh-token-2") // shorter: the old parts go
	if got, _ := s.Load(ctx, key); string(got) != "refresh-token-2" {
		t.Fatalf("after a shorter write: %q", got)
	}
	keys, _ := s.Keys(ctx)
	if !contains(keys, key) {
		t.Fatalf("keys %v lack %s", keys, key)
	}
	if err := s.Update(ctx, key, func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx, key); got != nil {
		t.Fatalf("deleted entry still there: %q", got)
	}
	if keys, _ := s.Keys(ctx); contains(keys, key) {
		t.Fatal("deleted entry still in the index")
	}
}

func TestKeyringConcurrentUpdatesKeepEveryWrite(t *testing.T) {
	needSecretService(t)
	ctx := context.Background()
	lock := filepath.Join(t.TempDir(), "tokens")
	key := "test/" + t.Name()
	a, _ := OpenKeyring(lock)
	b, _ := OpenKeyring(lock) // a second user of the same keyring, as another process would be
	t.Cleanup(func() { _ = a.Update(ctx, key, func([]byte) ([]byte, error) { return nil, nil }) })
	var wg sync.WaitGroup
	for _, s := range []*Keyring{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				err := s.Update(ctx, key, func(old []byte) ([]byte, error) {
					n, _ := strconv.Atoi(string(old))
					return []byte(strconv.Itoa(n + 1)), nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got, _ := a.Load(ctx, key); string(got) != "20" {
		t.Fatalf("counter %s, want 20", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

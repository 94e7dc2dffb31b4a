package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// lockable is a Store with Locker, as every backend of this package is.
type lockable interface {
	Store
	Locker
}

// TestLockExcludesUntilReleased: Locker.Lock is exclusive per key — across two opens of one file
// store or keyring (two processes in effect: the advisory lock is per open file) and within a memory
// store — a waiter gives up when its context ends, other keys are not held up, and a release lets the
// next one in.
func TestLockExcludesUntilReleased(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "tokens")
	a, _ := OpenFile(path, rawKey())
	b, _ := OpenFile(path, rawKey())
	krPath := filepath.Join(t.TempDir(), "keyring", "tokens")
	ka, _ := OpenKeyring(krPath)
	kb, _ := OpenKeyring(krPath)
	mem := NewMemory()
	for name, pair := range map[string][2]lockable{"file": {a, b}, "keyring": {ka, kb}, "memory": {mem, mem}} {
		t.Run(name, func(t *testing.T) {
			if name == "keyring" {
				needSecretService(t)
				t.Cleanup(func() {
					_ = ka.Update(context.Background(), "account/x", func([]byte) ([]byte, error) { return nil, nil })
				})
			}
			ctx := context.Background()
			release, err := pair[0].Lock(ctx, "account/x")
			if err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if _, err := pair[1].Lock(short, "account/x"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a second holder got in, or failed otherwise: %v", err)
			}
			other, err := pair[1].Lock(ctx, "account/y") // not x's lock: bucket 40, x's is 57
			if err != nil {
				t.Fatalf("another key was held up: %v", err)
			}
			other()
			// The holder may use the store while it holds the lock.
			put(t, pair[0], "account/x", "v")
			got := make(chan error, 1)
			go func() {
				r, err := pair[1].Lock(ctx, "account/x")
				if err == nil {
					r()
				}
				got <- err
			}()
			release()
			if err := <-got; err != nil {
				t.Fatalf("after the release: %v", err)
			}
		})
	}
}

// TestLockFilesStayFew: locking a thousand keys (users a web app served, or asked about) leaves at
// most 64 lock files beside the store, not one per key.
func TestLockFilesStayFew(t *testing.T) {
	dir := t.TempDir()
	f, _ := OpenFile(filepath.Join(dir, "tokens"), rawKey())
	ctx := context.Background()
	for i := range 1000 {
		release, err := f.Lock(ctx, "account/web/user/"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) > 64 {
		t.Errorf("%d files beside the store after locking 1000 keys, want at most %d", len(files), 64)
	}
}

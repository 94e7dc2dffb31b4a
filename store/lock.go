package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/gofrs/flock"
)

// keyLocks implement Locker: a one-slot channel per key serialises this process's goroutines
// (waiting with a context, which a mutex cannot), and, when base is set, an advisory lock on a file
// per key serialises processes. The files are never removed: removing a lock file while another
// process waits on it would let two holders in.
var (
	_ Locker = (*File)(nil)
	_ Locker = (*Keyring)(nil)
	_ Locker = (*Memory)(nil)
	_ Lister = (*File)(nil)
	_ Lister = (*Keyring)(nil)
	_ Lister = (*Memory)(nil)
)

type keyLocks struct {
	base string // lock files are base + ".lock-" + a digest of the key; "" locks within the process only

	mu    sync.Mutex
	slots map[string]chan struct{}
}

func (l *keyLocks) lock(ctx context.Context, key string) (release func(), err error) {
	l.mu.Lock()
	if l.slots == nil {
		l.slots = map[string]chan struct{}{}
	}
	slot := l.slots[key]
	if slot == nil {
		slot = make(chan struct{}, 1)
		l.slots[key] = slot
	}
	l.mu.Unlock()
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the token store's lock on %s: %w", key, ctx.Err())
	}
	if l.base == "" {
		return func() { <-slot }, nil
	}
	sum := sha256.Sum256([]byte(key))
	fl := flock.New(l.base + ".lock-" + hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(filepath.Dir(fl.Path()), 0o700); err != nil {
		<-slot
		return nil, fmt.Errorf("create the token store's directory: %w", err)
	}
	if err := lockFile(ctx, fl, true); err != nil {
		<-slot
		return nil, err
	}
	return func() { _ = fl.Unlock(); <-slot }, nil
}

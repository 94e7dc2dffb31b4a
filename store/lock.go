package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/gofrs/flock"
)

var (
	_ Locker = (*File)(nil)
	_ Locker = (*Keyring)(nil)
	_ Locker = (*Memory)(nil)
	_ Lister = (*File)(nil)
	_ Lister = (*Keyring)(nil)
	_ Lister = (*Memory)(nil)
)

// lockBuckets is how many locks the keys of a store share.
const lockBuckets = 64

// keyLocks implement Locker. Keys share a fixed set of locks (lockBuckets), each a one-slot channel
// that serialises this process's goroutines (waiting with a context, which a mutex cannot) and, when
// base is set, an advisory lock on a file that serialises processes. A lock per key would leave a file
// per key ever locked — every user a web app ever served — and one cannot be removed safely: a process
// waiting on a removed file would get its lock while a newcomer locks a new file under the same name.
// The cost of sharing is that a key's holder now and then waits for another key's.
type keyLocks struct {
	base string // lock files are base + ".lock-" + the bucket in hex; "" locks within the process only

	once  sync.Once
	slots [lockBuckets]chan struct{}
}

// bucket is the lock a key shares.
func bucket(key string) int {
	sum := sha256.Sum256([]byte(key))
	return int(binary.BigEndian.Uint64(sum[:8]) % lockBuckets)
}

func (l *keyLocks) lock(ctx context.Context, key string) (release func(), err error) {
	l.once.Do(func() {
		for i := range l.slots {
			l.slots[i] = make(chan struct{}, 1)
		}
	})
	b := bucket(key)
	slot := l.slots[b]
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the token store's lock on %s: %w", key, ctx.Err())
	}
	if l.base == "" {
		return func() { <-slot }, nil
	}
	fl := flock.New(fmt.Sprintf("%s.lock-%02x", l.base, b))
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

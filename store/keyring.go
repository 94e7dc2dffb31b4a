package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gofrs/flock"
	"github.com/zalando/go-keyring"
)

// Keyring keeps entries in the OS keyring (Secret Service on Linux, Keychain on macOS, Credential
// Manager on Windows) through zalando/go-keyring, one item per entry under the service "mailoauth",
// plus an index item listing them. The keyring encrypts; an advisory lock file beside the configured
// store path serialises read-modify-write across processes, as for the file backend.
//
// On Linux it needs a running Secret Service (gnome-keyring, KeePassXC) on the session D-Bus; on a
// headless machine use the file backend.
type Keyring struct {
	service string
	lock    *flock.Flock
	mu      sync.Mutex
}

const keyringIndex = "mailoauth-index"

// OpenKeyring returns the keyring backend; lockPath names the lock file's base (the store path).
func OpenKeyring(lockPath string) (*Keyring, error) {
	return &Keyring{service: "mailoauth", lock: flock.New(lockPath + lockSuffix)}, nil
}

func (k *Keyring) locked(ctx context.Context, exclusive bool, f func() error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(k.lock.Path()), 0o700); err != nil {
		return fmt.Errorf("create the lock directory: %w", err)
	}
	if err := lockFile(ctx, k.lock, exclusive); err != nil {
		return err
	}
	defer k.lock.Unlock()
	return f()
}

func (k *Keyring) get(key string) ([]byte, error) {
	v, err := keyring.Get(k.service, key)
	if errors.Is(err, keyring.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the OS keyring: %w (on a machine without a Secret Service, use backend = \"file\")", err)
	}
	return []byte(v), nil
}

// Load implements Store.
func (k *Keyring) Load(ctx context.Context, key string) (out []byte, err error) {
	err = k.locked(ctx, false, func() error { out, err = k.get(key); return err })
	return out, err
}

// Keys implements Store.
func (k *Keyring) Keys(ctx context.Context) (keys []string, err error) {
	err = k.locked(ctx, false, func() error {
		idx, err := k.get(keyringIndex)
		if err != nil {
			return err
		}
		for _, s := range strings.Split(string(idx), "\n") {
			if s != "" {
				keys = append(keys, s)
			}
		}
		sort.Strings(keys)
		return nil
	})
	return keys, err
}

// Update implements Store.
func (k *Keyring) Update(ctx context.Context, key string, fn func([]byte) ([]byte, error)) error {
	return k.locked(ctx, true, func() error {
		old, err := k.get(key)
		if err != nil {
			return err
		}
		next, err := fn(old)
		if err != nil {
			return err
		}
		idx, err := k.get(keyringIndex)
		if err != nil {
			return err
		}
		keys := map[string]bool{}
		for _, s := range strings.Split(string(idx), "\n") {
			if s != "" {
				keys[s] = true
			}
		}
		if next == nil {
			delete(keys, key)
			if err := keyring.Delete(k.service, key); err != nil && !errors.Is(err, keyring.ErrNotFound) {
				return fmt.Errorf("write the OS keyring: %w", err)
			}
		} else {
			keys[key] = true
			if err := keyring.Set(k.service, key, string(next)); err != nil {
				return fmt.Errorf("write the OS keyring: %w", err)
			}
		}
		list := make([]string, 0, len(keys))
		for s := range keys {
			list = append(list, s)
		}
		sort.Strings(list)
		if err := keyring.Set(k.service, keyringIndex, strings.Join(list, "\n")); err != nil {
			return fmt.Errorf("write the OS keyring: %w", err)
		}
		return nil
	})
}

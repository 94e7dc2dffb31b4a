package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gofrs/flock"
	"github.com/zalando/go-keyring"
)

// Keyring keeps entries in the OS keyring (Secret Service on Linux, Keychain on macOS, Credential
// Manager on Windows) through zalando/go-keyring, one item per entry under the service
// "mailoauth:<store path>", plus an index item listing them. The keyring encrypts; an advisory lock file beside the configured
// store path serialises read-modify-write across processes, as for the file backend.
//
// On Linux it needs a running Secret Service (gnome-keyring, KeePassXC) on the session D-Bus; on a
// headless machine use the file backend.
type Keyring struct {
	service string
	lock    *flock.Flock
	mu      sync.Mutex
	locks   keyLocks // Lock's
}

const keyringIndex = "mailoauth-index"

// OpenKeyring returns the keyring backend; path (the configured store path) names the lock file's
// base and the keyring service ("mailoauth:" + path), so two configurations never share entries.
func OpenKeyring(path string) (*Keyring, error) {
	return &Keyring{service: "mailoauth:" + path, lock: flock.New(path + lockSuffix), locks: keyLocks{base: path}}, nil
}

// Lock implements Locker: a lock file beside the configured path, as for the file backend.
func (k *Keyring) Lock(ctx context.Context, key string) (func(), error) {
	return k.locks.lock(ctx, key)
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

// chunkSize keeps every keyring item under the platforms' limits: go-keyring refuses values over
// 2,560 bytes on Windows (Credential Manager) and commands over 4,096 bytes on macOS, and an MSAL cache
// entry is several KB. An entry is stored as a header item "mailoauth-chunks:N" and N chunk items.
const chunkSize = 2000

const chunkHeader = "mailoauth-chunks:"

func (k *Keyring) item(key string) ([]byte, error) {
	v, err := keyring.Get(k.service, key)
	if errors.Is(err, keyring.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the OS keyring: %w (on a machine without a Secret Service, use backend = \"file\")", err)
	}
	return []byte(v), nil
}

func (k *Keyring) get(key string) ([]byte, error) {
	head, err := k.item(key)
	if err != nil || head == nil {
		return head, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(head), chunkHeader))
	if !strings.HasPrefix(string(head), chunkHeader) || err != nil || n < 0 || n > 10000 {
		return nil, fmt.Errorf("%w: keyring item %s is not a mailoauth entry", ErrCorrupt, key)
	}
	var out []byte
	for i := range n {
		part, err := k.item(key + "#" + strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		if part == nil {
			return nil, fmt.Errorf("%w: keyring entry %s lacks part %d", ErrCorrupt, key, i)
		}
		b, err := base64.StdEncoding.DecodeString(string(part))
		if err != nil {
			return nil, fmt.Errorf("%w: keyring entry %s part %d", ErrCorrupt, key, i)
		}
		out = append(out, b...)
	}
	return out, nil
}

// set writes the chunks first and the header last, then removes chunks a longer old value left.
func (k *Keyring) set(key string, value []byte, oldParts int) error {
	enc := base64.StdEncoding.EncodeToString(value)
	n := 0
	for ; len(enc) > 0; n++ {
		part := enc[:min(chunkSize, len(enc))]
		enc = enc[len(part):]
		if err := keyring.Set(k.service, key+"#"+strconv.Itoa(n), part); err != nil {
			return fmt.Errorf("write the OS keyring: %w", err)
		}
	}
	if err := keyring.Set(k.service, key, chunkHeader+strconv.Itoa(n)); err != nil {
		return fmt.Errorf("write the OS keyring: %w", err)
	}
	return k.dropParts(key, n, oldParts)
}

func (k *Keyring) dropParts(key string, from, to int) error {
	for i := from; i < to; i++ {
		if err := keyring.Delete(k.service, key+"#"+strconv.Itoa(i)); err != nil && !errors.Is(err, keyring.ErrNotFound) {
			return fmt.Errorf("write the OS keyring: %w", err)
		}
	}
	return nil
}

func (k *Keyring) parts(key string) int {
	head, _ := k.item(key)
	n, _ := strconv.Atoi(strings.TrimPrefix(string(head), chunkHeader))
	return n
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

// Entries implements Lister: the index and the entries under prefix, read under one lock.
func (k *Keyring) Entries(ctx context.Context, prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := k.locked(ctx, false, func() error {
		idx, err := k.get(keyringIndex)
		if err != nil {
			return err
		}
		for _, key := range strings.Split(string(idx), "\n") {
			if key == "" || !strings.HasPrefix(key, prefix) {
				continue
			}
			v, err := k.get(key)
			if err != nil {
				return err
			}
			if v != nil {
				out[key] = v
			}
		}
		return nil
	})
	return out, err
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
		oldParts := k.parts(key)
		if next == nil {
			delete(keys, key)
			if err := keyring.Delete(k.service, key); err != nil && !errors.Is(err, keyring.ErrNotFound) {
				return fmt.Errorf("write the OS keyring: %w", err)
			}
			if err := k.dropParts(key, 0, oldParts); err != nil {
				return err
			}
		} else {
			keys[key] = true
			if err := k.set(key, next, oldParts); err != nil {
				return err
			}
		}
		list := make([]string, 0, len(keys))
		for s := range keys {
			list = append(list, s)
		}
		sort.Strings(list)
		return k.set(keyringIndex, []byte(strings.Join(list, "\n")), k.parts(keyringIndex))
	})
}

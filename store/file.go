package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mailoauth/mailoauth/internal/atomicfile"
	"github.com/mailoauth/mailoauth/store/internal/seal"
)

// KeySource supplies the file backend's key material: either a passphrase (stretched with argon2id)
// or a raw 32-byte key (a key file mounted as a container secret). Exactly one function is set.
type KeySource struct {
	// Passphrase returns the passphrase; it is called at most once per process and store.
	Passphrase func() ([]byte, error)
	// Key returns a 32-byte key, used as is.
	Key func() ([]byte, error)
}

// The file starts with a header: magic, key derivation and its parameters, salt, key check, nonce
// and (from version 2 on) a SHA-256 of all of that. The checksum needs no key, so a damaged header is
// told apart from a wrong passphrase: without it a flipped bit in the salt or the key check reads as
// "wrong passphrase". Version 1 files (no checksum) are still read, and are written as version 2.
const (
	magicV1    = "MOSTORE1"
	magic      = "MOSTORE2"
	sumLen     = sha256.Size
	headerLen1 = len(magicV1) + seal.ParamsLen + seal.NonceLen
	headerLen  = headerLen1 + sumLen
	lockSuffix = ".lock"
)

// File is the encrypted file backend.
type File struct {
	path string
	keys *seal.Keys
	lock *flock.Flock

	mu    sync.Mutex // serialises this process's use of the lock (flock is per process, not per goroutine)
	locks keyLocks   // Lock's
}

// OpenFile returns the file backend at path. The file and its directory are created on first write.
func OpenFile(path string, src KeySource) (*File, error) {
	if (src.Passphrase == nil) == (src.Key == nil) {
		return nil, errors.New("store: exactly one of KeySource.Passphrase and KeySource.Key must be set")
	}
	return &File{path: path, keys: &seal.Keys{Passphrase: src.Passphrase, Key: src.Key}, lock: flock.New(path + lockSuffix), locks: keyLocks{base: path}}, nil
}

// Lock implements Locker.
func (f *File) Lock(ctx context.Context, key string) (func(), error) { return f.locks.lock(ctx, key) }

// header is the file's header: the key parameters and the nonce of the one ciphertext.
type header struct {
	seal.Params
	nonce []byte
}

// marshal writes a version 2 header, its checksum last.
func (h *header) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(magic)
	b.Write(h.Params.Marshal())
	b.Write(h.nonce)
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

// parseHeader reads a version 1 or 2 header and returns it with its length (the ciphertext follows).
func parseHeader(data []byte) (*header, int, error) {
	n := headerLen
	switch {
	case len(data) >= len(magic) && string(data[:len(magic)]) == magic:
		if len(data) < headerLen {
			return nil, 0, fmt.Errorf("%w: its header is truncated", ErrCorrupt)
		}
		if sum := sha256.Sum256(data[:headerLen1]); !bytes.Equal(sum[:], data[headerLen1:headerLen]) {
			return nil, 0, fmt.Errorf("%w: its header is damaged (checksum mismatch)", ErrCorrupt)
		}
	case len(data) >= headerLen1 && string(data[:len(magicV1)]) == magicV1:
		n = headerLen1
	case len(data) >= len(magic) && string(data[:len(magic)-1]) == magic[:len(magic)-1] && data[len(magic)-1] > magic[len(magic)-1] && data[len(magic)-1] <= '9':
		// Not damage: every binary sharing a store must be upgraded together, and this one must not
		// tell its user to remove a store a newer one reads.
		return nil, 0, fmt.Errorf("%w (store format %c): upgrade this mailoauth to the version that wrote it; the file is left as it is", ErrNewerFormat, data[len(magic)-1])
	default:
		return nil, 0, fmt.Errorf("%w: it does not start with a mailoauth store header", ErrCorrupt)
	}
	p, err := seal.ParseParams(data[len(magic):])
	if err != nil {
		return nil, 0, err
	}
	h := &header{Params: p, nonce: data[len(magic)+seal.ParamsLen : len(magic)+seal.ParamsLen+seal.NonceLen]}
	return h, n, nil
}

// read decrypts the file; a missing file is an empty store and no header (reading it needs no key:
// a fresh machine's `token` says "log in", not "give a passphrase").
func (f *File) read() (map[string][]byte, *header, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read token store %s: %w", f.path, err)
	}
	h, n, err := parseHeader(data)
	if errors.Is(err, ErrNewerFormat) {
		return nil, nil, fmt.Errorf("open token store %s: %w", f.path, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open token store %s: %w: restore it from a backup or remove it and log in again", f.path, err)
	}
	key, err := f.keys.Open(h.Params)
	if err == ErrWrongKey { // the key check failed (not: a key of the other kind, which says so)
		return nil, nil, fmt.Errorf("open token store %s: %w: check the passphrase (or key file) it was created with, or remove the file and log in again", f.path, ErrWrongKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open token store %s: %w", f.path, err)
	}
	aead, _ := chacha20poly1305.NewX(key)
	plain, err := aead.Open(nil, h.nonce, data[n:], data[:n])
	if err != nil {
		return nil, nil, fmt.Errorf("open token store %s: %w: restore it from a backup or remove it and log in again", f.path, ErrCorrupt)
	}
	var body struct {
		Entries map[string][]byte `json:"entries"`
	}
	if err := json.Unmarshal(plain, &body); err != nil {
		return nil, nil, fmt.Errorf("open token store %s: %w: %v", f.path, ErrCorrupt, err)
	}
	if body.Entries == nil {
		body.Entries = map[string][]byte{}
	}
	return body.Entries, h, nil
}

func (f *File) newHeader() (*header, error) {
	p, _, err := f.keys.New()
	if err != nil {
		return nil, fmt.Errorf("create token store %s: %w", f.path, err)
	}
	return &header{Params: p}, nil
}

// write replaces the file with entries; the caller holds the exclusive lock.
func (f *File) write(entries map[string][]byte, h *header) error {
	key, err := f.keys.Derive(h.Params)
	if err != nil {
		return err
	}
	h.nonce = make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(h.nonce); err != nil {
		return err
	}
	plain, err := json.Marshal(struct {
		Entries map[string][]byte `json:"entries"`
	}{entries})
	if err != nil {
		return err
	}
	aead, _ := chacha20poly1305.NewX(key)
	hdr := h.marshal()
	// A writer killed between its temporary file and the rename left that file behind; under the
	// exclusive lock no other writer is using one, so clear them (best effort) before they pile up.
	_, _ = atomicfile.RemoveTemps(f.path)
	return atomicfile.WriteFile(f.path, aead.Seal(hdr, h.nonce, plain, hdr), 0o600)
}

func (f *File) ensureDir() error {
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create token store directory %s: %w", dir, err)
	}
	return nil
}

// lockCtx takes the advisory lock, shared or exclusive, giving up when ctx ends. A passphrase is asked
// for first: a person typing at a prompt must not hold the lock that a cron job's `token` waits on.
func (f *File) lockCtx(ctx context.Context, exclusive bool) error {
	if _, err := os.Stat(f.path); f.keys.Passphrase != nil && (exclusive || err == nil) {
		if _, err := f.keys.Pass(); err != nil {
			return err
		}
	}
	if err := f.ensureDir(); err != nil {
		return err
	}
	return lockFile(ctx, f.lock, exclusive)
}

// lockFile takes an advisory lock, polling so that ctx can end the wait.
func lockFile(ctx context.Context, l *flock.Flock, exclusive bool) error {
	try := l.TryRLockContext
	if exclusive {
		try = l.TryLockContext
	}
	ok, err := try(ctx, 10*time.Millisecond)
	if err != nil {
		return fmt.Errorf("lock %s: %w", l.Path(), err)
	}
	if !ok {
		return fmt.Errorf("lock %s: %w", l.Path(), ctx.Err())
	}
	return nil
}

// readLocked reads the whole store under the shared lock.
func (f *File) readLocked(ctx context.Context) (map[string][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.lockCtx(ctx, false); err != nil {
		return nil, err
	}
	defer f.lock.Unlock()
	entries, _, err := f.read()
	return entries, err
}

// Load implements Store.
func (f *File) Load(ctx context.Context, key string) ([]byte, error) {
	entries, err := f.readLocked(ctx)
	if err != nil {
		return nil, err
	}
	return entries[key], nil
}

// Entries implements Lister: one read of the file.
func (f *File) Entries(ctx context.Context, prefix string) (map[string][]byte, error) {
	entries, err := f.readLocked(ctx)
	if err != nil {
		return nil, err
	}
	return withPrefix(entries, prefix), nil
}

// withPrefix is the entries whose keys start with prefix.
func withPrefix(entries map[string][]byte, prefix string) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range entries {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// Keys implements Store.
func (f *File) Keys(ctx context.Context) ([]string, error) {
	entries, err := f.readLocked(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// Update implements Store.
func (f *File) Update(ctx context.Context, key string, fn func(old []byte) ([]byte, error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.lockCtx(ctx, true); err != nil {
		return err
	}
	defer f.lock.Unlock()
	entries, h, err := f.read()
	if err != nil {
		return err // never overwrite what could not be read
	}
	if h == nil {
		if h, err = f.newHeader(); err != nil {
			return err
		}
	}
	next, err := fn(entries[key])
	if err != nil {
		return err
	}
	if next == nil {
		if _, ok := entries[key]; !ok {
			return nil
		}
		delete(entries, key)
	} else {
		entries[key] = next
	}
	return f.write(entries, h)
}

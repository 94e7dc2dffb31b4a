// Package store keeps what mailoauth must remember between runs — each account's MSAL token cache,
// refresh tokens included — so that several processes (a proxy, a cron job, a `token` call) can
// share it, each seeing the refresh token another one rotated.
//
// The file backend is one file encrypted with XChaCha20-Poly1305 under a key derived from a
// passphrase with argon2id (once per process) or read from a key file; writes are atomic (temp file,
// fsync, rename) and serialised across processes by an advisory lock on a separate lock file, so a
// crash leaves the old content or the new and a rotated refresh token written by one process is what
// the next one reads. Files are created 0600 in a 0700 directory.
//
// The redis backend (package store/redis, opened here for [store] backend = "redis") shares that
// encryption and keeps the store on a Redis or Valkey server shared by a fleet.
//
// Locker, an optional interface beside Store, gives callers a lock of their own per key, held across
// a longer operation than one Update (auth holds an account's while it refreshes its tokens). File,
// Keyring and Memory implement it; a library user's own Store need not (auth then refreshes without a
// lock across processes, and a process sharing that store may redeem a refresh token another just
// redeemed — harmless with Entra, which does not revoke it). The keys share 64 locks, so that the
// lock files stay few however many keys are locked. The file and keyring backends take an advisory
// lock on a file beside the store path (path + ".lock-" + the lock's number), which serialises
// processes, after a slot that serialises the process's goroutines; the memory backend, which no
// other process sees, has the slot only. A process that dies holding the lock
// releases it (the kernel drops its advisory locks).
//
// Lister, another optional interface, reads the entries under a prefix at once; File, Keyring and
// Memory implement it.
//
// It must never write a token or a key in clear to disk, never log an entry's content, and never
// overwrite a store it could not decrypt.
package store

import (
	"context"

	"github.com/mailoauth/mailoauth/store/internal/seal"
)

// Store holds named entries, one per account. Implementations are safe for concurrent use by
// goroutines and, through their lock, by processes. They may also implement Locker.
type Store interface {
	// Load returns the entry, or nil if there is none.
	Load(ctx context.Context, key string) ([]byte, error)
	// Update replaces an entry with what fn returns, reading and writing under one exclusive lock, so
	// concurrent updates from several processes never lose one another's writes. fn gets nil when the
	// entry does not exist; returning nil deletes it. An error from fn leaves the store unchanged.
	Update(ctx context.Context, key string, fn func(old []byte) ([]byte, error)) error
	// Keys lists the entries.
	Keys(ctx context.Context) ([]string, error)
}

// Locker is what a Store implements, optionally, to give its users locks of their own.
type Locker interface {
	// Lock takes an exclusive lock named key, across processes where the store is shared by them,
	// waiting at most until ctx ends; release gives it back. It is not the lock Load and Update take,
	// so its holder uses them freely. auth holds an account's lock while it refreshes the account's
	// tokens, so that N processes make one refresh and the others read its result. Different keys
	// may share a lock (a store keeps its locks few): hold one at a time, as a second may be the
	// one already held.
	Lock(ctx context.Context, key string) (release func(), err error)
}

// Lister is what a Store implements, optionally, to read the entries under a prefix at once: auth
// lists an account's users with one read of the store instead of one per user, which for the file
// backend (each read decrypts the whole file) would make listing N users cost N² work.
type Lister interface {
	// Entries returns the entries whose keys start with prefix (an empty map when there are none),
	// read together under one lock.
	Entries(ctx context.Context, prefix string) (map[string][]byte, error)
}

// Errors a caller can act on. Their messages say what to do.
var (
	// ErrWrongKey: the passphrase or key file does not open this store.
	ErrWrongKey = seal.ErrWrongKey
	// ErrCorrupt: the file was changed or damaged after it was written.
	ErrCorrupt = seal.ErrCorrupt
	// ErrNewerFormat: the file was written by a newer mailoauth, in a format this one does not know.
	ErrNewerFormat = seal.ErrNewerFormat
	// ErrNoKey: the store needs a passphrase and none can be had without a prompt.
	ErrNoKey = seal.ErrNoKey
)

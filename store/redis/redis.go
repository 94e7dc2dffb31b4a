// Package redis is a token store on Redis (6 or later) or Valkey, for a fleet: every proxy and every
// `mailoauth token` of every machine sharing it sees the refresh token another rotated, and an
// account's tokens are refreshed by one process at a time however many machines ask.
//
// Values are encrypted before they leave the process, with the file store's AEAD and key sources
// (XChaCha20-Poly1305 under a key from a passphrase stretched with argon2id, or a raw key file): Redis
// holds the key parameters and a key check under PREFIX+"meta", and one hash per store entry (an
// account's tokens, or one user's) under PREFIX+"e:"+entry, with a version, the write's time and the
// sealed value, bound to its key name. Updates are compare-and-set on the version (a Lua script), so
// concurrent writers never lose one another's writes; the script also puts the key parameters back
// beside the value when Redis lost them, and refuses a value sealed under parameters Redis no
// longer holds. Key names are in clear: account names and users' home account IDs, no user names.
//
// Lock is Redis's documented single-instance lock: SET NX PX with a random value (idempotent for
// that value, as go-redis retries a command whose reply was lost), renewed while held,
// released by a Lua compare-and-delete. A holder's writes are fenced: the script that writes checks
// that the lock is still the holder's, so a holder that was paused past the lock's expiry, while
// another took the lock and refreshed, cannot overwrite the newer tokens (it gets ErrLockLost); one
// whose lock expired with nobody having written the entry since writes, its tokens being the newest.
// Waiters poll for the lock, then read the holder's result.
//
// Redis being unreachable loses nothing: what this process last read or wrote is served, an Update
// applies to that copy and is queued, and a background writer puts the queue into Redis when it is
// back, unless a write made later (by another process) is there by then. Locks are then this
// process's only. A process that exits during the outage loses its queue (Close tries once more,
// and says what it could not write).
//
// The client is github.com/redis/go-redis/v9: Redis's own Go client, maintained with the server,
// supporting Redis 6 ACL users, TLS and Valkey. No lock library is used: the pattern is twenty lines,
// and the fencing check must be in the same script as the write, which a library's lock cannot do.
// Redis Cluster is not supported (a write and its lock are two keys).
//
// It must never send a token, a passphrase or a key to Redis in clear, never put a value's content or
// the Redis password in an error, and never overwrite a value it could not decrypt.
package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/mailoauth/mailoauth/store/internal/seal"
)

// Options configure a Store.
type Options struct {
	// URL is redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB] (TLS, the server's certificate
	// verified). A password or query options (go-redis's ?skip_verify=true...) in it are refused:
	// give Password.
	URL string
	// CAFile is a PEM file of the CAs that sign the server's certificate (rediss); default: the
	// system's.
	CAFile string
	// Username and Password authenticate as a Redis 6 ACL user; Username "" is the default user.
	Username string
	Password string
	// Prefix starts every key the store writes; default "mailoauth:". Stores sharing one Redis with
	// different prefixes see nothing of one another.
	Prefix string
	// Passphrase or Key (exactly one) give the encryption key, as for the file store.
	Passphrase func() ([]byte, error)
	Key        func() ([]byte, error)
	// LockTTL is how long a lock outlives a holder that stopped renewing it (it crashed or lost
	// Redis); default 30 seconds.
	LockTTL time.Duration
}

// ErrLockLost is returned by Update when the lock on the entry this process held expired and
// another process took it or wrote the entry: the write is refused so that it cannot replace what
// that one wrote.
var ErrLockLost = errors.New("the token store's lock on this entry expired and another process took it or wrote the entry; this write was refused so as not to replace newer tokens")

// ErrUnavailable wraps what a Store returns when Redis cannot be reached and it holds no copy of
// what was asked for.
var ErrUnavailable = errors.New("the Redis token store cannot be reached")

// ErrRefused wraps what a Store returns when Redis refuses the credentials (or the ACL user's
// rights do not cover the store's keys).
var ErrRefused = errors.New("the Redis token store refused the credentials")

// Store is the Redis token store. It implements store.Store, store.Locker and store.Lister.
type Store struct {
	c       *goredis.Client
	addr    string // for messages: host:port and prefix, never credentials
	prefix  string
	keys    *seal.Keys
	lockTTL time.Duration

	keyMu  sync.Mutex
	params []byte // the meta key's content the cached key was derived from
	key    []byte

	mu      sync.Mutex
	local   map[string]copyOf // the last value read or written per entry: served while Redis is down
	pending map[string]copyOf // writes Redis has not taken yet
	held    map[string]hold   // the locks this process holds, by entry
	flushOn bool              // the background writer runs
	slots   [64]chan struct{}
	done    chan struct{}
	closed  sync.Once
}

// hold is a lock this process holds: its value, and the entry's version when it was taken or
// last written by this process.
type hold struct {
	val string
	ver int64
}

// copyOf is a value as this process last knew it.
type copyOf struct {
	data  []byte // nil: no entry
	ver   int64  // its version in Redis (pending: the one it was based on)
	stamp int64  // when it was written, Unix nanoseconds
}

// Open returns a Store; it does not connect until first used.
func Open(o Options) (*Store, error) {
	if (o.Passphrase == nil) == (o.Key == nil) {
		return nil, errors.New("store/redis: exactly one of Options.Passphrase and Options.Key must be set")
	}
	c, host, err := newClient(o)
	if err != nil {
		return nil, err
	}
	s := &Store{
		c: c, addr: host, prefix: o.Prefix, lockTTL: o.LockTTL,
		keys:  &seal.Keys{Passphrase: o.Passphrase, Key: o.Key},
		local: map[string]copyOf{}, pending: map[string]copyOf{}, held: map[string]hold{},
		done: make(chan struct{}),
	}
	if s.prefix == "" {
		s.prefix = "mailoauth:"
	}
	if s.lockTTL <= 0 {
		s.lockTTL = 30 * time.Second
	}
	for i := range s.slots {
		s.slots[i] = make(chan struct{}, 1)
	}
	return s, nil
}

// NewClient returns a Redis client with the settings a Store would use (Options' URL, CAFile,
// Username, Password; the key and prefix are not needed), for others that keep data beside the
// tokens (the gateway's UIDs). It does not connect until first used; close it when done.
func NewClient(o Options) (*goredis.Client, error) {
	c, _, err := newClient(o)
	return c, err
}

// newClient checks o's connection settings and returns a client and the server's host:port.
func newClient(o Options) (*goredis.Client, string, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, "", errors.New("the Redis token store's url must be redis://HOST:PORT or rediss://HOST:PORT")
	}
	if _, ok := u.User.Password(); ok {
		return nil, "", errors.New("the Redis token store's url holds a password; remove it and give the password separately (password_env or password_file)")
	}
	if u.RawQuery != "" {
		// go-redis reads options from the query, skip_verify among them, which would turn off the
		// certificate check rediss:// promises; the store sets its own timeouts.
		return nil, "", errors.New("the Redis token store's url has query options (?...), which the store does not take; remove them")
	}
	ro, err := goredis.ParseURL(o.URL)
	if err != nil {
		return nil, "", fmt.Errorf("the Redis token store's url is not valid: %w", err)
	}
	if o.Username != "" {
		ro.Username = o.Username
	}
	ro.Password = o.Password
	if o.CAFile != "" {
		if ro.TLSConfig == nil {
			return nil, "", errors.New("the Redis token store's ca_file is set but its url is redis://, without TLS; use rediss://")
		}
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("the Redis token store's ca_file cannot be read: %w", errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("the Redis token store's ca_file %s holds no PEM certificate", o.CAFile)
		}
		ro.TLSConfig.RootCAs = pool
	}
	if ro.TLSConfig != nil {
		ro.TLSConfig.MinVersion = tls.VersionTLS12
		ro.TLSConfig.InsecureSkipVerify = false
	}
	// Fail fast when Redis is down: the caller then serves what it holds instead of waiting.
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	ro.MaxRetries = 1
	ro.DisableIdentity = true
	// Maintenance notifications are Redis Enterprise's; off, the client starts no goroutine of its own
	// for them (one that would outlive a store nobody closes, a CLI command's).
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	ro.ContextTimeoutEnabled = true
	return goredis.NewClient(ro), u.Host, nil
}

// Close writes what is queued (trying for at most a few seconds) and disconnects. Updates it could
// not write are lost with the process: the error, wrapping ErrUnavailable, says how many.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if left := s.flush(ctx); left > 0 {
			err = fmt.Errorf("%w at %s: %d token update(s) made while it was unreachable were not written to it; they are lost when this process exits", ErrUnavailable, s.addr, left)
		}
		close(s.done)
		if cerr := s.c.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// Check connects, authenticates and, when the store holds anything, checks that the key opens it:
// the doctor's test of the store.
func (s *Store) Check(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return s.wrap(err)
	}
	_, err := s.openKey(ctx, false)
	return err
}

func (s *Store) entryKey(key string) string { return s.prefix + "e:" + key }
func (s *Store) lockKey(key string) string  { return s.prefix + "lock:" + key }
func (s *Store) metaKey() string            { return s.prefix + "meta" }

// down says whether err means Redis could not be reached (rather than refused a command).
func down(err error) bool {
	var re goredis.Error
	return err != nil && !errors.Is(err, goredis.Nil) && !errors.As(err, &re) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, seal.ErrWrongKey) && !errors.Is(err, seal.ErrCorrupt)
}

// wrap turns a Redis error into one that says what to do.
func (s *Store) wrap(err error) error {
	if down(err) {
		return fmt.Errorf("%w at %s: %v; check that Redis runs and [store] url", ErrUnavailable, s.addr, err)
	}
	if strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "NOAUTH") || strings.Contains(err.Error(), "NOPERM") {
		return fmt.Errorf("%w at %s: %v; check [store] username and password_env or password_file", ErrRefused, s.addr, err)
	}
	if re := goredis.Error(nil); errors.As(err, &re) {
		return fmt.Errorf("the Redis token store at %s: %w", s.addr, err)
	}
	return err // the store's own, which already says where
}

// openKey returns the store's key, read from the meta key once per process; a store holding
// nothing has none yet (nil), unless create, which makes it.
func (s *Store) openKey(ctx context.Context, create bool) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	raw, err := s.c.Get(ctx, s.metaKey()).Bytes()
	if errors.Is(err, goredis.Nil) {
		if !create {
			return nil, nil
		}
		p, key, nerr := s.keys.New()
		if nerr != nil {
			return nil, nerr
		}
		ok, nerr := s.c.SetNX(ctx, s.metaKey(), p.Marshal(), 0).Result()
		if nerr != nil {
			return nil, s.wrap(nerr)
		}
		if ok {
			s.params, s.key = p.Marshal(), key
			return key, nil
		}
		raw, err = s.c.Get(ctx, s.metaKey()).Bytes() // another process made it first
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	p, err := seal.ParseParams(raw)
	if err != nil {
		return nil, fmt.Errorf("open the Redis token store at %s: %w", s.addr, err)
	}
	key, err := s.keys.Open(p)
	if err == seal.ErrWrongKey { // the key check failed (not: a key of the other kind, which says so)
		return nil, fmt.Errorf("open the Redis token store at %s prefix %s: %w: check the passphrase (or key file) it was created with", s.addr, s.prefix, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open the Redis token store at %s: %w", s.addr, err)
	}
	s.params, s.key = raw, key
	return key, nil
}

// read is an entry as Redis holds it: its value decrypted, version and stamp (zero when absent).
func (s *Store) read(ctx context.Context, key string) (copyOf, error) {
	return s.readOnce(ctx, key, true)
}

// readOnce is read; when retry, a value the cached key cannot open is read again under the key
// parameters Redis holds now, if another process made new ones.
func (s *Store) readOnce(ctx context.Context, key string, retry bool) (copyOf, error) {
	vals, err := s.c.HMGet(ctx, s.entryKey(key), "v", "t", "d").Result()
	if err != nil {
		return copyOf{}, err
	}
	if vals[0] == nil || vals[2] == nil {
		return copyOf{}, nil
	}
	var c copyOf
	c.ver, _ = strconv.ParseInt(vals[0].(string), 10, 64)
	if vals[1] != nil {
		c.stamp, _ = strconv.ParseInt(vals[1].(string), 10, 64)
	}
	k, err := s.openKey(ctx, false)
	if err != nil {
		return copyOf{}, err
	}
	if k == nil {
		return copyOf{}, fmt.Errorf("open the Redis token store at %s: %w: entries without its key parameters (%s); remove the prefix's keys and log in again", s.addr, seal.ErrCorrupt, s.metaKey())
	}
	c.data, err = seal.Unseal(k, []byte(vals[2].(string)), []byte(s.entryKey(key)))
	if err != nil && retry && s.keyChanged(ctx) {
		return s.readOnce(ctx, key, false)
	}
	if err != nil {
		return copyOf{}, fmt.Errorf("open the Redis token store's entry %s at %s: %w: remove it and log in again", key, s.addr, err)
	}
	return c, nil
}

// Load implements store.Store: the entry, or nil. A write still queued for Redis is what this
// process holds; while Redis is down, the last copy read or written is served.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	p, queued := s.pending[key]
	s.mu.Unlock()
	if queued {
		return clone(p.data), nil
	}
	c, err := s.read(ctx, key)
	if down(err) {
		s.mu.Lock()
		l, ok := s.local[key]
		s.mu.Unlock()
		if ok {
			return clone(l.data), nil
		}
		return nil, s.wrap(err)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	s.remember(key, c)
	return c.data, nil
}

func (s *Store) remember(key string, c copyOf) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, queued := s.pending[key]; queued {
		return
	}
	if c.data == nil {
		delete(s.local, key)
		return
	}
	s.local[key] = copyOf{data: clone(c.data), ver: c.ver, stamp: c.stamp}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// casScript writes an entry if its version is still ARGV[1] and, when ARGV[5] is a lock value, if
// that lock is still held with it, or has expired with nobody having written the entry since the
// holder's version ARGV[7]: 1 written, 0 the version moved, -1 the lock was lost. A value
// sealed under the key parameters ARGV[6] is written only beside them (KEYS[3]): put back when
// Redis lost them, -2 when another process made new ones (this process's key is stale).
var casScript = goredis.NewScript(`
if ARGV[5] ~= '' then
  local l = redis.call('GET', KEYS[2])
  if l ~= ARGV[5] and (l or (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[7]) then return -1 end
end
if ARGV[6] ~= '' then
  local m = redis.call('GET', KEYS[3])
  if not m then redis.call('SET', KEYS[3], ARGV[6]) elseif m ~= ARGV[6] then return -2 end
end
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return 0 end
if ARGV[4] == '' then redis.call('DEL', KEYS[1]) else redis.call('HSET', KEYS[1], 'v', ARGV[2], 't', ARGV[3], 'd', ARGV[4]) end
return 1`)

// cas writes next (nil deletes) over version ver, fenced by the lock this process holds on key.
// A result of -2 has forgotten the stale key: the caller reads and tries again.
func (s *Store) cas(ctx context.Context, key string, ver, stamp int64, next []byte) (int64, error) {
	var sealed, params []byte
	if next != nil {
		k, err := s.openKey(ctx, true)
		if err != nil {
			return 0, err
		}
		if sealed, err = seal.Seal(k, next, []byte(s.entryKey(key))); err != nil {
			return 0, err
		}
		s.keyMu.Lock()
		params = s.params
		s.keyMu.Unlock()
	}
	s.mu.Lock()
	fence := s.held[key]
	s.mu.Unlock()
	r, err := casScript.Run(ctx, s.c, []string{s.entryKey(key), s.lockKey(key), s.metaKey()},
		ver, ver+1, stamp, sealed, fence.val, params, fence.ver).Int64()
	if err == nil && r == -2 {
		s.forgetKey(params)
	}
	if err == nil && r == 1 && fence.val != "" {
		s.mu.Lock()
		if h, ok := s.held[key]; ok && h.val == fence.val {
			h.ver = ver + 1
			if next == nil {
				h.ver = 0 // deleted: no version
			}
			s.held[key] = h
		}
		s.mu.Unlock()
	}
	return r, err
}

// forgetKey drops the cached key when it still is the one derived from params: Redis holds other
// key parameters (it lost its data and another process made new ones), so the next use reads them.
func (s *Store) forgetKey(params []byte) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if string(s.params) == string(params) {
		s.params, s.key = nil, nil
	}
}

// keyChanged says whether Redis holds key parameters other than those of the cached key, and if
// so forgets it.
func (s *Store) keyChanged(ctx context.Context) bool {
	s.keyMu.Lock()
	params := s.params
	s.keyMu.Unlock()
	raw, err := s.c.Get(ctx, s.metaKey()).Bytes()
	if params == nil || err != nil || string(raw) == string(params) {
		return false
	}
	s.forgetKey(params)
	return true
}

// Update implements store.Store with compare-and-set: fn may run more than once when another
// process writes the entry meanwhile, each time with what that one wrote. While Redis is down it
// applies fn to this process's copy and queues the result for Redis.
func (s *Store) Update(ctx context.Context, key string, fn func(old []byte) ([]byte, error)) error {
	s.mu.Lock()
	_, queued := s.pending[key]
	s.mu.Unlock()
	if queued && s.flush(ctx) > 0 {
		// Still queued: Redis is down, or holds the entry newer; fn must see the queued value.
		return s.updateLocal(ctx, key, fn, ErrUnavailable)
	}
	for {
		c, err := s.read(ctx, key)
		if down(err) {
			return s.updateLocal(ctx, key, fn, err)
		}
		if err != nil {
			return s.wrap(err) // never overwrite what could not be read
		}
		next, err := fn(clone(c.data))
		if err != nil {
			return err
		}
		if next == nil && c.data == nil {
			return nil
		}
		stamp := time.Now().UnixNano()
		r, err := s.cas(ctx, key, c.ver, stamp, next)
		if down(err) {
			return s.updateLocal(ctx, key, fn, err)
		}
		if err != nil {
			return s.wrap(err)
		}
		switch r {
		case 1:
			s.mu.Lock()
			delete(s.pending, key)
			s.mu.Unlock()
			s.remember(key, copyOf{data: next, ver: c.ver + 1, stamp: stamp})
			return nil
		case -1:
			return ErrLockLost
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// updateLocal is Update while Redis is down: on this process's copy, queued for Redis.
func (s *Store) updateLocal(ctx context.Context, key string, fn func(old []byte) ([]byte, error), cause error) error {
	s.mu.Lock()
	base, ok := s.pending[key]
	if !ok {
		base, ok = s.local[key]
	}
	s.mu.Unlock()
	if !ok {
		return s.wrap(cause) // nothing known to update
	}
	next, err := fn(clone(base.data))
	if err != nil {
		return err
	}
	c := copyOf{data: clone(next), ver: base.ver, stamp: time.Now().UnixNano()}
	s.mu.Lock()
	s.pending[key] = c
	if next == nil {
		delete(s.local, key)
	} else {
		s.local[key] = c
	}
	start := !s.flushOn
	s.flushOn = true
	s.mu.Unlock()
	if start {
		go s.flushLoop()
	}
	return nil
}

// flushLoop writes the queue into Redis, retrying until it is empty or the store is closed.
func (s *Store) flushLoop() {
	wait := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		left := s.flush(ctx)
		cancel()
		if left == 0 {
			s.mu.Lock()
			if len(s.pending) == 0 {
				s.flushOn = false
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			continue
		}
		select {
		case <-s.done:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// flush tries to write each queued entry once and returns how many of them are still queued (not
// written by it nor by a flush running beside it: Close's and the background writer's). A queued
// write is dropped only for a later one already in Redis (another process's, whose tokens are newer).
func (s *Store) flush(ctx context.Context) int {
	s.mu.Lock()
	queue := make(map[string]copyOf, len(s.pending))
	for k, v := range s.pending {
		queue[k] = v
	}
	s.mu.Unlock()
	for key, p := range queue {
		done, newer := s.flushOne(ctx, key, p)
		if !done {
			continue
		}
		s.mu.Lock()
		if q, ok := s.pending[key]; ok && q.stamp == p.stamp {
			delete(s.pending, key)
			if newer {
				delete(s.local, key) // newer in Redis: read it next time
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	left := 0
	for key := range queue {
		if _, ok := s.pending[key]; ok {
			left++
		}
	}
	return left
}

// flushOne writes one queued entry: done when it is in Redis (written now, or by a flush running
// beside this one: the same write time) or a later write is there (newer), which it never replaces.
// A write that lost a race (the version moved) is tried again, a few times.
func (s *Store) flushOne(ctx context.Context, key string, p copyOf) (done, newer bool) {
	for range 3 {
		cur, err := s.read(ctx, key)
		if err != nil {
			return false, false
		}
		if cur.stamp >= p.stamp {
			return true, cur.stamp > p.stamp
		}
		r, err := s.cas(ctx, key, cur.ver, p.stamp, p.data)
		if err != nil {
			return false, false
		}
		if r == 1 {
			return true, false
		}
		// 0: another write came first, -2: new key parameters, -1: this process's lock on the
		// entry was lost (the write waits for its release).
	}
	return false, false
}

// Keys implements store.Store, sorted.
func (s *Store) Keys(ctx context.Context) ([]string, error) {
	m, err := s.scan(ctx, "", false)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// Entries implements store.Lister.
func (s *Store) Entries(ctx context.Context, prefix string) (map[string][]byte, error) {
	return s.scan(ctx, prefix, true)
}

// scan lists the entries under prefix, with their values when values.
func (s *Store) scan(ctx context.Context, prefix string, values bool) (map[string][]byte, error) {
	out := map[string][]byte{}
	var names []string
	iter := s.c.Scan(ctx, 0, globEscape(s.entryKey(prefix))+"*", 200).Iterator()
	for iter.Next(ctx) {
		names = append(names, strings.TrimPrefix(iter.Val(), s.prefix+"e:"))
	}
	err := iter.Err()
	if down(err) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for k, v := range s.local {
			if strings.HasPrefix(k, prefix) && v.data != nil {
				out[k] = clone(v.data)
			}
		}
		for k, v := range s.pending {
			if strings.HasPrefix(k, prefix) && v.data != nil {
				out[k] = clone(v.data)
			}
		}
		if len(out) == 0 {
			// Knowing nothing is not knowing that there is nothing (a migration would copy nothing).
			return nil, s.wrap(err)
		}
		return out, nil
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	for _, k := range names {
		if !values {
			out[k] = nil
			continue
		}
		v, err := s.Load(ctx, k)
		if err != nil {
			return nil, err
		}
		if v != nil {
			out[k] = v
		}
	}
	return out, nil
}

// globEscape escapes SCAN MATCH's special characters.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

var (
	// lockScript takes the lock for ARGV[1] if it is free or already ARGV[1]'s (idempotent, so that
	// go-redis retrying it after a lost reply, the first having taken the lock, does not make the
	// holder wait for its own lock to expire) and returns the entry's version; -1: another holds it.
	lockScript = goredis.NewScript(`
local l = redis.call('GET', KEYS[1])
if l and l ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return tonumber(redis.call('HGET', KEYS[2], 'v') or '0')`)
	// unlockScript deletes the lock if it is still this holder's.
	unlockScript = goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	// renewScript extends the lock if it is still this holder's.
	renewScript = goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
)

// lockPoll is how often a waiter tries for a lock another process holds.
const lockPoll = 20 * time.Millisecond

// Lock implements store.Locker: this process's goroutines wait for one another first (the keys
// share 64 slots), then for the lock in Redis, polling. While Redis is down the lock is this
// process's only.
func (s *Store) Lock(ctx context.Context, key string) (func(), error) {
	slot := s.slots[bucket(key)]
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the token store's lock on %s: %w", key, ctx.Err())
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	val := hex.EncodeToString(b[:])
	for {
		ver, err := s.acquire(ctx, key, val)
		if down(err) && ctx.Err() == nil {
			return func() { <-slot }, nil
		}
		if err != nil {
			<-slot
			if ctx.Err() != nil {
				return nil, fmt.Errorf("wait for the token store's lock on %s: %w", key, ctx.Err())
			}
			return nil, s.wrap(err)
		}
		if ver >= 0 {
			s.mu.Lock()
			s.held[key] = hold{val: val, ver: ver}
			s.mu.Unlock()
			break
		}
		select {
		case <-ctx.Done():
			<-slot
			return nil, fmt.Errorf("wait for the token store's lock on %s: %w", key, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go s.renew(key, val, stop, renewed)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-renewed
			s.mu.Lock()
			delete(s.held, key)
			s.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = unlockScript.Run(ctx, s.c, []string{s.lockKey(key)}, val).Err() // else it expires
			<-slot
		})
	}, nil
}

// acquire tries once to take the lock on key for val: the entry's version, or -1 when another
// holds the lock.
func (s *Store) acquire(ctx context.Context, key, val string) (int64, error) {
	return lockScript.Run(ctx, s.c, []string{s.lockKey(key), s.entryKey(key)}, val, s.lockTTL.Milliseconds()).Int64()
}

// renew extends a held lock every third of its TTL until stop.
func (s *Store) renew(key, val string, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.lockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.lockTTL/3)
			_ = renewScript.Run(ctx, s.c, []string{s.lockKey(key)}, val, s.lockTTL.Milliseconds()).Err()
			cancel()
		}
	}
}

// bucket is the slot a key shares with others in this process.
func bucket(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return int(h % 64)
}

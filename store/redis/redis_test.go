package redis_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mailoauth/mailoauth/internal/redistest"
	"github.com/mailoauth/mailoauth/store"
	"github.com/mailoauth/mailoauth/store/redis"
)

var (
	_ store.Store  = (*redis.Store)(nil)
	_ store.Locker = (*redis.Store)(nil)
	_ store.Lister = (*redis.Store)(nil)
)

func open(t *testing.T, srv *redistest.Server, pass string, edit ...func(*redis.Options)) *redis.Store {
	t.Helper()
	o := redis.Options{URL: srv.URL(), Username: srv.User, Password: srv.Password, Prefix: "t:",
		Passphrase: func() ([]byte, error) { return []byte(pass), nil }}
	for _, e := range edit {
		e(&o)
	}
	s, err := redis.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func client(t *testing.T, srv *redistest.Server) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), Username: srv.User, Password: srv.Password})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

const secretJSON = `{"msal":{"RefreshToken":{"k":{"secret":"RT-very-secret-refresh"}},"AccessToken":{"k":{"secret":"AT-very-secret-access"}}}}`

// What one process writes another reads, through Redis, and Redis never holds it in clear: every
// key is scanned for the tokens and the JSON's field names.
func TestRoundTripNothingInClear(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b := open(t, srv, "right"), open(t, srv, "right")
	if err := a.Update(ctx, "account/work", func(old []byte) ([]byte, error) {
		if old != nil {
			t.Errorf("a new entry's old value is %d bytes", len(old))
		}
		return []byte(secretJSON), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(ctx, "account/work/user/u1", func([]byte) ([]byte, error) { return []byte(`{"msal":{}}`), nil }); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(ctx, "account/work")
	if err != nil || string(got) != secretJSON {
		t.Fatalf("Load from another store = %q, %v", got, err)
	}
	keys, err := b.Keys(ctx)
	if err != nil || strings.Join(keys, ",") != "account/work,account/work/user/u1" {
		t.Fatalf("Keys = %v, %v", keys, err)
	}
	users, err := b.Entries(ctx, "account/work/user/")
	if err != nil || len(users) != 1 || string(users["account/work/user/u1"]) != `{"msal":{}}` {
		t.Fatalf("Entries = %v, %v", users, err)
	}
	c := client(t, srv)
	var names []string
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		names = append(names, iter.Val())
	}
	err = iter.Err()
	if err != nil || len(names) != 3 { // meta and two entries
		t.Fatalf("Redis holds keys %v, %v; want meta and two entries", names, err)
	}
	for _, name := range names {
		var vals []string
		if typ := c.Type(ctx, name).Val(); typ == "hash" {
			for _, v := range c.HGetAll(ctx, name).Val() {
				vals = append(vals, v)
			}
		} else {
			vals = append(vals, c.Get(ctx, name).Val())
		}
		for _, v := range vals {
			for _, clear := range []string{"RT-very-secret-refresh", "AT-very-secret-access", "RefreshToken", "AccessToken", "secret", "msal", "right"} {
				if strings.Contains(v, clear) {
					t.Errorf("Redis key %s holds %q in clear", name, clear)
				}
			}
		}
	}
	if err := b.Update(ctx, "account/work", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Load(ctx, "account/work"); err != nil || got != nil {
		t.Fatalf("after a delete Load = %q, %v", got, err)
	}
}

// A passphrase other than the one the store was made with is ErrWrongKey, with a message saying
// what to check, and nothing is overwritten.
func TestWrongKey(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := open(t, srv, "right").Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte(secretJSON), nil }); err != nil {
		t.Fatal(err)
	}
	wrong := open(t, srv, "wrong")
	_, err := wrong.Load(ctx, "account/work")
	if !errors.Is(err, store.ErrWrongKey) || !strings.Contains(err.Error(), "check the passphrase") {
		t.Fatalf("Load with the wrong passphrase: %v; want ErrWrongKey saying what to check", err)
	}
	if err := wrong.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte("x"), nil }); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("Update with the wrong passphrase: %v", err)
	}
	if err := wrong.Check(ctx); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("Check with the wrong passphrase: %v", err)
	}
	if got, err := open(t, srv, "right").Load(ctx, "account/work"); err != nil || string(got) != secretJSON {
		t.Fatalf("the entry after the wrong key's attempts: %q, %v", got, err)
	}
	bad := open(t, srv, "right", func(o *redis.Options) { o.Password = "not-it" })
	if err := bad.Check(ctx); err == nil || !strings.Contains(err.Error(), "password_env") || strings.Contains(err.Error(), "not-it") {
		t.Fatalf("Check with a wrong Redis password: %v; want advice and no password", err)
	}
}

// Concurrent updates from two stores (processes) lose nothing: compare-and-set on the version.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	stores := []*redis.Store{open(t, srv, "p"), open(t, srv, "p")}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := stores[i%2].Update(ctx, "n", func(old []byte) ([]byte, error) {
				return append(old, 'x'), nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, _ := stores[0].Load(ctx, "n"); len(got) != 20 {
		t.Fatalf("after 20 appends the entry has %d bytes", len(got))
	}
}

// A holder whose lock expired while it was paused, and was taken by another, cannot write over
// what the other wrote: the fencing check refuses it.
func TestFencedWrite(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b := open(t, srv, "p"), open(t, srv, "p")
	relA, err := a.Lock(ctx, "account/work")
	if err != nil {
		t.Fatal(err)
	}
	defer relA()
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := b.Lock(wctx, "account/work"); err == nil {
		t.Fatal("a second process took a held lock")
	}
	cancel()
	// The lock expires (as it would while a is paused past its TTL) and b takes it and writes.
	if err := client(t, srv).Del(ctx, "t:lock:account/work").Err(); err != nil {
		t.Fatal(err)
	}
	relB, err := b.Lock(ctx, "account/work")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte("newer"), nil }); err != nil {
		t.Fatal(err)
	}
	relB()
	err = a.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte("stale"), nil })
	if !errors.Is(err, redis.ErrLockLost) {
		t.Fatalf("the paused holder's write: %v; want ErrLockLost", err)
	}
	if got, _ := b.Load(ctx, "account/work"); !bytes.Equal(got, []byte("newer")) {
		t.Fatalf("the entry is %q; want the newer write", got)
	}
}

// Redis killed: what the store read is still served, an update is kept and queued, and once Redis
// is back on the same port the queued write is in it.
func TestOutageQueuesWrites(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, "p")
	if err := a.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte("v1"), nil }); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if got, err := a.Load(ctx, "account/work"); err != nil || string(got) != "v1" {
		t.Fatalf("Load during the outage = %q, %v; want the copy", got, err)
	}
	if err := a.Update(ctx, "account/work", func(old []byte) ([]byte, error) { return []byte("v2 after " + string(old)), nil }); err != nil {
		t.Fatalf("Update during the outage: %v", err)
	}
	if _, err := open(t, srv, "p").Load(ctx, "account/other"); !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("Load of what no copy holds during the outage: %v; want ErrUnavailable", err)
	}
	srv.Restart()
	// Close writes what is still queued (the background writer may have already): then it is in Redis.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := open(t, srv, "p").Load(ctx, "account/work"); err != nil || string(got) != "v2 after v1" {
		t.Fatalf("after Redis came back it holds %q, %v; want the write queued during the outage", got, err)
	}
}

// A URL with a password in it is refused before anything connects (a secret in the configuration).
func TestURLWithPassword(t *testing.T) {
	_, err := redis.Open(redis.Options{URL: "redis://u:hunter2@127.0.0.1:1", Key: func() ([]byte, error) { return nil, nil }})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "password_file") {
		t.Fatalf("Open with a password in the URL: %v", err)
	}
}

// rediss:// verifies the server's certificate: against ca_file it connects and round-trips; against
// the system's CAs (which did not sign it) it refuses to connect; ca_file with redis:// is refused.
func TestTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	ctx := context.Background()
	s := open(t, srv, "p", func(o *redis.Options) { o.CAFile = srv.CAFile })
	if err := s.Update(ctx, "k", func([]byte) ([]byte, error) { return []byte("v"), nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Load over TLS = %q, %v", got, err)
	}
	untrusted := open(t, srv, "p")
	if err := untrusted.Check(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Check against a certificate no trusted CA signed: %v; want a certificate error", err)
	}
	// go-redis would turn the check off for ?skip_verify=true: the store refuses query options.
	_, err := redis.Open(redis.Options{URL: srv.URL() + "?skip_verify=true", Key: func() ([]byte, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "query options") {
		t.Fatalf("rediss:// with ?skip_verify=true: %v; want refused", err)
	}
	_, err = redis.Open(redis.Options{URL: strings.Replace(srv.URL(), "rediss:", "redis:", 1), CAFile: srv.CAFile,
		Key: func() ([]byte, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "use rediss://") {
		t.Fatalf("ca_file with redis://: %v", err)
	}
}

// wipe deletes every key, as a Redis restarted without persistence has lost them.
func wipe(t *testing.T, srv *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	c := client(t, srv)
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		if err := c.Del(ctx, iter.Val()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

// Redis losing its data (restarted without persistence) under a running process does not leave
// entries nobody can read: the process's next write puts its key parameters back beside it, and a
// process whose key another made anew (same passphrase, new salt) reads and writes with the new one.
func TestKeyParametersLostOrRemade(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	put := func(s *redis.Store, key, v string) {
		t.Helper()
		if err := s.Update(ctx, key, func([]byte) ([]byte, error) { return []byte(v), nil }); err != nil {
			t.Fatal(err)
		}
	}
	load := func(s *redis.Store, key, want string) {
		t.Helper()
		if got, err := s.Load(ctx, key); err != nil || string(got) != want {
			t.Errorf("Load(%s) = %q, %v; want %q", key, got, err, want)
		}
	}
	a := open(t, srv, "p")
	put(a, "k", "v1")
	wipe(t, srv)
	put(a, "k", "v2") // a's key is cached; Redis has no parameters any more
	load(open(t, srv, "p"), "k", "v2")

	wipe(t, srv)
	put(open(t, srv, "p"), "other", "from b") // b makes new key parameters (a new salt)
	put(a, "k", "v3")
	load(open(t, srv, "p"), "k", "v3")
	load(a, "other", "from b")
}

// A sealed value is bound to its key name: copied into another entry's key it is refused, not
// served as that entry's tokens.
func TestSwappedValueRefused(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, "p")
	for _, k := range []string{"account/alice", "account/bob"} {
		if err := a.Update(ctx, k, func([]byte) ([]byte, error) { return []byte("tokens of " + k), nil }); err != nil {
			t.Fatal(err)
		}
	}
	c := client(t, srv)
	if err := c.HSet(ctx, "t:e:account/bob", "d", c.HGet(ctx, "t:e:account/alice", "d").Val()).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := open(t, srv, "p").Load(ctx, "account/bob")
	if !errors.Is(err, store.ErrCorrupt) || got != nil {
		t.Fatalf("Load of a value copied from another key = %q, %v; want ErrCorrupt", got, err)
	}
}

// Listing during an outage by a process that holds no copy is ErrUnavailable, not an empty store
// (store migrate --from redis would report success having copied nothing).
func TestListDuringOutageKnowingNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, "p")
	if err := a.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte("v"), nil }); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if keys, err := open(t, srv, "p").Keys(ctx); !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("Keys of a new process during the outage = %v, %v; want ErrUnavailable", keys, err)
	}
	if keys, err := a.Keys(ctx); err != nil || len(keys) != 1 {
		t.Fatalf("Keys of the process holding a copy = %v, %v; want its copy", keys, err)
	}
}

// Close with Redis still down says that the updates it queued are lost, as ErrUnavailable, instead
// of returning as if they were written.
func TestCloseSaysWhatIsLost(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, "p")
	if err := a.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte("v1"), nil }); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := a.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte("v2"), nil }); err != nil {
		t.Fatal(err)
	}
	err := a.Close()
	if !errors.Is(err, redis.ErrUnavailable) || !strings.Contains(err.Error(), "1 token update(s)") || strings.Contains(err.Error(), srv.Password) {
		t.Fatalf("Close with a write queued and Redis down: %v; want ErrUnavailable saying one update is lost", err)
	}
}

// A holder whose lock expired while nobody took it or wrote the entry (it was paused, or Redis lost
// the lock key) still writes: its refreshed tokens are the newest, and refusing them would lose them.
func TestExpiredLockUntouchedEntryWrites(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, "p")
	put := func(v string) error {
		return a.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte(v), nil })
	}
	if err := put("v1"); err != nil {
		t.Fatal(err)
	}
	rel, err := a.Lock(ctx, "account/work")
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	if err := put("v2 by the holder"); err != nil {
		t.Fatal(err)
	}
	if err := client(t, srv).Del(ctx, "t:lock:account/work").Err(); err != nil { // expired
		t.Fatal(err)
	}
	if err := put("v3 by the holder"); err != nil {
		t.Fatalf("the holder's write after its lock expired, nobody having written: %v; want written", err)
	}
	if got, err := open(t, srv, "p").Load(ctx, "account/work"); err != nil || string(got) != "v3 by the holder" {
		t.Fatalf("the entry is %q, %v", got, err)
	}
}

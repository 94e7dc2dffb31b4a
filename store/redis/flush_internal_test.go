package redis

import (
	"context"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/redistest"
)

// A write queued during an outage is written when Redis is back, unless Redis holds a write made
// after it (another process's newer tokens), which it never replaces.
func TestFlushNeverReplacesNewer(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	open := func() *Store {
		s, err := Open(Options{URL: srv.URL(), Username: srv.User, Password: srv.Password,
			Key: func() ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	put := func(s *Store, key, v string) {
		t.Helper()
		if err := s.Update(ctx, key, func([]byte) ([]byte, error) { return []byte(v), nil }); err != nil {
			t.Fatal(err)
		}
	}
	put(a, "older", "v1")
	put(a, "newer", "v1")
	// a queued both during an outage, before b wrote "older" again once Redis was back.
	queuedAt := time.Now().Add(-time.Minute).UnixNano()
	a.mu.Lock()
	a.pending["older"] = copyOf{data: []byte("queued"), ver: 1, stamp: queuedAt}
	a.pending["newer"] = copyOf{data: []byte("queued"), ver: 1, stamp: time.Now().Add(time.Minute).UnixNano()}
	a.mu.Unlock()
	put(b, "older", "written after the queue")
	if left := a.flush(ctx); left != 0 {
		t.Fatalf("%d queued writes left with Redis up", left)
	}
	for key, want := range map[string]string{"older": "written after the queue", "newer": "queued"} {
		if got, err := b.Load(ctx, key); err != nil || string(got) != want {
			t.Errorf("%s after the flush: %q, %v; want %q", key, got, err, want)
		}
	}
}

// A queued write whose fenced write is refused (this process's lock on the entry was lost) stays
// queued, and is written once the lock is no longer held, rather than dropped.
func TestFlushKeepsWriteRefusedByLostLock(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, err := Open(Options{URL: srv.URL(), Username: srv.User, Password: srv.Password,
		Key: func() ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Update(ctx, "k", func([]byte) ([]byte, error) { return []byte("v1"), nil }); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.pending["k"] = copyOf{data: []byte("queued"), ver: 1, stamp: time.Now().UnixNano()}
	s.held["k"] = hold{val: "a lock value that expired", ver: 0} // the entry moved since: the fence refuses the write
	s.mu.Unlock()
	if left := s.flush(ctx); left != 1 {
		t.Fatalf("a write the fence refused: %d left queued; want 1 (not dropped)", left)
	}
	s.mu.Lock()
	delete(s.held, "k") // released
	s.mu.Unlock()
	if left := s.flush(ctx); left != 0 {
		t.Fatalf("%d queued writes left once the lock was released", left)
	}
	s.mu.Lock()
	delete(s.local, "k")
	s.mu.Unlock()
	if got, err := s.Load(ctx, "k"); err != nil || string(got) != "queued" {
		t.Fatalf("Redis holds %q, %v; want the queued write", got, err)
	}
}

// Taking a lock is idempotent for its value: go-redis retries a command whose reply was lost, and a
// retry of a take that succeeded must not find the lock "held by another" (its own) and wait for it
// to expire.
func TestAcquireIdempotent(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, err := Open(Options{URL: srv.URL(), Username: srv.User, Password: srv.Password,
		Key: func() ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for i := range 2 {
		if ver, err := s.acquire(ctx, "k", "mine"); err != nil || ver != 0 {
			t.Fatalf("take %d of a lock for one value: %v, %v; want taken (the entry's version 0)", i+1, ver, err)
		}
	}
	if ver, err := s.acquire(ctx, "k", "another's"); err != nil || ver != -1 {
		t.Fatalf("another value took a held lock: %v, %v", ver, err)
	}
	if ttl := s.c.PTTL(ctx, s.lockKey("k")).Val(); ttl <= 0 || ttl > s.lockTTL {
		t.Fatalf("the lock's expiry is %v; want within %v", ttl, s.lockTTL)
	}
}

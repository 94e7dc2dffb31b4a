package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"
)

// TestRetryBackoffHasJitter: retries of a transient failure wait a random time below the
// exponential bound (retryBase, then 2×retryBase: full jitter), so that processes recovering from
// one outage spread out; a non-transient answer ends the retries at once. Many runs go in parallel
// and their waits are compared: without jitter they would all be alike.
func TestRetryBackoffHasJitter(t *testing.T) {
	const runs = 40
	transient := &Error{Account: "a", Op: "refresh", Transient: true, Err: errors.New("503")}
	var mu sync.Mutex
	var first, second []time.Duration
	var wg sync.WaitGroup
	for range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var calls []time.Time
			_, err := retryTransient(context.Background(), func() (*token.Token, error) {
				calls = append(calls, time.Now())
				return nil, transient
			})
			if err != transient || len(calls) != retryAttempts {
				t.Errorf("%d attempts, error %v; want %d and the last failure", len(calls), err, retryAttempts)
				return
			}
			mu.Lock()
			first = append(first, calls[1].Sub(calls[0]))
			second = append(second, calls[2].Sub(calls[1]))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Generous slack above the bounds: a loaded machine wakes timers late, never early.
	const slack = 2 * time.Second
	for i, waits := range [][]time.Duration{first, second} {
		bound := retryBase << i
		lo, hi := waits[0], waits[0]
		for _, d := range waits {
			lo, hi = min(lo, d), max(hi, d)
		}
		if hi > bound+slack {
			t.Errorf("retry %d waited up to %v, beyond its bound %v", i+1, hi, bound)
		}
		// Uniform over [0, bound): 40 waits all within bound/4 of each other has probability < 1e-20.
		if hi-lo < bound/4 {
			t.Errorf("retry %d: %d waits all between %v and %v: no jitter", i+1, runs, lo, hi)
		}
	}
}

// TestRetryStopsOnRefusalAndCancel: a refused grant is not retried, and a caller's deadline cuts the
// backoff short.
func TestRetryStopsOnRefusalAndCancel(t *testing.T) {
	n := 0
	refused := &Error{Account: "a", Op: "refresh", Code: "invalid_grant"}
	if _, err := retryTransient(context.Background(), func() (*token.Token, error) { n++; return nil, refused }); err != refused || n != 1 {
		t.Fatalf("refused grant: %d attempts, %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	_, err := retryTransient(ctx, func() (*token.Token, error) {
		n++
		cancel()
		return nil, &Error{Transient: true, Err: errors.New("503")}
	})
	if n != 1 || err == nil {
		t.Fatalf("cancelled during backoff: %d attempts, %v", n, err)
	}
}

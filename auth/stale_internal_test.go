package auth

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/token"
)

// TestServeStaleKeepsFreshToken: a waiter's budget runs out, and before it takes the account's lock
// to serve the old token the flight it gave up on succeeds and puts a fresh token on the hot path.
// The old token must not replace the fresh one (it would be served, marked failed, for staleRetry),
// and the waiter gets the fresh one. The interleaving is set up step by step, in the order it happens.
func TestServeStaleKeepsFreshToken(t *testing.T) {
	now := time.Now()
	a := &Account{cfg: &config.Account{Name: "x"}, opts: Options{Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		hot: map[slot]*token.Token{}, staleUntil: map[slot]time.Time{}, hotUntil: map[slot]time.Time{}, gen: map[string]uint64{}}
	s := slot{"user", token.Exchange}
	old := &token.Token{AccessToken: "old", ExpiresOn: now.Add(4 * time.Minute), Resource: token.Exchange}
	fresh := &token.Token{AccessToken: "fresh", ExpiresOn: now.Add(time.Hour), Resource: token.Exchange}
	gen := a.generation(s.home) // the waiter starts
	a.rememberIf(s, fresh, gen) // the flight succeeds after the waiter's budget ran out
	got := a.serveStale(s, old, &Error{Account: "x", Op: "token", Transient: true, Err: errors.New("deadline")}, gen)
	if got.AccessToken != "fresh" || got.RefreshErr != nil {
		t.Fatalf("the waiter got %q (RefreshErr %v), want the fresh token", got.AccessToken, got.RefreshErr)
	}
	if h := a.hotToken(s); h == nil || h.AccessToken != "fresh" || h.RefreshErr != nil {
		t.Fatalf("the hot path holds %+v, want the fresh token", h)
	}
}

package auth

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/token"
)

// An outage of the identity platform must not start hurting Margin early: a token inside
// its refresh margin is refreshed, but when that fails transiently the token is served until it
// really expires. A refused refresh is not an outage: it fails the call (servesStale). These bound
// how long a caller waits for such a refresh, and how often it is tried.
const (
	// staleWait bounds the wait for a refresh when a still-valid token could be served instead (and
	// half the caller's remaining time bounds it too): a hung identity platform costs a caller this,
	// not its whole deadline. The refresh goes on for the account's next caller.
	staleWait = 10 * time.Second
	// staleRetry is how long a token served after a failed refresh is served again without a new
	// attempt: during an outage every caller would otherwise wait for the retries.
	staleRetry = 30 * time.Second
)

// staleToken is the slot's last token that has not expired, to serve if its refresh fails: the
// one in memory, else stored (what the store holds: a new process has nothing in memory). nil
// when there is none.
func (a *Account) staleToken(stored *token.Token, s slot) *token.Token {
	now := a.opts.Now()
	a.mu.Lock()
	t := a.hot[s]
	a.mu.Unlock()
	if t == nil || !now.Before(t.ExpiresOn) {
		t = stored
	}
	if t == nil || !now.Before(t.ExpiresOn) {
		return nil
	}
	return t
}

// fresh reports whether t is outside the refresh margin: a stored token that is (another process, or
// this one before a restart, got it) is served as it is, with no lock and no request.
func (a *Account) fresh(t *token.Token) bool {
	return t != nil && a.opts.Now().Add(Margin).Before(t.ExpiresOn)
}

// storedToken reads MSAL's cache as stored for the slot's access token: its user's (none for the
// application's own), for all of the resource's scopes, the last to expire. It never goes to the
// network.
func (a *Account) storedToken(ctx context.Context, s slot) *token.Token {
	t, _ := a.storedEntryToken(ctx, s)
	return t
}

// storedEntryToken is storedToken, and whether the store holds the slot's entry (true too when
// it could not be read: the caller finds out why when it reads it again).
func (a *Account) storedEntryToken(ctx context.Context, s slot) (*token.Token, bool) {
	e, err := a.storeCache(a.slotKey(s)).load(ctx)
	if err != nil || e == nil {
		return nil, err != nil
	}
	blob, ok := parseBlob(e)
	if !ok {
		return nil, true
	}
	var best *token.Token
	for _, at := range blob.AccessToken {
		exp, ok := at.expiry()
		if !ok || at.Secret == "" || !strings.EqualFold(at.Home, s.home) || !strings.EqualFold(at.ClientID, a.cfg.ClientID) || !hasScopes(at.Target, a.Scopes(s.r)) {
			continue
		}
		if best == nil || exp.After(best.ExpiresOn) {
			best = &token.Token{AccessToken: at.Secret, ExpiresOn: exp, Resource: s.r}
		}
	}
	return best, true
}

// hasScopes: every scope wanted is in target (space-separated, case-insensitive), as MSAL matches.
func hasScopes(target string, want []string) bool {
	have := map[string]bool{}
	for _, s := range strings.Fields(target) {
		have[strings.ToLower(s)] = true
	}
	for _, s := range want {
		if !have[strings.ToLower(s)] {
			return false
		}
	}
	return true
}

// waitBudget is how long Token waits for a refresh when stale could be served instead.
func waitBudget(ctx context.Context) time.Duration {
	d := staleWait
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return d
}

// servesStale says whether a refresh that failed with err leaves a still-valid token servable: only
// a transient failure (5xx, 429, a timeout, the wait budget spent), after which the token is as good
// as it was. A refused grant (invalid_grant, interaction_required: ErrLoginRequired) is not: it can
// mean the account was disabled or its sessions revoked to cut its access, so the caller is told to
// sign in again at once. Anything else (the store unreadable, a configuration error, the caller
// cancelling) is the caller's news, not a fallback.
func servesStale(err error) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Transient
}

// serveStale hands out t after its refresh failed with err, and keeps doing so without a new
// attempt for staleRetry (unless a Refresh or forget intervenes: gen). When the flight the caller
// gave up on succeeded meanwhile, its token (a later one than t) is on the hot path: that one is
// served and kept.
func (a *Account) serveStale(sl slot, t *token.Token, err error, gen uint64) *token.Token {
	now := a.opts.Now()
	a.mu.Lock()
	if h := a.hot[sl]; h != nil && h.ExpiresOn.After(t.ExpiresOn) {
		a.mu.Unlock()
		return h
	}
	s := *t
	s.RefreshErr = err
	if a.gen[sl.home] == gen {
		a.hot[sl] = &s
		delete(a.hotUntil, sl) // served as stale, for staleRetry only
		a.staleUntil[sl] = now.Add(staleRetry)
	}
	a.mu.Unlock()
	a.opts.Log.Debug("refresh failed; serving the cached token until it expires", "account", a.cfg.Name, "resource", string(t.Resource), "expires_in", t.ExpiresOn.Sub(now).Round(time.Second).String(), "err", err)
	return &s
}

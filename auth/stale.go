package auth

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// An outage of the identity platform must not start hurting Margin early (issue 13): a token inside
// its refresh margin is refreshed, but when that fails transiently the token is served until it
// really expires. These bound how long a caller waits for such a refresh, and how often it is tried.
const (
	// staleWait bounds the wait for a refresh when a still-valid token could be served instead (and
	// half the caller's remaining time bounds it too): a hung identity platform costs a caller this,
	// not its whole deadline. The refresh goes on for the account's next caller.
	staleWait = 10 * time.Second
	// staleRetry is how long a token served after a failed refresh is served again without a new
	// attempt: during an outage every caller would otherwise wait for the retries.
	staleRetry = 30 * time.Second
)

// staleToken is the account's last token for r when it is inside the refresh margin but not expired:
// the one in memory, else the one in the store (a new process). nil when there is none.
func (a *Account) staleToken(ctx context.Context, r Resource) *Token {
	now := a.opts.Now()
	a.mu.Lock()
	t := a.hot[r]
	a.mu.Unlock()
	if t == nil || !now.Before(t.ExpiresOn) {
		t = a.storedToken(ctx, r)
	}
	if t == nil || !now.Before(t.ExpiresOn) {
		return nil
	}
	return t
}

// storedToken reads MSAL's cache as stored for the access token of r: the account's, for all of r's
// scopes, the last to expire. It never goes to the network.
func (a *Account) storedToken(ctx context.Context, r Resource) *Token {
	e, err := a.cache.load(ctx)
	if err != nil || e == nil || len(e.MSAL) == 0 {
		return nil
	}
	home := "" // an app's own tokens belong to no account
	switch {
	case a.cfg.Flow == config.FlowClientCredentials:
	case a.conf != nil:
		home = e.HomeAccountID
	default:
		acct, err := a.publicAccount(ctx)
		if err != nil || acct.IsZero() {
			return nil
		}
		home = acct.HomeAccountID
	}
	var blob struct {
		AccessToken map[string]struct {
			Home      string `json:"home_account_id"`
			ClientID  string `json:"client_id"`
			Secret    string `json:"secret"`
			Target    string `json:"target"`
			ExpiresOn string `json:"expires_on"`
		} `json:"AccessToken"`
	}
	if json.Unmarshal(e.MSAL, &blob) != nil {
		return nil
	}
	var best *Token
	for _, at := range blob.AccessToken {
		sec, err := strconv.ParseInt(at.ExpiresOn, 10, 64)
		if err != nil || at.Secret == "" || !strings.EqualFold(at.Home, home) || !strings.EqualFold(at.ClientID, a.cfg.ClientID) || !hasScopes(at.Target, a.Scopes(r)) {
			continue
		}
		if exp := time.Unix(sec, 0); best == nil || exp.After(best.ExpiresOn) {
			best = &Token{AccessToken: at.Secret, ExpiresOn: exp, Resource: r}
		}
	}
	return best
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

// servesStale says whether a refresh that failed with err leaves a still-valid token servable.
//
// A transient failure (5xx, 429, a timeout, the wait budget spent) does: the token is as good as it
// was. So does a refused grant (invalid_grant, ErrLoginRequired): the refresh token is dead, but the
// access token it got earlier is not — Entra does not revoke issued access tokens with the refresh
// token, a mail server accepts it until it expires, and a token outside the margin is served in the
// same situation without anyone knowing. Refusing it would cut the user's mail minutes early and
// tell them nothing a warning cannot: the token comes back with RefreshErr wrapping ErrLoginRequired,
// the refusal is logged as a warning, and `mailoauth token` prints it. Anything else (the store
// unreadable, a configuration error, the caller cancelling) is the caller's news, not a fallback.
func servesStale(err error) bool {
	var ae *Error
	return errors.As(err, &ae) && (ae.Transient || ae.InvalidGrant())
}

// serveStale hands out t after its refresh failed with err, and keeps doing so without a new
// attempt for staleRetry (unless a Refresh or forget intervenes: gen).
func (a *Account) serveStale(t *Token, err error, gen uint64) *Token {
	s := *t
	s.RefreshErr = err
	now := a.opts.Now()
	log := a.opts.Log.Debug
	msg := "refresh failed; serving the cached token until it expires"
	if errors.Is(err, ErrLoginRequired) {
		log = a.opts.Log.Warn
		msg = "the refresh token was refused; serving the cached token until it expires, then a sign-in is needed"
	}
	log(msg, "account", a.cfg.Name, "resource", string(t.Resource), "expires_in", t.ExpiresOn.Sub(now).Round(time.Second).String(), "err", err)
	a.mu.Lock()
	if a.gen == gen {
		a.hot[s.Resource] = &s
		a.staleUntil[s.Resource] = now.Add(staleRetry)
	}
	a.mu.Unlock()
	return &s
}

package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"golang.org/x/sync/singleflight"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store"
)

// Account is one configured account with its MSAL client.
type Account struct {
	cfg   *config.Account
	cloud Cloud
	opts  Options
	cache *storeCache
	roots *x509.CertPool

	pub  *public.Client       // public flows
	conf *confidential.Client // confidential flows

	flight singleflight.Group
	mu     sync.Mutex
	hot    map[token.Resource]*token.Token // the in-memory hot path
	// staleUntil: a token served after a failed refresh (RefreshErr set) is served from the hot path
	// until then without a new attempt (staleRetry).
	staleUntil map[token.Resource]time.Time
	// hotUntil: a token just put on the hot path is served until then even inside the margin (hotFor).
	hotUntil map[token.Resource]time.Time
	// gen counts Refresh and forget calls: a silent acquisition that started before one of them must
	// not put its (older, possibly refused) token back on the hot path.
	gen uint64
}

func newAccount(acc *config.Account, opts Options) (*Account, error) {
	cl, err := LookupCloud(acc.Cloud)
	if err != nil {
		return nil, cfgErr(acc, "%v", err)
	}
	base := cl.Authority
	if acc.Authority != "" {
		base = strings.TrimRight(acc.Authority, "/")
	}
	tenant := acc.Tenant
	if tenant == "" {
		tenant = config.TenantOrganizations
	}
	authority := base + "/" + tenant
	roots, err := rootCAs(acc)
	if err != nil {
		return nil, err
	}
	hc := httpClient(roots, opts.Transport, opts.HTTPTimeout)
	a := &Account{cfg: acc, cloud: cl, opts: opts, roots: roots, hot: map[token.Resource]*token.Token{}, staleUntil: map[token.Resource]time.Time{}, hotUntil: map[token.Resource]time.Time{}}
	a.cache = &storeCache{st: opts.Store, key: storeKey(acc.Name), authority: strings.ToLower(authority), clientID: acc.ClientID}
	// Instance discovery asks login.microsoftonline.com about the authority; for an authority of our
	// own (the emulator) there is nobody to ask.
	discovery := acc.Authority == ""
	if usesConfidential(acc) {
		cred, err := credential(acc)
		if err != nil {
			return nil, err
		}
		c, err := confidential.New(authority, acc.ClientID, cred, confidential.WithHTTPClient(hc),
			confidential.WithInstanceDiscovery(discovery), confidential.WithCache(a.cache))
		if err != nil {
			return nil, cfgErr(acc, "%v", err)
		}
		a.conf = &c
	} else {
		c, err := public.New(acc.ClientID, public.WithAuthority(authority), public.WithHTTPClient(hc),
			public.WithInstanceDiscovery(discovery), public.WithCache(a.cache))
		if err != nil {
			return nil, cfgErr(acc, "%v", err)
		}
		a.pub = &c
	}
	return a, nil
}

// usesConfidential: client_credentials and auth_code_web always; refresh_token when it has a secret.
func usesConfidential(acc *config.Account) bool {
	switch acc.Flow {
	case config.FlowClientCredentials, config.FlowAuthCodeWeb:
		return true
	case config.FlowRefreshToken:
		return acc.ClientSecret != "" || acc.ClientSecretEnv != "" || acc.ClientSecretFile != "" || acc.Certificate != ""
	}
	return false
}

// Name is the account's name in the configuration.
func (a *Account) Name() string { return a.cfg.Name }

// Config is the account's configuration.
func (a *Account) Config() *config.Account { return a.cfg }

// Cloud is the account's cloud.
func (a *Account) Cloud() Cloud { return a.cloud }

// TLSConfig is for the account's mail connections: the system's CAs plus ca_file, TLS 1.2 at least.
func (a *Account) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: a.roots, MinVersion: tls.VersionTLS12}
}

// Server is the host:port (or, for graph, the API root URL) of a protocol for the account: the
// config's override, else its cloud's (SPEC §3).
func (a *Account) Server(protocol string) string {
	switch protocol {
	case config.ProtocolIMAP:
		return firstNonEmpty(a.cfg.IMAP, a.cloud.IMAP)
	case config.ProtocolPOP:
		return firstNonEmpty(a.cfg.POP, a.cloud.POP)
	case config.ProtocolSMTP:
		return firstNonEmpty(a.cfg.SMTP, a.cloud.SMTP)
	case config.ProtocolGraph:
		return firstNonEmpty(a.cfg.Graph, a.cloud.GraphAPI)
	}
	return ""
}

// Mailbox is the mailbox the account opens, and so the SASL user: mailbox if set, else email.
func (a *Account) Mailbox() string { return firstNonEmpty(a.cfg.Mailbox, a.cfg.Email) }

// Mechanism is the SASL mechanism the account's mail servers are sent: "XOAUTH2" unless the
// configuration asks for "OAUTHBEARER".
func (a *Account) Mechanism() string {
	if a.cfg.Mechanism != "" {
		return strings.ToUpper(a.cfg.Mechanism)
	}
	return "XOAUTH2"
}

// OtherMailbox reports whether a delegated account opens a mailbox other than its user's own (its
// mailbox setting names a shared mailbox).
func (a *Account) OtherMailbox() bool {
	return !a.AppOnly() && a.cfg.Mailbox != "" && !strings.EqualFold(a.cfg.Mailbox, a.cfg.Email)
}

// AppOnly reports whether the account's tokens are app-only (client credentials).
func (a *Account) AppOnly() bool { return a.cfg.Flow == config.FlowClientCredentials }

// Scopes are what the account asks for a resource: derived from its protocols (SPEC §3) unless the
// config's scopes override the Exchange ones.
func (a *Account) Scopes(r token.Resource) []string {
	if a.AppOnly() {
		if r == token.Graph {
			return []string{a.cloud.Graph + "/.default"}
		}
		if len(a.cfg.Scopes) > 0 {
			return a.cfg.Scopes
		}
		return []string{a.cloud.ExchangeApp + "/.default"}
	}
	if r == token.Graph {
		return []string{a.cloud.Graph + "/Mail.ReadWrite", a.cloud.Graph + "/Mail.Send"}
	}
	if len(a.cfg.Scopes) > 0 {
		return a.cfg.Scopes
	}
	var s []string
	for _, p := range a.cfg.Protocols {
		switch p {
		case config.ProtocolIMAP:
			s = append(s, a.cloud.ExchangeDelegated+"/IMAP.AccessAsUser.All")
		case config.ProtocolPOP:
			s = append(s, a.cloud.ExchangeDelegated+"/POP.AccessAsUser.All")
		case config.ProtocolSMTP:
			s = append(s, a.cloud.ExchangeDelegated+"/SMTP.Send")
		}
	}
	if len(s) == 0 { // a Graph-only account still signs in for something
		return a.Scopes(token.Graph)
	}
	return s
}

// loginResource is what Login signs in for: Exchange unless the account only uses Graph.
func (a *Account) loginResource() token.Resource {
	for _, p := range a.cfg.Protocols {
		if p != config.ProtocolGraph {
			return token.Exchange
		}
	}
	if len(a.cfg.Protocols) == 0 {
		return token.Exchange
	}
	return token.Graph
}

// Token returns a valid access token for r, from memory, from the store, or by a silent refresh. Any
// number of concurrent callers cause at most one request to the identity platform, and processes
// sharing the store one between them (refreshLocked). A token the store holds outside the refresh
// margin is served without waiting for anything: the lock is for refreshing only.
//
// A token inside the refresh margin whose refresh fails transiently is served until it really
// expires, with RefreshErr saying why (servesStale); the caller waits for that refresh at most
// waitBudget. A token that has expired, or a refused refresh, makes the call fail.
func (a *Account) Token(ctx context.Context, r token.Resource) (*token.Token, error) {
	if t := a.hotToken(r); t != nil {
		return t, nil
	}
	gen := a.generation()
	stored := a.storedToken(ctx, r) // one read of the store: served when fresh, else a fallback
	if a.fresh(stored) {
		a.rememberIf(stored, gen)
		return stored, nil
	}
	stale := a.staleToken(stored, r)
	wctx := ctx
	if stale != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, waitBudget(ctx))
		defer cancel()
	}
	t, err := a.inFlight(wctx, string(r), func(fctx context.Context) (*token.Token, error) {
		if t := a.hotToken(r); t != nil { // filled while this flight was being set up
			return t, nil
		}
		gen := a.generation()
		t, err := a.refreshLocked(fctx, func() (*token.Token, error) {
			// Another process may have refreshed while this one waited for the lock.
			if t := a.storedToken(fctx, r); a.fresh(t) {
				return t, nil
			}
			return retryTransient(fctx, func() (*token.Token, error) { return a.acquireSilent(fctx, r) })
		})
		if err != nil {
			return nil, err
		}
		a.rememberIf(t, gen)
		return t, nil
	})
	if err != nil && stale != nil && ctx.Err() == nil && servesStale(err) {
		return a.serveStale(stale, err, gen), nil
	}
	return t, err
}

// refreshLocked runs get holding the account's lock in the store (store.Locker), so that the
// processes sharing the store refresh one at a time: the first asks the identity platform, the
// others, when their turn comes, find its tokens in the store and ask nothing. Under an identity
// platform that revokes a redeemed refresh token (Entra does not; others do, and the emulator's strict
// rotation) N processes would otherwise redeem one refresh token N times and all but one be refused.
// The wait is bounded by ctx: the flight's, so a caller's own deadline still ends its wait (inFlight).
// A Store without Locker runs get at once: the single flight and acquire's retry after a rotation by
// another process are all it has.
func (a *Account) refreshLocked(ctx context.Context, get func() (*token.Token, error)) (*token.Token, error) {
	l, ok := a.opts.Store.(store.Locker)
	if !ok {
		return get()
	}
	release, err := l.Lock(ctx, a.cache.key)
	if err != nil {
		if ctx.Err() != nil {
			// Another process holds the lock for as long as its identity platform does not answer.
			return nil, &Error{Account: a.cfg.Name, Op: "refresh", Transient: true, Err: err}
		}
		return nil, err
	}
	defer release()
	return get()
}

// inFlight runs get once for all the callers asking for key at the same time (single flight), under
// a context detached from the first caller's — one caller giving up must not fail the others — and
// bounded to 2 minutes. Each caller gets the result or, when its own context ends first, that: a
// deadline as a transient *Error (the identity platform did not answer in time), a cancellation as it is.
func (a *Account) inFlight(ctx context.Context, key string, get func(context.Context) (*token.Token, error)) (*token.Token, error) {
	ch := a.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return get(fctx)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*token.Token), nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &Error{Account: a.cfg.Name, Op: "token", Transient: true, Err: ctx.Err()}
		}
		return nil, ctx.Err()
	}
}

// hotToken is the token in memory while it is outside the refresh margin, or, after a failed
// refresh, while it is valid and staleRetry has not passed.
func (a *Account) hotToken(r token.Resource) *token.Token {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.hot[r]
	if t == nil {
		return nil
	}
	now := a.opts.Now()
	if a.fresh(t) || now.Before(a.hotUntil[r]) || t.RefreshErr != nil && now.Before(a.staleUntil[r]) && now.Before(t.ExpiresOn) {
		return t
	}
	return nil
}

// hotFor is how long a token just obtained is served from memory even inside the refresh margin:
// half its lifetime. A token issued for less than Margin (identity providers other than Entra
// issue 5-minute tokens) would otherwise be refreshed again by every caller that missed its flight.
func (a *Account) hotFor(t *token.Token) time.Time {
	now := a.opts.Now()
	return now.Add(t.ExpiresOn.Sub(now) / 2)
}

// remember puts a token on the hot path.
func (a *Account) remember(t *token.Token) {
	a.mu.Lock()
	a.hot[t.Resource] = t
	a.hotUntil[t.Resource] = a.hotFor(t)
	a.mu.Unlock()
}

func (a *Account) generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// rememberIf puts a token on the hot path unless a Refresh or forget happened since gen was read.
func (a *Account) rememberIf(t *token.Token, gen uint64) {
	a.mu.Lock()
	if a.gen == gen {
		a.hot[t.Resource] = t
		a.hotUntil[t.Resource] = a.hotFor(t)
	}
	a.mu.Unlock()
}

func (a *Account) forget() {
	a.mu.Lock()
	a.hot = map[token.Resource]*token.Token{}
	a.hotUntil = map[token.Resource]time.Time{}
	a.gen++
	a.mu.Unlock()
}

func (a *Account) acquireSilent(ctx context.Context, r token.Resource) (*token.Token, error) {
	return a.acquire(ctx, r, false)
}

// acquire gets a token without a person: from MSAL's cache when it can, else with the refresh token or
// the client credential. fresh skips MSAL's cached access token (a harmless claims request does that).
func (a *Account) acquire(ctx context.Context, r token.Resource, fresh bool) (*token.Token, error) {
	var before string // the refresh tokens stored before this attempt (app-only accounts have none)
	if a.cfg.Flow != config.FlowClientCredentials {
		before = a.cache.refreshPrint(ctx)
	}
	t, err := a.acquireOnce(ctx, r, fresh)
	var ae *Error
	if err != nil && errors.As(err, &ae) && ae.InvalidGrant() && before != "" {
		if after := a.cache.refreshPrint(ctx); after == "" || after == before {
			return t, err
		}
		// Another process redeemed the same refresh token a moment earlier and stored its successor;
		// an identity platform that revokes redeemed refresh tokens refused ours. The successor is
		// good: use it rather than ask for a sign-in.
		a.opts.Log.Debug("refresh token was rotated by another process; retrying with the stored one", "account", a.cfg.Name)
		return a.acquireOnce(ctx, r, fresh)
	}
	return t, err
}

func (a *Account) acquireOnce(ctx context.Context, r token.Resource, fresh bool) (*token.Token, error) {
	scopes := a.Scopes(r)
	var confOpts []confidential.AcquireSilentOption
	var credOpts []confidential.AcquireByCredentialOption
	var pubOpts []public.AcquireSilentOption
	if fresh {
		confOpts = append(confOpts, confidential.WithClaims(bypassClaims))
		credOpts = append(credOpts, confidential.WithClaims(bypassClaims))
		pubOpts = append(pubOpts, public.WithClaims(bypassClaims))
	}
	switch {
	case a.cfg.Flow == config.FlowClientCredentials:
		// AcquireTokenByCredential answers from the cache when it can.
		res, err := a.conf.AcquireTokenByCredential(ctx, scopes, credOpts...)
		if err != nil {
			return nil, classify(a.cfg.Name, "client credentials", err)
		}
		return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}, nil
	case a.conf != nil:
		e, err := a.cache.load(ctx)
		if err != nil {
			return nil, err
		}
		if e == nil || e.HomeAccountID == "" {
			return nil, a.loginRequired(nil)
		}
		acct, err := a.conf.Account(ctx, e.HomeAccountID)
		if err != nil || acct.IsZero() {
			return nil, a.loginRequired(err)
		}
		res, err := a.conf.AcquireTokenSilent(ctx, scopes, append(confOpts, confidential.WithSilentAccount(acct))...)
		if err != nil {
			return nil, a.silentFailed(err)
		}
		return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}, nil
	default:
		acct, err := a.publicAccount(ctx)
		if err != nil {
			return nil, err
		}
		if acct.IsZero() {
			if a.cfg.Flow == config.FlowPassword {
				// ROPC needs no person: a password account signs in whenever it has nothing cached.
				return a.password(ctx, r)
			}
			return nil, a.loginRequired(nil)
		}
		res, err := a.pub.AcquireTokenSilent(ctx, scopes, append(pubOpts, public.WithSilentAccount(acct))...)
		if err != nil {
			return nil, a.silentFailed(err)
		}
		return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}, nil
	}
}

// publicAccount picks the cached account: the one whose username is the configured email or
// login_hint, else the only one.
func (a *Account) publicAccount(ctx context.Context) (public.Account, error) {
	accts, err := a.pub.Accounts(ctx)
	if err != nil {
		return public.Account{}, classify(a.cfg.Name, "read the token cache", err)
	}
	want := a.cfg.Email
	if a.cfg.LoginHint != "" {
		want = a.cfg.LoginHint
	}
	for _, ac := range accts {
		if want != "" && strings.EqualFold(ac.PreferredUsername, want) {
			return ac, nil
		}
	}
	if len(accts) == 1 {
		return accts[0], nil
	}
	return public.Account{}, nil
}

// loginRequired says what to do, wrapping ErrLoginRequired (and the refusal that caused it, if any).
func (a *Account) loginRequired(cause error) error {
	if cause != nil {
		return fmt.Errorf("%w for account %s: %w; run: mailoauth login %s", token.ErrLoginRequired, a.cfg.Name, cause, a.cfg.Name)
	}
	return fmt.Errorf("%w for account %s: no token is held; run: mailoauth login %s", token.ErrLoginRequired, a.cfg.Name, a.cfg.Name)
}

// silentFailed separates "the grant is dead, sign in again" from transient trouble, where the refresh
// token is kept and the caller may retry.
func (a *Account) silentFailed(err error) error {
	err = classify(a.cfg.Name, "refresh", err)
	var e *Error
	if errors.As(err, &e) && e.InvalidGrant() {
		return a.loginRequired(err)
	}
	return err
}

// Held reports what the store holds for the account.
func (a *Account) Held(ctx context.Context) (Held, error) {
	e, err := a.cache.load(ctx)
	if err != nil {
		return Held{}, err
	}
	return parseHeld(e), nil
}

// Logout forgets the account's tokens, in the store and in memory.
func (a *Account) Logout(ctx context.Context) error {
	a.forget()
	return a.opts.Store.Update(ctx, a.cache.key, func([]byte) ([]byte, error) { return nil, nil })
}

// Retries of transient identity-platform failures (5xx, 429, timeouts, dropped connections): SPEC
// §11 wants them retried with backoff and jitter; a refused grant is never retried.
const (
	retryAttempts = 3
	retryBase     = 300 * time.Millisecond
)

func retryTransient(ctx context.Context, f func() (*token.Token, error)) (*token.Token, error) {
	var err error
	for attempt := 0; attempt < retryAttempts; attempt++ {
		if attempt > 0 {
			// Exponential backoff with full jitter: many processes recovering from one outage spread out.
			d := time.Duration(rand.Int64N(int64(retryBase << (attempt - 1))))
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, err
			}
		}
		var t *token.Token
		t, err = f()
		var ae *Error
		if err == nil || !errors.As(err, &ae) || !ae.Transient {
			return t, err
		}
	}
	return nil, err
}

// bypassClaims asks for the ID token's auth_time: a harmless OIDC claims request whose only effect is
// that MSAL skips its cached access token and asks the identity platform again.
const bypassClaims = `{"id_token":{"auth_time":{"essential":true}}}`

// Refresh throws away the account's access token for r and gets a new one from the identity platform
// (with the refresh token or the client credential), bypassing every cache: for a server that refused
// a token the cache thought valid (revoked, or issued before a permission change). The refused token
// (the one Token last handed out) is removed from the store too, so that no process serves it again
// when this refresh fails.
func (a *Account) Refresh(ctx context.Context, r token.Resource) (*token.Token, error) {
	a.mu.Lock()
	refused := a.hot[r]
	delete(a.hot, r)
	delete(a.hotUntil, r)
	a.gen++
	a.mu.Unlock()
	if refused != nil {
		if err := a.cache.dropAccessToken(ctx, refused.AccessToken); err != nil {
			return nil, err
		}
	}
	return a.inFlight(ctx, "refresh "+string(r), func(fctx context.Context) (*token.Token, error) {
		t, err := a.refreshLocked(fctx, func() (*token.Token, error) {
			return retryTransient(fctx, func() (*token.Token, error) { return a.acquire(fctx, r, true) })
		})
		if err == nil {
			a.remember(t)
		}
		return t, err
	})
}

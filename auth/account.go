package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"golang.org/x/sync/singleflight"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store"
)

// Account is one app registration with its flow: the application's own tokens (client
// credentials), or the tokens of any number of users signed in through it (delegated flows). Its
// Token and TokenSource serve the account's one user (see Token); ForUser serves any of them.
type Account struct {
	cfg   *config.Account
	cloud Cloud
	opts  Options
	roots *x509.CertPool

	authority string // base URL + tenant, as MSAL is given it
	hc        *http.Client
	discovery bool
	cred      *confidential.Credential // confidential flows

	// app holds the application's own tokens (client credentials) under storeKey; signIn makes the
	// delegated sign-ins and files each user's tokens under userKey; users are the signed-in users'
	// clients, built on first use, one each so that no user's cache is ever another's, and at most
	// maxUserClients of them.
	app    *client
	signIn *client

	flight singleflight.Group
	mu     sync.Mutex
	users  userClients
	hot    map[slot]*token.Token // the in-memory hot path
	// staleUntil: a token served after a failed refresh (RefreshErr set) is served from the hot path
	// until then without a new attempt (staleRetry).
	staleUntil map[slot]time.Time
	// hotUntil: a token just put on the hot path is served until then even inside the margin (hotFor).
	hotUntil map[slot]time.Time
	// gen counts Refresh and forget calls per user: a silent acquisition that started before one of
	// them must not put its (older, possibly refused) token back on the hot path.
	gen map[string]uint64
	// swept is when the hot path was last rid of expired tokens (sweepEvery).
	swept time.Time
	// own is the account's one user (Token, Mailbox), once found; zero until then and after a
	// sign-in or a removal that may change who it is. ownGen counts those changes: a lookup that
	// started before one must not remember its (possibly outdated) answer.
	own      User
	ownGen   uint64
	migrated bool
}

// slot is what the hot path, the single flight and the stale fallback are keyed by: a user (""
// for the application's own tokens) and a resource.
type slot struct {
	home string
	r    token.Resource
}

func (s slot) String() string { return s.home + " " + string(s.r) }

// client is one MSAL client over one cache in the store (none for signIn, which routes by user).
type client struct {
	pub   *public.Client
	conf  *confidential.Client
	cache *storeCache
}

// NewAccount builds an account described in Go (or read from a file by package config): it
// checks acc and fills in its defaults (config.Account.Check), then prepares its MSAL client.
// The account keeps a copy of acc: changing acc afterwards changes nothing. Nothing goes to the
// network until a token is asked for. opts.Store nil keeps tokens in memory.
func NewAccount(acc *config.Account, opts Options) (*Account, error) {
	if err := acc.Check(); err != nil {
		return nil, err
	}
	return newAccount(copyConfig(acc), opts.withDefaults())
}

// copyConfig copies acc deeply enough that no change to the original (or to the copy) reaches the
// other: its slices, certificate and pool are copied too.
func copyConfig(acc *config.Account) *config.Account {
	c := *acc
	c.Protocols = slices.Clone(acc.Protocols)
	c.Scopes = slices.Clone(acc.Scopes)
	c.PFX = slices.Clone(acc.PFX)
	if acc.ClientCertificate != nil {
		cert := *acc.ClientCertificate
		cert.Certificate = slices.Clone(cert.Certificate)
		c.ClientCertificate = &cert
	}
	if acc.RootCAs != nil {
		c.RootCAs = acc.RootCAs.Clone()
	}
	return &c
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
	roots, err := rootCAs(acc)
	if err != nil {
		return nil, err
	}
	a := &Account{cfg: acc, cloud: cl, opts: opts, roots: roots, authority: base + "/" + tenant,
		hc: httpClient(roots, opts.Transport, opts.HTTPTimeout),
		// Instance discovery asks login.microsoftonline.com about the authority; for an authority
		// of our own (the emulator) there is nobody to ask.
		discovery: acc.Authority == "",
		users:     newUserClients(maxUserClients), hot: map[slot]*token.Token{}, staleUntil: map[slot]time.Time{},
		hotUntil: map[slot]time.Time{}, gen: map[string]uint64{}}
	a.hc.Transport = &metadataCache{base: a.hc.Transport, m: map[string]cachedAnswer{}}
	if usesConfidential(acc) {
		cred, err := credential(acc)
		if err != nil {
			return nil, err
		}
		a.cred = &cred
	}
	if a.AppOnly() {
		app := a.storeCache(storeKey(acc.Name))
		app.create = true // the application's tokens need no sign-in: the first acquisition stores them
		a.app, err = a.newClient(app)
	} else {
		a.signIn, err = a.newClient(&signInCache{st: opts.Store, account: acc.Name, authority: a.cacheAuthority(), clientID: acc.ClientID})
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Account) cacheAuthority() string { return strings.ToLower(a.authority) }

func (a *Account) storeCache(key string) *storeCache {
	return &storeCache{st: a.opts.Store, key: key, authority: a.cacheAuthority(), clientID: a.cfg.ClientID}
}

// newClient makes an MSAL client of the account's kind over c.
func (a *Account) newClient(c cache.ExportReplace) (*client, error) {
	sc, _ := c.(*storeCache)
	if a.cred != nil {
		cc, err := confidential.New(a.authority, a.cfg.ClientID, *a.cred, confidential.WithHTTPClient(a.hc),
			confidential.WithInstanceDiscovery(a.discovery), confidential.WithCache(c))
		if err != nil {
			return nil, cfgErr(a.cfg, "%v", err)
		}
		return &client{conf: &cc, cache: sc}, nil
	}
	pc, err := public.New(a.cfg.ClientID, public.WithAuthority(a.authority), public.WithHTTPClient(a.hc),
		public.WithInstanceDiscovery(a.discovery), public.WithCache(c))
	if err != nil {
		return nil, cfgErr(a.cfg, "%v", err)
	}
	return &client{pub: &pc, cache: sc}, nil
}

// client is the MSAL client of a slot: the application's, or its user's.
func (a *Account) client(home string) (*client, error) {
	if home == "" {
		return a.app, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.users.get(home); c != nil {
		return c, nil
	}
	c, err := a.newClient(a.storeCache(userKey(a.cfg.Name, home)))
	if err != nil {
		return nil, err
	}
	a.users.add(home, c)
	return c, nil
}

// usesConfidential: client_credentials and auth_code_web always; refresh_token when it has a
// client credential.
func usesConfidential(acc *config.Account) bool {
	switch acc.Flow {
	case config.FlowClientCredentials, config.FlowAuthCodeWeb:
		return true
	case config.FlowRefreshToken:
		return !acc.Public() ||
			acc.ClientCertificate != nil || len(acc.PFX) > 0
	}
	return false
}

// Name is the account's name.
func (a *Account) Name() string { return a.cfg.Name }

// Config is a copy of the account's configuration, defaults filled in; changing it changes
// nothing in the account.
func (a *Account) Config() *config.Account { return copyConfig(a.cfg) }

// Cloud is the account's cloud.
func (a *Account) Cloud() Cloud { return a.cloud }

// TLSConfig is for the account's mail connections: the system's CAs plus the account's CAFile (or
// its RootCAs alone), TLS 1.2 at least.
func (a *Account) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: a.roots, MinVersion: tls.VersionTLS12}
}

// Server is the host:port (or, for graph, the API root URL) of a protocol for the account: the
// configuration's override, else its cloud's.
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

// Mailbox is the mailbox the account opens, and so the SASL user: Mailbox if set, else Email, else
// the username of the account's one signed-in user as Token picks it ("" while there is none, or
// several and neither LoginHint nor Email names one). That user is read from the store once and
// remembered until a sign-in or RemoveUser may change who it is.
func (a *Account) Mailbox() string {
	if m := firstNonEmpty(a.cfg.Mailbox, a.cfg.Email); m != "" || a.AppOnly() {
		return m
	}
	own, gen := a.ownCached()
	if own.HomeAccountID == "" {
		// Mailbox has no context: the store read is bounded as a wait for a refresh is.
		ctx, cancel := context.WithTimeout(context.Background(), staleWait)
		defer cancel()
		u, err := a.ownUser(ctx)
		if err != nil {
			return ""
		}
		a.setOwn(u, gen)
		own = u
	}
	return own.Username
}

// Mechanism is the SASL mechanism the account's mail servers are sent: "XOAUTH2" unless the
// configuration asks for "OAUTHBEARER".
func (a *Account) Mechanism() string {
	if a.cfg.Mechanism != "" {
		return strings.ToUpper(a.cfg.Mechanism)
	}
	return "XOAUTH2"
}

// OtherMailbox reports whether a delegated account opens a mailbox other than its user's own (its
// Mailbox names a shared mailbox).
func (a *Account) OtherMailbox() bool {
	return !a.AppOnly() && a.cfg.Mailbox != "" && !strings.EqualFold(a.cfg.Mailbox, a.cfg.Email)
}

// AppOnly reports whether the account's tokens are app-only (client credentials).
func (a *Account) AppOnly() bool { return a.cfg.Flow == config.FlowClientCredentials }

// Scopes are what the account asks for a resource: derived from its protocols unless its Scopes
// override the Exchange ones.
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

// Token returns a valid access token for r of the account's one user — the signed-in user whose
// username is the account's LoginHint or Email, else the only one — or, for client credentials, the
// application's. An account serving several users gives each its own with ForUser.
//
// It comes from memory, from the store, or by a silent refresh. Any number of concurrent callers
// cause at most one request to the identity platform, and processes sharing a store.Locker store
// one between them. A token the store holds outside the refresh margin is served without waiting
// for anything: the lock is for refreshing only.
//
// A token inside the refresh margin whose refresh fails transiently is served until it really
// expires, with RefreshErr saying why; the caller waits for that refresh at most 10 seconds (and
// half of what its ctx has left). A token that has expired, or a refused refresh, makes the call
// fail with a *LoginRequiredError.
func (a *Account) Token(ctx context.Context, r token.Resource) (*token.Token, error) {
	return a.ownToken(ctx, r, a.token)
}

// Refresh throws away the access token for r of the account's one user (as Token) and gets a new
// one from the identity platform, bypassing every cache: for a server that refused a token the
// cache thought valid (revoked, or issued before a permission change). The refused token (the one
// Token last handed out) is removed from the store too, so that no process serves it again when
// this refresh fails.
func (a *Account) Refresh(ctx context.Context, r token.Resource) (*token.Token, error) {
	return a.ownToken(ctx, r, a.refresh)
}

// ownToken runs get for the account's one user (or the application). A user remembered from an
// earlier call whose tokens are gone (another process signed someone else in) is looked up again.
func (a *Account) ownToken(ctx context.Context, r token.Resource, get func(context.Context, slot) (*token.Token, error)) (*token.Token, error) {
	if a.AppOnly() {
		return get(ctx, slot{"", r})
	}
	own, gen := a.ownCached()
	home := own.HomeAccountID
	var first error
	if home != "" {
		t, err := get(ctx, slot{home, r})
		var lr *LoginRequiredError
		if err == nil || !errors.As(err, &lr) || lr.Err != nil {
			return t, err
		}
		first = err
		a.forgetOwn(home)
		_, gen = a.ownCached()
	}
	u, err := a.ownUser(ctx)
	if errors.Is(err, token.ErrLoginRequired) && a.cfg.Flow == config.FlowPassword {
		// ROPC needs no person: a password account signs in whenever it holds nothing.
		return a.inFlight(ctx, "password", func(fctx context.Context) (*token.Token, error) {
			si, err := a.passwordSignIn(fctx, r)
			if err != nil {
				return nil, err
			}
			return si.Token, nil
		})
	}
	if err != nil {
		return nil, err
	}
	if u.HomeAccountID == home {
		return nil, first // the same user, still without tokens
	}
	a.setOwn(u, gen)
	return get(ctx, slot{u.HomeAccountID, r})
}

// ownCached is the account's one user as last found (zero if not known) and the generation to
// give setOwn with what a lookup finds.
func (a *Account) ownCached() (User, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.own, a.ownGen
}

// setOwn remembers u as the account's one user, unless a sign-in or removal happened since gen.
func (a *Account) setOwn(u User, gen uint64) {
	a.mu.Lock()
	if a.ownGen == gen {
		a.own = u
	}
	a.mu.Unlock()
}

// forgetOwn forgets the account's one user, if it is home ("": whoever it is), so that the next
// Token or Mailbox looks it up again.
func (a *Account) forgetOwn(home string) {
	a.mu.Lock()
	if home == "" || a.own.HomeAccountID == home {
		a.own = User{}
		a.ownGen++
	}
	a.mu.Unlock()
}

// token is Token for one slot.
func (a *Account) token(ctx context.Context, s slot) (*token.Token, error) {
	if t := a.hotToken(s); t != nil {
		return t, nil
	}
	gen := a.generation(s.home)
	stored, held := a.storedEntryToken(ctx, s) // one read of the store: served when fresh, else a fallback
	if !held && s.home != "" {
		// Nobody to refresh (an unknown or removed user): said before the flight and the lock,
		// which would otherwise be taken for every id a caller makes up.
		return nil, a.loginRequired(s.home, nil)
	}
	if a.fresh(stored) {
		a.rememberIf(s, stored, gen)
		return stored, nil
	}
	stale := a.staleToken(stored, s)
	wctx := ctx
	if stale != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, waitBudget(ctx))
		defer cancel()
	}
	t, err := a.inFlight(wctx, s.String(), func(fctx context.Context) (*token.Token, error) {
		if t := a.hotToken(s); t != nil { // filled while this flight was being set up
			return t, nil
		}
		gen := a.generation(s.home)
		t, err := a.refreshLocked(fctx, s, func() (*token.Token, error) {
			// Another process may have refreshed while this one waited for the lock.
			if t := a.storedToken(fctx, s); a.fresh(t) {
				return t, nil
			}
			return retryTransient(fctx, func() (*token.Token, error) { return a.acquire(fctx, s, false) })
		})
		if err != nil {
			return nil, err
		}
		a.rememberIf(s, t, gen)
		return t, nil
	})
	if err != nil && stale != nil && ctx.Err() == nil && servesStale(err) {
		return a.serveStale(s, stale, err, gen), nil
	}
	return t, err
}

// refresh is Refresh for one slot.
func (a *Account) refresh(ctx context.Context, s slot) (*token.Token, error) {
	a.mu.Lock()
	refused := a.hot[s]
	delete(a.hot, s)
	delete(a.hotUntil, s)
	a.gen[s.home]++
	a.mu.Unlock()
	if s.home != "" {
		if _, held := a.storedEntryToken(ctx, s); !held {
			return nil, a.loginRequired(s.home, nil)
		}
	}
	c, err := a.client(s.home)
	if err != nil {
		return nil, err
	}
	if refused != nil {
		if err := c.cache.dropAccessToken(ctx, refused.AccessToken); err != nil {
			return nil, err
		}
	}
	return a.inFlight(ctx, "refresh "+s.String(), func(fctx context.Context) (*token.Token, error) {
		t, err := a.refreshLocked(fctx, s, func() (*token.Token, error) {
			return retryTransient(fctx, func() (*token.Token, error) { return a.acquire(fctx, s, true) })
		})
		if err == nil {
			a.remember(s, t)
		}
		return t, err
	})
}

// refreshLocked runs get holding the slot's lock in the store (store.Locker), so that the
// processes sharing the store refresh one at a time: the first asks the identity platform, the
// others, when their turn comes, find its tokens in the store and ask nothing. Under an identity
// platform that revokes a redeemed refresh token (Entra does not; others do, and the emulator's strict
// rotation) N processes would otherwise redeem one refresh token N times and all but one be refused.
// The wait is bounded by ctx: the flight's, so a caller's own deadline still ends its wait (inFlight).
// A Store without Locker runs get at once: the single flight and acquire's retry after a rotation by
// another process are all it has.
func (a *Account) refreshLocked(ctx context.Context, s slot, get func() (*token.Token, error)) (*token.Token, error) {
	release, err := a.lockStore(ctx, a.slotKey(s))
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

// lockStore takes the store's lock named key (store.Locker); a store without Locker has none to
// take, and release does nothing.
func (a *Account) lockStore(ctx context.Context, key string) (release func(), err error) {
	l, ok := a.opts.Store.(store.Locker)
	if !ok {
		return func() {}, nil
	}
	return l.Lock(ctx, key)
}

// slotKey is the store entry holding a slot's tokens.
func (a *Account) slotKey(s slot) string {
	if s.home == "" {
		return storeKey(a.cfg.Name)
	}
	return userKey(a.cfg.Name, s.home)
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

// hotToken is the slot's token in memory while it is outside the refresh margin, or, after a
// failed refresh, while it is valid and staleRetry has not passed.
func (a *Account) hotToken(s slot) *token.Token {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.hot[s]
	if t == nil {
		return nil
	}
	now := a.opts.Now()
	if a.fresh(t) || now.Before(a.hotUntil[s]) || t.RefreshErr != nil && now.Before(a.staleUntil[s]) && now.Before(t.ExpiresOn) {
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
func (a *Account) remember(s slot, t *token.Token) {
	a.mu.Lock()
	a.putLocked(s, t)
	a.mu.Unlock()
}

// sweepEvery is how often the hot path is rid of expired tokens, so that what it holds follows
// the users served within a token's lifetime rather than every user ever served.
const sweepEvery = 10 * time.Minute

func (a *Account) putLocked(s slot, t *token.Token) {
	now := a.opts.Now()
	if now.Sub(a.swept) >= sweepEvery {
		for k, old := range a.hot {
			if !now.Before(old.ExpiresOn) {
				delete(a.hot, k)
				delete(a.hotUntil, k)
				delete(a.staleUntil, k)
			}
		}
		a.swept = now
	}
	a.hot[s] = t
	a.hotUntil[s] = a.hotFor(t)
}

func (a *Account) generation(home string) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen[home]
}

// rememberIf puts a token on the hot path unless a Refresh or forget of its user happened since
// gen was read.
func (a *Account) rememberIf(s slot, t *token.Token, gen uint64) {
	a.mu.Lock()
	if a.gen[s.home] == gen {
		a.putLocked(s, t)
	}
	a.mu.Unlock()
}

// forget drops a user's tokens (home "" the application's) from memory.
func (a *Account) forget(home string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := range a.hot {
		if s.home == home {
			delete(a.hot, s)
			delete(a.hotUntil, s)
			delete(a.staleUntil, s)
		}
	}
	a.gen[home]++
}

// acquire gets a token without a person: from MSAL's cache when it can, else with the refresh token or
// the client credential. fresh skips MSAL's cached access token (a harmless claims request does that).
func (a *Account) acquire(ctx context.Context, s slot, fresh bool) (*token.Token, error) {
	c, err := a.client(s.home)
	if err != nil {
		return nil, err
	}
	var before string // the refresh tokens stored before this attempt (app-only accounts have none)
	if s.home != "" {
		before = c.cache.refreshPrint(ctx)
	}
	t, err := a.acquireOnce(ctx, c, s, fresh)
	var ae *Error
	if err != nil && errors.As(err, &ae) && ae.InvalidGrant() && before != "" {
		if after := c.cache.refreshPrint(ctx); after == "" || after == before {
			return t, err
		}
		// Another process redeemed the same refresh token a moment earlier and stored its successor;
		// an identity platform that revokes redeemed refresh tokens refused ours. The successor is
		// good: use it rather than ask for a sign-in.
		a.opts.Log.Debug("refresh token was rotated by another process; retrying with the stored one", "account", a.cfg.Name)
		return a.acquireOnce(ctx, c, s, fresh)
	}
	return t, err
}

func (a *Account) acquireOnce(ctx context.Context, c *client, s slot, fresh bool) (*token.Token, error) {
	scopes := a.Scopes(s.r)
	var credOpts []confidential.AcquireByCredentialOption
	var pubOpts []public.AcquireSilentOption
	if fresh {
		credOpts = append(credOpts, confidential.WithClaims(bypassClaims))
		pubOpts = append(pubOpts, public.WithClaims(bypassClaims))
	}
	switch {
	case s.home == "":
		// AcquireTokenByCredential answers from the cache when it can.
		res, err := c.conf.AcquireTokenByCredential(ctx, scopes, credOpts...)
		if err != nil {
			return nil, classify(a.cfg.Name, "client credentials", err)
		}
		return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: s.r}, nil
	case c.conf != nil:
		acct, err := c.conf.Account(ctx, s.home)
		if err != nil || acct.IsZero() {
			return nil, a.loginRequired(s.home, err)
		}
		if fresh {
			// A confidential client's silent request takes no claims: MSAL skips no cached token
			// then, so the user's tokens for these scopes leave the store first.
			if err := c.cache.dropAccessTokens(ctx, func(at cachedAccessToken) bool {
				return strings.EqualFold(at.Home, s.home) && hasScopes(at.Target, scopes)
			}); err != nil {
				return nil, err
			}
		}
		res, err := c.conf.AcquireTokenSilent(ctx, scopes, confidential.WithSilentAccount(acct))
		if err != nil {
			return nil, a.silentFailed(s.home, err)
		}
		return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: s.r}, nil
	default:
		accts, err := c.pub.Accounts(ctx)
		if err != nil {
			return nil, classify(a.cfg.Name, "read the token cache", err)
		}
		var acct public.Account
		for _, ac := range accts {
			if strings.EqualFold(ac.HomeAccountID, s.home) {
				acct = ac
			}
		}
		if acct.IsZero() {
			return nil, a.loginRequired(s.home, nil)
		}
		res, err := c.pub.AcquireTokenSilent(ctx, scopes, append(pubOpts, public.WithSilentAccount(acct))...)
		if err != nil {
			return nil, a.silentFailed(s.home, err)
		}
		return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: s.r}, nil
	}
}

// silentFailed separates "the grant is dead, sign in again" from transient trouble, where the refresh
// token is kept and the caller may retry.
func (a *Account) silentFailed(user string, err error) error {
	if errors.Is(err, errEntryGone) {
		return a.loginRequired(user, nil)
	}
	err = classify(a.cfg.Name, "refresh", err)
	var e *Error
	if errors.As(err, &e) && e.InvalidGrant() {
		return a.loginRequired(user, err)
	}
	return err
}

// Held reports what the store holds for the account's one user (as Token), or the application.
func (a *Account) Held(ctx context.Context) (Held, error) {
	key := storeKey(a.cfg.Name)
	if !a.AppOnly() {
		u, err := a.ownUser(ctx)
		if errors.Is(err, token.ErrLoginRequired) {
			return Held{}, nil
		}
		if err != nil {
			return Held{}, err
		}
		key = userKey(a.cfg.Name, u.HomeAccountID)
	}
	e, err := a.storeCache(key).load(ctx)
	if err != nil {
		return Held{}, err
	}
	return parseHeld(e), nil
}

// Retries of transient identity-platform failures (5xx, 429, timeouts, dropped connections): retried
// with backoff and jitter; a refused grant is never retried.
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

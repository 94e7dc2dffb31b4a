// Package auth acquires, caches and refreshes access tokens for configured accounts, per resource
// (Exchange Online, Microsoft Graph), with every flow of SPEC §3, on top of MSAL for Go. Its one small
// interface is TokenSource, in the shape of golang.org/x/oauth2's (and adaptable to it): the mail
// clients, the proxy and `mailoauth token` all ask a TokenSource and never see a flow.
//
// Tokens persist in a store.Store through MSAL's cache hooks, so several processes share them. A
// valid token is served from memory in microseconds; an expiring one is refreshed once per account
// however many goroutines ask (single flight), and once however many processes ask: the refresh runs
// under the account's lock in the store (store.Locker), and a process that waited for it finds
// the result in the store; a token the store holds outside its refresh margin is served without
// waiting for that lock. A Store that does not implement store.Locker works too, without the lock
// across processes: the in-process single flight and the retry after another process rotated the
// refresh token remain. Failures come back as *Error with the AADSTS code, and a transient failure
// is told apart from a refused grant, which alone means "log in again". A token inside its refresh
// margin whose refresh fails transiently is still served until it really expires (Token.RefreshErr
// says why); a refused refresh fails at once.
//
// It must never log or put in an error a token, a secret, a password or an authorization code, and
// never prompt from a TokenSource: only Login talks to the user.
package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store"
)

// DefaultHTTPTimeout bounds each request to the identity platform unless Options.HTTPTimeout is set.
const DefaultHTTPTimeout = 60 * time.Second

// Margin is how long before expiry a token counts as expired, as MSAL's own 5 minutes, so a token
// handed out is good for at least that long.
const Margin = 5 * time.Minute

// Options configure a Manager.
type Options struct {
	// Store keeps tokens between runs; nil keeps them in memory only.
	Store store.Store
	// Prompt receives what Login shows the user (device code message, the URL with --no-browser).
	Prompt io.Writer
	// Transport, if set, wraps each account's HTTP transport (tests count requests with it).
	Transport func(http.RoundTripper) http.RoundTripper
	// Now is the clock for the in-memory hot path; nil is time.Now.
	Now func() time.Time
	// HTTPTimeout bounds each request to the identity platform (a hung answer counts as a transient
	// failure and is retried); 0 is DefaultHTTPTimeout. Tests of timeouts set it short.
	HTTPTimeout time.Duration
	Log         *slog.Logger
}

// Manager gives access to the accounts of a configuration.
type Manager struct {
	cfg  *config.File
	opts Options

	mu       sync.Mutex
	accounts map[string]*Account
}

// New returns a Manager over cfg.
func New(cfg *config.File, opts Options) *Manager {
	if opts.Store == nil {
		opts.Store = store.NewMemory()
	}
	if opts.Prompt == nil {
		opts.Prompt = io.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = DefaultHTTPTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Manager{cfg: cfg, opts: opts, accounts: map[string]*Account{}}
}

// Account returns the named account, building its MSAL client on first use. Configuration problems
// (unknown account, unreadable secret, bad certificate) are *ConfigError or config errors.
func (m *Manager) Account(name string) (*Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.accounts[name]; a != nil {
		return a, nil
	}
	acc, err := m.cfg.Account(name)
	if err != nil {
		return nil, err
	}
	a, err := newAccount(acc, m.opts)
	if err != nil {
		return nil, err
	}
	m.accounts[name] = a
	return a, nil
}

// httpClient is the account's HTTPS client: its CAs, TLS 1.2 at least, the import rewriter, and the
// caller's wrapper (tests count requests with it).
func httpClient(roots *x509.CertPool, wrap func(http.RoundTripper) http.RoundTripper, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	var rt http.RoundTripper = tr
	if wrap != nil {
		rt = wrap(rt)
	}
	return &http.Client{Transport: &importTransport{base: rt}, Timeout: timeout}
}

// TokenSource returns the account's source for a resource.
func (a *Account) TokenSource(r token.Resource) token.Source { return resourceSource{a, r} }

type resourceSource struct {
	a *Account
	r token.Resource
}

func (s resourceSource) Token(ctx context.Context) (*token.Token, error) { return s.a.Token(ctx, s.r) }

func (s resourceSource) Refresh(ctx context.Context) (*token.Token, error) {
	return s.a.Refresh(ctx, s.r)
}

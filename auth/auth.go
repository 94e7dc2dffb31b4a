// Package auth acquires, caches and refreshes access tokens for Microsoft 365 mail, per resource
// (Exchange Online's IMAP, POP and SMTP; Microsoft Graph), on top of MSAL for Go. An Account is
// one app registration and its flow — client credentials, device code, interactive, a web app's
// authorization code, a password, or an imported refresh token — described by a config.Account
// built in Go (NewAccount) or read from a configuration file (Manager). Its tokens come out of a
// token.Source, so the mail clients, the proxy and any golang.org/x/oauth2 consumer use them
// without seeing a flow.
//
// A delegated account serves any number of users: each sign-in (Login; AuthCodeURL and
// ExchangeCode for a web app) returns who signed in, and ForUser gives that user's tokens, kept
// under the user's own entry in the store. An account with one user uses Token directly.
//
// Tokens persist in a store.Store through MSAL's cache hooks, so several processes share them. A
// valid token is served from memory in microseconds; an expiring one is refreshed once per user and
// resource however many goroutines ask (single flight), and once however many processes ask: the
// refresh runs under the user's lock in the store (store.Locker), and a process that waited for it
// finds the result in the store; a token the store holds outside its refresh margin is served
// without waiting for that lock. A Store that does not implement store.Locker works too, without
// the lock across processes. Failures come back as *Error with the AADSTS code, and a transient
// failure is told apart from a refused grant, which alone means "sign in again"
// (*LoginRequiredError, wrapping token.ErrLoginRequired). A token inside its refresh margin whose
// refresh fails transiently is still served until it really expires (Token.RefreshErr says why).
//
// It must never log or put in an error a token, a secret, a password or an authorization code, and
// never prompt from a token source: only Login talks to the user.
package auth

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store"
)

// DefaultHTTPTimeout bounds each request to the identity platform unless Options.HTTPTimeout is set.
const DefaultHTTPTimeout = 60 * time.Second

// Margin is how long before expiry a token counts as expired, as MSAL's own 5 minutes, so a token
// handed out is good for at least that long.
const Margin = 5 * time.Minute

// Options configure a Manager or an Account.
type Options struct {
	// Store keeps tokens between runs and shares them between processes; nil keeps them in
	// memory only.
	Store store.Store
	// Prompt receives what Login shows the user when LoginOptions do not take it: the device
	// code's message, the sign-in URL with NoBrowser. nil shows nothing, and such a Login fails.
	Prompt io.Writer
	// Transport, if set, wraps each account's HTTP transport (tests count requests with it).
	Transport func(http.RoundTripper) http.RoundTripper
	// Now is the clock for the in-memory hot path; nil is time.Now.
	Now func() time.Time
	// HTTPTimeout bounds each request to the identity platform (a hung answer counts as a transient
	// failure and is retried); 0 is DefaultHTTPTimeout. Tests of timeouts set it short.
	HTTPTimeout time.Duration
	// Log receives the package's warnings and debug lines (never a secret); nil discards them.
	Log *slog.Logger
}

// withDefaults fills in what the zero values mean.
func (o Options) withDefaults() Options {
	if o.Store == nil {
		o.Store = store.NewMemory()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = DefaultHTTPTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Manager gives access to the accounts of a configuration.
type Manager struct {
	cfg  *config.File
	opts Options

	mu       sync.Mutex
	accounts map[string]*Account
}

// New returns a Manager over cfg. Its accounts share opts (and so one store).
func New(cfg *config.File, opts Options) *Manager {
	return &Manager{cfg: cfg, opts: opts.withDefaults(), accounts: map[string]*Account{}}
}

// Account returns the named account, building it (NewAccount) on first use. Configuration problems
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
	a, err := NewAccount(acc, m.opts)
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

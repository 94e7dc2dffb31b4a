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
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store"
)

// Resource is what a token is for.
type Resource string

const (
	Exchange Resource = "exchange" // IMAP, POP3, SMTP
	Graph    Resource = "graph"
)

// ParseResource reads a resource name as the CLI's --resource takes it.
func ParseResource(s string) (Resource, error) {
	switch Resource(strings.ToLower(s)) {
	case Exchange:
		return Exchange, nil
	case Graph:
		return Graph, nil
	}
	return "", fmt.Errorf("unknown resource %q; use exchange or graph", s)
}

// Token is an access token and when it expires.
type Token struct {
	AccessToken string
	ExpiresOn   time.Time
	Resource    Resource
	// RefreshErr is set on a token served inside its refresh margin because its refresh failed
	// transiently: a transient *Error (the identity platform is down or slow, or another process's
	// refresh, which this one waited for, did not finish in time). The token itself is valid until
	// ExpiresOn. Callers count or report it; nil is the normal case. A refused refresh never comes
	// back this way: Token fails with ErrLoginRequired.
	RefreshErr error
}

// OAuth2 converts the token for golang.org/x/oauth2 users.
func (t *Token) OAuth2() *oauth2.Token {
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: "Bearer", Expiry: t.ExpiresOn}
}

// TokenSource gives valid access tokens for one account and resource, refreshing silently. It never
// prompts: when nothing can be refreshed it returns an error wrapping ErrLoginRequired.
type TokenSource interface {
	Token(ctx context.Context) (*Token, error)
}

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

// rootCAs is the system's pool plus the account's ca_file: the only trust the account's connections
// have (HTTPS to the identity platform and Graph, TLS to the mail servers). Verification is never off.
func rootCAs(acc *config.Account) (*x509.CertPool, error) {
	if acc.CAFile == "" {
		return nil, nil // nil: the system's roots
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(acc.CAFile)
	if err != nil {
		return nil, cfgErr(acc, "ca_file %s cannot be read (%v)", acc.CAFile, pathErr(err))
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, cfgErr(acc, "ca_file %s holds no PEM certificate", acc.CAFile)
	}
	return pool, nil
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
func (a *Account) TokenSource(r Resource) TokenSource { return resourceSource{a, r} }

type resourceSource struct {
	a *Account
	r Resource
}

func (s resourceSource) Token(ctx context.Context) (*Token, error) { return s.a.Token(ctx, s.r) }

func (s resourceSource) Refresh(ctx context.Context) (*Token, error) { return s.a.Refresh(ctx, s.r) }

// Refresher is a TokenSource that can throw its token away and fetch a fresh one. Mail clients use it
// to retry once when a server refuses a token the cache thought valid.
type Refresher interface {
	TokenSource
	Refresh(ctx context.Context) (*Token, error)
}

// StaticTokenSource always returns the same token (tests, and tokens obtained elsewhere).
func StaticTokenSource(t *Token) TokenSource { return staticSource{t} }

type staticSource struct{ t *Token }

func (s staticSource) Token(context.Context) (*Token, error) { return s.t, nil }

// OAuth2 adapts a TokenSource to golang.org/x/oauth2, whose Token takes no context: ctx is used for
// every call.
func OAuth2(ctx context.Context, ts TokenSource) oauth2.TokenSource { return oauth2Source{ctx, ts} }

type oauth2Source struct {
	ctx context.Context
	ts  TokenSource
}

func (s oauth2Source) Token() (*oauth2.Token, error) {
	t, err := s.ts.Token(s.ctx)
	if err != nil {
		return nil, err
	}
	return t.OAuth2(), nil
}

// RetryRefused presents the source's token with attempt, and when the server refused it (refused(err))
// and the source can refresh, presents a fresh one once more: a token the cache thought valid may have
// been revoked, or issued before a permission was granted. retried says the second try happened (and
// succeeded, when err is nil). A refresh failure returns the server's refusal, which is the news.
func RetryRefused(ctx context.Context, ts TokenSource, attempt func(*Token) error, refused func(error) bool) (retried bool, err error) {
	tok, err := ts.Token(ctx)
	if err != nil {
		return false, err
	}
	err = attempt(tok)
	if err == nil || !refused(err) {
		return false, err
	}
	r, ok := ts.(Refresher)
	if !ok {
		return false, err
	}
	fresh, rerr := r.Refresh(ctx)
	if rerr != nil {
		return false, err
	}
	return true, attempt(fresh)
}

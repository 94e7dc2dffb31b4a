// Package console is mailoauth's web console: a small server-rendered site (html/template, a little
// progressive JavaScript, everything embedded) that shows every account's health — its flow, its
// signed-in users, each resource's token expiry and last refresh, the last error as the doctor's
// finding — and the proxy's listeners, users and refused logins; that signs accounts in (a device
// code shown on the page, or a web app's authorization code with PKCE coming back to the console),
// signs them out, and runs the doctor for one account. `mailoauth console` serves it, and the proxy
// on its admin address.
//
// It must never render or log a token, a client secret, a password, a device code or an
// authorization code (the user code of a device sign-in is meant to be shown, and is). Every action
// is a POST carrying the session's CSRF token; the session cookie is HttpOnly and SameSite=Strict,
// and Secure over TLS. It refuses to serve without TLS on an address that is not loopback, and
// without a login anywhere but loopback.
package console

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/proxy"
)

// Proxy is what the console reads of a running proxy; *proxy.Server implements it.
type Proxy interface {
	Snapshot() proxy.Snapshot
}

// Options configure a Console.
type Options struct {
	// Config is the configuration: its accounts, and its [console] section (Config.Console), which
	// says how people log in. Required.
	Config *config.File
	// Manager builds Config's accounts (with the token store). Required.
	Manager *auth.Manager
	// Proxy is the running proxy to show; nil when there is none.
	Proxy Proxy
	// Addr is the host:port the console is served on, as bound: an address that is not loopback
	// needs TLS, and auth "none" needs loopback.
	Addr string
	// TLS says the console is served over HTTPS: its cookie is then Secure.
	TLS bool
	// Log receives a line per action (logins, sign-ins, sign-outs, doctor runs), without secrets;
	// nil discards them.
	Log *slog.Logger
	// FailureDelay is how long a source whose admin password was wrong waits before its next
	// attempt is checked, doubling with each further failure up to a minute; 0 is one second, and a
	// negative value turns the delay off (tests).
	FailureDelay time.Duration
}

// Errors of New, for a program to tell them apart.
var (
	ErrNeedsTLS      = errors.New("the console is not on a loopback address and has no TLS")
	ErrNeedsPassword = errors.New(`the console's auth is "none" and it is not on a loopback address`)
)

// Console is the web console, an http.Handler. Close it to end the sign-ins under way.
type Console struct {
	opts     Options
	cfg      *config.Console
	loopback bool
	log      *slog.Logger
	mux      *http.ServeMux
	limiter  *limiter
	checks   chan struct{}    // admin password checks under way, at most one per CPU
	now      func() time.Time // the sessions' clock

	ctx    context.Context // ends with Close: the sign-ins under way
	cancel context.CancelFunc
	wg     sync.WaitGroup // the sign-ins' goroutines

	mu        sync.Mutex
	sessions  map[string]*session
	signins   map[string]*signin // by id
	waiting   map[string]*signin // the device or browser sign-in under way, by account
	doctoring map[string]bool    // the accounts a doctor run is under way for
	byState   map[string]*signin // auth-code sign-ins, by their OAuth state
	lastErr   map[string]*catalog.Finding
}

// New returns a console for o. It refuses an address that is not loopback without TLS
// (ErrNeedsTLS), or with auth "none" (ErrNeedsPassword).
func New(o Options) (*Console, error) {
	if o.Config == nil || o.Manager == nil {
		return nil, errors.New("console: Options.Config and Options.Manager are required")
	}
	cc := o.Config.Console
	if cc == nil {
		return nil, errors.New("console: the configuration has no [console] section: add one with password_hash, or auth = \"none\" on a loopback address")
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("console: Options.Addr %q is not host:port", o.Addr)
	}
	c := &Console{
		opts: o, cfg: cc, loopback: loopbackHost(host), log: o.Log, now: time.Now,
		sessions: map[string]*session{}, signins: map[string]*signin{}, waiting: map[string]*signin{}, doctoring: map[string]bool{}, byState: map[string]*signin{},
		lastErr: map[string]*catalog.Finding{},
	}
	switch {
	case !c.loopback && !o.TLS:
		return nil, fmt.Errorf("console: %s: %w; set tls_cert and tls_key in [console], or listen on 127.0.0.1", o.Addr, ErrNeedsTLS)
	case !c.loopback && cc.Auth == config.ConsoleAuthNone:
		return nil, fmt.Errorf("console: %s: %w; set auth = \"password\" with password_hash, or listen on 127.0.0.1", o.Addr, ErrNeedsPassword)
	case cc.Auth != config.ConsoleAuthNone && cc.PasswordHash == "":
		return nil, errors.New(`console: [console] has no password_hash: run mailoauth proxy hash-password and paste what it prints, or set auth = "none" on a loopback address`)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "console")
	delay := o.FailureDelay
	if delay == 0 {
		delay = time.Second
	}
	c.limiter = newLimiter(delay, time.Minute)
	c.checks = make(chan struct{}, runtime.NumCPU())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.routes()
	return c, nil
}

// Close ends the sign-ins under way and waits for them to stop.
func (c *Console) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", staticHandler())
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.action(c.login, false))
	m.HandleFunc("POST /logout", c.action(c.logout, true))
	m.HandleFunc("GET /{$}", c.page(c.dashboard))
	m.HandleFunc("GET /accounts/{name}/card", c.page(c.card))
	m.HandleFunc("POST /accounts/{name}/signin", c.action(c.startSignIn, true))
	m.HandleFunc("POST /accounts/{name}/signout", c.action(c.signOut, true))
	m.HandleFunc("POST /accounts/{name}/doctor", c.action(c.runDoctor, true))
	m.HandleFunc("GET /signins/{id}", c.page(c.signinPage))
	m.HandleFunc("GET /signins/{id}/status", c.page(c.signinStatus))
	m.HandleFunc("GET /callback", c.callback)
	c.mux = m
}

// ServeHTTP serves the console, with the headers every answer carries.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // the callback's URL carries an authorization code: never to another site
	h.Set("Cache-Control", "no-store")
	if c.opts.TLS {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if c.loopback && !loopbackHost(hostOnly(r.Host)) {
		// A page elsewhere whose name was made to resolve to 127.0.0.1 (DNS rebinding) would
		// otherwise reach a console without a login.
		http.Error(w, "This console answers on a loopback name only: open it as http://127.0.0.1 or http://localhost.", http.StatusMisdirectedRequest)
		return
	}
	c.mux.ServeHTTP(w, r)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// randomID is 32 random bytes, URL-safe.
func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// source is the client's address without the port, for the log and the login limiter.
func source(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// setLastErr remembers an account's latest problem (nil: it is fine now).
func (c *Console) setLastErr(account string, f *catalog.Finding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f == nil {
		delete(c.lastErr, account)
		return
	}
	c.lastErr[account] = f
}

func (c *Console) lastErrOf(account string) *catalog.Finding {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr[account]
}

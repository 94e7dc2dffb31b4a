// Package proxy lets programs that only know a user name and a password use Exchange Online (or any
// XOAUTH2/OAUTHBEARER server) through OAuth 2.0. It listens locally for IMAP, POP3 and
// SMTP; answers the program's greeting, capabilities, STARTTLS and login itself; checks the local
// password against an argon2id hash; maps the user to an account; authenticates upstream with that
// account's token; and from then on copies bytes both ways untouched.
//
// It is hand-written because no maintained library does this: go-imap's and go-smtp's servers own
// the connection after login and would re-encode every command, while a proxy must pass the
// session through byte for byte, and at close to the throughput of a direct connection.
//
// What it must never do: log or answer with a token or a password; connect upstream without
// verifying the certificate or fall back to clear text when STARTTLS disappears; accept a login
// before the password is checked; let one account's token fetch hold up another's; drop a refresh
// token (that is auth's promise, which the proxy relies on by only ever asking auth for tokens).
//
// Choices (also in docs/proxy.md):
//   - Upstream TLS mode follows the port, as the clients do: IMAP 143, POP3 110 → STARTTLS; SMTP 465
//     → implicit TLS; otherwise IMAP/POP3 implicit and SMTP STARTTLS.
//   - The SASL user sent upstream is the account's mailbox for [proxy.users] entries, and the name the
//     program sent for [proxy.domains] catch-alls (one app-only account serving every mailbox).
//   - Before login, capabilities are the proxy's own: upstream is only dialed after the password is
//     checked, so an unauthenticated program never makes the proxy connect anywhere. IMAP and POP3
//     programs ask again after login (RFC 3501 §6.2.2) and then see the server's list; SMTP's EHLO
//     list is what Exchange Online and Postfix both support, so it still holds after AUTH.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/internal/passhash"
)

// Accounts gives the account a local user is mapped to. *auth.Manager implements it.
type Accounts interface {
	Account(name string) (*auth.Account, error)
}

// Options tune a Server; zero values take the defaults.
type Options struct {
	Log *slog.Logger
	// LoginTimeout bounds everything before the session is spliced: greeting to upstream OK.
	LoginTimeout time.Duration // default 2 minutes
	// IdleTimeout closes a spliced session in which neither side sent anything for this long. IMAP
	// IDLE re-issues within 29 minutes (RFC 2177), so the default is 31 minutes.
	IdleTimeout time.Duration
	// MaxSession closes any session after this long, however busy.
	MaxSession time.Duration // default 24 hours
	// MaxLine bounds a command line before authentication, and an IMAP literal in LOGIN.
	MaxLine int // default 8 KiB
	// Hostname is what the SMTP greeting names. Default "mailoauth-proxy".
	Hostname string
	// FailureDelay is how long after a source address's first wrong password (or unknown user) its
	// next login waits before its password is checked; after each further failure twice as long, up
	// to FailureDelayMax, one check at a time (see penalties). Defaults 2 s and 15 s; a negative
	// FailureDelay turns the delay off.
	FailureDelay, FailureDelayMax time.Duration
	// Ready says whether what logins need beyond the listeners is there (the CLI checks that the
	// token store can be reached); /readyz answers 503 with its error until it returns nil. nil: ready.
	Ready func(context.Context) error
	// Gateway serves the listeners with via = "graph"; New and Reload refuse such a listener when
	// it is nil or lacks the listener's protocol.
	Gateway *Gateway
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.LoginTimeout == 0 {
		o.LoginTimeout = 2 * time.Minute
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 31 * time.Minute
	}
	if o.MaxSession == 0 {
		o.MaxSession = 24 * time.Hour
	}
	if o.MaxLine == 0 {
		o.MaxLine = 8 << 10
	}
	if o.Hostname == "" {
		o.Hostname = "mailoauth-proxy"
	}
}

// settings is what a reload replaces at once: the user map and the accounts behind it.
type settings struct {
	users    map[string]*config.ProxyUser
	domains  map[string]*config.ProxyDomain
	accounts Accounts
}

// Server is a running proxy: its listeners, its sessions and its counters.
type Server struct {
	opts     Options
	verifier *verifier
	Metrics  *Metrics

	settings atomic.Pointer[settings]

	mu        sync.Mutex
	listeners map[string]*listener // by listenerKey
	sessions  map[*session]struct{}
	closing   bool
	started   bool
	wg        sync.WaitGroup // sessions and accept loops
	nextID    atomic.Uint64
	// upstreamTLS holds a TLS session cache per account, so that logins after the first resume their
	// TLS session with the server instead of a full handshake.
	upstreamTLS sync.Map // account name → tls.ClientSessionCache
	// admin are the admin endpoints ServeAdmin started; Shutdown stops them last.
	admin        []*http.Server
	adminStopped bool
	// refusals are the latest refused logins, for Snapshot.
	refusals refusals
}

// upstreamTLSConfig is the account's TLS configuration with the account's session cache.
func (s *Server) upstreamTLSConfig(a *auth.Account) *tls.Config {
	c := a.TLSConfig()
	cache, _ := s.upstreamTLS.LoadOrStore(a.Name(), tls.NewLRUClientSessionCache(64))
	c.ClientSessionCache = cache.(tls.ClientSessionCache)
	return c
}

// New returns a Server for cfg; Start binds its listeners.
func New(cfg *config.Proxy, accounts Accounts, opts Options) (*Server, error) {
	opts.defaults()
	s := &Server{
		opts:      opts,
		verifier:  newVerifier(opts.FailureDelay, opts.FailureDelayMax),
		Metrics:   newMetrics(),
		listeners: map[string]*listener{},
		sessions:  map[*session]struct{}{},
	}
	if err := s.Reload(cfg, accounts); err != nil {
		return nil, err
	}
	return s, nil
}

// listener is one bound [[proxy.listener]].
type listener struct {
	ln   net.Listener
	cfg  atomic.Pointer[config.Listener]
	cert atomic.Pointer[tls.Certificate] // local TLS; reloaded on SIGHUP
	addr string                          // the bound address (differs from cfg.Listen for port 0)
	// tls is one configuration for all the listener's connections, so that its session-ticket keys
	// are shared and a program reconnecting resumes its TLS session instead of a full handshake.
	tls *tls.Config
	// gw are the gateway servers' listeners, for a listener via Graph (gateway.go).
	gwMu sync.Mutex
	gw   map[string]*gateway.Listener
}

func newListener() *listener {
	l := &listener{}
	l.tls = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return l.cert.Load(), nil
		},
	}
	return l
}

func (l *listener) tlsConfig() *tls.Config { return l.tls }

// listenerKey names a listener in Addrs: protocol, local TLS mode and the configured address.
func listenerKey(l *config.Listener) string {
	return l.Protocol + " " + localTLSMode(l) + " " + l.Listen
}

func localTLSMode(l *config.Listener) string {
	if l.LocalTLS == "" {
		return config.LocalTLSNone
	}
	return l.LocalTLS
}

// Reload applies a new configuration: users and accounts at once for new logins; listeners added,
// removed or updated. Established sessions are not touched. It is all or nothing: everything that
// can fail (hashes, certificates, binding the new listeners) is done before anything changes, so
// on an error the running configuration stays exactly as it was.
func (s *Server) Reload(cfg *config.Proxy, accounts Accounts) error {
	certs, err := checkProxyConfig(cfg)
	if err != nil {
		return err
	}
	if err := s.checkGateway(cfg); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("the proxy is shutting down, so the new configuration was not applied")
	}
	next, removed := s.matchListeners(cfg.Listeners)
	var fresh []*listener
	for i, l := range next {
		if l == nil {
			next[i] = newListener()
			fresh = append(fresh, next[i])
			next[i].cfg.Store(&cfg.Listeners[i])
		}
	}
	if s.started {
		if err := s.bindLocked(fresh); err != nil {
			return err
		}
	}
	s.swapLocked(cfg, accounts, certs, next)
	for _, l := range fresh {
		if s.started { // before Start (in New) nothing is bound yet
			s.acceptLocked(l)
		}
	}
	for _, l := range removed {
		l.closeGateway()
		if l.ln != nil {
			_ = l.ln.Close() // its sessions go on
			s.opts.Log.Info("listener removed", "protocol", l.cfg.Load().Protocol, "addr", l.addr)
		}
	}
	return nil
}

// swapLocked puts a checked and bound configuration in force at once: each listener's settings and
// certificate, the set of listeners, and the users and accounts. Nothing in it can fail.
func (s *Server) swapLocked(cfg *config.Proxy, accounts Accounts, certs []*tls.Certificate, next []*listener) {
	listeners := make(map[string]*listener, len(next))
	for i, l := range next {
		c := cfg.Listeners[i]
		if old := l.cfg.Swap(&c); listenerKey(old) != listenerKey(&c) {
			s.opts.Log.Info("listener updated", "protocol", c.Protocol, "addr", l.addr, "local_tls", localTLSMode(&c))
		}
		if certs[i] != nil {
			l.cert.Store(certs[i])
		}
		listeners[listenerKey(&c)] = l
	}
	s.listeners = listeners
	s.settings.Store(&settings{users: cfg.Users, domains: cfg.Domains, accounts: accounts})
}

// checkProxyConfig checks what Reload cannot apply and loads the listeners' certificates (nil for
// a listener without local TLS).
func checkProxyConfig(cfg *config.Proxy) ([]*tls.Certificate, error) {
	if cfg == nil || len(cfg.Listeners) == 0 {
		return nil, errors.New("the configuration has no [[proxy.listener]]: add one per protocol (see docs/proxy.md)")
	}
	certs := make([]*tls.Certificate, len(cfg.Listeners))
	seen := map[string]bool{}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if seen[listenerKey(l)] {
			return nil, fmt.Errorf("listener %s %s is configured twice: remove one of them", l.Protocol, l.Listen)
		}
		seen[listenerKey(l)] = true
		if localTLSMode(l) == config.LocalTLSNone {
			continue
		}
		c, err := tls.LoadX509KeyPair(l.TLSCert, l.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("listener %s %s: cannot load tls_cert/tls_key: %w", l.Protocol, l.Listen, err)
		}
		certs[i] = &c
	}
	for name, u := range cfg.Users {
		if err := passhash.Check(u.PasswordHash); err != nil {
			return nil, fmt.Errorf("[proxy.users.%q] password_hash: %v; run `mailoauth proxy hash-password`", name, err)
		}
	}
	for name, d := range cfg.Domains {
		if err := passhash.Check(d.PasswordHash); err != nil {
			return nil, fmt.Errorf("[proxy.domains.%q] password_hash: %v; run `mailoauth proxy hash-password`", name, err)
		}
	}
	return certs, nil
}

// matchListeners pairs each configured listener with the running one that keeps serving it (nil:
// a new socket is needed) and returns the running ones left over, which the reload removes.
// A listener keeps its socket when its address is unchanged: first the same protocol, TLS mode and
// address; then, on a fixed port, the same address with another protocol or TLS mode (updated in
// place — binding anew would fail while the old socket holds the port). Port 0 means "any free
// port", so there the protocol and mode tell the listeners apart.
func (s *Server) matchListeners(want []config.Listener) (next, removed []*listener) {
	free := map[*listener]bool{}
	for _, l := range s.listeners {
		free[l] = true
	}
	next = make([]*listener, len(want))
	for i := range want {
		if l := s.listeners[listenerKey(&want[i])]; l != nil && free[l] {
			next[i], free[l] = l, false
		}
	}
	for i := range want {
		if next[i] != nil || fixedPort(want[i].Listen) == 0 {
			continue
		}
		for l := range free {
			if free[l] && l.cfg.Load().Listen == want[i].Listen {
				next[i], free[l] = l, false
				break
			}
		}
	}
	for l, f := range free {
		if f {
			removed = append(removed, l)
		}
	}
	return next, removed
}

// fixedPort is the port of a host:port address, 0 for port 0 or one that does not parse.
func fixedPort(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

// Start binds every listener and serves in the background. It returns when all are bound; if one
// cannot be, none is left bound.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		all = append(all, l)
	}
	if err := s.bindLocked(all); err != nil {
		return err
	}
	s.started = true
	for _, l := range all {
		s.acceptLocked(l)
	}
	return nil
}

// bindLocked binds each of ls. If one cannot be bound, the ones it bound are closed again and the
// error says which address failed and why.
func (s *Server) bindLocked(ls []*listener) error {
	for i, l := range ls {
		cfg := l.cfg.Load()
		// net.Listen asks the kernel for the largest backlog it allows (somaxconn), so a burst of
		// connections queues instead of being refused.
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			for _, b := range ls[:i] {
				_ = b.ln.Close()
				b.ln, b.addr = nil, ""
			}
			return s.bindError(cfg, err)
		}
		l.ln, l.addr = ln, ln.Addr().String()
	}
	return nil
}

// bindError explains a failed bind, naming this proxy's own listener when that is what holds the
// port: running listeners are closed only after the new ones are bound, so a listener cannot move
// to another spelling of the same port (127.0.0.1:993 to 0.0.0.0:993) in one reload.
func (s *Server) bindError(cfg *config.Listener, err error) error {
	if port := fixedPort(cfg.Listen); port != 0 && errors.Is(err, syscall.EADDRINUSE) {
		for _, l := range s.listeners {
			if ta, ok := l.addrOf(); ok && ta.Port == port {
				return fmt.Errorf("cannot listen on %s for %s: %w; the proxy's own %s listener on %s holds that port: to move a listener to another address on the same port, remove it in one reload and add it in the next",
					cfg.Listen, cfg.Protocol, err, l.cfg.Load().Protocol, l.addr)
			}
		}
	}
	return fmt.Errorf("cannot listen on %s for %s: %w; free the port or choose another listen address", cfg.Listen, cfg.Protocol, err)
}

// addrOf is the bound TCP address, if the listener is bound.
func (l *listener) addrOf() (*net.TCPAddr, bool) {
	if l.ln == nil {
		return nil, false
	}
	ta, ok := l.ln.Addr().(*net.TCPAddr)
	return ta, ok
}

// acceptLocked logs a newly bound listener and starts its accept loop.
func (s *Server) acceptLocked(l *listener) {
	cfg := l.cfg.Load()
	s.opts.Log.Info("listening", "protocol", cfg.Protocol, "addr", l.addr, "local_tls", localTLSMode(cfg))
	s.wg.Add(1)
	go s.accept(l)
}

// Addrs returns the bound address of each listener, keyed "protocol local_tls listen" as configured
// (tests listen on port 0 and ask where).
func (s *Server) Addrs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, l := range s.listeners {
		out[k] = l.addr
	}
	return out
}

func (s *Server) accept(l *listener) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors: wait and try again rather than spin or give up.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.opts.Log.Warn("accept failed, retrying", "addr", l.addr, "err", err)
				time.Sleep(delay)
				continue
			}
			return // closed by Reload or Shutdown
		}
		delay = 0
		s.serve(l, c)
	}
}

// serve registers and runs a session, unless the server is closing.
func (s *Server) serve(l *listener, c net.Conn) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	sess := newSession(s, l, c)
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
			s.wg.Done()
		}()
		sess.run()
	}()
}

// Shutdown stops accepting, lets sessions finish until ctx is done, then closes the rest; the admin
// endpoint answers throughout (/healthz 503) and stops last. It returns ctx's error if sessions had
// to be cut.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.stopAdmin()
	s.mu.Lock()
	s.closing = true
	for _, l := range s.listeners {
		if l.ln != nil {
			_ = l.ln.Close()
		}
		l.closeGateway()
	}
	n := len(s.sessions)
	s.mu.Unlock()
	s.opts.Log.Info("shutting down", "sessions", n)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	cut := len(s.sessions)
	for sess := range s.sessions {
		sess.close()
	}
	s.mu.Unlock()
	<-done
	s.opts.Log.Warn("drain deadline reached, sessions closed", "sessions", cut)
	return ctx.Err()
}

// Sessions is the number of sessions open now.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailoauth/mailoauth/token"
)

// Metrics are the proxy's counters, served in Prometheus' text format (version 0.0.4) by
// AdminHandler. They are written by hand: a handful of counters does not earn
// prometheus/client_golang and its dependency tree.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]*atomic.Uint64 // "name{labels}" → value
	gauges   map[string]*atomic.Int64
}

func newMetrics() *Metrics {
	return &Metrics{counters: map[string]*atomic.Uint64{}, gauges: map[string]*atomic.Int64{}}
}

func (m *Metrics) counter(key string) *atomic.Uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[key]
	if c == nil {
		c = new(atomic.Uint64)
		m.counters[key] = c
	}
	return c
}

func (m *Metrics) gauge(key string) *atomic.Int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.gauges[key]
	if g == nil {
		g = new(atomic.Int64)
		m.gauges[key] = g
	}
	return g
}

func (m *Metrics) sessionStart(protocol string) {
	m.counter(`mailoauth_proxy_sessions_total{protocol="` + protocol + `"}`).Add(1)
	m.gauge(`mailoauth_proxy_sessions_active{protocol="` + protocol + `"}`).Add(1)
}

func (m *Metrics) sessionEnd(protocol string) {
	m.gauge(`mailoauth_proxy_sessions_active{protocol="` + protocol + `"}`).Add(-1)
}

func (m *Metrics) login(protocol, outcome string) {
	m.counter(`mailoauth_proxy_logins_total{protocol="` + protocol + `",outcome="` + outcome + `"}`).Add(1)
}

// tokenFetch counts a token asked of an account's source: "stale" when it is a cached token served
// because its refresh failed (an identity-platform outage inside the refresh margin, which an operator
// wants to see before the token really expires).
func (m *Metrics) tokenFetch(t *token.Token, err error) {
	outcome := "ok"
	switch {
	case err != nil:
		outcome = "error"
	case t != nil && t.RefreshErr != nil:
		outcome = "stale"
	}
	m.counter(`mailoauth_proxy_token_fetches_total{outcome="` + outcome + `"}`).Add(1)
}

// bytesCounter is looked up once per session direction; the copy loop adds to it per read.
func (m *Metrics) bytesCounter(protocol, direction string) *atomic.Uint64 {
	return m.counter(`mailoauth_proxy_bytes_total{protocol="` + protocol + `",direction="` + direction + `"}`)
}

// Value returns a counter or gauge by its exposition key, for tests; 0 when unset.
func (m *Metrics) Value(key string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.counters[key]; c != nil {
		return int64(c.Load())
	}
	if g := m.gauges[key]; g != nil {
		return g.Load()
	}
	return 0
}

var help = map[string]string{
	"mailoauth_proxy_sessions_total":      "counter Connections accepted, by protocol.",
	"mailoauth_proxy_sessions_active":     "gauge Connections open now, by protocol.",
	"mailoauth_proxy_logins_total":        "counter Login attempts by protocol and outcome (ok, bad_password, unknown_user, bad_user_name, config_error, token_error, upstream_unavailable, upstream_refused, login_timeout).",
	"mailoauth_proxy_token_fetches_total": "counter Tokens asked of the account's source (cached or refreshed), by outcome: ok, error, stale (a cached token served because its refresh failed).",
	"mailoauth_proxy_bytes_total":         "counter Bytes copied after login, by protocol and direction (up: program to server).",
}

// WriteTo writes the metrics in Prometheus' text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	lines := map[string][]string{}
	for k, c := range m.counters {
		lines[family(k)] = append(lines[family(k)], fmt.Sprintf("%s %d", k, c.Load()))
	}
	for k, g := range m.gauges {
		lines[family(k)] = append(lines[family(k)], fmt.Sprintf("%s %d", k, g.Load()))
	}
	m.mu.Unlock()
	names := make([]string, 0, len(help))
	for name := range help {
		names = append(names, name)
	}
	sort.Strings(names)
	var n int64
	for _, name := range names {
		kind, text, _ := strings.Cut(help[name], " ")
		k, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, kind)
		n += int64(k)
		if err != nil {
			return n, err
		}
		sort.Strings(lines[name])
		for _, l := range lines[name] {
			k, err := fmt.Fprintln(w, l)
			n += int64(k)
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func family(key string) string {
	for i := range key {
		if key[i] == '{' {
			return key[:i]
		}
	}
	return key
}

// answerDraining answers 503 "draining" once Shutdown has begun, and reports whether it did.
func (s *Server) answerDraining(w http.ResponseWriter) bool {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}
	return closing
}

// AdminHandler serves /healthz (200 "ok" while listening, 503 "draining" once Shutdown has begun),
// /readyz (as /healthz, and 503 while Options.Ready fails: a load balancer sends no login to a proxy
// whose token store cannot be reached) and /metrics.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.answerDraining(w) {
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.answerDraining(w) {
			return
		}
		if s.opts.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			if err := s.opts.Ready(ctx); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = s.Metrics.WriteTo(w)
	})
	return mux
}

// ServeAdmin serves AdminHandler on ln in the background until Shutdown has ended the last session:
// while the proxy drains, a load balancer's health check gets 503 "draining" (and /metrics shows
// the drain) instead of a refused connection.
func (s *Server) ServeAdmin(ln net.Listener) { s.ServeAdminWith(ln, nil) }

// ServeAdminWith is ServeAdmin with more to serve on the admin address: other handles every path but
// /healthz and /metrics (the web console mounts itself this way). A nil other is ServeAdmin.
func (s *Server) ServeAdminWith(ln net.Listener, other http.Handler) {
	h := s.AdminHandler()
	if other != nil {
		mux := http.NewServeMux()
		mux.Handle("/healthz", h)
		mux.Handle("/readyz", h)
		mux.Handle("/metrics", h)
		mux.Handle("/", other)
		h = mux
	}
	// A slow or idle client cannot hold a connection for ever: a request is read within 30 s and an idle
	// keep-alive connection closed after 2 minutes. No write timeout: a doctor run may take 3 minutes.
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	s.mu.Lock()
	if s.adminStopped {
		s.mu.Unlock()
		_ = ln.Close()
		return
	}
	s.admin = append(s.admin, hs)
	s.mu.Unlock()
	go func() { _ = hs.Serve(ln) }()
}

// stopAdmin stops the admin servers, the last thing Shutdown does. A request in progress (a
// scrape) gets adminGrace to finish.
func (s *Server) stopAdmin() {
	s.mu.Lock()
	admin := s.admin
	s.admin, s.adminStopped = nil, true
	s.mu.Unlock()
	for _, hs := range admin {
		ctx, cancel := context.WithTimeout(context.Background(), adminGrace)
		if hs.Shutdown(ctx) != nil {
			_ = hs.Close()
		}
		cancel()
	}
}

// adminGrace bounds how long a request to the admin endpoint may hold up the end of Shutdown.
const adminGrace = 5 * time.Second

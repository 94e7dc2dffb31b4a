package proxy

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/doctor/catalog"
)

// Snapshot is a read-only view of a running proxy for a status page (the web console): what it
// listens on, whom it serves and the logins it refused lately. It holds no password, hash or token.
type Snapshot struct {
	Listeners []ListenerStatus
	Users     []UserStatus
	// Refusals are the latest refused logins, newest first (at most MaxRefusals).
	Refusals []Refusal
	// Logins counts login attempts by outcome (ok, bad_password, token_error, upstream_refused, ...),
	// all protocols together, since the proxy started.
	Logins map[string]uint64
}

// ListenerStatus is one listener and the sessions it has open now.
type ListenerStatus struct {
	Protocol string // imap, pop or smtp
	Listen   string // as configured
	Addr     string // as bound (differs from Listen for port 0)
	LocalTLS string // none, implicit or starttls
	Sessions int
}

// UserStatus is one [proxy.users] entry, or a [proxy.domains] catch-all (Domain set, Name the domain).
type UserStatus struct {
	Name    string
	Domain  bool
	Account string
}

// Refusal is one refused login: who, when, on which protocol, and why, as the proxy logged it. Code
// is the doctor's finding code when the proxy has one (a refused token); Reason is the cause and fix
// in words, never the password.
type Refusal struct {
	Time     time.Time
	Protocol string
	User     string
	Account  string
	Outcome  string
	Code     string
	Reason   string
}

// MaxRefusals is how many refused logins a Snapshot remembers.
const MaxRefusals = 20

// refusals is the ring of the latest refused logins.
type refusals struct {
	mu   sync.Mutex
	list []Refusal // oldest first
}

func (r *refusals) add(x Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) == MaxRefusals {
		r.list = append(r.list[:0], r.list[1:]...)
	}
	r.list = append(r.list, x)
}

func (r *refusals) newestFirst() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Refusal, len(r.list))
	for i, x := range r.list {
		out[len(r.list)-1-i] = x
	}
	return out
}

// refused records a refused login for Snapshot.
func (s *session) refused(user, account string, o outcome, code, reason string) {
	s.srv.refusals.add(Refusal{Time: time.Now(), Protocol: s.cfg.Protocol, User: user, Account: account, Outcome: string(o), Code: code, Reason: reason})
}

// refusedToken records a login refused for want of a token, with the doctor's finding.
func (s *session) refusedToken(user string, a *auth.Account, err error) {
	reason := err.Error()
	f, ok := catalog.TokenError(catalog.For(a), err)
	if ok {
		reason = f.Cause + " " + f.Fix
	}
	s.refused(user, a.Name(), outcomeToken, f.Code, reason)
}

// Snapshot returns the proxy's state now.
func (s *Server) Snapshot() Snapshot {
	var out Snapshot
	s.mu.Lock()
	open := map[*listener]int{}
	for sess := range s.sessions {
		open[sess.l]++
	}
	for _, l := range s.listeners {
		c := l.cfg.Load()
		out.Listeners = append(out.Listeners, ListenerStatus{Protocol: c.Protocol, Listen: c.Listen, Addr: l.addr, LocalTLS: localTLSMode(c), Sessions: open[l]})
	}
	s.mu.Unlock()
	sort.Slice(out.Listeners, func(i, j int) bool { return out.Listeners[i].Listen < out.Listeners[j].Listen })
	if set := s.settings.Load(); set != nil {
		for name, u := range set.users {
			out.Users = append(out.Users, UserStatus{Name: name, Account: u.Account})
		}
		for name, d := range set.domains {
			out.Users = append(out.Users, UserStatus{Name: name, Domain: true, Account: d.Account})
		}
	}
	sort.Slice(out.Users, func(i, j int) bool { return out.Users[i].Name < out.Users[j].Name })
	out.Refusals = s.refusals.newestFirst()
	out.Logins = s.Metrics.logins()
	return out
}

// logins sums mailoauth_proxy_logins_total over protocols, by outcome.
func (m *Metrics) logins() map[string]uint64 {
	const prefix = `mailoauth_proxy_logins_total{`
	out := map[string]uint64{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, c := range m.counters {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if _, rest, ok := strings.Cut(k, `outcome="`); ok {
			o, _, _ := strings.Cut(rest, `"`)
			out[o] += c.Load()
		}
	}
	return out
}

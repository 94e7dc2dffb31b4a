package console

import (
	"crypto/subtle"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/passhash"
)

// session is one browser's: its CSRF token, and whether it has logged in.
type session struct {
	id      string
	csrf    string
	authed  bool
	ends    time.Time
	expires time.Time // sessionIdle after its last request, and never past sessionMax after its start
	// bind ties a web sign-in's callback to this browser: the SameSite=Strict session cookie does
	// not come along on the identity platform's redirect, a Lax cookie holding bind does.
	bind string
}

// Sessions last sessionIdle after their last request and sessionMax at most (a cookie that leaked
// is not good for ever); at most maxSessions are kept (the oldest anonymous ones go first), so that
// a flood of anonymous visits can neither grow the table nor push out a logged-in session.
const (
	sessionIdle = 12 * time.Hour
	sessionMax  = 24 * time.Hour
	maxSessions = 1000
)

// cookieName is the session cookie's; over TLS the __Host- prefix makes the browser refuse it
// unless it is Secure, for this host only, on every path.
func (c *Console) cookieName() string {
	if c.opts.TLS {
		return "__Host-mailoauth_console"
	}
	return "mailoauth_console"
}

// bindCookieName is the cookie that ties a web sign-in's callback to the browser that started it.
func (c *Console) bindCookieName() string {
	if c.opts.TLS {
		return "__Host-mailoauth_console_signin"
	}
	return "mailoauth_console_signin"
}

// session returns the request's session, creating one (and setting its cookie) when it has none.
func (c *Console) session(w http.ResponseWriter, r *http.Request) *session {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ck, err := r.Cookie(c.cookieName()); err == nil {
		if s := c.sessions[ck.Value]; s != nil && now.Before(s.expires) {
			s.expires = now.Add(sessionIdle)
			if s.expires.After(s.ends) {
				s.expires = s.ends
			}
			return s
		}
	}
	return c.newSessionLocked(w, now)
}

func (c *Console) newSessionLocked(w http.ResponseWriter, now time.Time) *session {
	for id, s := range c.sessions {
		if !now.Before(s.expires) {
			delete(c.sessions, id)
		}
	}
	if len(c.sessions) >= maxSessions {
		// Anonymous sessions go first: anyone can make them (a GET without a cookie), and a flood
		// of them must not log the admin out.
		var oldest *session
		for _, s := range c.sessions {
			if oldest == nil || oldest.authed && !s.authed || oldest.authed == s.authed && s.expires.Before(oldest.expires) {
				oldest = s
			}
		}
		delete(c.sessions, oldest.id)
	}
	s := &session{id: randomID(), csrf: randomID(), bind: randomID(), expires: now.Add(sessionIdle), ends: now.Add(sessionMax), authed: c.cfg.Auth == config.ConsoleAuthNone}
	c.sessions[s.id] = s
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName(), Value: s.id, Path: "/", HttpOnly: true, Secure: c.opts.TLS,
		SameSite: http.SameSiteStrictMode,
	})
	return s
}

// page wraps a GET handler that needs a logged-in session; others are sent to the login page.
func (c *Console) page(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.session(w, r)
		if !s.authed {
			if r.Header.Get("Accept") == "application/json" {
				http.Error(w, `{"error":"log in to the console first"}`, http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// action wraps a POST handler: the request must come from the console's own page (its CSRF token,
// in the form's csrf field or the X-CSRF-Token header, and no foreign Origin), and, when
// needsLogin, from a logged-in session.
func (c *Console) action(h func(http.ResponseWriter, *http.Request, *session), needsLogin bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s := c.session(w, r)
		if !c.sameOrigin(r) || !validCSRF(s, r) {
			c.log.Warn("request refused: missing or wrong CSRF token", "path", r.URL.Path, "source", source(r))
			c.fail(w, r, http.StatusForbidden, "This form has expired or did not come from the console: reload the page and try again.")
			return
		}
		if needsLogin && !s.authed {
			c.fail(w, r, http.StatusUnauthorized, "Log in to the console first.")
			return
		}
		h(w, r, s)
	}
}

func validCSRF(s *session, r *http.Request) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// sameOrigin refuses what a browser says came from another site: the Origin header when sent, and
// the Fetch Metadata header.
func (c *Console) sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true // an old browser, a script, or a page whose referrer policy hides its origin
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	s := c.session(w, r)
	if s.authed {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "login", s, nil)
}

// login checks the admin password, at most one check at a time per source and after the source's
// failure delay; a right password starts a new session (the old id may have been seen).
func (c *Console) login(w http.ResponseWriter, r *http.Request, s *session) {
	src := source(r)
	if s.authed {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	wait, release := c.limiter.enter(src)
	if wait > 0 {
		c.log.Warn("console login refused: too many attempts", "source", src, "retry_after", wait.Round(time.Second))
		w.Header().Set("Retry-After", formatSeconds(wait))
		c.render(w, http.StatusTooManyRequests, "login", s, map[string]any{"Error": "Too many wrong passwords: wait " + formatSeconds(wait) + " seconds and try again."})
		return
	}
	// argon2id takes 19 MiB and a CPU for tens of milliseconds: at most one check per CPU at once,
	// whatever the number of sources.
	select {
	case c.checks <- struct{}{}:
	case <-r.Context().Done():
		release(false)
		return
	}
	got, want, err := passhash.Key(c.cfg.PasswordHash, r.PostFormValue("password"))
	<-c.checks
	ok := err == nil && subtle.ConstantTimeCompare(got, want) == 1
	release(ok)
	if !ok {
		c.log.Warn("console login refused: wrong password", "source", src)
		c.render(w, http.StatusUnauthorized, "login", s, map[string]any{"Error": "Wrong password."})
		return
	}
	c.mu.Lock()
	delete(c.sessions, s.id)
	ns := c.newSessionLocked(w, c.now())
	ns.authed = true
	c.mu.Unlock()
	c.log.Info("console login", "source", src)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.mu.Lock()
	delete(c.sessions, s.id)
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.opts.TLS, SameSite: http.SameSiteStrictMode})
	c.log.Info("console logout", "source", source(r))
	if c.cfg.Auth == config.ConsoleAuthNone {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// limiter slows down guessing of the admin password: after a source's failure (an address, an IPv6
// /64) its next attempt is refused until delay has passed, twice as long after each further failure
// up to max; a source has one password check in flight at a time. A right password forgets the
// source.
type limiter struct {
	delay, max time.Duration
	mu         sync.Mutex
	sources    map[string]*attempts
}

type attempts struct {
	failures int
	until    time.Time
	busy     bool
}

// maxSources bounds the limiter's table. When it is full, sources quiet for longer than the longest
// delay are forgotten, and if none is, new sources share one entry: a flood of addresses neither
// grows the table nor wipes the delays it holds.
const maxSources = 10_000

// overflowKey is the entry new sources share while the table is full.
const overflowKey = "overflow"

// sourceKey is the limiter's key for a source address: an IPv6 address's /64, as one host commonly
// has the whole /64 to pick addresses from.
func sourceKey(src string) string {
	ip, err := netip.ParseAddr(src)
	if err != nil || !ip.Is6() || ip.Is4In6() {
		return src
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

func newLimiter(delay, max time.Duration) *limiter {
	return &limiter{delay: delay, max: max, sources: map[string]*attempts{}}
}

// enter returns how long src must still wait, or 0 and a release to call with the check's result.
func (l *limiter) enter(src string) (time.Duration, func(ok bool)) {
	src = sourceKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	a := l.sources[src]
	if a == nil && len(l.sources) >= maxSources {
		for k, old := range l.sources {
			if !old.busy && now.Sub(old.until) > l.max {
				delete(l.sources, k)
			}
		}
		if len(l.sources) >= maxSources {
			src = overflowKey
			a = l.sources[src]
		}
	}
	if a == nil {
		a = &attempts{}
		l.sources[src] = a
	}
	if a.busy {
		return max(l.delay, a.until.Sub(now)), nil
	}
	if d := a.until.Sub(now); d > 0 {
		return d, nil
	}
	a.busy = true
	return 0, func(ok bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		a.busy = false
		if ok {
			delete(l.sources, src)
			return
		}
		if l.delay < 0 {
			return
		}
		d := l.delay << min(a.failures, 16)
		a.failures++
		a.until = time.Now().Add(min(d, l.max))
	}
}

func formatSeconds(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

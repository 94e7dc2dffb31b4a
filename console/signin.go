package console

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/doctor/catalog"
)

// signin is one sign-in started from the console. Only the session that started it sees it.
type signin struct {
	id, account, method, session string
	started                      time.Time
	cancel                       context.CancelFunc // ends a device or browser sign-in's wait

	mu        sync.Mutex
	state     string // waiting, done, failed
	userCode  string // a device sign-in's user code: meant to be shown
	verifyURI string
	expires   time.Time
	openURL   string // the sign-in page of a browser sign-in
	user      string
	problem   *catalog.Finding
	errText   string
	ready     chan struct{} // closed once there is something to show: the code, the URL, or the end
	readyOnce sync.Once

	// A web app's sign-in: the PKCE verifier, the options to redeem the code with, and the
	// browser binding its callback must bring (session.bind).
	verifier string
	codeOpts auth.AuthCodeOptions
	bind     string
}

// signinTimeout bounds a sign-in the console waits for (device codes last 15 minutes).
const signinTimeout = 20 * time.Minute

func (si *signin) markReady() { si.readyOnce.Do(func() { close(si.ready) }) }

// The ends of a sign-in that was not refused.
var (
	errReplaced = errors.New("a newer sign-in of this account replaced this one")
	errClosed   = errors.New("the console stopped before the sign-in finished")
)

// finish records how the sign-in ended.
func (c *Console) finish(si *signin, res *auth.SignIn, err error) {
	c.mu.Lock()
	if c.waiting[si.account] == si {
		delete(c.waiting, si.account)
	}
	c.mu.Unlock()
	si.mu.Lock()
	if err != nil {
		si.state = "failed"
		si.errText = err.Error()
		if acc, aerr := c.account(si.account); aerr == nil {
			if f, ok := catalog.TokenError(catalog.For(acc), err); ok {
				si.problem = &f
			}
		}
	} else {
		si.state = "done"
		si.user = res.User.Username
	}
	si.mu.Unlock()
	si.markReady()
	if errors.Is(err, errReplaced) || errors.Is(err, errClosed) {
		c.log.Info("console sign-in ended", "account", si.account, "method", si.method, "why", err)
		return // says nothing of the account
	}
	if err != nil {
		c.setLastErr(si.account, si.problem)
		c.log.Warn("console sign-in failed", "account", si.account, "method", si.method, "err", err)
		return
	}
	c.setLastErr(si.account, nil)
	c.log.Info("console sign-in completed", "account", si.account, "method", si.method, "user", si.user)
}

func (c *Console) startSignIn(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	acc, err := c.account(name)
	if err != nil {
		c.fail(w, r, http.StatusNotFound, "No account "+name+" in the configuration.")
		return
	}
	method := r.PostFormValue("method")
	if !slices.Contains(c.signInMethods(acc.Config(), r), method) {
		c.fail(w, r, http.StatusBadRequest, "Account "+name+" cannot sign in that way from here.")
		return
	}
	si := &signin{id: randomID(), account: name, method: method, session: s.id, started: time.Now(), state: "waiting", ready: make(chan struct{})}
	ctx, cancel := context.WithTimeout(c.ctx, signinTimeout)
	si.cancel = cancel
	c.mu.Lock()
	for id, old := range c.signins {
		if time.Since(old.started) > signinTimeout+time.Minute {
			delete(c.signins, id)
			delete(c.byState, id)
		}
	}
	// One sign-in per account waits (each costs a goroutine, a device code or a listener, and
	// polling of the identity platform): a new one ends the one before.
	if old := c.waiting[name]; old != nil {
		old.cancel()
	}
	c.waiting[name] = si
	c.signins[si.id] = si
	c.mu.Unlock()
	c.log.Info("console sign-in started", "account", name, "method", method, "source", source(r))

	if method == "web" {
		cancel() // nothing waits: the callback finishes it
		c.startWeb(w, r, acc, si, s)
		return
	}
	var o auth.LoginOptions
	switch method {
	case "device":
		o.Device = true
		o.DeviceCode = func(dc auth.DeviceCode) {
			si.mu.Lock()
			si.userCode, si.verifyURI, si.expires = dc.UserCode, dc.VerificationURI, dc.ExpiresOn
			si.mu.Unlock()
			si.markReady()
		}
	case "browser":
		o.OpenURL = func(u string) error {
			si.mu.Lock()
			si.openURL = u
			si.mu.Unlock()
			si.markReady()
			return nil
		}
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		res, err := acc.Login(ctx, o)
		if err != nil && ctx.Err() == context.Canceled {
			err = errReplaced
			if c.ctx.Err() != nil {
				err = errClosed
			}
		}
		c.finish(si, res, err)
	}()
	select {
	case <-si.ready:
	case <-r.Context().Done():
		return
	}
	si.mu.Lock()
	open := si.openURL
	si.mu.Unlock()
	switch {
	case method == "browser" && open != "":
		http.Redirect(w, r, open, http.StatusSeeOther)
	case wantsJSON(r):
		c.writeStatus(w, si)
	default:
		http.Redirect(w, r, "/signins/"+si.id, http.StatusSeeOther)
	}
}

// startWeb sends the browser to the identity platform; its redirect comes back to /callback.
func (c *Console) startWeb(w http.ResponseWriter, r *http.Request, acc *auth.Account, si *signin, s *session) {
	si.codeOpts = auth.AuthCodeOptions{RedirectURI: c.callbackURL(r)}
	u, verifier, err := acc.AuthCodeURL(r.Context(), si.id, si.codeOpts)
	if err != nil {
		c.finish(si, nil, err)
		c.fail(w, r, http.StatusBadGateway, "Cannot start the sign-in of "+si.account+": "+err.Error())
		return
	}
	si.verifier, si.bind = verifier, s.bind
	c.mu.Lock()
	c.byState[si.id] = si
	c.mu.Unlock()
	// Lax, unlike the session cookie, so that the identity platform's redirect brings it along.
	http.SetCookie(w, &http.Cookie{
		Name: c.bindCookieName(), Value: s.bind, Path: "/", MaxAge: int(signinTimeout / time.Second),
		HttpOnly: true, Secure: c.opts.TLS, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// callbackURL is where the identity platform sends a web sign-in back: this console's /callback,
// as the browser reached it. It must be registered with the app (docs/console.md).
func (c *Console) callbackURL(r *http.Request) string {
	scheme := "http"
	if c.opts.TLS {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/callback"
}

// callback completes a web sign-in. The session cookie is SameSite=Strict, so the browser does not
// send it on this redirect from the identity platform: the OAuth state, random, used once and
// expiring with the sign-in, identifies the sign-in, and the Lax binding cookie proves it is the
// browser that started it. The answer sends the browser on to the console from its own page.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bind := ""
	if ck, err := r.Cookie(c.bindCookieName()); err == nil {
		bind = ck.Value
	}
	c.mu.Lock()
	si := c.byState[q.Get("state")]
	switch {
	case si == nil:
	case time.Since(si.started) > signinTimeout:
		delete(c.byState, si.id)
		si = nil
	case subtle.ConstantTimeCompare([]byte(bind), []byte(si.bind)) != 1:
		// Someone else's browser with the state (and perhaps a code of their own, to slip their
		// mailbox in): refused, and the state stays for the browser that started the sign-in.
		c.mu.Unlock()
		c.log.Warn("console sign-in callback refused: not the browser that started it", "account", si.account, "source", source(r))
		c.renderPlain(w, http.StatusForbidden, "callback", map[string]any{"Account": si.account,
			"Error": "This sign-in was started in another browser: start it again from the console in this browser."})
		return
	default:
		delete(c.byState, si.id)
	}
	c.mu.Unlock()
	if si == nil {
		c.renderPlain(w, http.StatusBadRequest, "callback", map[string]any{"Error": "This sign-in is unknown, expired or already finished: start it again from the console."})
		return
	}
	if e := q.Get("error"); e != "" {
		c.log.Warn("console sign-in refused by the identity platform", "account", si.account, "error", e)
		si.mu.Lock()
		si.state, si.errText = "failed", "the identity platform answered "+e+": "+q.Get("error_description")
		si.mu.Unlock()
		c.renderPlain(w, http.StatusOK, "callback", map[string]any{"Account": si.account, "Error": si.errText})
		return
	}
	acc, err := c.account(si.account)
	var res *auth.SignIn
	if err == nil {
		res, err = acc.ExchangeCode(r.Context(), q.Get("code"), si.verifier, si.codeOpts)
	}
	c.finish(si, res, err)
	data := map[string]any{"Account": si.account}
	if err != nil {
		data["Error"] = err.Error()
		data["Problem"] = si.problem
	} else {
		data["User"] = si.user
	}
	c.renderPlain(w, http.StatusOK, "callback", data)
}

// signinOf is the sign-in id names, if the session started it.
func (c *Console) signinOf(r *http.Request, s *session) *signin {
	c.mu.Lock()
	defer c.mu.Unlock()
	si := c.signins[r.PathValue("id")]
	if si == nil || si.session != s.id {
		return nil
	}
	return si
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request, s *session) {
	si := c.signinOf(r, s)
	if si == nil {
		c.fail(w, r, http.StatusNotFound, "This sign-in is unknown or belongs to another session: start it again from the console.")
		return
	}
	c.render(w, http.StatusOK, "signin", s, si.status())
}

func (c *Console) signinStatus(w http.ResponseWriter, r *http.Request, s *session) {
	si := c.signinOf(r, s)
	if si == nil {
		http.Error(w, `{"error":"unknown sign-in"}`, http.StatusNotFound)
		return
	}
	c.writeStatus(w, si)
}

// signinStatus is a sign-in as the page's script polls it. It holds the user code, which the user
// types in, and nothing secret.
type signinStatus struct {
	ID              string           `json:"id"`
	Account         string           `json:"account"`
	State           string           `json:"state"`
	UserCode        string           `json:"user_code,omitempty"`
	VerificationURI string           `json:"verification_uri,omitempty"`
	ExpiresIn       int              `json:"expires_in,omitempty"` // seconds
	User            string           `json:"user,omitempty"`
	Problem         *catalog.Finding `json:"problem,omitempty"`
	Error           string           `json:"error,omitempty"`
}

func (si *signin) status() signinStatus {
	si.mu.Lock()
	defer si.mu.Unlock()
	st := signinStatus{ID: si.id, Account: si.account, State: si.state, UserCode: si.userCode, VerificationURI: si.verifyURI,
		User: si.user, Problem: si.problem, Error: si.errText}
	if !si.expires.IsZero() && si.state == "waiting" {
		st.ExpiresIn = max(0, int(time.Until(si.expires).Seconds()))
	}
	return st
}

func (c *Console) writeStatus(w http.ResponseWriter, si *signin) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(si.status())
}

func wantsJSON(r *http.Request) bool { return r.Header.Get("Accept") == "application/json" }

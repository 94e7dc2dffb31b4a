package console

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/proxy"
)

// The states an account is shown in.
const (
	stateOK       = "ok"       // green: it has what it needs
	stateExpiring = "expiring" // its tokens are about to expire and nothing can refresh them
	stateSignIn   = "signin"   // nobody is signed in (or the sign-in was refused)
	stateRefused  = "refused"  // its last use failed: the finding says why and what to do
	stateIdle     = "idle"     // app-only, no token fetched yet
)

var stateLabels = map[string]string{
	stateOK: "Healthy", stateExpiring: "Expiring", stateSignIn: "Needs sign-in", stateRefused: "Refused", stateIdle: "No token yet",
}

// accountView is one account as the page shows it.
type accountView struct {
	Name, Flow, Email, Mailbox string
	State, StateLabel          string
	AppOnly                    bool
	Users                      []userView
	Tokens                     []tokenView // app-only accounts' own tokens
	Problem                    *catalog.Finding
	Error                      string // the account cannot be read (configuration, store)
	// What sign-in the account offers: "device" (a code), "browser" (this browser, interactive
	// accounts on the console's machine), "web" (auth_code_web, back to the console), "direct"
	// (password and refresh_token accounts, nobody to ask).
	SignIn []string
	CSRF   string // the session's, for the card's forms
}

type userView struct {
	Username, HomeAccountID string
	RefreshToken            bool
	Tokens                  []tokenView
}

type tokenView struct {
	Resource           string
	ExpiresOn, Fetched time.Time
	State              string // ok, expiring, expired
}

// accountViews reads every account's state from the store (no network).
func (c *Console) accountViews(ctx context.Context, r *http.Request) []accountView {
	var out []accountView
	for _, name := range c.opts.Config.Names() {
		out = append(out, c.accountView(ctx, r, name))
	}
	return out
}

func (c *Console) accountView(ctx context.Context, r *http.Request, name string) accountView {
	cfg := c.opts.Config.Accounts[name]
	v := accountView{Name: name, Flow: cfg.Flow, Email: cfg.Email, Mailbox: cfg.Mailbox, Problem: c.lastErrOf(name)}
	v.SignIn = c.signInMethods(cfg, r)
	acc, err := c.opts.Manager.Account(name)
	if err != nil {
		v.Error, v.State = err.Error(), stateRefused
		v.StateLabel = stateLabels[v.State]
		return v
	}
	v.AppOnly = acc.AppOnly()
	now := time.Now()
	if v.AppOnly {
		h, err := acc.Held(ctx)
		if err != nil {
			v.Error = err.Error()
		}
		v.Tokens = tokenViews(h.AccessTokens, now)
		v.State = stateIdle
		if len(v.Tokens) > 0 {
			v.State = worst(v.Tokens)
		}
	} else {
		users, err := acc.Users(ctx)
		if err != nil {
			v.Error = err.Error()
		}
		v.State = stateSignIn
		for _, u := range users {
			uv := userView{Username: u.Username, HomeAccountID: u.HomeAccountID}
			if h, err := acc.ForUser(u).Held(ctx); err == nil {
				uv.RefreshToken = h.RefreshToken
				uv.Tokens = tokenViews(h.AccessTokens, now)
			}
			switch {
			case uv.RefreshToken:
				v.State = stateOK // it refreshes its access tokens itself
			case len(uv.Tokens) > 0 && v.State != stateOK:
				v.State = worst(uv.Tokens)
			}
			v.Users = append(v.Users, uv)
		}
	}
	if v.Problem != nil || v.Error != "" {
		v.State = stateRefused
	}
	v.StateLabel = stateLabels[v.State]
	return v
}

func (c *Console) signInMethods(cfg *config.Account, r *http.Request) []string {
	switch cfg.Flow {
	case config.FlowDevice:
		return []string{"device"}
	case config.FlowInteractive:
		// The interactive flow's redirect comes back to a listener on this machine: only a browser
		// on it can finish there.
		if r != nil && loopbackHost(source(r)) && loopbackHost(hostOnly(r.Host)) {
			return []string{"device", "browser"}
		}
		return []string{"device"}
	case config.FlowAuthCodeWeb:
		return []string{"web"}
	case config.FlowPassword, config.FlowRefreshToken:
		return []string{"direct"}
	}
	return nil
}

func tokenViews(held []auth.HeldToken, now time.Time) []tokenView {
	var out []tokenView
	for _, t := range held {
		tv := tokenView{Resource: strings.TrimPrefix(t.Resource, "https://"), ExpiresOn: t.ExpiresOn, Fetched: t.ObtainedAt, State: stateOK}
		switch {
		case !t.ExpiresOn.After(now):
			tv.State = "expired"
		case t.ExpiresOn.Sub(now) < auth.Margin:
			tv.State = stateExpiring
		}
		out = append(out, tv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// worst is the state of an account whose only tokens are these (nothing refreshes them for it but
// the next use): expiring when one is expiring or expired.
func worst(ts []tokenView) string {
	for _, t := range ts {
		if t.State != stateOK {
			return stateExpiring
		}
	}
	return stateOK
}

// proxyView is the proxy part of the page.
type proxyView struct {
	proxy.Snapshot
	Refused uint64 // refused logins since start
}

func (c *Console) proxyView() *proxyView {
	if c.opts.Proxy == nil {
		return nil
	}
	s := c.opts.Proxy.Snapshot()
	v := &proxyView{Snapshot: s}
	for o, n := range s.Logins {
		if o != "ok" {
			v.Refused += n
		}
	}
	return v
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	accounts := c.accountViews(r.Context(), r)
	for i := range accounts {
		accounts[i].CSRF = s.csrf
	}
	c.render(w, http.StatusOK, "dashboard", s, map[string]any{
		"Accounts": accounts,
		"Proxy":    c.proxyView(),
	})
}

// card is one account's card alone, which the page's script swaps in after a sign-in.
func (c *Console) card(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if c.opts.Config.Accounts[name] == nil {
		http.NotFound(w, r)
		return
	}
	c.renderFragment(w, "card", s, c.accountView(r.Context(), r, name))
}

// signOut forgets one user's tokens (form field user: the home account id), or all of the account's.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	acc, err := c.account(name)
	if err != nil {
		c.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	home := r.PostFormValue("user")
	if home != "" {
		err = acc.RemoveUser(r.Context(), home)
	} else {
		err = acc.Logout(r.Context())
	}
	if err != nil {
		c.log.Error("console sign-out failed", "account", name, "source", source(r), "err", err)
		c.fail(w, r, http.StatusInternalServerError, "Cannot sign out of "+name+": "+err.Error())
		return
	}
	c.setLastErr(name, nil)
	c.log.Info("console sign-out", "account", name, "user_id", home, "source", source(r))
	http.Redirect(w, r, "/#account-"+name, http.StatusSeeOther)
}

var errNoAccount = errors.New("no such account")

// account is a configured account by name.
func (c *Console) account(name string) (*auth.Account, error) {
	if c.opts.Config.Accounts[name] == nil {
		return nil, errNoAccount
	}
	return c.opts.Manager.Account(name)
}

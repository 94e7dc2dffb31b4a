package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// pendingLogin is an authorization request waiting for its user to sign in on the page.
type pendingLogin struct {
	tenant      *world.Tenant // nil on /common and /organizations
	seg         string        // the tenant path segment as requested
	app         *world.App
	q           scopeRequest
	redirectURI string
	mode        string // query | fragment | form_post
	state       string
	challenge   string
	method      string
	nonce       string
	loginHint   string
	expires     time.Time
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		message(w, http.StatusBadRequest, "Sign in", "The request is malformed.", 9002313)
		return
	}
	f := r.Form
	t, _, e := s.tenantRef(r)
	if e != nil {
		message(w, http.StatusBadRequest, "Sign in", e.desc, e.aadsts)
		return
	}
	clientID := f.Get("client_id")
	if clientID == "" {
		message(w, http.StatusBadRequest, "Sign in", errMissingParam("client_id").desc, 900144)
		return
	}
	app, e := s.app(r, t, clientID)
	if e != nil {
		message(w, http.StatusBadRequest, "Sign in", e.desc, e.aadsts)
		return
	}
	redirect := f.Get("redirect_uri")
	if !redirectRegistered(app, redirect) {
		e := errRedirectMismatch(redirect, app.ClientID)
		message(w, http.StatusBadRequest, "Sign in", e.desc, e.aadsts)
		return
	}
	p := &pendingLogin{
		tenant: t, seg: r.PathValue("tenant"), app: app, redirectURI: redirect,
		mode: f.Get("response_mode"), state: f.Get("state"), challenge: f.Get("code_challenge"),
		method: f.Get("code_challenge_method"), nonce: f.Get("nonce"), loginHint: f.Get("login_hint"),
		expires: s.now().Add(time.Hour),
	}
	if p.mode == "" {
		p.mode = "query"
	}
	if p.mode != "query" && p.mode != "fragment" && p.mode != "form_post" {
		p.mode = "query"
		s.redirectError(w, r, p, "invalid_request", aad(400, "invalid_request", 900144, "", "The response_mode '%s' is not supported.", f.Get("response_mode")))
		return
	}
	if rt := f.Get("response_type"); rt != "code" {
		s.redirectError(w, r, p, "unsupported_response_type", aad(400, "unsupported_response_type", 70015, "", "The requested response type '%s' is not supported by the authorization server.", rt))
		return
	}
	if p.challenge != "" && p.method != "" && p.method != "S256" && p.method != "plain" {
		s.redirectError(w, r, p, "invalid_request", aad(400, "invalid_request", 501491, "", "Invalid size of Code_Challenge parameter."))
		return
	}
	if f.Get("scope") == "" {
		s.redirectError(w, r, p, "invalid_request", errMissingParam("scope"))
		return
	}
	q, e := parseScopes(f.Get("scope"))
	if e != nil {
		s.redirectError(w, r, p, e.code, e)
		return
	}
	p.q = q
	if s.autoUPN != "" {
		s.autoComplete(w, r, p)
		return
	}
	txn := randomToken("", 24)
	s.mu.Lock()
	s.pending[txn] = p
	s.mu.Unlock()
	s.signInPage(w, http.StatusOK, p, txn, p.loginHint, "")
}

func (s *Server) signInPage(w http.ResponseWriter, status int, p *pendingLogin, txn, username, errText string) {
	tenant := "your organisation"
	if p.tenant != nil {
		tenant = p.tenant.DisplayName
	}
	render(w, status, "signin", map[string]any{
		"Title": "Sign in to your account", "App": p.app.DisplayName, "Tenant": tenant, "Txn": txn,
		"Username": username, "Error": errText, "Scopes": append(append([]string{}, p.q.raw...), p.q.oidc...),
		"Action": "/" + p.seg + "/oauth2/v2.0/login",
	})
}

// loginSubmit takes the sign-in page's form: check the user, record consent, redirect with a code.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.parseFormPage(w, r) {
		return
	}
	f := r.PostForm
	txn := f.Get("txn")
	s.mu.Lock()
	p := s.pending[txn]
	s.mu.Unlock()
	if p == nil || s.now().After(p.expires) {
		message(w, http.StatusBadRequest, "Sign in", "This sign-in request has expired or is unknown. Start the sign-in again from your application.", 0)
		return
	}
	if f.Get("action") == "cancel" {
		s.dropPending(txn)
		s.redirectError(w, r, p, "access_denied", errDeclinedConsent())
		return
	}
	t, u, e := s.signInUser(p.seg, p.tenant, p.app, f.Get("username"))
	if e == nil && !passwordOK(u, f.Get("password")) {
		e = errBadPassword()
	}
	if e != nil {
		text := fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.desc)
		if e.aadsts == 50126 {
			text = "Your account or password is incorrect. (AADSTS50126)"
		}
		s.signInPage(w, http.StatusOK, p, txn, f.Get("username"), text)
		return
	}
	s.dropPending(txn)
	s.grantConsent(p.app, u, p.q)
	amr := []string{"pwd"}
	if u.MFARequired {
		amr = append(amr, "mfa") // the person at the browser completed the second factor
	}
	code := s.newCode(p, signIn{tenant: t, app: p.app, user: u, authTime: s.now(), amr: amr})
	s.redirectCode(w, r, p, code)
}

func (s *Server) parseFormPage(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		message(w, http.StatusBadRequest, "Sign in", "The request is malformed or too large.", 9002313)
		return false
	}
	return true
}

func (s *Server) dropPending(txn string) {
	s.mu.Lock()
	delete(s.pending, txn)
	s.mu.Unlock()
}

// autoComplete signs the --auto-approve user in without a page. For a loopback redirect URI the
// emulator also delivers the code itself, so fetching the authorization URL (curl, a test) is enough to
// finish an interactive login, as SPEC §6 promises.
func (s *Server) autoComplete(w http.ResponseWriter, r *http.Request, p *pendingLogin) {
	t, u, e := s.signInUser(p.seg, p.tenant, p.app, s.autoUPN)
	if e != nil {
		message(w, http.StatusBadRequest, "Sign in", fmt.Sprintf("The auto-approved user %s cannot sign in here: %s", s.autoUPN, e.desc), e.aadsts)
		return
	}
	s.grantConsent(p.app, u, p.q)
	code := s.newCode(p, signIn{tenant: t, app: p.app, user: u, authTime: s.now(), amr: []string{"pwd"}})
	if _, ok := isLoopbackRedirect(p.redirectURI); ok {
		if err := s.deliver(r.Context(), p, code); err == nil {
			message(w, http.StatusOK, "Signed in", fmt.Sprintf("Signed in as %s. The application has its code; you can close this window.", u.UPN), 0)
			return
		} else {
			// The url.Error's text holds the redirect URL, code included: log only its cause.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			s.log.Info("identity: could not deliver the code to the redirect URI; answering with the redirect instead", "err", err)
		}
	}
	s.redirectCode(w, r, p, code)
}

// deliver makes the redirect request a browser would make, from the server.
func (s *Server) deliver(ctx context.Context, p *pendingLogin, code string) error {
	v := url.Values{"code": {code}}
	if p.state != "" {
		v.Set("state", p.state)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var req *http.Request
	var err error
	if p.mode == "form_post" {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.redirectURI, strings.NewReader(v.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, appendParams(p.redirectURI, v, p.mode == "fragment"), nil)
	}
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("redirect URI answered %s", resp.Status)
	}
	return nil
}

func (s *Server) newCode(p *pendingLogin, si signIn) string {
	code := s.mint(randomToken("1.A", 64))
	s.mu.Lock()
	s.codes[code] = &authCode{
		signIn: si, q: p.q, redirectURI: p.redirectURI, challenge: p.challenge, method: p.method,
		nonce: p.nonce, expires: s.now().Add(s.world().Tokens.AuthorizationCode),
	}
	s.mu.Unlock()
	return code
}

func (s *Server) redirectCode(w http.ResponseWriter, r *http.Request, p *pendingLogin, code string) {
	v := url.Values{"code": {code}}
	if p.state != "" {
		v.Set("state", p.state)
	}
	s.redirect(w, r, p, v)
}

func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, p *pendingLogin, code string, e *aadError) {
	v := url.Values{"error": {code}, "error_description": {fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.desc)}}
	if p.state != "" {
		v.Set("state", p.state)
	}
	s.redirect(w, r, p, v)
}

// redirect answers per response_mode: a 302 for query and fragment, an auto-submitting form for
// form_post (what MSAL asks for; its loopback listener accepts only POST).
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, p *pendingLogin, v url.Values) {
	if p.mode == "form_post" {
		var fields []field
		for k, vs := range v {
			fields = append(fields, field{k, vs[0]})
		}
		render(w, http.StatusOK, "formpost", map[string]any{"Action": p.redirectURI, "Fields": fields})
		return
	}
	http.Redirect(w, r, appendParams(p.redirectURI, v, p.mode == "fragment"), http.StatusFound)
}

func appendParams(u string, v url.Values, fragment bool) string {
	if fragment {
		return u + "#" + v.Encode()
	}
	if strings.Contains(u, "?") {
		return u + "&" + v.Encode()
	}
	return u + "?" + v.Encode()
}

// redirectRegistered matches a redirect URI against the app's: exactly, or for http loopback URIs with
// any port (Entra ignores the port of loopback redirect URIs, RFC 8252 §7.3).
func redirectRegistered(app *world.App, uri string) bool {
	if uri == "" {
		return false
	}
	for _, reg := range app.RedirectURIs {
		if uri == reg {
			return true
		}
		rh, rok := isLoopbackRedirect(reg)
		uh, uok := isLoopbackRedirect(uri)
		if rok && uok && rh == uh {
			ru, err1 := url.Parse(reg)
			uu, err2 := url.Parse(uri)
			if err1 == nil && err2 == nil && strings.TrimSuffix(ru.Path, "/") == strings.TrimSuffix(uu.Path, "/") {
				return true
			}
		}
	}
	return false
}

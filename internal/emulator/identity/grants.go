package identity

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// signIn is a user's sign-in: who, where, how (amr) and when it started the grant chain.
type signIn struct {
	tenant   *world.Tenant
	app      *world.App
	user     *world.User
	authTime time.Time
	amr      []string
}

type authCode struct {
	signIn
	q                 scopeRequest
	redirectURI       string
	challenge, method string
	nonce             string
	expires           time.Time
	used              bool
}

type refreshGrant struct {
	signIn
	lastUsed time.Time
	redeemed bool
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	f := r.PostForm
	grant := f.Get("grant_type")
	if grant == "" {
		s.writeAAD(w, r, errMissingParam("grant_type"))
		return
	}
	t, multi, e := s.tenantRef(r)
	if e != nil {
		s.writeAAD(w, r, e)
		return
	}
	clientID := f.Get("client_id")
	if u, _, ok := r.BasicAuth(); ok && clientID == "" {
		clientID = u
	}
	if clientID == "" {
		s.writeAAD(w, r, errMissingParam("client_id"))
		return
	}
	var resp map[string]any
	var user string // the user of a delegated grant, once known
	switch grant {
	case "client_credentials":
		resp, e = s.grantClientCredentials(r, t, multi, clientID)
	case "password":
		resp, e = s.grantPassword(r, t, clientID)
		user = r.PostForm.Get("username")
	case "authorization_code":
		resp, user, e = s.grantAuthCode(r, t, clientID)
	case "refresh_token":
		resp, user, e = s.grantRefresh(r, t, clientID)
	case "device_code", "urn:ietf:params:oauth:grant-type:device_code":
		resp, user, e = s.grantDevice(r, t, clientID)
	default:
		e = errUnsupportedGrant(grant)
	}
	if e != nil {
		s.log.Debug("identity: token refused", "grant", grant, "client_id", clientID, "aadsts", e.aadsts)
		s.tokenEvent(events.TokenRefused, r, grant, clientID, user, e)
		s.writeAAD(w, r, e)
		return
	}
	s.log.Debug("identity: token issued", "grant", grant, "client_id", clientID)
	s.tokenEvent(events.TokenIssued, r, grant, clientID, user, nil)
	writeJSON(w, http.StatusOK, resp)
}

// tokenEvent records a token request's outcome in the event log: the app by name when the World knows
// it, the signed-in user of a delegated grant (the one the request names, or the one its code or
// refresh token was issued to), and for a refusal its AADSTS code and description (which never quote a
// secret).
func (s *Server) tokenEvent(kind events.Kind, r *http.Request, grant, clientID, user string, e *aadError) {
	ev := events.Event{Kind: kind, Protocol: "identity", Grant: grant, ClientID: clientID, User: user}
	if a := s.world().App(clientID); a != nil && strings.EqualFold(a.ClientID, clientID) {
		ev.App = a.Name
	}
	if e != nil {
		ev.Code = fmt.Sprintf("AADSTS%d", e.aadsts)
		ev.Reason = e.desc
	}
	s.events.Add(ev)
}

// app resolves the client of a request. t is nil on /common and /organizations, where the app must be
// multi-tenant (Entra: AADSTS50194) and the user's home tenant is used.
func (s *Server) app(r *http.Request, t *world.Tenant, clientID string) (*world.App, *aadError) {
	if t == nil {
		a := s.world().App(clientID)
		if a == nil || !strings.EqualFold(a.ClientID, clientID) {
			return nil, errUnknownApp(clientID, r.PathValue("tenant"))
		}
		if !a.MultiTenant {
			return nil, errNotMultiTenant(a.ClientID, a.DisplayName)
		}
		return a, nil
	}
	a := s.world().AppIn(t, clientID)
	if a == nil {
		return nil, errUnknownApp(clientID, r.PathValue("tenant"))
	}
	if !hasEnterpriseApp(t, a) {
		return nil, errNoEnterpriseApp(a.ClientID, t.ID)
	}
	return a, nil
}

// hasEnterpriseApp reports whether an app has its service principal in tenant t, which Entra requires
// of every app it issues a token to.
func hasEnterpriseApp(t *world.Tenant, a *world.App) bool {
	return !a.NoEnterpriseApp && t.EnterpriseApps[a.ClientID] != ""
}

// current re-resolves a sign-in recorded by an earlier request (an authorization code, a refresh token,
// an approved device code) in the World as it is now, so that what changed at runtime applies to
// grants already handed out: a deleted user gets AADSTS50034, a deleted app AADSTS700016 (and a removed
// secret AADSTS7000215 from the client check, which reads the app returned here). Users are matched by
// object id: one deleted and created again is another user, as in Entra.
func (s *Server) current(r *http.Request, si signIn) (signIn, *aadError) {
	w := s.world()
	t := w.Tenant(si.tenant.ID)
	if t == nil {
		return si, errUnknownTenant("invalid_request", si.tenant.ID)
	}
	a := w.AppIn(t, si.app.ClientID)
	if a == nil {
		return si, errUnknownApp(si.app.ClientID, r.PathValue("tenant"))
	}
	if !hasEnterpriseApp(t, a) {
		return si, errNoEnterpriseApp(a.ClientID, t.ID)
	}
	si.tenant, si.app = t, a
	if si.user == nil {
		return si, nil
	}
	for _, u := range t.Users {
		if u.ObjectID == si.user.ObjectID {
			si.user = u
			return si, nil
		}
	}
	return si, errUserUnknown(t.Name)
}

func (s *Server) grantClientCredentials(r *http.Request, t *world.Tenant, multi bool, clientID string) (map[string]any, *aadError) {
	if multi {
		return nil, errNoTenantInfo()
	}
	app, e := s.app(r, t, clientID)
	if e != nil {
		return nil, e
	}
	acr, e := s.authenticateClient(r, t, app, false)
	if e != nil {
		return nil, e
	}
	if acr == "0" { // a public client without a credential: client credentials need one (RFC 6749 §4.4)
		return nil, errNoCredential()
	}
	scope := r.PostForm.Get("scope")
	if scope == "" {
		return nil, errMissingParam("scope")
	}
	var res *world.Resource
	var aud string
	for _, sc := range strings.Fields(scope) {
		if oidcScopes[strings.ToLower(sc)] {
			continue // MSAL adds openid offline_access profile even here; Entra ignores them
		}
		if !strings.HasSuffix(sc, "/.default") {
			return nil, errNeedDotDefault(sc)
		}
		rr, a := world.LookupResource(strings.TrimSuffix(sc, "/.default"))
		if rr == nil {
			return nil, errUnknownResource(strings.TrimSuffix(sc, "/.default"), t.Name)
		}
		if res != nil && res != rr {
			return nil, errTwoResources(scope)
		}
		res, aud = rr, a
	}
	if res == nil {
		return nil, errNeedDotDefault(scope)
	}
	var roles []string
	if app.AdminConsented {
		for _, p := range app.Application {
			if pr, _, name := world.SplitPermission(p); pr == res {
				roles = append(roles, name)
			}
		}
	}
	now := s.now()
	return map[string]any{
		"token_type":     "Bearer",
		"expires_in":     int(s.world().Tokens.AccessToken.Seconds()),
		"ext_expires_in": int(s.world().Tokens.AccessToken.Seconds()),
		"access_token":   s.appAccessToken(t, app, aud, roles, acr, now),
	}, nil
}

// signInUser checks that upn may sign in to app through tenant t (nil: the user's home tenant).
func (s *Server) signInUser(seg string, t *world.Tenant, app *world.App, upn string) (*world.Tenant, *world.User, *aadError) {
	home := s.world().TenantForUPN(upn)
	if t == nil {
		if home == nil {
			return nil, nil, errUserUnknown(seg)
		}
		if s.world().AppIn(home, app.ClientID) == nil {
			return nil, nil, errUnknownApp(app.ClientID, home.Name)
		}
		t = home
	}
	// By name, not pointer: t may come from an earlier load of the World than home, when the control
	// API changed it in between (TestControlWhileLogging saw AADSTS50020 for alice under load).
	if home == nil || home.Name != t.Name {
		if home != nil {
			return nil, nil, errUserNotInTenant(upn, home.ID, t.DisplayName, app.ClientID, app.DisplayName)
		}
		return nil, nil, errUserUnknown(t.Name)
	}
	u := t.User(upn)
	if u == nil {
		return nil, nil, errUserUnknown(t.Name)
	}
	return t, u, nil
}

func passwordOK(u *world.User, pw string) bool {
	if u.Password == "" {
		return false // a user without a password cannot sign in with one
	}
	return subtle.ConstantTimeCompare([]byte(u.Password), []byte(pw)) == 1
}

func (s *Server) grantPassword(r *http.Request, t *world.Tenant, clientID string) (map[string]any, *aadError) {
	f := r.PostForm
	for _, p := range []string{"username", "password", "scope"} {
		if f.Get(p) == "" {
			return nil, errMissingParam(p)
		}
	}
	app, e := s.app(r, t, clientID)
	if e != nil {
		return nil, e
	}
	acr, e := s.authenticateClient(r, t, app, true)
	if e != nil {
		return nil, e
	}
	q, e := parseScopes(f.Get("scope"))
	if e != nil {
		return nil, e
	}
	t, u, e := s.signInUser(r.PathValue("tenant"), t, app, f.Get("username"))
	if e != nil {
		return nil, e
	}
	if !passwordOK(u, f.Get("password")) {
		return nil, errBadPassword()
	}
	if u.MFARequired {
		return nil, errMFARequired(q.resource.AppID)
	}
	si := signIn{tenant: t, app: app, user: u, authTime: s.now(), amr: []string{"pwd"}}
	return s.issueUser(r, si, q, acr, "")
}

func (s *Server) grantAuthCode(r *http.Request, t *world.Tenant, clientID string) (map[string]any, string, *aadError) {
	f := r.PostForm
	for _, p := range []string{"code", "redirect_uri"} {
		if f.Get(p) == "" {
			return nil, "", errMissingParam(p)
		}
	}
	s.mu.Lock()
	c := s.codes[f.Get("code")]
	var used bool
	if c != nil {
		used = c.used
		c.used = true
	}
	s.mu.Unlock()
	if c == nil || !strings.EqualFold(c.app.ClientID, clientID) || (t != nil && !sameTenant(t, c.tenant)) {
		return nil, "", errMalformed()
	}
	upn := c.user.UPN
	if used {
		return nil, upn, errCodeRedeemed()
	}
	if s.now().After(c.expires) {
		return nil, upn, errCodeExpired()
	}
	if f.Get("redirect_uri") != c.redirectURI {
		return nil, upn, errReplyMismatch(f.Get("redirect_uri"), c.redirectURI)
	}
	if c.challenge != "" && !pkceOK(c.challenge, c.method, f.Get("code_verifier")) {
		return nil, upn, errVerifierMismatch()
	}
	si, e := s.current(r, c.signIn)
	if e != nil {
		return nil, upn, e
	}
	acr, e := s.authenticateClient(r, si.tenant, si.app, false)
	if e != nil {
		return nil, upn, e
	}
	q := c.q
	if sc := f.Get("scope"); sc != "" {
		// The token request may name the scopes again (MSAL does); they must be the ones consented.
		if q2, e := parseScopes(sc); e == nil && q2.resource == q.resource {
			q = q2
		}
	}
	resp, e := s.issueUser(r, si, q, acr, c.nonce)
	return resp, upn, e
}

// sameTenant compares tenants by id: a grant recorded before a runtime change holds the tenant of an
// older World.
func sameTenant(a, b *world.Tenant) bool { return a != nil && b != nil && a.ID == b.ID }

// pkceOK verifies an RFC 7636 code_verifier.
func pkceOK(challenge, method, verifier string) bool {
	if verifier == "" {
		return false
	}
	switch method {
	case "S256":
		sum := sha256.Sum256([]byte(verifier))
		return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
	case "plain", "":
		return subtle.ConstantTimeCompare([]byte(verifier), []byte(challenge)) == 1
	}
	return false
}

func (s *Server) grantRefresh(r *http.Request, t *world.Tenant, clientID string) (map[string]any, string, *aadError) {
	f := r.PostForm
	rt := f.Get("refresh_token")
	if rt == "" {
		return nil, "", errMissingParam("refresh_token")
	}
	if f.Get("scope") == "" {
		return nil, "", errMissingParam("scope")
	}
	now := s.now()
	s.mu.Lock()
	g := s.refresh[rt]
	var redeemed bool
	if g != nil {
		// Check and mark in one step, so two simultaneous uses of a strictly rotated token cannot both pass.
		redeemed, g.redeemed = g.redeemed, true
	}
	s.mu.Unlock()
	if g == nil || !strings.EqualFold(g.app.ClientID, clientID) || (t != nil && !sameTenant(t, g.tenant)) {
		return nil, "", errMalformed()
	}
	upn := g.user.UPN
	if redeemed && s.world().Tokens.RevokeRotatedRefreshTokens {
		return nil, upn, aad(400, "invalid_grant", 70000, "", "Provided grant is invalid or malformed. The refresh token was already redeemed and rotated.")
	}
	si, e := s.current(r, g.signIn)
	if e != nil {
		return nil, upn, e
	}
	if !si.user.RevokedBefore.IsZero() && si.authTime.Before(si.user.RevokedBefore) {
		return nil, upn, errRefreshRevoked(si.authTime, si.user.RevokedBefore)
	}
	if now.Sub(g.lastUsed) > s.world().Tokens.RefreshTokenInactivity {
		return nil, upn, errRefreshExpired(g.authTime, s.world().Tokens.RefreshTokenInactivity)
	}
	acr, e := s.authenticateClient(r, si.tenant, si.app, si.app.HasPublicFlows())
	if e != nil {
		return nil, upn, e
	}
	q, e := parseScopes(f.Get("scope"))
	if e != nil {
		return nil, upn, e
	}
	resp, e := s.issueUser(r, si, q, acr, "")
	return resp, upn, e
}

// consentedScopes returns the permissions of q the user has consented to for the app (an admin's
// consent for the app's registered permissions, or the user's own), and whether all of q is covered.
func (s *Server) consentedScopes(app *world.App, u *world.User, q scopeRequest) ([]string, bool) {
	granted := map[string]bool{}
	if app.Consented {
		for _, p := range app.Delegated {
			granted[strings.ToLower(p)] = true
		}
	}
	s.mu.Lock()
	for p := range s.consents[u.ObjectID+"|"+app.ClientID] {
		granted[p] = true
	}
	s.mu.Unlock()
	if q.isDefault() {
		// .default in a delegated flow means the app's registered permissions for that resource.
		var scp []string
		for _, p := range app.Delegated {
			if r, _, name := world.SplitPermission(p); r == q.resource && granted[strings.ToLower(p)] {
				scp = append(scp, name)
			}
		}
		return scp, len(scp) > 0
	}
	for _, p := range q.perms {
		if !granted[strings.ToLower(q.resource.URI+"/"+p)] {
			return nil, false
		}
	}
	return q.perms, true
}

// grantConsent records a user's consent to what q asks for.
func (s *Server) grantConsent(app *world.App, u *world.User, q scopeRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := u.ObjectID + "|" + app.ClientID
	if s.consents[key] == nil {
		s.consents[key] = map[string]bool{}
	}
	if q.isDefault() {
		for _, p := range app.Delegated {
			if r, _, _ := world.SplitPermission(p); r == q.resource {
				s.consents[key][strings.ToLower(p)] = true
			}
		}
		return
	}
	for _, p := range q.perms {
		s.consents[key][strings.ToLower(q.resource.URI+"/"+p)] = true
	}
}

// issueUser answers a user flow: access token for q's resource, a rotated refresh token when
// offline_access was asked for, an ID token for openid, client_info when the client asked (MSAL does).
func (s *Server) issueUser(r *http.Request, si signIn, q scopeRequest, acr, nonce string) (map[string]any, *aadError) {
	if !hasEnterpriseApp(si.tenant, si.app) { // on /common the tenant is known only now
		return nil, errNoEnterpriseApp(si.app.ClientID, si.tenant.ID)
	}
	scp, ok := s.consentedScopes(si.app, si.user, q)
	if !ok {
		return nil, errNoConsent(si.app.ClientID, si.app.DisplayName)
	}
	now := s.now()
	granted := append(append([]string{}, q.raw...), q.oidc...)
	resp := map[string]any{
		"token_type":     "Bearer",
		"scope":          strings.Join(granted, " "),
		"expires_in":     int(s.world().Tokens.AccessToken.Seconds()),
		"ext_expires_in": int(s.world().Tokens.AccessToken.Seconds()),
		"access_token":   s.userAccessToken(si.tenant, si.app, si.user, q, scp, acr, now, si.amr),
	}
	if q.has("offline_access") {
		rt := s.mint(randomToken("0.A", 96))
		s.mu.Lock()
		s.refresh[rt] = &refreshGrant{signIn: si, lastUsed: now}
		s.mu.Unlock()
		resp["refresh_token"] = rt
	}
	if q.has("openid") {
		resp["id_token"] = s.idToken(baseURL(r), si.tenant, si.app, si.user, nonce, now)
	}
	if r.PostForm.Get("client_info") == "1" {
		resp["client_info"] = clientInfo(si.user)
	}
	return resp, nil
}

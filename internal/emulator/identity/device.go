package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

type deviceState int

const (
	devicePending deviceState = iota
	deviceApproved
	deviceDeclined
)

type deviceGrant struct {
	tenant     *world.Tenant // nil on /common and /organizations until a user signs in
	seg        string        // the tenant path segment as requested
	app        *world.App
	q          scopeRequest
	userCode   string
	deviceCode string
	expires    time.Time
	lastPoll   time.Time
	state      deviceState
	signIn     signIn
}

// userCodeAlphabet leaves out characters people confuse (0/O, 1/I/L).
const userCodeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

func newUserCode() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)]
	}
	return string(b)
}

func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	t, _, e := s.tenantRef(r)
	if e != nil {
		s.writeAAD(w, r, e)
		return
	}
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		s.writeAAD(w, r, errMissingParam("client_id"))
		return
	}
	app, e := s.app(r, t, clientID)
	if e != nil {
		s.writeAAD(w, r, e)
		return
	}
	if r.PostForm.Get("scope") == "" {
		s.writeAAD(w, r, errMissingParam("scope"))
		return
	}
	q, e := parseScopes(r.PostForm.Get("scope"))
	if e != nil {
		s.writeAAD(w, r, e)
		return
	}
	g := &deviceGrant{
		tenant: t, seg: r.PathValue("tenant"), app: app, q: q, userCode: newUserCode(), deviceCode: s.mint(randomToken("DAQABAAEAAA", 96)),
		expires: s.now().Add(s.world().Tokens.DeviceCode),
	}
	s.mu.Lock()
	s.devices[g.deviceCode] = g
	s.userCode[g.userCode] = g
	s.mu.Unlock()
	if s.autoUPN != "" {
		if err := s.approveDevice(g, s.autoUPN, "", false); err != nil {
			s.log.Warn("identity: auto-approve could not sign the user in for a device code", "user", s.autoUPN, "err", err)
		}
	}
	verify := baseURL(r) + "/devicelogin"
	writeJSON(w, http.StatusOK, map[string]any{
		"user_code":        g.userCode,
		"device_code":      g.deviceCode,
		"verification_uri": verify,
		"expires_in":       int(s.world().Tokens.DeviceCode.Seconds()),
		"interval":         int(s.world().Tokens.DevicePollInterval.Seconds()),
		"message":          fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", verify, g.userCode),
	})
}

// approveDevice signs a user in for a pending device code and records consent.
func (s *Server) approveDevice(g *deviceGrant, upn, password string, checkPassword bool) *aadError {
	t, u, e := s.signInUser(g.seg, g.tenant, g.app, upn)
	if e != nil {
		return e
	}
	if checkPassword && !passwordOK(u, password) {
		return errBadPassword()
	}
	s.grantConsent(g.app, u, g.q)
	amr := []string{"pwd"}
	if u.MFARequired {
		amr = append(amr, "mfa")
	}
	s.mu.Lock()
	g.state = deviceApproved
	g.signIn = signIn{tenant: t, app: g.app, user: u, authTime: s.now(), amr: amr}
	s.mu.Unlock()
	return nil
}

func (e *aadError) Error() string { return fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.desc) }

// ErrUnknownUserCode is returned by ApproveDevice and DeclineDevice for a code that was never issued,
// has been used, or has expired.
var ErrUnknownUserCode = errors.New("identity: no pending device code with that user code")

// ApproveDevice completes a device-code sign-in for upn as the verification page would (tests use it
// to stand in for a person).
func (s *Server) ApproveDevice(userCode, upn string) error {
	g := s.lookupUserCode(userCode)
	if g == nil {
		return ErrUnknownUserCode
	}
	if e := s.approveDevice(g, upn, "", false); e != nil {
		return e
	}
	return nil
}

// DeclineDevice makes the next poll of a device code get authorization_declined.
func (s *Server) DeclineDevice(userCode string) error {
	g := s.lookupUserCode(userCode)
	if g == nil {
		return ErrUnknownUserCode
	}
	s.mu.Lock()
	g.state = deviceDeclined
	s.mu.Unlock()
	return nil
}

func (s *Server) lookupUserCode(code string) *deviceGrant {
	code = strings.ToUpper(strings.TrimSpace(code))
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.userCode[code]
	if g == nil || s.now().After(g.expires) || g.state != devicePending {
		return nil
	}
	return g
}

// deviceLogin is the verification page: enter the code, sign in, accept or cancel.
func (s *Server) deviceLogin(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"Title": "Enter code"}
	if r.Method != http.MethodPost {
		data["Code"] = r.URL.Query().Get("otc")
		render(w, http.StatusOK, "device", data)
		return
	}
	if !s.parseFormPage(w, r) {
		return
	}
	f := r.PostForm
	data["Code"], data["Username"] = f.Get("otc"), f.Get("username")
	g := s.lookupUserCode(f.Get("otc"))
	if g == nil {
		data["Error"] = "That code didn't work. Check the code and try again (it may have expired)."
		render(w, http.StatusOK, "device", data)
		return
	}
	if f.Get("action") == "cancel" {
		_ = s.DeclineDevice(g.userCode)
		message(w, http.StatusOK, "Sign-in cancelled", fmt.Sprintf("You have declined to sign in to %s on your device.", g.app.DisplayName), 0)
		return
	}
	if e := s.approveDevice(g, f.Get("username"), f.Get("password"), true); e != nil {
		data["Error"] = fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.desc)
		if e.aadsts == 50126 {
			data["Error"] = "Your account or password is incorrect. (AADSTS50126)"
		}
		render(w, http.StatusOK, "device", data)
		return
	}
	message(w, http.StatusOK, "Signed in", fmt.Sprintf("You have signed in to %s on your device. You may now close this window.", g.app.DisplayName), 0)
}

func (s *Server) grantDevice(r *http.Request, t *world.Tenant, clientID string) (map[string]any, string, *aadError) {
	dc := r.PostForm.Get("device_code")
	if dc == "" {
		return nil, "", errMissingParam("device_code")
	}
	now := s.now()
	s.mu.Lock()
	g := s.devices[dc]
	if g == nil || !strings.EqualFold(g.app.ClientID, clientID) || (t != nil && g.tenant != nil && !sameTenant(t, g.tenant)) {
		s.mu.Unlock()
		return nil, "", errBadDeviceCode()
	}
	tooFast := s.world().Tokens.SlowDownBelow > 0 && !g.lastPoll.IsZero() && now.Sub(g.lastPoll) < s.world().Tokens.SlowDownBelow
	g.lastPoll = now
	state, si := g.state, g.signIn
	expired := now.After(g.expires)
	s.mu.Unlock()
	var upn string
	if state == deviceApproved {
		upn = si.user.UPN
		var e *aadError
		if si, e = s.current(r, si); e != nil {
			return nil, upn, e
		}
	} else {
		// Nobody has signed in yet: the app alone is checked against the World as it is now.
		a, e := s.app(r, t, clientID)
		if e != nil {
			return nil, "", e
		}
		si.app = a
	}
	acr, e := s.authenticateClient(r, t, si.app, true)
	if e != nil {
		return nil, upn, e
	}
	switch {
	case expired:
		return nil, upn, errDeviceExpired()
	case tooFast:
		return nil, upn, errSlowDown()
	case state == deviceDeclined:
		return nil, upn, errDeviceDeclined()
	case state == devicePending:
		return nil, upn, errPending()
	}
	resp, e := s.issueUser(r, si, g.q, acr, "")
	if e == nil {
		s.mu.Lock()
		delete(s.devices, dc)
		delete(s.userCode, g.userCode)
		s.mu.Unlock()
	}
	return resp, upn, e
}

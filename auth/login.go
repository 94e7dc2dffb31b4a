package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"

	"github.com/mailoauth/mailoauth/config"
)

// LoginOptions tune Login.
type LoginOptions struct {
	// Device uses the device-code flow for an interactive account.
	Device bool
	// DeviceCode receives the code of a device-code sign-in, to show to the user, before Login
	// waits for them to enter it. Without it the code's Message goes to Options.Prompt; with
	// neither, a device-code Login fails at once rather than wait for a code nobody saw.
	DeviceCode func(DeviceCode)
	// NoBrowser writes the sign-in URL to Options.Prompt instead of opening a browser, then waits.
	NoBrowser bool
	// OpenURL opens the sign-in URL; nil means the system browser (MSAL's opener).
	OpenURL func(url string) error
}

// DeviceCode is what a device-code sign-in shows the user: go to VerificationURI on any device
// and enter UserCode before ExpiresOn. Message says all that in the identity platform's words.
type DeviceCode struct {
	UserCode        string
	VerificationURI string
	ExpiresOn       time.Time
	Message         string
}

// SignIn is the result of a sign-in: who signed in, and their first token.
type SignIn struct {
	// User is who signed in; zero for an app-only account (client credentials).
	User User
	// Token is for the account's first resource: Exchange, unless its protocols are Graph only.
	Token *token.Token
}

// Login signs a user in with the account's flow and stores their tokens under their own entry;
// the users signed in before keep theirs. It is the only part of the package that talks to a
// person (through LoginOptions.DeviceCode, OpenURL or Options.Prompt). A client-credentials account
// gets the application's token. A web app (flow auth_code_web) signs users in with AuthCodeURL and
// ExchangeCode instead.
func (a *Account) Login(ctx context.Context, o LoginOptions) (*SignIn, error) {
	r := a.loginResource()
	scopes := a.Scopes(r)
	var si *SignIn
	var err error
	switch a.cfg.Flow {
	case config.FlowInteractive, config.FlowDevice:
		if a.cfg.Flow == config.FlowDevice || o.Device {
			si, err = a.deviceCode(ctx, r, scopes, o)
		} else {
			si, err = a.interactive(ctx, r, scopes, o)
		}
	case config.FlowClientCredentials:
		a.forget("")
		var t *token.Token
		if t, err = a.acquire(ctx, slot{"", r}, false); err == nil {
			a.remember(slot{"", r}, t)
			si = &SignIn{Token: t}
		}
	case config.FlowPassword:
		si, err = a.passwordSignIn(ctx, r)
	case config.FlowRefreshToken:
		si, err = a.importRefreshToken(ctx, r, scopes)
	case config.FlowAuthCodeWeb:
		return nil, cfgErr(a.cfg, "flow auth_code_web signs users in through your web application: use Account.AuthCodeURL and ExchangeCode from its callback")
	default:
		return nil, cfgErr(a.cfg, "unknown flow %q", a.cfg.Flow)
	}
	if err != nil {
		return nil, err
	}
	return si, nil
}

// signedIn records a user's sign-in: what the memory held of them goes, their new token stays.
func (a *Account) signedIn(r token.Resource, res public.AuthResult) (*SignIn, error) {
	u := newUser(res.Account.HomeAccountID, res.Account.PreferredUsername)
	if u.HomeAccountID == "" {
		return nil, &Error{Account: a.cfg.Name, Op: "sign-in", Err: errors.New("the identity platform did not say who signed in (no client_info)")}
	}
	t := &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}
	a.forget(u.HomeAccountID)
	a.remember(slot{u.HomeAccountID, r}, t)
	if want := firstNonEmpty(a.cfg.LoginHint, a.cfg.Email); want != "" && strings.EqualFold(u.Username, want) {
		a.forgetOwn("")
		_, gen := a.ownCached()
		a.setOwn(u, gen) // the user the account names: its one user, whoever else is signed in
	} else {
		a.forgetOwn("") // looked up again: it may be this one now, or nobody among several
	}
	return &SignIn{User: u, Token: t}, nil
}

func (a *Account) deviceCode(ctx context.Context, r token.Resource, scopes []string, o LoginOptions) (*SignIn, error) {
	show := o.DeviceCode
	if show == nil && a.opts.Prompt != nil {
		show = func(dc DeviceCode) { fmt.Fprintln(a.opts.Prompt, dc.Message) }
	}
	if show == nil {
		return nil, cfgErr(a.cfg, "a device-code sign-in needs LoginOptions.DeviceCode or Options.Prompt to show the user the code: set one")
	}
	dc, err := a.signIn.pub.AcquireTokenByDeviceCode(ctx, scopes)
	if err != nil {
		return nil, classify(a.cfg.Name, "device code", err)
	}
	show(DeviceCode{UserCode: dc.Result.UserCode, VerificationURI: dc.Result.VerificationURL, ExpiresOn: dc.Result.ExpiresOn, Message: dc.Result.Message})
	res, err := dc.AuthenticationResult(ctx) // polls until approved, refused, expired or ctx ends
	if err != nil {
		return nil, classify(a.cfg.Name, "device code", err)
	}
	return a.signedIn(r, res)
}

// interactive runs the authorization code flow with PKCE and state through MSAL's loopback listener
// (it accepts one redirect and closes).
func (a *Account) interactive(ctx context.Context, r token.Resource, scopes []string, o LoginOptions) (*SignIn, error) {
	redirect := a.cfg.RedirectURI
	if redirect == "" {
		redirect = "http://localhost"
	}
	opts := []public.AcquireInteractiveOption{public.WithRedirectURI(redirect)}
	if hint := firstNonEmpty(a.cfg.LoginHint, a.cfg.Email); hint != "" {
		opts = append(opts, public.WithLoginHint(hint))
	}
	switch {
	case o.OpenURL != nil:
		opts = append(opts, public.WithOpenURL(o.OpenURL))
	case o.NoBrowser:
		if a.opts.Prompt == nil {
			return nil, cfgErr(a.cfg, "LoginOptions.NoBrowser writes the sign-in URL to Options.Prompt, which is not set: set it, or use LoginOptions.OpenURL")
		}
		opts = append(opts, public.WithOpenURL(func(u string) error {
			fmt.Fprintf(a.opts.Prompt, "To sign in, open this URL in a browser:\n%s\n", u)
			return nil
		}))
	}
	res, err := a.signIn.pub.AcquireTokenInteractive(ctx, scopes, opts...)
	if err != nil {
		return nil, classify(a.cfg.Name, "interactive sign-in", err)
	}
	return a.signedIn(r, res)
}

// passwordSignIn is ROPC: legacy, refused by MFA and by many tenants, kept for migrations.
func (a *Account) passwordSignIn(ctx context.Context, r token.Resource) (*SignIn, error) {
	pw, err := passwordOf(a.cfg)
	if err != nil {
		return nil, err
	}
	a.opts.Log.Warn("account uses the password (ROPC) flow: it fails for users with MFA and in tenants that block it; prefer device or interactive", "account", a.cfg.Name)
	//lint:ignore SA1019 ROPC is deprecated, and kept for migrations with the warning above.
	res, err := a.signIn.pub.AcquireTokenByUsernamePassword(ctx, a.Scopes(r), a.cfg.Email, pw)
	if err != nil {
		return nil, classify(a.cfg.Name, "password sign-in", err)
	}
	return a.signedIn(r, res)
}

// importMarker stands in for an authorization code: the import transport recognises it.
const importMarker = "mailoauth-refresh-token-import"

type importKey struct{}

// importRefreshToken redeems a refresh token obtained elsewhere, once, and lets MSAL cache the result,
// after which it is refreshed and rotated like any other. MSAL has no API for this, so the
// redemption goes through MSAL's authorization-code call, whose request the account's transport
// rewrites into a refresh_token grant: MSAL then parses and caches the answer exactly as its own.
func (a *Account) importRefreshToken(ctx context.Context, r token.Resource, scopes []string) (*SignIn, error) {
	rt, err := refreshTokenOf(a.cfg)
	if err != nil {
		return nil, err
	}
	if rt == "" {
		return nil, cfgErr(a.cfg, "flow refresh_token needs the refresh token to import: set RefreshToken, RefreshTokenEnv or RefreshTokenFile")
	}
	ctx = context.WithValue(ctx, importKey{}, rt)
	redirect := firstNonEmpty(a.cfg.RedirectURI, "http://localhost")
	var res public.AuthResult
	if c := a.signIn; c.conf != nil {
		res, err = c.conf.AcquireTokenByAuthCode(ctx, importMarker, redirect, scopes)
	} else {
		res, err = c.pub.AcquireTokenByAuthCode(ctx, importMarker, redirect, scopes)
	}
	if err != nil {
		return nil, classify(a.cfg.Name, "refresh token import", err)
	}
	return a.signedIn(r, res)
}

// importTransport rewrites the one authorization-code request that carries importMarker into a
// refresh_token grant with the refresh token from the request's context. Every other request passes
// through untouched.
type importTransport struct{ base http.RoundTripper }

func (t *importTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt, _ := req.Context().Value(importKey{}).(string)
	if rt == "" || req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/token") || req.Body == nil {
		return t.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("grant_type") != "authorization_code" || form.Get("code") != importMarker {
		req.Body = io.NopCloser(bytes.NewReader(body))
		return t.base.RoundTrip(req)
	}
	form.Del("code")
	form.Del("redirect_uri")
	form.Del("code_verifier")
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", rt)
	enc := form.Encode()
	r2 := req.Clone(req.Context())
	r2.Body = io.NopCloser(strings.NewReader(enc))
	r2.ContentLength = int64(len(enc))
	r2.Header.Set("Content-Length", strconv.Itoa(len(enc)))
	return t.base.RoundTrip(r2)
}

// AuthCodeOptions tune one web sign-in (flow auth_code_web). Give ExchangeCode the same options
// as AuthCodeURL: the redirect URI is sent again when the code is redeemed.
type AuthCodeOptions struct {
	// LoginHint pre-fills the sign-in page with a username; "" uses the account's LoginHint, if any.
	LoginHint string
	// Prompt is the OpenID Connect prompt: "login" (ask for credentials again), "select_account",
	// "consent", "none" or "create"; "" lets the identity platform choose.
	Prompt string
	// RedirectURI is where the browser returns with the code; "" is the account's RedirectURI. It
	// must be registered with the app.
	RedirectURI string
	// Scopes are consented to in addition to the account's (incremental consent), e.g.
	// "https://outlook.office.com/SMTP.Send"; the code is redeemed for the account's own scopes.
	Scopes []string
}

var prompts = []string{"login", "select_account", "consent", "none", "create"}

// AuthCodeURL starts a web app's sign-in (flow auth_code_web): the URL to send the user's browser to,
// with state and a PKCE challenge. Keep the verifier (server-side, with state) for ExchangeCode.
func (a *Account) AuthCodeURL(ctx context.Context, state string, o AuthCodeOptions) (authURL, verifier string, err error) {
	if a.cfg.Flow != config.FlowAuthCodeWeb {
		return "", "", cfgErr(a.cfg, "AuthCodeURL is for flow auth_code_web, not %s", a.cfg.Flow)
	}
	if o.Prompt != "" && !slices.Contains(prompts, o.Prompt) {
		return "", "", cfgErr(a.cfg, "AuthCodeOptions.Prompt %q is not one of %s", o.Prompt, strings.Join(prompts, ", "))
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	var opts []confidential.AuthCodeURLOption
	if hint := firstNonEmpty(o.LoginHint, a.cfg.LoginHint); hint != "" {
		opts = append(opts, confidential.WithLoginHint(hint))
	}
	u, err := a.signIn.conf.AuthCodeURL(ctx, a.cfg.ClientID, a.redirect(o), a.webScopes(o), opts...)
	if err != nil {
		return "", "", classify(a.cfg.Name, "authorization URL", err)
	}
	// MSAL's AuthCodeURL has no PKCE or state option, and its prompt type is internal: append them.
	q := url.Values{"state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	if o.Prompt != "" {
		q.Set("prompt", o.Prompt)
	}
	return u + "&" + q.Encode(), verifier, nil
}

// ExchangeCode completes a web app's sign-in with the code from its callback and the verifier
// AuthCodeURL returned, and stores the user's tokens under their own entry. o must be the options
// given to AuthCodeURL.
func (a *Account) ExchangeCode(ctx context.Context, code, verifier string, o AuthCodeOptions) (*SignIn, error) {
	if a.cfg.Flow != config.FlowAuthCodeWeb {
		return nil, cfgErr(a.cfg, "ExchangeCode is for flow auth_code_web, not %s", a.cfg.Flow)
	}
	r := a.loginResource()
	res, err := a.signIn.conf.AcquireTokenByAuthCode(ctx, code, a.redirect(o), a.Scopes(r), confidential.WithChallenge(verifier))
	if err != nil {
		return nil, classify(a.cfg.Name, "authorization code", err)
	}
	return a.signedIn(r, res)
}

func (a *Account) redirect(o AuthCodeOptions) string {
	return firstNonEmpty(o.RedirectURI, a.cfg.RedirectURI)
}

// webScopes are the account's sign-in scopes and the extra ones of o.
func (a *Account) webScopes(o AuthCodeOptions) []string {
	s := a.Scopes(a.loginResource())
	for _, x := range o.Scopes {
		if !slices.ContainsFunc(s, func(y string) bool { return strings.EqualFold(x, y) }) {
			s = append(s, x)
		}
	}
	return s
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

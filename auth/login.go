package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailoauth/mailoauth/token"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"

	"github.com/mailoauth/mailoauth/config"
)

// LoginOptions tune Login.
type LoginOptions struct {
	// Device uses the device-code flow for an interactive account.
	Device bool
	// NoBrowser prints the sign-in URL on the Prompt writer instead of opening a browser, then waits.
	NoBrowser bool
	// OpenURL opens the sign-in URL; nil means the system browser (MSAL's opener).
	OpenURL func(url string) error
}

// Login signs the account in with its flow and stores what it gets. It is the only part of the package
// that talks to a person (through Options.Prompt).
func (a *Account) Login(ctx context.Context, o LoginOptions) (*token.Token, error) {
	r := a.loginResource()
	scopes := a.Scopes(r)
	a.forget()
	var tok *token.Token
	var err error
	switch a.cfg.Flow {
	case config.FlowInteractive, config.FlowDevice:
		if a.cfg.Flow == config.FlowDevice || o.Device {
			tok, err = a.deviceCode(ctx, r, scopes)
		} else {
			tok, err = a.interactive(ctx, r, scopes, o)
		}
	case config.FlowClientCredentials:
		tok, err = a.acquireSilent(ctx, r)
	case config.FlowPassword:
		tok, err = a.password(ctx, r)
	case config.FlowRefreshToken:
		tok, err = a.importRefreshToken(ctx, r, scopes)
	case config.FlowAuthCodeWeb:
		return nil, cfgErr(a.cfg, "flow auth_code_web signs users in through your web application: use auth.Account.AuthCodeURL and ExchangeCode from its callback")
	default:
		return nil, cfgErr(a.cfg, "unknown flow %q", a.cfg.Flow)
	}
	if err != nil {
		return nil, err
	}
	a.remember(tok)
	return tok, nil
}

func (a *Account) deviceCode(ctx context.Context, r token.Resource, scopes []string) (*token.Token, error) {
	dc, err := a.pub.AcquireTokenByDeviceCode(ctx, scopes)
	if err != nil {
		return nil, classify(a.cfg.Name, "device code", err)
	}
	fmt.Fprintln(a.opts.Prompt, dc.Result.Message)
	res, err := dc.AuthenticationResult(ctx) // polls until approved, refused, expired or ctx ends
	if err != nil {
		return nil, classify(a.cfg.Name, "device code", err)
	}
	return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}, nil
}

// interactive runs the authorization code flow with PKCE and state through MSAL's loopback listener
// (it accepts one redirect and closes).
func (a *Account) interactive(ctx context.Context, r token.Resource, scopes []string, o LoginOptions) (*token.Token, error) {
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
		opts = append(opts, public.WithOpenURL(func(u string) error {
			fmt.Fprintf(a.opts.Prompt, "To sign in, open this URL in a browser:\n%s\n", u)
			return nil
		}))
	}
	res, err := a.pub.AcquireTokenInteractive(ctx, scopes, opts...)
	if err != nil {
		return nil, classify(a.cfg.Name, "interactive sign-in", err)
	}
	return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}, nil
}

// password is ROPC: legacy, refused by MFA and by many tenants, kept for migrations (SPEC §3).
func (a *Account) password(ctx context.Context, r token.Resource) (*token.Token, error) {
	pw, err := secretFrom(a.cfg, "password", "", a.cfg.PasswordEnv, a.cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	a.opts.Log.Warn("account uses the password (ROPC) flow: it fails for users with MFA and in tenants that block it; prefer device or interactive", "account", a.cfg.Name)
	res, err := a.pub.AcquireTokenByUsernamePassword(ctx, a.Scopes(r), a.cfg.Email, pw)
	if err != nil {
		return nil, classify(a.cfg.Name, "password sign-in", err)
	}
	return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}, nil
}

// importMarker stands in for an authorization code: the import transport recognises it.
const importMarker = "mailoauth-refresh-token-import"

type importKey struct{}

// importRefreshToken redeems a refresh token obtained elsewhere, once, and lets MSAL cache the result,
// after which it is refreshed and rotated like any other. MSAL has no API for this (research/msal-go.md),
// so the redemption goes through MSAL's authorization-code call, whose request the account's transport
// rewrites into a refresh_token grant: MSAL then parses and caches the answer exactly as its own.
func (a *Account) importRefreshToken(ctx context.Context, r token.Resource, scopes []string) (*token.Token, error) {
	rt, err := secretFrom(a.cfg, "refresh_token", "", a.cfg.RefreshTokenEnv, a.cfg.RefreshTokenFile)
	if err != nil {
		return nil, err
	}
	if rt == "" {
		return nil, cfgErr(a.cfg, "flow refresh_token needs refresh_token_file or refresh_token_env")
	}
	ctx = context.WithValue(ctx, importKey{}, rt)
	redirect := firstNonEmpty(a.cfg.RedirectURI, "http://localhost")
	if a.conf != nil {
		res, err := a.conf.AcquireTokenByAuthCode(ctx, importMarker, redirect, scopes)
		if err != nil {
			return nil, classify(a.cfg.Name, "refresh token import", err)
		}
		if err := a.cache.setHomeAccount(ctx, res.Account.HomeAccountID); err != nil {
			return nil, err
		}
		return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}, nil
	}
	res, err := a.pub.AcquireTokenByAuthCode(ctx, importMarker, redirect, scopes)
	if err != nil {
		return nil, classify(a.cfg.Name, "refresh token import", err)
	}
	return &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}, nil
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

// AuthCodeURL starts a web app's sign-in (flow auth_code_web): the URL to send the user's browser to,
// with state and a PKCE challenge; keep the verifier for ExchangeCode.
func (a *Account) AuthCodeURL(ctx context.Context, state string) (authURL, verifier string, err error) {
	if a.conf == nil || a.cfg.Flow != config.FlowAuthCodeWeb {
		return "", "", cfgErr(a.cfg, "AuthCodeURL is for flow auth_code_web")
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	u, err := a.conf.AuthCodeURL(ctx, a.cfg.ClientID, a.cfg.RedirectURI, a.Scopes(a.loginResource()),
		confidential.WithLoginHint(firstNonEmpty(a.cfg.LoginHint, a.cfg.Email)))
	if err != nil {
		return "", "", classify(a.cfg.Name, "authorization URL", err)
	}
	// MSAL's AuthCodeURL has no PKCE or state option: append them (research/msal-go.md).
	q := url.Values{"state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	return u + "&" + q.Encode(), verifier, nil
}

// ExchangeCode completes a web app's sign-in with the code from its callback.
func (a *Account) ExchangeCode(ctx context.Context, code, verifier string) (*token.Token, error) {
	if a.conf == nil || a.cfg.Flow != config.FlowAuthCodeWeb {
		return nil, cfgErr(a.cfg, "ExchangeCode is for flow auth_code_web")
	}
	r := a.loginResource()
	res, err := a.conf.AcquireTokenByAuthCode(ctx, code, a.cfg.RedirectURI, a.Scopes(r), confidential.WithChallenge(verifier))
	if err != nil {
		return nil, classify(a.cfg.Name, "authorization code", err)
	}
	if err := a.cache.setHomeAccount(ctx, res.Account.HomeAccountID); err != nil {
		return nil, err
	}
	t := &token.Token{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn, Resource: r}
	a.remember(t)
	return t, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

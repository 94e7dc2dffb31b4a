package mailoauthtest

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/mailoauth/mailoauth/internal/emulator/identity"
)

// ApproveDevice signs user in on the device-code page for userCode and consents, as the person in
// front of a browser would: the device-code login polling for it then gets its tokens. userCode is
// the code the login shows (the UserCode of the auth.DeviceCode that auth.LoginOptions.DeviceCode
// receives); user is an address of the world.
func (s *Server) ApproveDevice(userCode, user string) error {
	err := s.e.Identity.ApproveDevice(userCode, user)
	if errors.Is(err, identity.ErrUnknownUserCode) {
		return errors.New("mailoauthtest: ApproveDevice: no device-code login is waiting for that user code (it was never shown, has been used, or has expired)")
	}
	if err != nil {
		return fmt.Errorf("mailoauthtest: %s cannot approve the device code: %w", user, err)
	}
	return nil
}

// SignIn opens authURL — an authorization URL of this Server, as auth's AuthCodeURL or an
// interactive login makes it — signs user in with password on the sign-in page and consents, as a
// browser would, and returns where the page sends the browser back: the app's redirect URI with
// code and state (or error and error_description, for the app to handle) in its query, or in its
// fragment for response_mode=fragment. That redirect is not followed: the caller hands the code to
// its app. A form_post answer (what an interactive login asks for) is posted to the redirect URI as
// the page's script would, so that the login's loopback listener gets its code; the URL returned
// then carries the posted fields in its query. An interactive login is thus driven with
//
//	auth.LoginOptions{OpenURL: func(u string) error { _, err := srv.SignIn(ctx, u, user, ""); return err }}
//
// password "" is the world's password for user (World, the default world or the scenario give
// it). A sign-in the page refuses (unknown user, wrong password, an app the world does not have)
// is an error. With Options.AutoApprove set the Server signs its user in itself, and SignIn is
// refused.
func (s *Server) SignIn(ctx context.Context, authURL, user, password string) (*url.URL, error) {
	u, err := url.Parse(authURL)
	if err != nil || u.Scheme+"://"+u.Host != s.Authority() {
		// A password goes nowhere but to this Server.
		return nil, errors.New("mailoauthtest: SignIn takes an authorization URL of this Server (one starting with its Authority)")
	}
	if s.autoApprove {
		return nil, errors.New("mailoauthtest: SignIn is for a Server without Options.AutoApprove, which signs its user in itself: fetch the authorization URL instead")
	}
	c := s.browser()
	resp, err := s.get(ctx, c, authURL)
	if err != nil {
		return nil, err
	}
	if loc, ok := redirected(resp); ok {
		return loc, nil // AutoApprove, or an error the page sends back to the app
	}
	form, err := signInForm(resp.body)
	if err != nil {
		return nil, err
	}
	if password == "" {
		password = s.password(user)
	}
	form.fields.Set("username", user)
	form.fields.Set("password", password)
	form.fields.Set("action", "accept")
	action, err := u.Parse(form.action)
	if err != nil {
		return nil, fmt.Errorf("mailoauthtest: the sign-in page's form has an invalid action: %w", err)
	}
	resp, err = s.post(ctx, c, action.String(), form.fields)
	if err != nil {
		return nil, err
	}
	if loc, ok := redirected(resp); ok {
		return loc, nil
	}
	if m := errorRE.FindSubmatch(resp.body); m != nil {
		return nil, fmt.Errorf("mailoauthtest: %s was not signed in: %s", user, html.UnescapeString(string(m[1])))
	}
	if post, err := signInForm(resp.body); err == nil && !post.fields.Has("txn") {
		return s.formPost(ctx, c, post)
	}
	return nil, fmt.Errorf("mailoauthtest: the sign-in page answered %d without a redirect", resp.status)
}

// password is the world's password for user; "" for a user the world does not have, whom the page
// then refuses.
func (s *Server) password(user string) string {
	if t := s.e.World().TenantForUPN(user); t != nil {
		if u := t.User(user); u != nil {
			return u.Password
		}
	}
	return ""
}

// formPost does what the form_post page's script does in a browser: post code and state to the
// redirect URI.
func (s *Server) formPost(ctx context.Context, c *http.Client, post htmlForm) (*url.URL, error) {
	to, err := url.Parse(post.action)
	if err != nil || (to.Scheme != "http" && to.Scheme != "https") {
		return nil, errors.New("mailoauthtest: the form_post answer's redirect URI is not an http(s) URL")
	}
	resp, err := s.post(ctx, c, to.String(), post.fields)
	if err != nil {
		return nil, err
	}
	if resp.status >= 400 {
		return nil, fmt.Errorf("mailoauthtest: the redirect URI answered %d to the posted code", resp.status)
	}
	to.RawQuery = post.fields.Encode()
	return to, nil
}

// browser is an HTTP client that trusts the Server and, as a test's stand-in for a browser, stops at
// the redirect to the app.
func (s *Server) browser() *http.Client {
	c := s.e.HTTPClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

type page struct {
	status   int
	location string
	body     []byte
}

func (s *Server) get(ctx context.Context, c *http.Client, u string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("mailoauthtest: %w", err)
	}
	return do(c, req)
}

func (s *Server) post(ctx context.Context, c *http.Client, u string, form url.Values) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("mailoauthtest: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (*page, error) {
	resp, err := c.Do(req)
	if err != nil {
		// The url.Error's text would hold the URL, whose query may carry a code: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("mailoauthtest: %s %s%s: %w", req.Method, req.URL.Host, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("mailoauthtest: %s %s%s: %w", req.Method, req.URL.Host, req.URL.Path, err)
	}
	return &page{status: resp.StatusCode, location: resp.Header.Get("Location"), body: body}, nil
}

func redirected(p *page) (*url.URL, bool) {
	if p.status/100 != 3 || p.location == "" {
		return nil, false
	}
	u, err := url.Parse(p.location)
	return u, err == nil
}

// The emulator's pages are its own templates: their first form, its inputs and its error line.
var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*"([^"]*)"`)
	errorRE = regexp.MustCompile(`(?s)id="error">(.*?)</p>`)
	// messageRE is the text of a page that is neither a form nor a redirect (an unknown app, say).
	messageRE = regexp.MustCompile(`(?s)id="message">(.*?)</p>`)
)

type htmlForm struct {
	action string
	fields url.Values
}

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}

// signInForm reads the page's form: its action and the values of its named inputs.
func signInForm(body []byte) (htmlForm, error) {
	m := formRE.FindSubmatch(body)
	if m == nil {
		if msg := messageRE.FindSubmatch(body); msg != nil {
			return htmlForm{}, fmt.Errorf("mailoauthtest: the sign-in page answered with no form: %s", html.UnescapeString(string(msg[1])))
		}
		return htmlForm{}, errors.New("mailoauthtest: the sign-in page has no form")
	}
	f := htmlForm{action: attrs(string(m[1]))["action"], fields: url.Values{}}
	for _, in := range inputRE.FindAllSubmatch(m[2], -1) {
		if a := attrs(string(in[1])); a["name"] != "" {
			f.fields.Set(a["name"], a["value"])
		}
	}
	return f, nil
}

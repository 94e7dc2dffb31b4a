package emulator_test

// MSAL for Go, unmodified, against the emulator: the proof that the emulator speaks the wire format a
// real client library relies on (research/msal-go.md).

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// counter wraps MSAL's transport and records the token requests it makes, by grant type.
type counter struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []url.Values // token request bodies
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/oauth2/v2.0/token") && req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
		resp, err := c.base.RoundTrip(req)
		// Counted once answered, so a test that waits for a count knows the server has seen it.
		vals, _ := url.ParseQuery(string(b))
		c.mu.Lock()
		c.reqs = append(c.reqs, vals)
		c.mu.Unlock()
		return resp, err
	}
	return c.base.RoundTrip(req)
}

// grants counts the token requests of one grant type ("" for all).
func (c *counter) grants(grant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.reqs {
		if grant == "" || r.Get("grant_type") == grant {
			n++
		}
	}
	return n
}

func (c *counter) last() url.Values {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reqs) == 0 {
		return nil
	}
	return c.reqs[len(c.reqs)-1]
}

// msalHTTP is the client MSAL gets: it trusts only the emulator's CA and counts token requests.
func msalHTTP(t *testing.T, v *env) (*http.Client, *counter) {
	t.Helper()
	base := caClient(t, v.E.CAPEM())
	ct := &counter{base: base.Transport}
	return &http.Client{Timeout: 30 * time.Second, Transport: ct}, ct
}

func msalCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func confidentialApp(t *testing.T, v *env, cred confidential.Credential) (confidential.Client, *counter) {
	t.Helper()
	hc, ct := msalHTTP(t, v)
	app, err := confidential.New(v.E.Authority()+"/contoso", world.DaemonClientID, cred,
		confidential.WithHTTPClient(hc), confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatalf("confidential.New: %v", err)
	}
	return app, ct
}

func publicApp(t *testing.T, v *env) (public.Client, *counter) {
	t.Helper()
	hc, ct := msalHTTP(t, v)
	app, err := public.New(world.DesktopClientID, public.WithAuthority(v.E.Authority()+"/contoso"),
		public.WithHTTPClient(hc), public.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatalf("public.New: %v", err)
	}
	return app, ct
}

// acquireTwice gets an Exchange app-only token, then gets it again from MSAL's cache.
func acquireTwice(t *testing.T, v *env, app confidential.Client, ct *counter, appidacr string) {
	t.Helper()
	ctx := msalCtx(t)
	res, err := app.AcquireTokenByCredential(ctx, []string{exchangeAppDef})
	if err != nil {
		t.Fatalf("AcquireTokenByCredential: %v", err)
	}
	c := v.verify(t, res.AccessToken)
	wantAppToken(t, v, c, "daemon", "https://outlook.office365.com", appidacr)
	wantRoles(t, c, "IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp")
	if d := time.Until(res.ExpiresOn); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("ExpiresOn in %v, want about an hour", d)
	}
	if n := ct.grants("client_credentials"); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
	again, err := app.AcquireTokenByCredential(ctx, []string{exchangeAppDef})
	if err != nil {
		t.Fatalf("second AcquireTokenByCredential: %v", err)
	}
	if again.AccessToken != res.AccessToken || again.Metadata.TokenSource != confidential.TokenSourceCache {
		t.Error("the second call did not come from MSAL's cache")
	}
	if n := ct.grants(""); n != 1 {
		t.Errorf("%d token requests after the cached call, want 1", n)
	}
	// Graph is another resource: a second request, a Graph token.
	g, err := app.AcquireTokenByCredential(ctx, []string{graphAppDef})
	if err != nil {
		t.Fatalf("AcquireTokenByCredential(Graph): %v", err)
	}
	wantAppToken(t, v, v.verify(t, g.AccessToken), "daemon", "https://graph.microsoft.com", appidacr)
	if n := ct.grants(""); n != 2 {
		t.Errorf("%d token requests after the Graph call, want 2", n)
	}
}

func TestMSALClientSecret(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	cred, err := confidential.NewCredFromSecret(v.E.Credentials["daemon"].Secret)
	if err != nil {
		t.Fatal(err)
	}
	app, ct := confidentialApp(t, v, cred)
	acquireTwice(t, v, app, ct, "1")
}

func TestMSALClientCertificate(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	creds := v.E.Credentials["daemon"]
	t.Run("PEM", func(t *testing.T) {
		certs, key, err := confidential.CertFromPEM(creds.CertPEM, "")
		if err != nil {
			t.Fatalf("CertFromPEM: %v", err)
		}
		cred, err := confidential.NewCredFromCert(certs, key)
		if err != nil {
			t.Fatal(err)
		}
		app, ct := confidentialApp(t, v, cred)
		acquireTwice(t, v, app, ct, "2")
		// What MSAL sent is what research/msal-go.md records: PS256 and x5t#S256.
		a := ct.last().Get("client_assertion")
		hdr, err := base64.RawURLEncoding.DecodeString(strings.Split(a, ".")[0])
		var h map[string]any
		if err != nil || json.Unmarshal(hdr, &h) != nil {
			t.Fatalf("MSAL's assertion header %q", a)
		}
		if h["alg"] != "PS256" || h["x5t#S256"] != x5tS256(creds.Cert) {
			t.Errorf("MSAL's assertion header %v: want PS256 with x5t#S256 %s", h, x5tS256(creds.Cert))
		}
	})
	t.Run("PFX", func(t *testing.T) {
		key, cert, _, err := pkcs12.DecodeChain(creds.PFX, creds.PFXPassword)
		if err != nil {
			t.Fatalf("PFX: %v", err)
		}
		if !cert.Equal(creds.Cert) {
			t.Fatal("the PFX holds another certificate")
		}
		cred, err := confidential.NewCredFromCert([]*x509.Certificate{cert}, key)
		if err != nil {
			t.Fatal(err)
		}
		app, ct := confidentialApp(t, v, cred)
		acquireTwice(t, v, app, ct, "2")
	})
}

func TestMSALErrors(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	ctx := msalCtx(t)
	cred, _ := confidential.NewCredFromSecret("wrong8Q~not-the-secret")
	app, _ := confidentialApp(t, v, cred)
	_, err := app.AcquireTokenByCredential(ctx, []string{exchangeAppDef})
	if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("wrong secret: MSAL says %v, want AADSTS7000215", err)
	}
	_, err = app.AcquireTokenByCredential(ctx, []string{imapScope})
	if err == nil || !strings.Contains(err.Error(), "AADSTS") {
		t.Errorf("delegated scope in a credential flow: MSAL says %v", err)
	}
}

func TestMSALDeviceCode(t *testing.T) {
	t.Parallel()
	t.Run("auto-approved", func(t *testing.T) {
		t.Parallel()
		v := shared(t, envAuto)
		app, _ := publicApp(t, v)
		ctx := msalCtx(t)
		dc, err := app.AcquireTokenByDeviceCode(ctx, []string{imapScope})
		if err != nil {
			t.Fatalf("AcquireTokenByDeviceCode: %v", err)
		}
		if dc.Result.UserCode == "" || dc.Result.VerificationURL != v.E.Authority()+"/devicelogin" || !strings.Contains(dc.Result.Message, dc.Result.UserCode) {
			t.Errorf("device code %+v", dc.Result)
		}
		res, err := dc.AuthenticationResult(ctx)
		if err != nil {
			t.Fatalf("AuthenticationResult: %v", err)
		}
		wantMSALUser(t, v, res, world.Alice, "https://outlook.office.com")
	})
	t.Run("approved by a person", func(t *testing.T) {
		t.Parallel()
		v := shared(t, envManual)
		app, ct := publicApp(t, v)
		ctx := msalCtx(t)
		dc, err := app.AcquireTokenByDeviceCode(ctx, []string{imapScope})
		if err != nil {
			t.Fatalf("AcquireTokenByDeviceCode: %v", err)
		}
		approved := make(chan error, 1)
		go func() {
			// Approve once MSAL has polled and been told to wait.
			for ct.grants("device_code") == 0 && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			approved <- v.E.Identity.ApproveDevice(dc.Result.UserCode, world.Bob)
		}()
		res, err := dc.AuthenticationResult(ctx)
		if err != nil {
			t.Fatalf("AuthenticationResult: %v", err)
		}
		if err := <-approved; err != nil {
			t.Fatalf("ApproveDevice: %v", err)
		}
		if n := ct.grants("device_code"); n < 2 {
			t.Errorf("%d polls, want a pending one and the successful one", n)
		}
		wantMSALUser(t, v, res, world.Bob, "https://outlook.office.com")
	})
	t.Run("declined", func(t *testing.T) {
		t.Parallel()
		v := shared(t, envManual)
		app, _ := publicApp(t, v)
		ctx := msalCtx(t)
		dc, err := app.AcquireTokenByDeviceCode(ctx, []string{imapScope})
		if err != nil {
			t.Fatalf("AcquireTokenByDeviceCode: %v", err)
		}
		if err := v.E.Identity.DeclineDevice(dc.Result.UserCode); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.AuthenticationResult(ctx); err == nil || !strings.Contains(err.Error(), "authorization_declined") {
			t.Errorf("declined device code: MSAL says %v", err)
		}
	})
}

// wantMSALUser checks an MSAL result for a user: the verified token and the account MSAL built from
// the ID token and client_info.
func wantMSALUser(t *testing.T, v *env, res public.AuthResult, upn, aud string) {
	t.Helper()
	scp := "IMAP.AccessAsUser.All"
	if aud == "https://graph.microsoft.com" {
		scp = "Mail.ReadWrite"
	}
	wantUserToken(t, v, v.verify(t, res.AccessToken), upn, aud, scp, world.DesktopClientID)
	tid := v.E.World().TenantForUPN(upn).ID
	if res.Account.PreferredUsername != upn || res.Account.HomeAccountID != v.userOID(upn)+"."+tid {
		t.Errorf("MSAL account %+v: want %s with home account id %s.%s", res.Account, upn, v.userOID(upn), tid)
	}
}

// interactive plays the browser for AcquireTokenInteractive: with AutoApprove, fetching the
// authorization URL is enough; the emulator posts the code to MSAL's loopback listener.
func interactive(t *testing.T, v *env, app public.Client) public.AuthResult {
	t.Helper()
	var opened string
	res, err := app.AcquireTokenInteractive(msalCtx(t), []string{imapScope},
		public.WithRedirectURI("http://localhost"),
		public.WithOpenURL(func(u string) error {
			opened = u
			resp, err := v.C.Get(u)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("authorize answered %s: %s", resp.Status, b)
			}
			return nil
		}))
	if err != nil {
		t.Fatalf("AcquireTokenInteractive: %v", err)
	}
	u, err := url.Parse(opened)
	if err != nil || !strings.HasPrefix(opened, v.E.Authority()+"/contoso/oauth2/v2.0/authorize?") {
		t.Fatalf("MSAL opened %q", opened)
	}
	if q := u.Query(); q.Get("response_mode") != "form_post" || q.Get("code_challenge_method") != "S256" || !strings.HasPrefix(q.Get("redirect_uri"), "http://localhost:") {
		t.Errorf("MSAL's authorization URL %v: want form_post, S256 and a loopback redirect", q)
	}
	wantMSALUser(t, v, res, world.Alice, "https://outlook.office.com")
	return res
}

func TestMSALInteractive(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	app, ct := publicApp(t, v)
	ctx := msalCtx(t)
	res := interactive(t, v, app)
	if n := ct.grants("authorization_code"); n != 1 || ct.grants("") != 1 {
		t.Fatalf("%d code exchanges (%d token requests), want 1", n, ct.grants(""))
	}
	accounts, err := app.Accounts(ctx)
	if err != nil || len(accounts) != 1 || accounts[0].PreferredUsername != world.Alice {
		t.Fatalf("Accounts: %v %+v", err, accounts)
	}
	silent, err := app.AcquireTokenSilent(ctx, []string{imapScope}, public.WithSilentAccount(accounts[0]))
	if err != nil {
		t.Fatalf("AcquireTokenSilent: %v", err)
	}
	if silent.AccessToken != res.AccessToken || silent.Metadata.TokenSource != public.TokenSourceCache || ct.grants("") != 1 {
		t.Error("AcquireTokenSilent did not answer from the cache")
	}
	// The same refresh token gets a Graph token.
	g, err := app.AcquireTokenSilent(ctx, []string{"https://graph.microsoft.com/Mail.ReadWrite"}, public.WithSilentAccount(accounts[0]))
	if err != nil {
		t.Fatalf("AcquireTokenSilent(Graph): %v", err)
	}
	if ct.grants("refresh_token") != 1 {
		t.Errorf("%d refresh_token requests, want 1", ct.grants("refresh_token"))
	}
	wantMSALUser(t, v, g, world.Alice, "https://graph.microsoft.com")
}

func TestMSALSilentRefresh(t *testing.T) {
	t.Parallel()
	w := world.Default()
	w.Tokens = world.DefaultLifetimes()
	w.Tokens.AccessToken = 2 * time.Minute // under MSAL's five-minute margin: every silent call refreshes
	v := start(t, w, world.Alice, nil)
	app, ct := publicApp(t, v)
	res := interactive(t, v, app)
	silent, err := app.AcquireTokenSilent(msalCtx(t), []string{imapScope}, public.WithSilentAccount(res.Account))
	if err != nil {
		t.Fatalf("AcquireTokenSilent: %v", err)
	}
	if ct.grants("refresh_token") != 1 || silent.Metadata.TokenSource != public.TokenSourceIdentityProvider {
		t.Fatalf("%d refresh_token requests, want 1", ct.grants("refresh_token"))
	}
	if silent.AccessToken == res.AccessToken {
		t.Error("the refreshed access token is the old one")
	}
	if ct.last().Get("refresh_token") == "" || ct.last().Get("client_info") != "1" {
		t.Errorf("MSAL's refresh request %v", ct.last())
	}
	wantMSALUser(t, v, silent, world.Alice, "https://outlook.office.com")
}

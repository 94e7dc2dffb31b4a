package emulator_test

// The identity platform as an independent client sees it: plain net/http over TLS that trusts only
// the emulator's CA, every grant, and every error a user or a client library would notice.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/internal/emulator/identity"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// ---- discovery, keys, instance discovery -------------------------------------------------------

func TestDiscovery(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	auth, _ := url.Parse(v.E.Authority())
	for _, ref := range []string{"contoso", "contoso.test", world.DefaultTenantID, "contoso.onmicrosoft.com", "Contoso", "organizations", "common"} {
		t.Run(ref, func(t *testing.T) {
			r := v.get(t, "/"+ref+"/v2.0/.well-known/openid-configuration")
			if r.Status != http.StatusOK {
				t.Fatalf("discovery: %s", r)
			}
			d := r.JSON(t)
			iss, err := url.Parse(str(d, "issuer"))
			if err != nil || iss.Scheme != "https" || iss.Host != auth.Host {
				t.Fatalf("issuer %q: scheme and host must be the authority's (%s), as MSAL requires", d["issuer"], auth.Host)
			}
			multi := ref == "organizations" || ref == "common"
			wantIss := v.E.Authority() + "/" + world.DefaultTenantID + "/v2.0"
			if multi {
				wantIss = v.E.Authority() + "/{tenantid}/v2.0"
			}
			if d["issuer"] != wantIss {
				t.Errorf("issuer = %q, want %q", d["issuer"], wantIss)
			}
			for _, k := range []string{"authorization_endpoint", "token_endpoint", "device_authorization_endpoint", "jwks_uri", "end_session_endpoint"} {
				u, err := url.Parse(str(d, k))
				if err != nil || u.Scheme != "https" || u.Host != auth.Host || u.Path == "" {
					t.Errorf("%s = %q: want an https URL on %s", k, d[k], auth.Host)
				}
			}
			if r := v.get(t, str(d, "jwks_uri")); r.Status != http.StatusOK {
				t.Errorf("jwks_uri answers %s", r)
			}
			if multi {
				return
			}
			// The advertised token endpoint issues tokens of this tenant, whatever name reached it.
			tr := v.postForm(t, str(d, "token_endpoint"), v.secretForm("daemon", exchangeAppDef))
			if tr.Status != http.StatusOK {
				t.Fatalf("token_endpoint: %s", tr)
			}
			wantClaim(t, v.verify(t, str(tr.JSON(t), "access_token")), "tid", world.DefaultTenantID)
		})
	}
}

func TestUnknownTenant(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	for _, bad := range []string{"nowhere.example", world.NewID()} {
		e := wantAAD(t, v.get(t, "/"+bad+"/v2.0/.well-known/openid-configuration"), 400, "invalid_tenant", 90002)
		if !strings.Contains(e.Description, bad) {
			t.Errorf("90002 does not name the tenant %q: %s", bad, e.Description)
		}
		wantAAD(t, v.get(t, "/"+bad+"/discovery/v2.0/keys"), 400, "invalid_tenant", 90002)
		wantAAD(t, v.token(t, bad, v.secretForm("daemon", exchangeAppDef)), 400, "invalid_request", 90002)
		wantAAD(t, v.postForm(t, deviceCodePath(bad), url.Values{"client_id": {world.DesktopClientID}, "scope": {userScopes}}), 400, "", 90002)
		lb := "http://localhost:1"
		r := v.get(t, authorizePath(bad)+"?"+authorizeParams(world.DesktopClientID, lb, "query", "s", "c").Encode())
		if r.Status != 400 || !strings.Contains(string(r.Body), "AADSTS90002") || r.Header.Get("Location") != "" {
			t.Errorf("authorize for an unknown tenant: want a 400 page naming AADSTS90002 and no redirect, got %d %s", r.Status, r.Body)
		}
	}
}

// TestErrorCorrelationID: Entra echoes the client's client-request-id (MSAL sends one) as the
// correlation id, so a user can match a failure to their logs.
func TestErrorCorrelationID(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	id := world.NewID()
	req, _ := http.NewRequest(http.MethodPost, v.url(tokenPath("contoso")), strings.NewReader(url.Values{"grant_type": {"password"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", id)
	if e := wantAAD(t, do(t, v.C, req), 400, "invalid_request", 900144); e.CorrelationID != id {
		t.Errorf("correlation_id %s, want the client-request-id %s", e.CorrelationID, id)
	}
	a := wantAAD(t, v.token(t, "contoso", url.Values{"grant_type": {"password"}}), 400, "invalid_request", 900144)
	b := wantAAD(t, v.token(t, "contoso", url.Values{"grant_type": {"password"}}), 400, "invalid_request", 900144)
	if a.TraceID == b.TraceID || a.CorrelationID == b.CorrelationID {
		t.Error("two requests share a trace or correlation id")
	}
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	contoso := v.jwks(t, "contoso")
	for _, ref := range []string{"organizations", "common", world.DefaultTenantID} {
		other := v.jwks(t, ref)
		for kid, k := range contoso {
			if o := other[kid]; o == nil || !o.Equal(k) {
				t.Errorf("JWKS of %s lacks contoso's key %s", ref, kid)
			}
		}
	}
	// The v1 keys path serves the same keys (older libraries use it).
	r := v.get(t, "/contoso/discovery/keys")
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"kid"`) {
		t.Errorf("/contoso/discovery/keys: %s", r)
	}
	for _, k := range r.JSON(t)["keys"].([]any) {
		km := k.(map[string]any)
		if contoso[str(km, "kid")] == nil || km["use"] != "sig" {
			t.Errorf("v1 JWKS key %v: want one of the v2 kids with use sig", km)
		}
	}
}

func TestInstanceDiscovery(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	host := strings.TrimPrefix(v.E.Authority(), "https://")
	r := v.get(t, "/common/discovery/instance?api-version=1.1&authorization_endpoint="+
		url.QueryEscape(v.E.Authority()+authorizePath("contoso")))
	if r.Status != http.StatusOK {
		t.Fatalf("instance discovery: %s", r)
	}
	var d struct {
		TenantDiscoveryEndpoint string `json:"tenant_discovery_endpoint"`
		APIVersion              string `json:"api-version"`
		Metadata                []struct {
			PreferredNetwork string   `json:"preferred_network"`
			PreferredCache   string   `json:"preferred_cache"`
			Aliases          []string `json:"aliases"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(r.Body, &d); err != nil {
		t.Fatal(err)
	}
	if d.APIVersion != "1.1" || len(d.Metadata) != 1 {
		t.Fatalf("instance discovery: %s", r.Body)
	}
	m := d.Metadata[0]
	if m.PreferredNetwork != host || m.PreferredCache != host || !slices.Contains(m.Aliases, host) {
		t.Errorf("metadata %+v: want %s as preferred network, cache and alias", m, host)
	}
	if !strings.Contains(d.TenantDiscoveryEndpoint, "{tenant}") || !strings.HasPrefix(d.TenantDiscoveryEndpoint, v.E.Authority()+"/") {
		t.Fatalf("tenant_discovery_endpoint %q", d.TenantDiscoveryEndpoint)
	}
	if r := v.get(t, strings.Replace(d.TenantDiscoveryEndpoint, "{tenant}", "contoso", 1)); r.Status != http.StatusOK {
		t.Errorf("tenant_discovery_endpoint with contoso: %s", r)
	}
}

// ---- client credentials ------------------------------------------------------------------------

func TestClientCredentialsSecret(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	t.Run("exchange", func(t *testing.T) {
		// The scope as MSAL sends it: the .default and the three OIDC scopes.
		m := v.mustToken(t, "contoso", v.secretForm("daemon", exchangeAppDef+" openid offline_access profile"))
		for _, k := range []string{"refresh_token", "id_token"} {
			if _, ok := m[k]; ok {
				t.Errorf("a client-credentials answer carries %s", k)
			}
		}
		c := v.verify(t, str(m, "access_token"))
		wantAppToken(t, v, c, "daemon", "https://outlook.office365.com", "1")
		wantRoles(t, c, "IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp")
		if slices.Contains(strs(c, "roles"), "Mail.Send") {
			t.Errorf("an Exchange token carries Graph's roles: %v", strs(c, "roles"))
		}
		exp, _ := c.GetExpirationTime()
		iat, _ := c.GetIssuedAt()
		if d := exp.Sub(iat.Time); d != time.Hour || m["expires_in"] != float64(3600) {
			t.Errorf("lifetime %v, expires_in %v: want 1h and 3600", d, m["expires_in"])
		}
	})
	t.Run("graph", func(t *testing.T) {
		c := v.verify(t, str(v.mustToken(t, "contoso", v.secretForm("daemon", graphAppDef)), "access_token"))
		wantAppToken(t, v, c, "daemon", "https://graph.microsoft.com", "1")
		wantRoles(t, c, "Mail.ReadWrite", "Mail.Send")
		if slices.Contains(strs(c, "roles"), "IMAP.AccessAsApp") {
			t.Errorf("a Graph token carries Exchange's roles: %v", strs(c, "roles"))
		}
	})
	t.Run("another resource", func(t *testing.T) {
		// Azure Resource Manager: a token the mail APIs refuse, with no roles (the daemon holds none there).
		c := v.verify(t, str(v.mustToken(t, "contoso", v.secretForm("daemon", world.ARMResource+"/.default")), "access_token"))
		wantAppToken(t, v, c, "daemon", world.ARMResource, "1")
		if _, ok := c["roles"]; ok {
			t.Errorf("roles %v on a token for a resource the app has no permission of", c["roles"])
		}
	})
	t.Run("basic auth and tenant by domain", func(t *testing.T) {
		f := v.secretForm("daemon", exchangeAppDef)
		f.Del("client_secret")
		f.Del("client_id")
		req, _ := http.NewRequest(http.MethodPost, v.url(tokenPath("contoso.test")), strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(world.DaemonClientID, v.E.Credentials["daemon"].Secret)
		r := do(t, v.C, req)
		if r.Status != http.StatusOK {
			t.Fatalf("client_secret_basic: %s", r)
		}
		wantAppToken(t, v, v.verify(t, str(r.JSON(t), "access_token")), "daemon", "https://outlook.office365.com", "1")
	})
}

func TestClientCredentialsErrors(t *testing.T) {
	t.Parallel()
	v := shared(t, envRich)
	daemon := world.DaemonClientID
	form := func(clientID, secret, scope string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "scope": {scope}}
		if secret != "" {
			f.Set("client_secret", secret)
		}
		return f
	}
	secret := v.E.Credentials["daemon"].Secret
	unknown := world.NewID()
	cases := []struct {
		name, tenant string
		form         url.Values
		status       int
		err          string
		code         int
		mentions     string
	}{
		{"wrong secret", "contoso", form(daemon, "wrong8Q~secret", exchangeAppDef), 401, "invalid_client", 7000215, daemon},
		{"secret id instead of value", "contoso", form(daemon, world.NewID(), exchangeAppDef), 401, "invalid_client", 7000215, daemon},
		{"expired secret", "contoso", form(v.clientID(expiredApp), expiredSecret, exchangeAppDef), 401, "invalid_client", 7000222, v.clientID(expiredApp)},
		{"unknown client id", "contoso", form(unknown, secret, exchangeAppDef), 400, "unauthorized_client", 700016, unknown},
		{"app of another tenant", "fabrikam", form(daemon, secret, exchangeAppDef), 400, "unauthorized_client", 700016, daemon},
		{"unknown tenant", "nowhere.example", form(daemon, secret, exchangeAppDef), 400, "invalid_request", 90002, "nowhere.example"},
		{"scope without /.default", "contoso", form(daemon, secret, "https://outlook.office365.com/IMAP.AccessAsApp"), 400, "invalid_scope", 1002012, "IMAP.AccessAsApp"},
		{"delegated scope", "contoso", form(daemon, secret, imapScope), 400, "invalid_scope", 1002012, imapScope},
		{"two resources", "contoso", form(daemon, secret, exchangeAppDef+" "+graphAppDef), 400, "invalid_scope", 28000, ""},
		{"unknown resource", "contoso", form(daemon, secret, "https://api.unknown.example/.default"), 400, "invalid_resource", 500011, "https://api.unknown.example"},
		{"no credential", "contoso", form(daemon, "", exchangeAppDef), 401, "invalid_client", 7000218, ""},
		{"on /common", "common", form(daemon, secret, exchangeAppDef), 400, "invalid_request", 50059, ""},
		{"on /organizations", "organizations", form(daemon, secret, exchangeAppDef), 400, "invalid_request", 50059, ""},
		{"missing scope", "contoso", form(daemon, secret, ""), 400, "invalid_request", 900144, "scope"},
		{"missing client_id", "contoso", form("", secret, exchangeAppDef), 400, "invalid_request", 900144, "client_id"},
		{"public app sends a secret", "contoso", form(world.DesktopClientID, "s8Q~secret", exchangeAppDef), 400, "invalid_client", 700025, ""},
		// Client credentials are for confidential clients only (RFC 6749 §4.4): a public app without a
		// credential gets no app-only token.
		{"public app without a credential", "contoso", form(world.DesktopClientID, "", exchangeAppDef), 401, "invalid_client", 7000218, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := wantAAD(t, v.token(t, tc.tenant, tc.form), tc.status, tc.err, tc.code)
			if tc.mentions != "" && !strings.Contains(e.Description, tc.mentions) {
				t.Errorf("AADSTS%d does not mention %q: %s", tc.code, tc.mentions, e.Description)
			}
		})
	}
	t.Run("no admin consent: a token without roles", func(t *testing.T) {
		c := v.verify(t, str(v.mustToken(t, "contoso", v.secretForm(unconsentedApp, exchangeAppDef)), "access_token"))
		wantAppToken(t, v, c, unconsentedApp, "https://outlook.office365.com", "1")
		wantNoClaim(t, c, "roles")
	})
}

func TestClientAssertion(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	creds := v.E.Credentials["daemon"]
	ck := parseCertPEM(t, creds.CertPEM)
	if !ck.Cert.Equal(creds.Cert) {
		t.Fatal("CertPEM's certificate is not Credentials.Cert")
	}
	daemon := world.DaemonClientID
	aud := v.E.Authority() + tokenPath("contoso")
	now := v.now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := assertionClaims(daemon, aud, now)
		if mod != nil {
			mod(c)
		}
		return c
	}
	request := func(a string) url.Values {
		f := assertionForm(daemon, a, exchangeAppDef+" openid offline_access profile")
		f.Set("client_info", "1")
		return f
	}
	for _, tc := range []struct {
		name   string
		method jwt.SigningMethod
		thumb  string
	}{
		{"PS256 with x5t#S256 as MSAL writes it", jwt.SigningMethodPS256, "x5t#S256"},
		{"RS256 with x5t", jwt.SigningMethodRS256, "x5t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := signAssertion(t, tc.method, ck.Key, ck.Cert, tc.thumb, claims(nil))
			c := v.verify(t, str(v.mustToken(t, "contoso", request(a)), "access_token"))
			wantAppToken(t, v, c, "daemon", "https://outlook.office365.com", "2")
			wantRoles(t, c, "IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp")
		})
	}
	t.Run("audience names the tenant by GUID", func(t *testing.T) {
		a := signAssertion(t, jwt.SigningMethodPS256, ck.Key, ck.Cert, "x5t#S256", claims(func(c jwt.MapClaims) {
			c["aud"] = v.E.Authority() + tokenPath(world.DefaultTenantID)
		}))
		v.mustToken(t, "contoso", request(a))
	})

	stranger := newCertKey(t)
	valid := signAssertion(t, jwt.SigningMethodPS256, ck.Key, ck.Cert, "x5t#S256", claims(nil))
	parts := strings.Split(valid, ".")
	sig := []byte(parts[2])
	// Another valid base64url character: the signature decodes, to different bytes.
	if sig[20] == 'A' {
		sig[20] = 'B'
	} else {
		sig[20] = 'A'
	}
	corrupted := parts[0] + "." + parts[1] + "." + string(sig)
	// alg none and an HMAC keyed with the certificate's public key must never pass.
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil))
		tok.Header["x5t#S256"] = x5tS256(ck.Cert)
		s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}()
	hmac := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
		tok.Header["x5t#S256"] = x5tS256(ck.Cert)
		s, _ := tok.SignedString(ck.Cert.RawSubjectPublicKeyInfo)
		return s
	}()
	for _, tc := range []struct {
		name      string
		assertion string
		form      func(url.Values)
		status    int
		err       string
		code      int
	}{
		{"unregistered certificate", signAssertion(t, jwt.SigningMethodPS256, stranger.Key, stranger.Cert, "x5t#S256", claims(nil)), nil, 401, "invalid_client", 700027},
		{"signed with another key", signAssertion(t, jwt.SigningMethodPS256, stranger.Key, ck.Cert, "x5t#S256", claims(nil)), nil, 401, "invalid_client", 700027},
		{"corrupted signature", corrupted, nil, 401, "invalid_client", 700027},
		{"no thumbprint", signAssertion(t, jwt.SigningMethodRS256, ck.Key, ck.Cert, "", claims(nil)), nil, 401, "invalid_client", 700027},
		{"alg none", none, nil, 401, "invalid_client", 700027},
		{"HS256 keyed with the public key", hmac, nil, 401, "invalid_client", 700027},
		{"expired", signAssertion(t, jwt.SigningMethodPS256, ck.Key, ck.Cert, "x5t#S256", claims(func(c jwt.MapClaims) {
			c["nbf"], c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		})), nil, 401, "invalid_client", 700024},
		{"not yet valid", signAssertion(t, jwt.SigningMethodPS256, ck.Key, ck.Cert, "x5t#S256", claims(func(c jwt.MapClaims) {
			c["nbf"], c["exp"] = now.Add(time.Hour).Unix(), now.Add(2*time.Hour).Unix()
		})), nil, 401, "invalid_client", 700024},
		{"iss is not the client id", signAssertion(t, jwt.SigningMethodPS256, ck.Key, ck.Cert, "x5t#S256", claims(func(c jwt.MapClaims) {
			c["iss"] = world.DesktopClientID
		})), nil, 401, "invalid_client", 700021},
		{"audience of the real cloud", signAssertion(t, jwt.SigningMethodPS256, ck.Key, ck.Cert, "x5t#S256", claims(func(c jwt.MapClaims) {
			c["aud"] = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
		})), nil, 401, "invalid_client", 700023},
		{"audience of an unknown tenant", signAssertion(t, jwt.SigningMethodPS256, ck.Key, ck.Cert, "x5t#S256", claims(func(c jwt.MapClaims) {
			c["aud"] = v.E.Authority() + tokenPath("nowhere.example")
		})), nil, 401, "invalid_client", 700023},
		{"garbage", "this is not a JWT", nil, 401, "invalid_client", 50027},
		{"three garbage segments", "a.b.c", nil, 401, "invalid_client", 50027},
		{"wrong client_assertion_type", valid, func(f url.Values) {
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		}, 400, "invalid_request", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := request(tc.assertion)
			if tc.form != nil {
				tc.form(f)
			}
			wantAAD(t, v.token(t, "contoso", f), tc.status, tc.err, tc.code)
		})
	}
}

// TestClientAssertionOnOrganizations: a multi-tenant confidential app on /organizations (here with
// ROPC) must still sign its assertion for the endpoint it calls.
func TestClientAssertionOnOrganizations(t *testing.T) {
	t.Parallel()
	v := shared(t, envRich)
	ck := parseCertPEM(t, v.E.Credentials[multiDaemon].CertPEM)
	id := v.clientID(multiDaemon)
	form := func(aud string) url.Values {
		a := signAssertion(t, jwt.SigningMethodPS256, ck.Key, ck.Cert, "x5t#S256", assertionClaims(id, aud, v.now()))
		f := ropcForm(id, world.Alice, "alice-password", userScopes)
		f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		f.Set("client_assertion", a)
		return f
	}
	m := v.mustToken(t, "organizations", form(v.E.Authority()+tokenPath("organizations")))
	c := v.verify(t, str(m, "access_token"))
	wantClaim(t, c, "appidacr", "2")
	wantClaim(t, c, "upn", world.Alice)
	for _, aud := range []string{v.E.Authority() + tokenPath("nowhere.example"), "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"} {
		wantAAD(t, v.token(t, "organizations", form(aud)), 401, "invalid_client", 700023)
	}
}

// ---- authorization code ------------------------------------------------------------------------

func TestAuthCodeAutoApprove(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	lb := startLoopback(t)
	for _, tc := range []struct{ mode, method string }{{"query", http.MethodGet}, {"form_post", http.MethodPost}} {
		t.Run(tc.mode, func(t *testing.T) {
			verifier, challenge := pkce()
			state := "st-" + tc.mode
			q := authorizeParams(world.DesktopClientID, lb.URI, tc.mode, state, challenge)
			q.Set("nonce", "n-"+tc.mode)
			r := v.get(t, authorizePath("contoso")+"?"+q.Encode())
			if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("authorize: want the emulator to deliver the code and show a page, got %s", r)
			}
			cb := lb.wait(t)
			if cb.Method != tc.method || cb.Values.Get("state") != state || cb.Values.Get("code") == "" {
				t.Fatalf("redirect URI got %s %v, want %s with code and state %q", cb.Method, cb.Values, tc.method, state)
			}
			m := v.mustToken(t, "contoso", codeForm(world.DesktopClientID, cb.Values.Get("code"), lb.URI, verifier))
			if !strings.Contains(str(m, "scope"), imapScope) {
				t.Errorf("answer scope %q lacks %s", m["scope"], imapScope)
			}
			if str(m, "refresh_token") == "" {
				t.Error("offline_access asked, no refresh_token")
			}
			wantUserToken(t, v, v.verify(t, str(m, "access_token")), world.Alice, "https://outlook.office.com", "IMAP.AccessAsUser.All", world.DesktopClientID)
			id := v.verify(t, str(m, "id_token"))
			wantClaim(t, id, "aud", world.DesktopClientID)
			wantClaim(t, id, "preferred_username", world.Alice)
			wantClaim(t, id, "oid", v.userOID(world.Alice))
			wantClaim(t, id, "tid", world.DefaultTenantID)
			wantClaim(t, id, "iss", v.E.Authority()+"/"+world.DefaultTenantID+"/v2.0")
			wantClaim(t, id, "nonce", "n-"+tc.mode)
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(str(m, "client_info"), "="))
			var ci struct{ UID, UTID string }
			if err != nil || json.Unmarshal(raw, &ci) != nil {
				t.Fatalf("client_info %q is not base64url JSON", m["client_info"])
			}
			if ci.UID != v.userOID(world.Alice) || ci.UTID != world.DefaultTenantID {
				t.Errorf("client_info = %+v, want uid %s utid %s", ci, v.userOID(world.Alice), world.DefaultTenantID)
			}
		})
	}
	t.Run("state with special characters comes back intact", func(t *testing.T) {
		for _, mode := range []string{"query", "form_post"} {
			state := `a&b=c+d%20e <f> "g" 'h' ü/?#`
			_, challenge := pkce()
			r := v.get(t, authorizePath("contoso")+"?"+authorizeParams(world.DesktopClientID, lb.URI, mode, state, challenge).Encode())
			if r.Status != http.StatusOK {
				t.Fatalf("authorize: %s", r)
			}
			if cb := lb.wait(t); cb.Values.Get("state") != state {
				t.Errorf("%s: state %q came back as %q", mode, state, cb.Values.Get("state"))
			}
		}
	})
	t.Run("no offline_access: no refresh token, no client_info unless asked", func(t *testing.T) {
		verifier, challenge := pkce()
		code := v.autoCode(t, lb, world.DesktopClientID, "query", challenge, url.Values{"scope": {imapScope}})
		f := codeForm(world.DesktopClientID, code, lb.URI, verifier)
		f.Set("scope", imapScope)
		f.Del("client_info")
		m := v.mustToken(t, "contoso", f)
		for _, k := range []string{"refresh_token", "id_token", "client_info"} {
			if _, ok := m[k]; ok {
				t.Errorf("answer carries %s though it was not asked for", k)
			}
		}
		wantUserToken(t, v, v.verify(t, str(m, "access_token")), world.Alice, "https://outlook.office.com", "IMAP.AccessAsUser.All", world.DesktopClientID)
	})
}

func TestAuthCodeErrors(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	lb := startLoopback(t)
	desktop := world.DesktopClientID
	t.Run("wrong verifier", func(t *testing.T) {
		_, challenge := pkce()
		other, _ := pkce()
		code := v.autoCode(t, lb, desktop, "query", challenge, nil)
		wantAAD(t, v.token(t, "contoso", codeForm(desktop, code, lb.URI, other)), 400, "invalid_grant", 501481)
	})
	t.Run("missing verifier", func(t *testing.T) {
		_, challenge := pkce()
		code := v.autoCode(t, lb, desktop, "query", challenge, nil)
		wantAAD(t, v.token(t, "contoso", codeForm(desktop, code, lb.URI, "")), 400, "invalid_grant", 501481)
	})
	t.Run("code reused", func(t *testing.T) {
		verifier, challenge := pkce()
		code := v.autoCode(t, lb, desktop, "query", challenge, nil)
		v.mustToken(t, "contoso", codeForm(desktop, code, lb.URI, verifier))
		wantAAD(t, v.token(t, "contoso", codeForm(desktop, code, lb.URI, verifier)), 400, "invalid_grant", 54005)
	})
	t.Run("redirect_uri differs", func(t *testing.T) {
		verifier, challenge := pkce()
		code := v.autoCode(t, lb, desktop, "query", challenge, nil)
		e := wantAAD(t, v.token(t, "contoso", codeForm(desktop, code, "http://localhost:1/other", verifier)), 400, "invalid_grant", 500112)
		if !strings.Contains(e.Description, lb.URI) {
			t.Errorf("500112 does not name the original reply address: %s", e.Description)
		}
	})
	t.Run("unknown code", func(t *testing.T) {
		wantAAD(t, v.token(t, "contoso", codeForm(desktop, "1.Anot-a-code", lb.URI, "v")), 400, "invalid_grant", 0)
	})
	for _, bad := range []string{"https://evil.example/cb", lb.URI + "/elsewhere", "http://127.0.0.2:9/"} {
		t.Run("unregistered redirect "+bad, func(t *testing.T) {
			_, challenge := pkce()
			r := v.get(t, authorizePath("contoso")+"?"+authorizeParams(desktop, bad, "query", "s", challenge).Encode())
			if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" {
				t.Fatalf("want a 400 page and no redirect, got %d Location %q", r.Status, r.Header.Get("Location"))
			}
			body := string(r.Body)
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "AADSTS50011") || strings.Contains(body, "code=") {
				t.Errorf("want an HTML page naming AADSTS50011 and carrying no code:\n%s", body)
			}
			select {
			case cb := <-lb.got:
				t.Errorf("the registered redirect URI got %v", cb)
			default:
			}
		})
	}
	t.Run("unknown client id", func(t *testing.T) {
		_, challenge := pkce()
		r := v.get(t, authorizePath("contoso")+"?"+authorizeParams(world.NewID(), lb.URI, "query", "s", challenge).Encode())
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "AADSTS700016") || r.Header.Get("Location") != "" {
			t.Errorf("want a 400 page naming AADSTS700016 and no redirect, got %s", r)
		}
	})
	t.Run("single-tenant app on /organizations", func(t *testing.T) {
		_, challenge := pkce()
		r := v.get(t, authorizePath("organizations")+"?"+authorizeParams(desktop, lb.URI, "query", "s", challenge).Encode())
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "AADSTS50194") {
			t.Errorf("want a 400 page naming AADSTS50194, got %s", r)
		}
	})
}

func TestAuthCodeExpired(t *testing.T) {
	t.Parallel()
	clk := newClock()
	v := start(t, nil, world.Alice, clk)
	lb := startLoopback(t)
	verifier, challenge := pkce()
	code := v.autoCode(t, lb, world.DesktopClientID, "form_post", challenge, nil)
	clk.Advance(v.E.World().Tokens.AuthorizationCode + time.Second)
	wantAAD(t, v.token(t, "contoso", codeForm(world.DesktopClientID, code, lb.URI, verifier)), 400, "invalid_grant", 70008)
}

// TestSignInPage drives the sign-in page as a browser would: the page, a wrong password, the right
// one, the form_post page's auto-submitted form, the code exchange.
func TestSignInPage(t *testing.T) {
	t.Parallel()
	v := shared(t, envManual)
	lb := startLoopback(t)
	verifier, challenge := pkce()
	state := rand16()
	r := v.get(t, authorizePath("contoso")+"?"+authorizeParams(world.DesktopClientID, lb.URI, "form_post", state, challenge).Encode())
	if r.Status != http.StatusOK {
		t.Fatalf("authorize: %s", r)
	}
	page := parseHTMLForm(t, r.Body)
	if page.Method != http.MethodPost || page.Fields.Get("txn") == "" || !slices.Contains(page.Buttons["action"], "accept") || !slices.Contains(page.Buttons["action"], "cancel") {
		t.Fatalf("sign-in form %+v: want POST with txn and accept/cancel buttons", page)
	}
	select {
	case cb := <-lb.got:
		t.Fatalf("the redirect URI got %v before anyone signed in", cb)
	default:
	}

	submit := func(f htmlForm, user, password, action string) result {
		vals := url.Values{}
		for k, vs := range f.Fields {
			vals[k] = vs
		}
		vals.Set("username", user)
		vals.Set("password", password)
		vals.Set("action", action)
		return v.postForm(t, f.Action, vals)
	}
	r = submit(page, world.Alice, "not-her-password", "accept")
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "AADSTS50126") {
		t.Fatalf("wrong password: want the page again with AADSTS50126, got %s", r)
	}
	page = parseHTMLForm(t, r.Body)
	if page.Fields.Get("username") != world.Alice {
		t.Errorf("the page forgot the username: %v", page.Fields)
	}
	r = submit(page, world.Alice, "alice-password", "accept")
	if r.Status != http.StatusOK {
		t.Fatalf("sign in: %s", r)
	}
	post := parseHTMLForm(t, r.Body)
	if post.Method != http.MethodPost || post.Action != lb.URI || post.Fields.Get("state") != state || post.Fields.Get("code") == "" {
		t.Fatalf("form_post page %+v: want a POST form to %s with code and state", post, lb.URI)
	}
	if !strings.Contains(string(r.Body), "submit()") {
		t.Error("the form_post page does not submit itself")
	}
	// The browser runs the page's script: it posts the fields to the redirect URI.
	if r := v.postForm(t, post.Action, post.Fields); r.Status != http.StatusOK {
		t.Fatalf("posting to the redirect URI: %s", r)
	}
	cb := lb.wait(t)
	if cb.Method != http.MethodPost || cb.Values.Get("code") != post.Fields.Get("code") || cb.Values.Get("state") != state {
		t.Fatalf("redirect URI got %s %v", cb.Method, cb.Values)
	}
	m := v.mustToken(t, "contoso", codeForm(world.DesktopClientID, cb.Values.Get("code"), lb.URI, verifier))
	c := v.verify(t, str(m, "access_token"))
	wantUserToken(t, v, c, world.Alice, "https://outlook.office.com", "IMAP.AccessAsUser.All", world.DesktopClientID)
	if !slices.Contains(strs(c, "amr"), "pwd") {
		t.Errorf("amr %v lacks pwd", strs(c, "amr"))
	}
}

func TestSignInPageCancel(t *testing.T) {
	t.Parallel()
	v := shared(t, envManual)
	lb := startLoopback(t)
	_, challenge := pkce()
	q := authorizeParams(world.DesktopClientID, lb.URI, "query", "st-cancel", challenge)
	q.Set("login_hint", world.Bob)
	r := v.get(t, authorizePath("contoso")+"?"+q.Encode())
	page := parseHTMLForm(t, r.Body)
	if page.Fields.Get("username") != world.Bob {
		t.Errorf("login_hint %s is not prefilled: %v", world.Bob, page.Fields)
	}
	vals := page.Fields
	vals.Set("action", "cancel")
	r = v.postForm(t, page.Action, vals)
	if r.Status != http.StatusFound {
		t.Fatalf("cancel: want a redirect, got %s", r)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host != lb.URI {
		t.Fatalf("cancel redirects to %q, want %s", r.Header.Get("Location"), lb.URI)
	}
	q = loc.Query()
	if q.Get("error") != "access_denied" || q.Get("state") != "st-cancel" || q.Get("code") != "" || !strings.HasPrefix(q.Get("error_description"), "AADSTS") {
		t.Errorf("cancel redirect carries %v: want error=access_denied, the state, an AADSTS description and no code", q)
	}
	// The transaction is over: the page cannot be used again to sign in.
	vals.Set("action", "accept")
	vals.Set("username", world.Alice)
	vals.Set("password", "alice-password")
	if r := v.postForm(t, page.Action, vals); r.Status == http.StatusFound || strings.Contains(string(r.Body), `name="code"`) {
		t.Errorf("a cancelled sign-in was completed afterwards: %s", r)
	}
}

// ---- refresh tokens ----------------------------------------------------------------------------

func TestRefreshToken(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	desktop := world.DesktopClientID
	rt1 := str(v.mustToken(t, "contoso", ropcForm(desktop, world.Alice, "alice-password", userScopes)), "refresh_token")
	if rt1 == "" {
		t.Fatal("no refresh token")
	}
	m := v.mustToken(t, "contoso", refreshForm(desktop, rt1, userScopes))
	rt2 := str(m, "refresh_token")
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("refresh token not rotated: %q -> %q", rt1, rt2)
	}
	wantUserToken(t, v, v.verify(t, str(m, "access_token")), world.Alice, "https://outlook.office.com", "IMAP.AccessAsUser.All", desktop)

	// One refresh token serves Exchange and Graph.
	m = v.mustToken(t, "contoso", refreshForm(desktop, rt2, "https://graph.microsoft.com/Mail.ReadWrite offline_access"))
	rt3 := str(m, "refresh_token")
	if rt3 == "" || rt3 == rt2 || rt3 == rt1 {
		t.Errorf("refresh token not rotated on the Graph request")
	}
	wantUserToken(t, v, v.verify(t, str(m, "access_token")), world.Alice, "https://graph.microsoft.com", "Mail.ReadWrite", desktop)

	// Entra keeps a redeemed refresh token usable.
	v.mustToken(t, "contoso", refreshForm(desktop, rt1, userScopes))

	wantAAD(t, v.token(t, "contoso", refreshForm(desktop, "0.Agarbage-refresh-token", userScopes)), 400, "invalid_grant", 9002313)
	wantAAD(t, v.token(t, "contoso", refreshForm(desktop, "", userScopes)), 400, "invalid_request", 900144)
	// Another app may not use alice's refresh token, even with its own valid secret.
	f := refreshForm(world.DaemonClientID, rt3, userScopes)
	f.Set("client_secret", v.E.Credentials["daemon"].Secret)
	wantAAD(t, v.token(t, "contoso", f), 400, "invalid_grant", 0)
}

func TestRefreshTokenRevokeRotated(t *testing.T) {
	t.Parallel()
	w := world.Default()
	w.Tokens.RevokeRotatedRefreshTokens = true
	v := start(t, w, "", nil)
	desktop := world.DesktopClientID
	rt1 := str(v.mustToken(t, "contoso", ropcForm(desktop, world.Alice, "alice-password", userScopes)), "refresh_token")
	rt2 := str(v.mustToken(t, "contoso", refreshForm(desktop, rt1, userScopes)), "refresh_token")
	wantAAD(t, v.token(t, "contoso", refreshForm(desktop, rt1, userScopes)), 400, "invalid_grant", 0)
	rt3 := str(v.mustToken(t, "contoso", refreshForm(desktop, rt2, userScopes)), "refresh_token")
	if rt3 == "" || rt3 == rt2 {
		t.Error("the newest refresh token did not rotate")
	}
}

func TestRefreshTokenInactivity(t *testing.T) {
	t.Parallel()
	clk := newClock()
	v := start(t, nil, "", clk)
	desktop := world.DesktopClientID
	idle := v.E.World().Tokens.RefreshTokenInactivity
	rt1 := str(v.mustToken(t, "contoso", ropcForm(desktop, world.Alice, "alice-password", userScopes)), "refresh_token")
	clk.Advance(idle - time.Hour) // used just in time
	rt2 := str(v.mustToken(t, "contoso", refreshForm(desktop, rt1, userScopes)), "refresh_token")
	clk.Advance(idle + time.Hour)
	e := wantAAD(t, v.token(t, "contoso", refreshForm(desktop, rt2, userScopes)), 400, "invalid_grant", 700082)
	if e.Suberror != "bad_token" {
		t.Errorf("suberror %q, want bad_token", e.Suberror)
	}
}

func TestRefreshTokenRevokedSession(t *testing.T) {
	t.Parallel()
	clk := newClock()
	w := world.Default()
	// Revoke-MgUserSignInSession a minute after the sign-in below.
	w.Tenant("contoso").User(world.Alice).RevokedBefore = clk.Now().Add(time.Minute)
	v := start(t, w, "", clk)
	desktop := world.DesktopClientID
	rt := str(v.mustToken(t, "contoso", ropcForm(desktop, world.Alice, "alice-password", userScopes)), "refresh_token")
	clk.Advance(2 * time.Minute)
	wantAAD(t, v.token(t, "contoso", refreshForm(desktop, rt, userScopes)), 400, "invalid_grant", 50173)
	// A new sign-in after the revocation works again.
	rt = str(v.mustToken(t, "contoso", ropcForm(desktop, world.Alice, "alice-password", userScopes)), "refresh_token")
	v.mustToken(t, "contoso", refreshForm(desktop, rt, userScopes))
}

// ---- device code -------------------------------------------------------------------------------

func TestDeviceCodeAutoApprove(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	for _, grant := range []string{"device_code", "urn:ietf:params:oauth:grant-type:device_code"} {
		t.Run(grant, func(t *testing.T) {
			_, dc, _ := deviceCode(t, v, "contoso", world.DesktopClientID)
			f := deviceForm(world.DesktopClientID, dc)
			f.Set("grant_type", grant)
			m := v.mustToken(t, "contoso", f)
			wantUserToken(t, v, v.verify(t, str(m, "access_token")), world.Alice, "https://outlook.office.com", "IMAP.AccessAsUser.All", world.DesktopClientID)
			if str(m, "refresh_token") == "" || str(m, "id_token") == "" || str(m, "client_info") == "" {
				t.Errorf("device-code answer lacks refresh_token, id_token or client_info: %v", m)
			}
			// A device code is good for one token.
			wantAAD(t, v.token(t, "contoso", f), 400, "", 0)
		})
	}
}

func TestDeviceCodeVerificationPage(t *testing.T) {
	t.Parallel()
	v := shared(t, envManual)
	uc, dc, page := deviceCode(t, v, "contoso", world.DesktopClientID)
	wantAAD(t, v.token(t, "contoso", deviceForm(world.DesktopClientID, dc)), 400, "authorization_pending", 70016)

	r := v.get(t, page+"?otc="+uc)
	if r.Status != http.StatusOK {
		t.Fatalf("verification page: %s", r)
	}
	form := parseHTMLForm(t, r.Body)
	if form.Method != http.MethodPost || form.Fields.Get("otc") != uc {
		t.Fatalf("verification form %+v: want POST prefilled with the code", form)
	}
	vals := form.Fields
	vals.Set("username", world.Alice)
	vals.Set("password", "wrong")
	vals.Set("action", "accept")
	r = v.postForm(t, form.Action, vals)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "AADSTS50126") {
		t.Fatalf("wrong password: want the page with AADSTS50126, got %s", r)
	}
	wantAAD(t, v.token(t, "contoso", deviceForm(world.DesktopClientID, dc)), 400, "authorization_pending", 70016)

	vals.Set("otc", strings.ToLower(uc)) // people type codes in any case
	vals.Set("password", "alice-password")
	if r := v.postForm(t, form.Action, vals); r.Status != http.StatusOK || strings.Contains(string(r.Body), "AADSTS") {
		t.Fatalf("sign in on the verification page: %s", r)
	}
	f := deviceForm(world.DesktopClientID, dc)
	f.Set("grant_type", "urn:ietf:params:oauth:grant-type:device_code")
	m := v.mustToken(t, "contoso", f)
	wantUserToken(t, v, v.verify(t, str(m, "access_token")), world.Alice, "https://outlook.office.com", "IMAP.AccessAsUser.All", world.DesktopClientID)
}

func TestDeviceCodeDeclined(t *testing.T) {
	t.Parallel()
	v := shared(t, envManual)
	t.Run("on the page", func(t *testing.T) {
		uc, dc, page := deviceCode(t, v, "contoso", world.DesktopClientID)
		r := v.postForm(t, page, url.Values{"otc": {uc}, "action": {"cancel"}})
		if r.Status != http.StatusOK {
			t.Fatalf("cancel: %s", r)
		}
		wantAAD(t, v.token(t, "contoso", deviceForm(world.DesktopClientID, dc)), 400, "authorization_declined", 0)
	})
	t.Run("DeclineDevice", func(t *testing.T) {
		uc, dc, _ := deviceCode(t, v, "contoso", world.DesktopClientID)
		if err := v.E.Identity.DeclineDevice(uc); err != nil {
			t.Fatal(err)
		}
		wantAAD(t, v.token(t, "contoso", deviceForm(world.DesktopClientID, dc)), 400, "authorization_declined", 0)
		if err := v.E.Identity.ApproveDevice(uc, world.Alice); !errors.Is(err, identity.ErrUnknownUserCode) {
			t.Errorf("approving a declined code: %v, want ErrUnknownUserCode", err)
		}
	})
}

func TestDeviceCodeApproveDevice(t *testing.T) {
	t.Parallel()
	v := shared(t, envManual)
	uc, dc, _ := deviceCode(t, v, "contoso", world.DesktopClientID)
	if err := v.E.Identity.ApproveDevice(uc, world.Bob); err != nil {
		t.Fatal(err)
	}
	m := v.mustToken(t, "contoso", deviceForm(world.DesktopClientID, dc))
	wantUserToken(t, v, v.verify(t, str(m, "access_token")), world.Bob, "https://outlook.office.com", "IMAP.AccessAsUser.All", world.DesktopClientID)
	if err := v.E.Identity.ApproveDevice("NOSUCHCODE", world.Alice); !errors.Is(err, identity.ErrUnknownUserCode) {
		t.Errorf("ApproveDevice of an unknown code: %v", err)
	}
	if err := v.E.Identity.DeclineDevice(uc); !errors.Is(err, identity.ErrUnknownUserCode) {
		t.Errorf("DeclineDevice of a used code: %v", err)
	}
}

func TestDeviceCodeExpired(t *testing.T) {
	t.Parallel()
	clk := newClock()
	v := start(t, nil, "", clk)
	uc, dc, page := deviceCode(t, v, "contoso", world.DesktopClientID)
	clk.Advance(v.E.World().Tokens.DeviceCode + time.Second)
	wantAAD(t, v.token(t, "contoso", deviceForm(world.DesktopClientID, dc)), 400, "expired_token", 70020)
	r := v.postForm(t, page, url.Values{"otc": {uc}, "username": {world.Alice}, "password": {"alice-password"}, "action": {"accept"}})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `id="error"`) {
		t.Errorf("the page accepted an expired code: %s", r)
	}
	if err := v.E.Identity.ApproveDevice(uc, world.Alice); !errors.Is(err, identity.ErrUnknownUserCode) {
		t.Errorf("ApproveDevice of an expired code: %v", err)
	}
}

func TestDeviceCodeSlowDown(t *testing.T) {
	t.Parallel()
	clk := newClock()
	w := world.Default()
	w.Tokens.SlowDownBelow = 5 * time.Second
	v := start(t, w, "", clk)
	_, dc, _ := deviceCode(t, v, "contoso", world.DesktopClientID)
	f := deviceForm(world.DesktopClientID, dc)
	wantAAD(t, v.token(t, "contoso", f), 400, "authorization_pending", 70016)
	wantAAD(t, v.token(t, "contoso", f), 400, "slow_down", 0)
	clk.Advance(6 * time.Second)
	wantAAD(t, v.token(t, "contoso", f), 400, "authorization_pending", 70016)
}

func TestDeviceCodeConfidentialApp(t *testing.T) {
	t.Parallel()
	v := shared(t, envManual)
	// The daemon does not allow public client flows: it must authenticate, so Entra asks for a credential.
	r := v.postForm(t, deviceCodePath("contoso"), url.Values{"client_id": {world.DaemonClientID}, "scope": {userScopes}})
	if r.Status != http.StatusOK {
		wantAAD(t, r, 401, "invalid_client", 7000218)
		return
	}
	dc := str(r.JSON(t), "device_code")
	wantAAD(t, v.token(t, "contoso", deviceForm(world.DaemonClientID, dc)), 401, "invalid_client", 7000218)
}

func TestDeviceCodeErrors(t *testing.T) {
	t.Parallel()
	v := shared(t, envManual)
	wantAAD(t, v.postForm(t, deviceCodePath("organizations"), url.Values{"client_id": {world.DesktopClientID}, "scope": {userScopes}}), 400, "invalid_request", 50194)
	wantAAD(t, v.postForm(t, deviceCodePath("contoso"), url.Values{"client_id": {world.NewID()}, "scope": {userScopes}}), 400, "", 700016)
	wantAAD(t, v.postForm(t, deviceCodePath("contoso"), url.Values{"scope": {userScopes}}), 400, "invalid_request", 900144)
	wantAAD(t, v.postForm(t, deviceCodePath("contoso"), url.Values{"client_id": {world.DesktopClientID}}), 400, "invalid_request", 900144)
	wantAAD(t, v.token(t, "contoso", deviceForm(world.DesktopClientID, "DAQABAAEAAAnot-a-device-code")), 400, "", 0)
	wantAAD(t, v.token(t, "contoso", deviceForm(world.DesktopClientID, "")), 400, "invalid_request", 900144)
	// Another app cannot redeem the desktop app's device code.
	uc, dc, _ := deviceCode(t, v, "contoso", world.DesktopClientID)
	if err := v.E.Identity.ApproveDevice(uc, world.Alice); err != nil {
		t.Fatal(err)
	}
	f := deviceForm(world.DaemonClientID, dc)
	f.Set("client_secret", v.E.Credentials["daemon"].Secret)
	wantAAD(t, v.token(t, "contoso", f), 400, "", 0)
}

// ---- password (ROPC) ---------------------------------------------------------------------------

func TestPassword(t *testing.T) {
	t.Parallel()
	v := shared(t, envRich)
	desktop := world.DesktopClientID
	t.Run("success", func(t *testing.T) {
		m := v.mustToken(t, "contoso", ropcForm(desktop, world.Alice, "alice-password", userScopes))
		c := v.verify(t, str(m, "access_token"))
		wantUserToken(t, v, c, world.Alice, "https://outlook.office.com", "IMAP.AccessAsUser.All", desktop)
		if str(m, "refresh_token") == "" || str(m, "id_token") == "" {
			t.Error("ROPC with offline_access openid: want a refresh token and an ID token")
		}
	})
	t.Run(".default asks for every consented Exchange permission", func(t *testing.T) {
		m := v.mustToken(t, "contoso", ropcForm(desktop, world.Alice, "alice-password", "https://outlook.office.com/.default offline_access"))
		c := v.verify(t, str(m, "access_token"))
		for _, p := range []string{"IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "SMTP.Send"} {
			wantUserToken(t, v, c, world.Alice, "https://outlook.office.com", p, desktop)
		}
	})
	t.Run("unprefixed scope gives a Graph token", func(t *testing.T) {
		m := v.mustToken(t, "contoso", ropcForm(v.clientID(mistakeApp), world.Alice, "alice-password", "IMAP.AccessAsUser.All offline_access"))
		c := v.verify(t, str(m, "access_token"))
		wantUserToken(t, v, c, world.Alice, "https://graph.microsoft.com", "IMAP.AccessAsUser.All", v.clientID(mistakeApp))
	})
	t.Run("multi-tenant app on /organizations signs in the user's home tenant", func(t *testing.T) {
		m := v.mustToken(t, "organizations", ropcForm(v.clientID(multiApp), frank, frankPassword, userScopes))
		c := v.verify(t, str(m, "access_token"))
		wantUserToken(t, v, c, frank, "https://outlook.office.com", "IMAP.AccessAsUser.All", v.clientID(multiApp))
		if str(c, "tid") == world.DefaultTenantID {
			t.Error("frank got a contoso token")
		}
	})
	for _, tc := range []struct {
		name, tenant string
		form         url.Values
		status       int
		err          string
		code         int
		mentions     string
		suberror     string
	}{
		{"wrong password", "contoso", ropcForm(desktop, world.Alice, "nope", userScopes), 400, "invalid_grant", 50126, "", ""},
		{"unknown user", "contoso", ropcForm(desktop, "nobody@contoso.test", "x", userScopes), 400, "invalid_grant", 50034, "", ""},
		{"user of another tenant", "contoso", ropcForm(desktop, frank, frankPassword, userScopes), 400, "invalid_grant", 50020, frank, ""},
		{"MFA required", "contoso", ropcForm(desktop, carol, carolPassword, userScopes), 400, "invalid_grant", 50076, "", "basic_action"},
		{"MFA user with a wrong password", "contoso", ropcForm(desktop, carol, "nope", userScopes), 400, "invalid_grant", 50126, "", ""},
		{"app not consented", "contoso", ropcForm(v.clientID(legacyApp), world.Alice, "alice-password", userScopes), 400, "invalid_grant", 65001, v.clientID(legacyApp), "consent_required"},
		{"confidential app without a secret", "contoso", ropcForm(world.DaemonClientID, world.Alice, "alice-password", userScopes), 401, "invalid_client", 7000218, "", ""},
		{"single-tenant app on /organizations", "organizations", ropcForm(desktop, world.Alice, "alice-password", userScopes), 400, "invalid_request", 50194, desktop, ""},
		{"single-tenant app on /common", "common", ropcForm(desktop, world.Alice, "alice-password", userScopes), 400, "invalid_request", 50194, desktop, ""},
		{"missing password", "contoso", ropcForm(desktop, world.Alice, "", userScopes), 400, "invalid_request", 900144, "password", ""},
		{"unknown scope", "contoso", ropcForm(desktop, world.Alice, "alice-password", "https://outlook.office.com/Nope.Nothing"), 400, "invalid_scope", 70011, "Nope.Nothing", ""},
		{"two resources", "contoso", ropcForm(desktop, world.Alice, "alice-password", imapScope+" https://graph.microsoft.com/Mail.Send"), 400, "invalid_scope", 28000, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := wantAAD(t, v.token(t, tc.tenant, tc.form), tc.status, tc.err, tc.code)
			if tc.mentions != "" && !strings.Contains(e.Description, tc.mentions) {
				t.Errorf("AADSTS%d does not mention %q: %s", tc.code, tc.mentions, e.Description)
			}
			if e.Suberror != tc.suberror {
				t.Errorf("suberror %q, want %q", e.Suberror, tc.suberror)
			}
		})
	}
}

// ---- faults ------------------------------------------------------------------------------------

func TestFaultStatus(t *testing.T) {
	t.Parallel()
	w := world.Default()
	w.Faults = []world.Fault{{Endpoint: "token", Status: 503, Times: 1}}
	v := start(t, w, "", nil)
	f := v.secretForm("daemon", exchangeAppDef)
	wantAAD(t, v.token(t, "contoso", f), 503, "", 0)
	v.mustToken(t, "contoso", f)
	// Other endpoints were never affected.
	if r := v.get(t, "/contoso/v2.0/.well-known/openid-configuration"); r.Status != http.StatusOK {
		t.Errorf("discovery: %s", r)
	}
}

func TestFaultDrop(t *testing.T) {
	t.Parallel()
	w := world.Default()
	w.Faults = []world.Fault{{Endpoint: "token", Drop: true, Times: 1}}
	v := start(t, w, "", nil)
	f := v.secretForm("daemon", exchangeAppDef)
	resp, err := v.C.PostForm(v.url(tokenPath("contoso")), f)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a dropped connection answered %s", resp.Status)
	}
	v.mustToken(t, "contoso", f)
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	const latency = 300 * time.Millisecond
	w := world.Default()
	w.Faults = []world.Fault{{Endpoint: "token", Latency: latency}}
	v := start(t, w, "", nil)
	begin := time.Now()
	v.mustToken(t, "contoso", v.secretForm("daemon", exchangeAppDef))
	if d := time.Since(begin); d < latency {
		t.Errorf("the answer came after %v, before the %v latency", d, latency)
	}
}

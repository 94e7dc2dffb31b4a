package emulator_test

// Shared helpers of the emulator's tests: emulators to test against, an independent HTTPS client that
// trusts only the emulator's CA, token requests, JWKS verification, Entra's error shape, client
// assertions, a loopback redirect listener and a tiny HTML form reader. Every test file of this package
// uses these; nothing here is duplicated elsewhere.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// ---- clock -------------------------------------------------------------------------------------

// clock is a controllable time source for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// ---- emulators ---------------------------------------------------------------------------------

// env is a running emulator and an independent client for it.
type env struct {
	E     *emulator.Emulator
	C     *http.Client // trusts only the emulator's CA (built from CAPEM), never follows redirects
	Clock *clock       // nil when the emulator runs on real time
}

func (v *env) now() time.Time {
	if v.Clock != nil {
		return v.Clock.Now()
	}
	return time.Now()
}

// caClient is an HTTPS client whose only trusted root is the PEM CA the emulator wrote; it does not
// follow redirects, so tests see each answer as a browser would before it moves on.
func caClient(t testing.TB, caPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 4,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func newEnv(t testing.TB, opts emulator.Options, c *clock) (*env, error) {
	if c != nil {
		opts.Now = c.Now
	}
	e, err := emulator.Start(context.Background(), opts)
	if err != nil {
		return nil, err
	}
	return &env{E: e, C: caClient(t, e.CAPEM()), Clock: c}, nil
}

// start runs an emulator for one test (world nil: the default world; c nil: real time).
func start(t *testing.T, w *world.World, autoApprove string, c *clock) *env {
	t.Helper()
	v, err := newEnv(t, emulator.Options{World: w, AutoApprove: autoApprove}, c)
	if err != nil {
		t.Fatalf("emulator.Start: %v", err)
	}
	t.Cleanup(func() {
		v.C.CloseIdleConnections()
		if err := v.E.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return v
}

// Shared emulators, started on first use and closed by TestMain. Tests that use them must not change
// their World or clock.
var (
	sharedMu   sync.Mutex
	sharedEnvs = map[string]*env{}
)

const (
	envAuto   = "auto"   // default world, AutoApprove alice
	envManual = "manual" // default world, people sign in on the pages
	envRich   = "rich"   // richWorld(), no AutoApprove
)

func shared(t *testing.T, kind string) *env {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if v := sharedEnvs[kind]; v != nil {
		return v
	}
	opts := emulator.Options{}
	switch kind {
	case envAuto:
		opts.AutoApprove = world.Alice
	case envManual:
	case envRich:
		opts.World = richWorld()
	default:
		t.Fatalf("unknown shared emulator %q", kind)
	}
	v, err := newEnv(t, opts, nil)
	if err != nil {
		t.Fatalf("emulator.Start(%s): %v", kind, err)
	}
	sharedEnvs[kind] = v
	return v
}

func TestMain(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	for _, v := range sharedEnvs {
		_ = v.E.Close()
	}
	sharedMu.Unlock()
	os.Exit(code)
}

// Names of the extra things richWorld adds to the default world.
const (
	carol          = "carol@contoso.test" // MFA required
	carolPassword  = "carol-password"
	frank          = "frank@fabrikam.test" // a user of another tenant
	frankPassword  = "frank-password"
	legacyApp      = "legacy"             // public, not consented
	mistakeApp     = "mistake"            // public, consented to Graph's IMAP.AccessAsUser.All
	unconsentedApp = "unconsented-daemon" // confidential, application permissions not admin-consented
	expiredApp     = "expired-daemon"     // confidential, only an expired secret
	expiredSecret  = "exp8Q~expired-secret-value-000000000000"
	multiApp       = "multi"        // public, multi-tenant
	multiDaemon    = "multi-daemon" // confidential, multi-tenant, delegated permissions consented
)

// richWorld is the default world plus a second tenant and the odd apps and users that errors need.
func richWorld() *world.World {
	w := world.Default()
	contoso := w.Tenant(world.DefaultTenantName)
	contoso.Users = append(contoso.Users, &world.User{UPN: carol, Password: carolPassword, MFARequired: true})
	w.Tenants = append(w.Tenants, &world.Tenant{
		Name: "fabrikam", DisplayName: "Fabrikam", Domains: []string{"fabrikam.test"},
		Users: []*world.User{{UPN: frank, Password: frankPassword}},
	})
	delegated := append(append([]string{}, world.ExchangeDelegated...), world.GraphMailDelegated...)
	w.Apps = append(w.Apps,
		&world.App{Name: legacyApp, DisplayName: "Legacy Mail Client", Tenant: "contoso", Public: true,
			RedirectURIs: []string{"http://localhost"}, Delegated: delegated, Consented: false},
		&world.App{Name: mistakeApp, DisplayName: "Graph IMAP Mistake", Tenant: "contoso", Public: true,
			RedirectURIs: []string{"http://localhost"}, Consented: true,
			// The portal lists IMAP.AccessAsUser.All under Microsoft Graph too; this app took that one.
			Delegated: []string{world.GraphResource + "/IMAP.AccessAsUser.All"}},
		&world.App{Name: unconsentedApp, DisplayName: "Unconsented Daemon", Tenant: "contoso",
			Application: append([]string{}, world.ExchangeApplication...), AdminConsented: false},
		&world.App{Name: expiredApp, DisplayName: "Expired Daemon", Tenant: "contoso",
			Application: append([]string{}, world.ExchangeApplication...), AdminConsented: true,
			Secrets: []world.Secret{{Value: expiredSecret, Expires: time.Now().Add(-24 * time.Hour)}}},
		&world.App{Name: multiApp, DisplayName: "Multi-tenant Mail", Tenant: "contoso", Public: true, MultiTenant: true,
			RedirectURIs: []string{"http://localhost"}, Delegated: delegated, Consented: true},
		&world.App{Name: multiDaemon, DisplayName: "Multi-tenant Web App", Tenant: "contoso", MultiTenant: true,
			RedirectURIs: []string{"https://app.example/callback"}, Delegated: delegated, Consented: true},
	)
	return w
}

// ---- requests ----------------------------------------------------------------------------------

// result is an HTTP answer, read in full.
type result struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r result) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer (%d) is not JSON: %v\n%s", r.Status, err, r.Body)
	}
	return m
}

func (r result) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

func do(t testing.TB, c *http.Client, req *http.Request) result {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", req.Method, req.URL, err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// url makes an absolute URL from a path on the emulator (or returns an absolute URL unchanged).
func (v *env) url(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return v.E.Authority() + path
}

func (v *env) get(t testing.TB, path string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, v.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, v.C, req)
}

// post sends a body with a content type ("" for none).
func (v *env) post(t testing.TB, path, contentType string, body []byte) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.url(path), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, v.C, req)
}

func (v *env) postForm(t testing.TB, path string, form url.Values) result {
	t.Helper()
	return v.post(t, path, "application/x-www-form-urlencoded", []byte(form.Encode()))
}

func tokenPath(tenant string) string      { return "/" + tenant + "/oauth2/v2.0/token" }
func deviceCodePath(tenant string) string { return "/" + tenant + "/oauth2/v2.0/devicecode" }
func authorizePath(tenant string) string  { return "/" + tenant + "/oauth2/v2.0/authorize" }

// token POSTs a token request to a tenant's token endpoint.
func (v *env) token(t testing.TB, tenant string, form url.Values) result {
	t.Helper()
	return v.postForm(t, tokenPath(tenant), form)
}

// mustToken is a token request that must succeed; it returns the JSON answer.
func (v *env) mustToken(t testing.TB, tenant string, form url.Values) map[string]any {
	t.Helper()
	r := v.token(t, tenant, form)
	if r.Status != http.StatusOK {
		t.Fatalf("token request (%s) refused: %s", form.Get("grant_type"), r)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("token answer Cache-Control %q lacks no-store (RFC 6749 §5.1)", cc)
	}
	m := r.JSON(t)
	if m["token_type"] != "Bearer" {
		t.Errorf("token_type = %v, want Bearer", m["token_type"])
	}
	if n, _ := m["expires_in"].(float64); n <= 0 {
		t.Errorf("expires_in = %v, want a positive number of seconds", m["expires_in"])
	}
	// Every token the emulator issues verifies against its JWKS.
	for _, k := range []string{"access_token", "id_token"} {
		if tok, ok := m[k].(string); ok {
			v.verify(t, tok)
		} else if k == "access_token" {
			t.Errorf("answer has no access_token: %v", m)
		}
	}
	return m
}

// secretForm is a client-credentials request with the daemon's secret.
func (v *env) secretForm(app, scope string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "client_id": {v.clientID(app)},
		"client_secret": {v.E.Credentials[app].Secret}, "scope": {scope},
	}
}

func (v *env) clientID(app string) string { return v.E.World().App(app).ClientID }

func ropcForm(clientID, user, password, scope string) url.Values {
	return url.Values{
		"grant_type": {"password"}, "client_id": {clientID}, "username": {user}, "password": {password}, "scope": {scope},
	}
}

const (
	imapScope      = "https://outlook.office.com/IMAP.AccessAsUser.All"
	userScopes     = imapScope + " openid profile offline_access"
	exchangeAppDef = "https://outlook.office365.com/.default"
	graphAppDef    = "https://graph.microsoft.com/.default"
)

// ---- tokens ------------------------------------------------------------------------------------

// jwks fetches a tenant's signing keys over HTTPS as a client library does: discovery document, then
// its jwks_uri. Each key's x5c certificate must hold the same public key as n and e.
func (v *env) jwks(t testing.TB, tenant string) map[string]*rsa.PublicKey {
	t.Helper()
	d := v.get(t, "/"+tenant+"/v2.0/.well-known/openid-configuration")
	if d.Status != http.StatusOK {
		t.Fatalf("discovery for %s: %s", tenant, d)
	}
	uri, _ := d.JSON(t)["jwks_uri"].(string)
	if uri == "" {
		t.Fatalf("discovery for %s has no jwks_uri", tenant)
	}
	r := v.get(t, uri)
	if r.Status != http.StatusOK {
		t.Fatalf("JWKS %s: %s", uri, r)
	}
	var set struct {
		Keys []struct {
			Kty, Use, Kid, X5t, N, E string
			X5c                      []string
		}
	}
	if err := json.Unmarshal(r.Body, &set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" {
			t.Fatalf("JWKS key %+v: want kty RSA and a kid", k)
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("JWKS key %s: n or e is not base64url: %v %v", k.Kid, err1, err2)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if len(k.X5c) == 0 {
			t.Fatalf("JWKS key %s has no x5c", k.Kid)
		}
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			t.Fatalf("JWKS key %s: x5c is not base64: %v", k.Kid, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("JWKS key %s: x5c: %v", k.Kid, err)
		}
		if !pub.Equal(cert.PublicKey) {
			t.Fatalf("JWKS key %s: x5c certificate's key differs from n/e", k.Kid)
		}
		if sum := sha1.Sum(der); k.X5t != base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("JWKS key %s: x5t %q is not the SHA-1 thumbprint of x5c", k.Kid, k.X5t)
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		t.Fatal("JWKS has no keys")
	}
	return keys
}

// verify checks a token's RS256 signature against the JWKS of the tenant it names (tid), fetched over
// HTTPS, and its time claims against the emulator's clock; it returns the claims.
func (v *env) verify(t testing.TB, token string) jwt.MapClaims {
	t.Helper()
	unverified, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("token is not a JWT: %v", err)
	}
	tid, _ := unverified.Claims.(jwt.MapClaims)["tid"].(string)
	if tid == "" {
		t.Fatal("token has no tid")
	}
	keys := v.jwks(t, tid)
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(v.now),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	tok, err := p.Parse(token, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		k := keys[kid]
		if k == nil {
			return nil, fmt.Errorf("kid %q is not in the JWKS", kid)
		}
		if x5t, _ := tok.Header["x5t"].(string); x5t != kid {
			return nil, fmt.Errorf("header x5t %q differs from kid %q", x5t, kid)
		}
		return k, nil
	})
	if err != nil {
		t.Fatalf("token does not verify against the JWKS: %v", err)
	}
	return tok.Claims.(jwt.MapClaims)
}

func str(c jwt.MapClaims, name string) string { s, _ := c[name].(string); return s }

func strs(c jwt.MapClaims, name string) []string {
	var out []string
	if l, ok := c[name].([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func wantClaim(t testing.TB, c jwt.MapClaims, name, want string) {
	t.Helper()
	if got := str(c, name); got != want {
		t.Errorf("claim %s = %q, want %q", name, got, want)
	}
}

func wantNoClaim(t testing.TB, c jwt.MapClaims, names ...string) {
	t.Helper()
	for _, n := range names {
		if v, ok := c[n]; ok {
			t.Errorf("claim %s = %v, want none", n, v)
		}
	}
}

func wantRoles(t testing.TB, c jwt.MapClaims, want ...string) {
	t.Helper()
	roles := strs(c, "roles")
	for _, w := range want {
		if !slices.Contains(roles, w) {
			t.Errorf("roles %v lack %s", roles, w)
		}
	}
}

// ---- Entra's error shape -----------------------------------------------------------------------

var (
	guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	aadRE  = regexp.MustCompile(`^AADSTS(\d+): `)
)

// aadErr is an error answer decoded.
type aadErr struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	Timestamp     string `json:"timestamp"`
	ErrorURI      string `json:"error_uri"`
	Suberror      string `json:"suberror"`
}

// wantAAD asserts that an answer is Entra's error JSON with this status, OAuth error (any when "")
// and AADSTS code (any, but consistent, when 0), and returns it.
func wantAAD(t testing.TB, r result, status int, oauthErr string, code int) aadErr {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d (AADSTS%d): %s", r.Status, status, code, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatalf("error body is not a JSON object: %v\n%s", err, r.Body)
	}
	for _, k := range []string{"error", "error_description", "error_codes", "trace_id", "correlation_id", "timestamp", "error_uri"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("error body lacks %q: %s", k, r.Body)
		}
	}
	var e aadErr
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body has the wrong types: %v\n%s", err, r.Body)
	}
	if oauthErr != "" && e.Error != oauthErr {
		t.Errorf("error = %q, want %q (%s)", e.Error, oauthErr, e.Description)
	}
	m := aadRE.FindStringSubmatch(e.Description)
	if m == nil {
		t.Fatalf("error_description does not begin with AADSTSnnnnn: %q", e.Description)
	}
	if code == 0 {
		fmt.Sscan(m[1], &code)
	}
	if !strings.HasPrefix(e.Description, fmt.Sprintf("AADSTS%d: ", code)) {
		t.Errorf("error_description begins %q, want AADSTS%d: (%s)", m[0], code, e.Description)
	}
	if len(e.Codes) != 1 || e.Codes[0] != code {
		t.Errorf("error_codes = %v, want [%d]", e.Codes, code)
	}
	if !guidRE.MatchString(e.TraceID) || !guidRE.MatchString(e.CorrelationID) {
		t.Errorf("trace_id %q / correlation_id %q are not GUIDs", e.TraceID, e.CorrelationID)
	}
	if _, err := time.Parse("2006-01-02 15:04:05Z", e.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", e.Timestamp, err)
	}
	for _, part := range []string{"Trace ID: " + e.TraceID, "Correlation ID: " + e.CorrelationID, "Timestamp: " + e.Timestamp} {
		if !strings.Contains(e.Description, part) {
			t.Errorf("error_description lacks %q: %q", part, e.Description)
		}
	}
	if u, err := url.Parse(e.ErrorURI); err != nil || u.Query().Get("code") != fmt.Sprint(code) {
		t.Errorf("error_uri %q does not name code %d", e.ErrorURI, code)
	}
	return e
}

// ---- client assertions -------------------------------------------------------------------------

// certKey is a certificate and its RSA key.
type certKey struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// parseCertPEM reads the certificate + PKCS#8 key PEM the emulator generates.
func parseCertPEM(t testing.TB, data []byte) certKey {
	t.Helper()
	var ck certKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			ck.Cert = c
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			ck.Key = k.(*rsa.PrivateKey)
		}
	}
	if ck.Cert == nil || ck.Key == nil {
		t.Fatal("CertPEM lacks a certificate or a PKCS#8 key")
	}
	return ck
}

// newCertKey is a self-signed certificate no app has registered.
func newCertKey(t testing.TB) certKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "stranger"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return certKey{Cert: cert, Key: key}
}

// x5tS256 is the SHA-256 thumbprint as MSAL writes it: standard base64 with padding.
func x5tS256(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return base64.StdEncoding.EncodeToString(s[:])
}

// x5tSHA1 is the SHA-1 thumbprint as RFC 7515 writes it: base64url without padding.
func x5tSHA1(c *x509.Certificate) string {
	s := sha1.Sum(c.Raw)
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func assertionClaims(clientID, aud string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"aud": aud, "iss": clientID, "sub": clientID, "jti": rand.Text(),
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
}

// signAssertion signs claims with key, naming cert in the header as thumbHeader ("x5t#S256" with
// MSAL's encoding, or "x5t").
func signAssertion(t testing.TB, method jwt.SigningMethod, key crypto.Signer, cert *x509.Certificate, thumbHeader string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	switch thumbHeader {
	case "x5t#S256":
		tok.Header["x5t#S256"] = x5tS256(cert)
	case "x5t":
		tok.Header["x5t"] = x5tSHA1(cert)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertionForm(clientID, assertion, scope string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
}

// ---- authorization code ------------------------------------------------------------------------

// pkce is an RFC 7636 verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// callback is one request a redirect URI received.
type callback struct {
	Method string
	Values url.Values
}

// loopback is a redirect URI http://localhost:PORT served by the test, like a native app's listener.
type loopback struct {
	URI string
	got chan callback
}

func startLoopback(t testing.TB) *loopback {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &loopback{URI: fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port), got: make(chan callback, 16)}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		lb.got <- callback{Method: r.Method, Values: r.Form}
		fmt.Fprint(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return lb
}

func (lb *loopback) wait(t testing.TB) callback {
	t.Helper()
	select {
	case cb := <-lb.got:
		return cb
	case <-time.After(10 * time.Second):
		t.Fatal("the redirect URI received nothing")
		return callback{}
	}
}

// authorizeParams is a PKCE authorization request of the desktop app for alice's mail.
func authorizeParams(clientID, redirectURI, mode, state, challenge string) url.Values {
	return url.Values{
		"client_id": {clientID}, "response_type": {"code"}, "redirect_uri": {redirectURI},
		"response_mode": {mode}, "scope": {userScopes}, "state": {state},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
}

func codeForm(clientID, code, redirectURI, verifier string) url.Values {
	return url.Values{
		"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}, "scope": {userScopes}, "client_info": {"1"},
	}
}

// ---- HTML pages --------------------------------------------------------------------------------

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<(?:input|button)\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*"([^"]*)"`)
)

// htmlForm is the first form of a page: its method, action and the fields a browser would send
// (inputs with their values; buttons are listed separately).
type htmlForm struct {
	Method, Action string
	Fields         url.Values
	Buttons        url.Values
}

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}

func parseHTMLForm(t testing.TB, page []byte) htmlForm {
	t.Helper()
	m := formRE.FindSubmatch(page)
	if m == nil {
		t.Fatalf("the page has no form:\n%s", page)
	}
	fa := attrs(string(m[1]))
	f := htmlForm{Method: strings.ToUpper(fa["method"]), Action: fa["action"], Fields: url.Values{}, Buttons: url.Values{}}
	for _, in := range inputRE.FindAllSubmatch(m[2], -1) {
		a := attrs(string(in[1]))
		if a["name"] == "" {
			continue
		}
		if strings.HasPrefix(strings.ToLower(string(in[0])), "<button") {
			f.Buttons.Add(a["name"], a["value"])
		} else {
			f.Fields.Set(a["name"], a["value"])
		}
	}
	return f
}

// autoCode runs an authorization request that the AutoApprove user completes at once, and returns the
// code the emulator delivered to the loopback redirect URI (after checking the state came back).
func (v *env) autoCode(t testing.TB, lb *loopback, clientID, mode, challenge string, params url.Values) string {
	t.Helper()
	state := rand.Text()
	q := authorizeParams(clientID, lb.URI, mode, state, challenge)
	for k, vs := range params {
		q[k] = vs
	}
	r := v.get(t, authorizePath("contoso")+"?"+q.Encode())
	if r.Status != http.StatusOK {
		t.Fatalf("authorize: %s", r)
	}
	cb := lb.wait(t)
	if got := cb.Values.Get("state"); got != state {
		t.Fatalf("state %q came back as %q", state, got)
	}
	code := cb.Values.Get("code")
	if code == "" {
		t.Fatalf("the redirect carried no code: %v", cb.Values)
	}
	return code
}

func (v *env) userOID(upn string) string { return v.E.World().TenantForUPN(upn).User(upn).ObjectID }

// ---- token checks and flows shared by the test files ---------------------------------------

// wantAppToken checks the claims of an app-only token of the daemon (or another app) in contoso.
func wantAppToken(t *testing.T, v *env, c jwt.MapClaims, app, aud, appidacr string) {
	t.Helper()
	contoso := v.E.World().Tenant("contoso")
	wantClaim(t, c, "aud", aud)
	wantClaim(t, c, "appid", v.clientID(app))
	wantClaim(t, c, "appidacr", appidacr)
	wantClaim(t, c, "oid", contoso.EnterpriseApps[v.clientID(app)])
	wantClaim(t, c, "tid", world.DefaultTenantID)
	wantClaim(t, c, "ver", "1.0")
	wantClaim(t, c, "iss", "https://sts.windows.net/"+world.DefaultTenantID+"/")
	wantNoClaim(t, c, "upn", "scp", "unique_name")
	if str(c, "oid") == "" {
		t.Error("the service principal has no object id")
	}
}

// wantUserToken checks a delegated token for upn through the desktop app.
func wantUserToken(t *testing.T, v *env, c jwt.MapClaims, upn, aud, scp, clientID string) {
	t.Helper()
	tid := v.E.World().TenantForUPN(upn).ID
	wantClaim(t, c, "aud", aud)
	wantClaim(t, c, "upn", upn)
	wantClaim(t, c, "unique_name", upn)
	wantClaim(t, c, "oid", v.userOID(upn))
	wantClaim(t, c, "tid", tid)
	wantClaim(t, c, "appid", clientID)
	wantClaim(t, c, "appidacr", "0")
	wantClaim(t, c, "ver", "1.0")
	wantClaim(t, c, "iss", "https://sts.windows.net/"+tid+"/")
	if !slices.Contains(strings.Fields(str(c, "scp")), scp) {
		t.Errorf("scp %q lacks %s", str(c, "scp"), scp)
	}
	wantNoClaim(t, c, "roles")
}

func rand16() string { return world.NewID()[:16] }

func refreshForm(clientID, rt, scope string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}, "scope": {scope}, "client_info": {"1"}}
}

// deviceCode asks for a device code and checks the answer's fields.
func deviceCode(t *testing.T, v *env, tenant, clientID string) (userCode, deviceCode, verificationURI string) {
	t.Helper()
	r := v.postForm(t, deviceCodePath(tenant), url.Values{"client_id": {clientID}, "scope": {userScopes}})
	if r.Status != http.StatusOK {
		t.Fatalf("devicecode: %s", r)
	}
	m := r.JSON(t)
	userCode, deviceCode, verificationURI = str(m, "user_code"), str(m, "device_code"), str(m, "verification_uri")
	if userCode == "" || deviceCode == "" || userCode == deviceCode {
		t.Fatalf("devicecode answer %v: want distinct user_code and device_code", m)
	}
	if verificationURI != v.E.Authority()+"/devicelogin" {
		t.Errorf("verification_uri = %q", verificationURI)
	}
	if m["expires_in"] != v.E.World().Tokens.DeviceCode.Seconds() || m["interval"] != v.E.World().Tokens.DevicePollInterval.Seconds() {
		t.Errorf("expires_in %v, interval %v: want %v and %v", m["expires_in"], m["interval"], v.E.World().Tokens.DeviceCode.Seconds(), v.E.World().Tokens.DevicePollInterval.Seconds())
	}
	if msg := str(m, "message"); !strings.Contains(msg, userCode) || !strings.Contains(msg, verificationURI) {
		t.Errorf("message %q does not tell the user the code and the page", msg)
	}
	return userCode, deviceCode, verificationURI
}

func deviceForm(clientID, deviceCode string) url.Values {
	return url.Values{"grant_type": {"device_code"}, "client_id": {clientID}, "device_code": {deviceCode}, "client_info": {"1"}, "scope": {userScopes}}
}

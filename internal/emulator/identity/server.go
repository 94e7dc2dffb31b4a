// Package identity is the emulator's Microsoft identity platform (Entra ID v2 endpoints): discovery
// (v2, and the v1 document token validators read), JWKS, instance discovery, home-realm discovery,
// authorize (with a sign-in and consent page), token (authorization code with PKCE, refresh token with
// rotation, client credentials with secret or certificate assertion, device code, password), and the
// device-code endpoint with its verification page. It answers as Entra does, byte for byte where the
// wire format is known, so MSAL (Go, Python, Node) and other clients run against it unmodified. Grants
// it has handed out follow runtime changes of the World: each redemption reads the World as it is now.
//
// It serves HTTP only through Handler; TLS and listening belong to the emulator package. It must never
// log a secret, password, code or token (logs carry client ids, tenants and error codes only).
package identity

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// maxBody bounds request bodies: a certificate assertion with an x5c chain is a few KB; Entra refuses
// far smaller bodies than this too.
const maxBody = 64 << 10

// Config configures a Server.
type Config struct {
	// World is the organisation, read at each request so that runtime changes apply at once.
	World *world.Live
	// Key signs tokens; Cert is its self-signed certificate, published in the JWKS (x5c, x5t).
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
	// AutoApprove signs this user in and consents at once for interactive and device-code logins.
	AutoApprove string
	// Now is the clock (tests move it to expire tokens); nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
	// Events records every token issued or refused (nil: none).
	Events *events.Log
	// CAPEM is the CA of the emulator's TLS certificates, served at /emulator/ca.pem for clients that
	// cannot read the data directory (a CI job beside a service container).
	CAPEM []byte
	// Client makes the server-side redirect of an auto-approved interactive login to a loopback
	// redirect URI (nil: a plain client with a timeout).
	Client *http.Client
}

// Server is the identity platform. Its state (codes, refresh tokens, device codes, consents) lives in
// memory for the life of the process.
type Server struct {
	live    *world.Live
	events  *events.Log
	key     *rsa.PrivateKey
	cert    *x509.Certificate
	kid     string
	now     func() time.Time
	log     *slog.Logger
	client  *http.Client
	mux     *http.ServeMux
	autoUPN string
	caPEM   []byte

	mu       sync.Mutex
	codes    map[string]*authCode
	refresh  map[string]*refreshGrant
	devices  map[string]*deviceGrant // by device_code
	userCode map[string]*deviceGrant // by user_code
	pending  map[string]*pendingLogin
	consents map[string]map[string]bool // user oid + client id -> granted permissions
	faultHit map[string]int             // requests seen per fault, by Fault.ID
	counts   map[string]int64           // requests per endpoint, for tests and benchmarks

	mintMu sync.Mutex
	minted []string // every token and code issued, for Minted
}

// world is the World as it is now; a request reads it once where its answer must be consistent.
func (s *Server) world() *world.World { return s.live.Load() }

// New builds a Server over a resolved World.
func New(cfg Config) (*Server, error) {
	if cfg.World == nil || cfg.Key == nil || cfg.Cert == nil {
		return nil, fmt.Errorf("identity: World, Key and Cert are required")
	}
	s := &Server{
		live: cfg.World, events: cfg.Events, key: cfg.Key, cert: cfg.Cert, kid: thumbprintSHA1(cfg.Cert),
		now: cfg.Now, log: cfg.Log, client: cfg.Client, autoUPN: cfg.AutoApprove, caPEM: cfg.CAPEM,
		codes: map[string]*authCode{}, refresh: map[string]*refreshGrant{},
		devices: map[string]*deviceGrant{}, userCode: map[string]*deviceGrant{},
		pending: map[string]*pendingLogin{}, consents: map[string]map[string]bool{},
		faultHit: map[string]int{}, counts: map[string]int64{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.AutoApprove != "" && cfg.World.Load().TenantForUPN(cfg.AutoApprove) == nil {
		return nil, fmt.Errorf("identity: --auto-approve %s: no tenant owns that user's domain", cfg.AutoApprove)
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.fault("discovery", s.openIDConfiguration(false)))
	m.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.fault("keys", s.keys))
	m.HandleFunc("GET /{tenant}/discovery/keys", s.fault("keys", s.keys))
	m.HandleFunc("GET /common/discovery/instance", s.fault("discovery", s.instanceDiscovery))
	m.HandleFunc("GET /{tenant}/.well-known/openid-configuration", s.fault("discovery", s.openIDConfiguration(true)))
	// MSAL for Go asks /common/UserRealm/, MSAL for Python and MSAL.NET /common/userrealm/ (Entra's paths
	// are case-insensitive; Go's mux is not).
	m.HandleFunc("GET /common/UserRealm/{user}", s.fault("discovery", s.userRealm))
	m.HandleFunc("GET /common/userrealm/{user}", s.fault("discovery", s.userRealm))
	// The v1 metadata names these; the emulator implements only the v2.0 protocol.
	for _, ep := range []string{"token", "authorize", "devicecode"} {
		m.HandleFunc("/{tenant}/oauth2/"+ep, s.v1Unsupported)
	}
	m.HandleFunc("/{tenant}/oauth2/v2.0/authorize", s.fault("authorize", s.authorize))
	m.HandleFunc("POST /{tenant}/oauth2/v2.0/login", s.fault("authorize", s.loginSubmit))
	m.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.fault("token", s.token))
	m.HandleFunc("POST /{tenant}/oauth2/v2.0/devicecode", s.fault("devicecode", s.deviceCode))
	m.HandleFunc("/devicelogin", s.fault("devicecode", s.deviceLogin))
	// Not Entra's: the emulator's CA, public, for a client that trusts it on first use (curl -k).
	m.HandleFunc("GET /emulator/ca.pem", func(w http.ResponseWriter, r *http.Request) {
		if len(s.caPEM) == 0 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.caPEM)
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	s.mux = m
	return s, nil
}

// Minted returns every secret value the server has issued, in order: access and ID tokens,
// authorization codes, refresh tokens and device codes (not user codes, which are shown to people).
// Tests search captured output for them (no log line, error or page may carry one).
func (s *Server) Minted() []string {
	s.mintMu.Lock()
	defer s.mintMu.Unlock()
	return append([]string(nil), s.minted...)
}

// mint records v for Minted and returns it.
func (s *Server) mint(v string) string {
	s.mintMu.Lock()
	s.minted = append(s.minted, v)
	s.mintMu.Unlock()
	return v
}

// Handler serves the identity platform.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Headers a browser page needs, and nothing cached: every answer here is per request.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		s.mux.ServeHTTP(w, r)
	})
}

// Issuer returns the v1 issuer of access tokens for a tenant, as Exchange and Graph tokens carry it.
func Issuer(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// baseURL is the scheme and host the client used: Entra's documents name their own host, and MSAL
// requires the issuer's host to equal the authority's.
func baseURL(r *http.Request) string { return "https://" + r.Host }

// tenantRef resolves the {tenant} path segment. common and organizations resolve to nil with ok true:
// the user's home tenant decides later. consumers is not emulated.
func (s *Server) tenantRef(r *http.Request) (t *world.Tenant, multi bool, e *aadError) {
	ref := r.PathValue("tenant")
	switch strings.ToLower(ref) {
	case "common", "organizations":
		return nil, true, nil
	}
	if t := s.world().Tenant(ref); t != nil {
		return t, false, nil
	}
	return nil, false, errUnknownTenant("invalid_request", ref)
}

// openIDConfiguration serves a tenant's metadata document: v2 (/{tenant}/v2.0/.well-known/...), which
// MSAL reads, or v1 (/{tenant}/.well-known/...), which libraries that validate access tokens read:
// Exchange and Graph tokens are v1 tokens and the v1 issuer (https://sts.windows.net/{tid}/) is theirs.
// Both publish the same keys. The v1 document names the tenant by id whichever name the request used,
// as Entra's does.
func (s *Server) openIDConfiguration(v1 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, multi, e := s.tenantRef(r)
		if e != nil {
			e.code = "invalid_tenant"
			s.writeAAD(w, r, e)
			return
		}
		base := baseURL(r)
		seg, issuerTenant := r.PathValue("tenant"), "{tenantid}"
		if !multi {
			issuerTenant = t.ID
		}
		doc := map[string]any{
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_modes_supported":              []string{"query", "fragment", "form_post"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"http_logout_supported":                 true,
			"frontchannel_logout_supported":         true,
			"tenant_region_scope":                   "EU",
			"cloud_instance_name":                   r.Host,
			"cloud_graph_host_name":                 "graph.windows.net",
			"msgraph_host":                          "graph.microsoft.com",
			"rbac_url":                              "https://pas.windows.net",
		}
		if v1 {
			if !multi {
				seg = t.ID
			}
			ep := base + "/" + seg
			maps.Copy(doc, map[string]any{
				"token_endpoint":                ep + "/oauth2/token",
				"jwks_uri":                      base + "/common/discovery/keys",
				"response_types_supported":      []string{"code", "id_token", "code id_token", "token id_token", "token"},
				"scopes_supported":              []string{"openid"},
				"issuer":                        Issuer(issuerTenant),
				"microsoft_multi_refresh_token": true,
				"authorization_endpoint":        ep + "/oauth2/authorize",
				"device_authorization_endpoint": ep + "/oauth2/devicecode",
				"end_session_endpoint":          ep + "/oauth2/logout",
				"claims_supported":              []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"},
				"check_session_iframe":          ep + "/oauth2/checksession",
				"userinfo_endpoint":             ep + "/openid/userinfo",
				"kerberos_endpoint":             ep + "/kerberos",
			})
		} else {
			ep := base + "/" + seg
			maps.Copy(doc, map[string]any{
				"token_endpoint":                  ep + "/oauth2/v2.0/token",
				"jwks_uri":                        ep + "/discovery/v2.0/keys",
				"response_types_supported":        []string{"code", "id_token", "code id_token", "id_token token"},
				"scopes_supported":                []string{"openid", "profile", "email", "offline_access"},
				"issuer":                          base + "/" + issuerTenant + "/v2.0",
				"request_uri_parameter_supported": false,
				"userinfo_endpoint":               base + "/oidc/userinfo",
				"authorization_endpoint":          ep + "/oauth2/v2.0/authorize",
				"device_authorization_endpoint":   ep + "/oauth2/v2.0/devicecode",
				"end_session_endpoint":            ep + "/oauth2/v2.0/logout",
				"claims_supported":                []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
				"kerberos_endpoint":               ep + "/kerberos",
			})
		}
		writeJSON(w, http.StatusOK, doc)
	}
}

// v1Unsupported answers the v1 protocol's endpoints, which the emulator does not implement, in Entra's
// error shape (without an AADSTS code, which would claim Entra said it).
func (s *Server) v1Unsupported(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"error":             "invalid_request",
		"error_description": "The emulator implements only the v2.0 endpoints: use " + strings.Replace(r.URL.Path, "/oauth2/", "/oauth2/v2.0/", 1) + " instead of " + r.URL.Path + ".",
	})
}

func (s *Server) instanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": baseURL(r) + "/{tenant}/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

// userRealm answers MSAL's home-realm discovery, which it makes before a password (ROPC) sign-in
// (GET /common/userrealm/{upn}?api-version=1.0; MSAL reads account_type, and on "Federated" the
// federation_* fields): every emulated tenant is "Managed" (no federation); a domain no tenant owns is
// "Unknown".
func (s *Server) userRealm(w http.ResponseWriter, r *http.Request) {
	upn := r.PathValue("user")
	body := map[string]any{"ver": "1.0", "account_type": "Unknown", "cloud_instance_name": r.Host, "cloud_audience_urn": "urn:federation:MicrosoftOnline"}
	if t := s.world().TenantForUPN(upn); t != nil {
		body["account_type"] = "Managed"
		body["domain_name"] = upn[strings.LastIndexByte(upn, '@')+1:]
	}
	writeJSON(w, http.StatusOK, body)
}

// Requests returns how many requests an endpoint ("token", "devicecode", "authorize", "discovery",
// "keys") has received, faulted ones included: tests count token requests at the server with it.
func (s *Server) Requests(endpoint string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// fault wraps a handler with the World's injected faults for one endpoint, and counts its requests.
func (s *Server) fault(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[endpoint]++
		s.mu.Unlock()
		if f := s.activeFault(endpoint); f != nil {
			if f.Latency > 0 {
				select {
				case <-time.After(f.Latency):
				case <-r.Context().Done():
					return
				}
			}
			if f.Drop {
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						if tc, ok := c.(interface{ SetLinger(int) error }); ok {
							_ = tc.SetLinger(0)
						}
						_ = c.Close()
						return
					}
				}
				panic(http.ErrAbortHandler) // HTTP/2: abort the stream
			}
			if f.Status != 0 {
				s.writeAAD(w, r, errUnavailable(f.Status))
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r)
	}
}

func (s *Server) activeFault(endpoint string) *world.Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.world()
	for i := range w.Faults {
		f := &w.Faults[i]
		if f.Endpoint != endpoint && f.Endpoint != "*" {
			continue
		}
		s.faultHit[f.ID]++
		n := s.faultHit[f.ID]
		if n > f.After && (f.Times == 0 || n <= f.After+f.Times) {
			return f
		}
	}
	return nil
}

// parseForm reads a form body, turning an oversized body into Entra's error rather than a 500.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeAAD(w, r, errTooLarge())
		} else {
			s.writeAAD(w, r, errMalformed())
		}
		return false
	}
	return true
}

// isLoopbackRedirect reports whether a redirect URI is http on a loopback host, where Entra ignores the
// port when matching registered URIs (RFC 8252 §7.3).
func isLoopbackRedirect(u string) (host string, ok bool) {
	if !strings.HasPrefix(u, "http://") {
		return "", false
	}
	rest := strings.TrimPrefix(u, "http://")
	hostport := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		hostport = rest[:i]
	}
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	if h == "localhost" || net.ParseIP(h).IsLoopback() {
		return h, true
	}
	return "", false
}

package identity

import (
	"bytes"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clockSkew is the leeway Entra gives a client assertion's nbf and exp.
const clockSkew = 5 * time.Minute

// authenticateClient checks the client credential of a token request and returns the appidacr the
// token will carry: "0" public, "1" secret, "2" certificate. publicOK lets a confidential app that
// allows public client flows go without a credential (device code, ROPC).
func (s *Server) authenticateClient(r *http.Request, t *world.Tenant, app *world.App, publicOK bool) (string, *aadError) {
	secret := r.PostForm.Get("client_secret")
	if _, p, ok := r.BasicAuth(); ok && secret == "" {
		secret = p
	}
	assertion := r.PostForm.Get("client_assertion")
	if app.Public {
		if secret != "" || assertion != "" {
			return "", errPublicWithSecret()
		}
		return "0", nil
	}
	switch {
	case secret != "":
		return "1", s.checkSecret(app, secret)
	case assertion != "":
		return "2", s.checkAssertion(r, t, app, assertion)
	case publicOK && app.AllowPublicClientFlows:
		return "0", nil
	}
	return "", errNoCredential()
}

func (s *Server) checkSecret(app *world.App, secret string) *aadError {
	for _, sec := range app.Secrets {
		if subtle.ConstantTimeCompare([]byte(sec.Value), []byte(secret)) == 1 {
			if !sec.Expires.IsZero() && s.now().After(sec.Expires) {
				return errExpiredSecret(app.ClientID)
			}
			return nil
		}
	}
	return errBadSecret(app.ClientID)
}

// checkAssertion verifies a private_key_jwt client assertion as Entra does: RS256 or PS256 signed by a
// certificate registered on the app, found by x5t#S256 or x5t; iss = sub = client id; aud = this
// tenant's token endpoint; within its validity (with skew).
func (s *Server) checkAssertion(r *http.Request, t *world.Tenant, app *world.App, assertion string) *aadError {
	if r.PostForm.Get("client_assertion_type") != assertionType {
		return errAssertionType()
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithoutClaimsValidation())
	unverified, _, err := parser.ParseUnverified(assertion, jwt.MapClaims{})
	if err != nil {
		return errAssertionMalformed()
	}
	cert, thumb := findCert(app, unverified.Header)
	if cert == nil {
		return errAssertionKeyUnknown(thumb)
	}
	tok, err := parser.Parse(assertion, func(*jwt.Token) (any, error) { return cert.PublicKey, nil })
	if err != nil {
		return errAssertionSignature()
	}
	now := s.now()
	if now.After(cert.NotAfter) {
		return aad(401, "invalid_client", 700027, "", "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '%s']", thumb)
	}
	c := tok.Claims.(jwt.MapClaims)
	iss, _ := c["iss"].(string)
	sub, _ := c["sub"].(string)
	if !strings.EqualFold(iss, app.ClientID) || !strings.EqualFold(sub, app.ClientID) {
		return errAssertionClient()
	}
	exp, errE := c.GetExpirationTime()
	nbf, errN := c.GetNotBefore()
	if errE != nil || errN != nil || exp == nil || now.After(exp.Add(clockSkew)) || (nbf != nil && now.Add(clockSkew).Before(nbf.Time)) {
		return errAssertionTime()
	}
	if !s.assertionAudienceOK(r, t, c["aud"]) {
		return errAssertionAudience()
	}
	return nil
}

var tokenPathRE = regexp.MustCompile(`^/([^/]+)/oauth2/(v2\.0/)?token$`)

// assertionAudienceOK accepts the token endpoint of this tenant written with any of its names, on the
// host the request came to.
func (s *Server) assertionAudienceOK(r *http.Request, t *world.Tenant, aud any) bool {
	var auds []string
	switch v := aud.(type) {
	case string:
		auds = []string{v}
	case []any:
		for _, a := range v {
			if s, ok := a.(string); ok {
				auds = append(auds, s)
			}
		}
	}
	for _, a := range auds {
		u, err := url.Parse(a)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			continue
		}
		m := tokenPathRE.FindStringSubmatch(u.Path)
		if m == nil {
			continue
		}
		if t == nil { // /common or /organizations: the assertion must name the endpoint that was called
			if strings.EqualFold(m[1], r.PathValue("tenant")) {
				return true
			}
		} else if s.world().Tenant(m[1]) == t {
			return true
		}
	}
	return false
}

// findCert finds the registered certificate named by an assertion header's x5t#S256 or x5t. MSAL
// writes standard base64 with padding; the RFC says base64url: both are accepted.
func findCert(app *world.App, hdr map[string]any) (*x509.Certificate, string) {
	for _, name := range []string{"x5t#S256", "x5t"} {
		v, _ := hdr[name].(string)
		if v == "" {
			continue
		}
		want := decodeAnyBase64(v)
		for _, c := range app.Certificates {
			var got []byte
			if name == "x5t" {
				got, _ = base64.RawURLEncoding.DecodeString(thumbprintSHA1(c))
			} else {
				got, _ = base64.RawURLEncoding.DecodeString(thumbprintSHA256(c))
			}
			if want != nil && bytes.Equal(want, got) {
				return c, v
			}
		}
		return nil, v
	}
	return nil, ""
}

func decodeAnyBase64(s string) []byte {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

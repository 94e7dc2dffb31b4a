package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

func thumbprintSHA1(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func thumbprintSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request) {
	if _, _, e := s.tenantRef(r); e != nil {
		e.code = "invalid_tenant"
		s.writeAAD(w, r, e)
		return
	}
	pub := s.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "kid": s.kid, "x5t": s.kid,
		"n":      base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		"x5c":    []string{base64.StdEncoding.EncodeToString(s.cert.Raw)},
		"issuer": baseURL(r) + "/{tenantid}/v2.0",
	}}})
}

// PublicKey is the key that verifies every token the server signs (what the JWKS publishes).
func (s *Server) PublicKey() *rsa.PublicKey { return &s.key.PublicKey }

// KeyID is the signing key's kid (and x5t).
func (s *Server) KeyID() string { return s.kid }

// sign makes an RS256 JWT whose header carries kid and x5t, as Entra's do.
func (s *Server) sign(claims jwt.MapClaims) string {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = s.kid
	t.Header["x5t"] = s.kid
	out, err := t.SignedString(s.key)
	s.mint(out)
	if err != nil {
		panic("identity: signing a token: " + err.Error()) // only a broken key gets here
	}
	return out
}

func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// scopeRequest is a parsed scope parameter: OIDC scopes plus permissions of exactly one resource.
type scopeRequest struct {
	oidc     []string // openid, profile, email, offline_access as sent
	resource *world.Resource
	audience string   // the resource URI as written: the token's aud
	perms    []string // permission names; ".default" alone means the app's static permissions
	raw      []string // the resource scopes as sent
}

var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}

func (q scopeRequest) has(oidc string) bool {
	for _, s := range q.oidc {
		if strings.EqualFold(s, oidc) {
			return true
		}
	}
	return false
}

func (q scopeRequest) isDefault() bool { return len(q.perms) == 1 && q.perms[0] == ".default" }

// parseScopes checks a scope parameter as Entra does: one resource per request, known permissions,
// .default not mixed with named permissions. application selects the permission list to check names
// against (client credentials accept only .default, which the caller checks first).
func parseScopes(param string) (scopeRequest, *aadError) {
	var q scopeRequest
	for _, sc := range strings.Fields(param) {
		if oidcScopes[strings.ToLower(sc)] {
			q.oidc = append(q.oidc, sc)
			continue
		}
		res, aud, name := world.SplitPermission(sc)
		if res == nil {
			return q, errUnknownResource(sc[:max(0, strings.LastIndexByte(sc, '/'))], "")
		}
		if q.resource != nil && q.resource != res {
			return q, errTwoResources(param)
		}
		q.resource, q.audience = res, aud
		if name == ".default" {
			if len(q.perms) > 0 {
				return q, errInvalidScope(param)
			}
		} else if !res.Delegated[strings.ToLower(name)] || q.isDefault() {
			return q, errInvalidScope(sc)
		}
		q.perms = append(q.perms, name)
		q.raw = append(q.raw, sc)
	}
	if q.resource == nil {
		// Only OIDC scopes: Entra issues a Graph token (User.Read) with the ID token.
		q.resource, q.audience = world.Resources[1], world.GraphResource
		q.perms = []string{"User.Read"}
	}
	return q, nil
}

// claimsBase are the claims every access token carries.
func (s *Server) claimsBase(t *world.Tenant, app *world.App, aud string, appidacr string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"aud":             aud,
		"iss":             Issuer(t.ID),
		"iat":             now.Unix(),
		"nbf":             now.Unix(),
		"exp":             now.Add(s.world().Tokens.AccessToken).Unix(),
		"app_displayname": app.DisplayName,
		"appid":           app.ClientID,
		"appidacr":        appidacr,
		"tid":             t.ID,
		"uti":             randomToken("", 16)[:22],
		"ver":             "1.0",
	}
}

// userAccessToken is a delegated token: scp, upn, unique_name, oid of the user (SPEC §6).
func (s *Server) userAccessToken(t *world.Tenant, app *world.App, u *world.User, q scopeRequest, scp []string, appidacr string, now time.Time, amr []string) string {
	c := s.claimsBase(t, app, q.audience, appidacr, now)
	c["scp"] = strings.Join(scp, " ")
	c["upn"] = u.UPN
	c["unique_name"] = u.UPN
	c["name"] = u.DisplayName
	c["oid"] = u.ObjectID
	c["sub"] = pairwiseSub(u.ObjectID, app.ClientID)
	c["acr"] = "1"
	c["amr"] = amr
	c["idtyp"] = "user"
	c["ipaddr"] = "127.0.0.1"
	return s.sign(c)
}

// appAccessToken is an app-only token: roles, the service principal's oid, no upn (SPEC §6).
func (s *Server) appAccessToken(t *world.Tenant, app *world.App, aud string, roles []string, appidacr string, now time.Time) string {
	c := s.claimsBase(t, app, aud, appidacr, now)
	sp := t.EnterpriseApps[app.ClientID]
	c["oid"] = sp
	c["sub"] = sp
	c["idp"] = Issuer(t.ID)
	c["idtyp"] = "app"
	if len(roles) > 0 {
		c["roles"] = roles // Entra leaves the claim out when no application permission is granted
	}
	return s.sign(c)
}

// idToken is a v2 ID token for the client: MSAL reads its payload to name the account.
func (s *Server) idToken(base string, t *world.Tenant, app *world.App, u *world.User, nonce string, now time.Time) string {
	c := jwt.MapClaims{
		"aud":                app.ClientID,
		"iss":                base + "/" + t.ID + "/v2.0",
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(time.Hour).Unix(),
		"name":               u.DisplayName,
		"oid":                u.ObjectID,
		"preferred_username": u.UPN,
		"sub":                pairwiseSub(u.ObjectID, app.ClientID),
		"tid":                t.ID,
		"ver":                "2.0",
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return s.sign(c)
}

// clientInfo is what MSAL builds its account id from: base64url of {"uid":oid,"utid":tid}.
func clientInfo(u *world.User) string {
	b, _ := json.Marshal(map[string]string{"uid": u.ObjectID, "utid": u.Tenant.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// pairwiseSub is stable per user and app, and differs between apps, like Entra's sub.
func pairwiseSub(oid, clientID string) string {
	sum := sha256.Sum256([]byte(oid + "|" + strings.ToLower(clientID)))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:43]
}

package catalog

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// MaxTokenSize bounds what ParseClaims reads: Entra's access tokens are a few kilobytes; anything far
// larger is not one (the input may come from a server's logs or a legacy program through the proxy).
const MaxTokenSize = 64 << 10

// ErrNotJWT means the token is not a JWT: personal Microsoft accounts (outlook.com) get opaque access
// tokens, which only their issuer can read. Nothing is wrong with such a token for that reason alone.
var ErrNotJWT = errors.New("the access token is not a JWT (personal Microsoft accounts get opaque tokens), so its claims cannot be read")

// Claims are the claims of an access token that explain a refusal: what the token is for (aud), what
// it allows (scp for a user, roles for an app), whose it is (upn, oid, tid) and when it is valid.
// Meanings per Microsoft's "Access token claims reference"
// (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference): scp is
// space-separated delegated permissions, roles the application permissions of an app-only token, oid
// the object id of the user or, for an app-only token, of the app's service principal (the Enterprise
// Application), tid the tenant, appid the client id; upn and unique_name are v1.0 claims.
type Claims struct {
	Audience string    `json:"aud,omitempty"`
	Scopes   []string  `json:"scp,omitempty"`
	Roles    []string  `json:"roles,omitempty"`
	UPN      string    `json:"upn,omitempty"` // upn, else unique_name, else preferred_username
	ObjectID string    `json:"oid,omitempty"`
	TenantID string    `json:"tid,omitempty"`
	AppID    string    `json:"appid,omitempty"` // appid (v1.0) or azp (v2.0)
	Issuer   string    `json:"iss,omitempty"`
	Version  string    `json:"ver,omitempty"`
	IssuedAt time.Time `json:"iat,omitzero"`
	NotAfter time.Time `json:"exp,omitzero"`
	// AppOnly: a client-credentials token — no scp and no user (idtyp "app" where it is present).
	AppOnly bool `json:"app_only"`
}

// ParseClaims decodes a JWT's payload without verifying it: the server verifies; this only explains.
// A token that is not a JWT gives ErrNotJWT; one whose payload does not decode gives another error.
// It never puts any part of the token in an error.
func ParseClaims(token string) (*Claims, error) {
	token = strings.TrimSpace(token)
	if len(token) > MaxTokenSize {
		return nil, errors.New("the access token is larger than any JWT Entra issues")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return nil, ErrNotJWT
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, ErrNotJWT
	}
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, errors.New("the access token's payload is not a JSON object")
	}
	str := func(k string) string { s, _ := raw[k].(string); return s }
	c := &Claims{
		Audience: audClaim(raw["aud"]),
		Scopes:   strings.Fields(str("scp")),
		Roles:    stringList(raw["roles"]),
		UPN:      firstOf(str("upn"), str("unique_name"), str("preferred_username")),
		ObjectID: str("oid"),
		TenantID: str("tid"),
		AppID:    firstOf(str("appid"), str("azp")),
		Issuer:   str("iss"),
		Version:  str("ver"),
		IssuedAt: unixTime(raw["iat"]),
		NotAfter: unixTime(raw["exp"]),
	}
	switch str("idtyp") {
	case "app":
		c.AppOnly = true
	case "user":
	default:
		c.AppOnly = len(c.Scopes) == 0 && c.UPN == ""
	}
	return c, nil
}

// Summary is one line for a trace step: audience, permissions, user, expiry. No token text.
func (c *Claims) Summary(now time.Time) string {
	var parts []string
	if c.Audience != "" {
		parts = append(parts, "aud "+c.Audience)
	}
	if len(c.Scopes) > 0 {
		parts = append(parts, "scp "+strings.Join(c.Scopes, " "))
	}
	if len(c.Roles) > 0 {
		parts = append(parts, "roles "+strings.Join(c.Roles, " "))
	}
	if c.UPN != "" {
		parts = append(parts, "upn "+c.UPN)
	}
	if c.TenantID != "" {
		parts = append(parts, "tid "+c.TenantID)
	}
	if !c.NotAfter.IsZero() {
		parts = append(parts, "expires in "+c.NotAfter.Sub(now).Round(time.Second).String())
	}
	return strings.Join(parts, ", ")
}

// HasScope says whether the token carries delegated scope s, compared without regard to case as
// Exchange does.
func (c *Claims) HasScope(s string) bool { return containsFold(c.Scopes, s) }

// HasRole says whether the token carries application role r, compared without regard to case as
// Exchange does.
func (c *Claims) HasRole(r string) bool { return containsFold(c.Roles, r) }

func audClaim(v any) string {
	switch a := v.(type) {
	case string:
		return a
	case []any:
		if l := stringList(a); len(l) > 0 {
			return l[0]
		}
	}
	return ""
}

func unixTime(v any) time.Time {
	f, ok := v.(float64)
	// Bounded: a year past 9999 is no JWT's, and time.Unix of a huge float overflows.
	if !ok || f <= 0 || f > 253402300799 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}

func stringList(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

package catalog

import (
	"strings"
	"testing"
	"time"
)

// FuzzClaims feeds untrusted text (a token a legacy program or a log may carry) through the claims
// inspection and every explanation built on it: nothing panics, nothing but a JWT yields claims, and
// no finding ever repeats the token's signature.
func FuzzClaims(f *testing.F) {
	f.Add(jwt(f, map[string]any{"aud": "https://outlook.office.com", "scp": "IMAP.AccessAsUser.All", "upn": "alice@contoso.com", "exp": 1.7e9}))
	f.Add(jwt(f, map[string]any{"aud": []any{"https://graph.microsoft.com", 3}, "roles": []any{"Mail.Read", nil}, "idtyp": "app", "iat": -1.0, "exp": 1e300}))
	f.Add("EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJ9.bnVsbA.x")
	f.Add("x.W10.y")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := ParseClaims(token)
		if err == nil && c == nil {
			t.Fatal("no error and no claims")
		}
		if err != nil && c != nil {
			t.Fatal("an error and claims")
		}
		if c != nil && strings.Count(strings.TrimSpace(token), ".") != 2 {
			t.Fatalf("claims from something that is not three segments: %q", token)
		}
		now := time.Unix(1.7e9, 0)
		_ = c.summaryOrEmpty(now)
		for _, p := range []string{"imap", "pop", "smtp", "graph"} {
			CheckClaims(subject, p, c, "tid")
			ClockSkew(c, now)
			fd := Refusal(subject, p, "NO AUTHENTICATE failed.", c, now)
			parts := strings.Split(strings.TrimSpace(token), ".")
			sig := parts[len(parts)-1]
			if len(sig) > 12 && strings.Contains(fd.String(), sig) {
				t.Fatalf("a finding repeats the token's signature: %q", fd.String())
			}
			if strings.Contains(fd.String(), "\n") {
				t.Fatalf("String() is not one line: %q", fd.String())
			}
		}
	})
}

func (c *Claims) summaryOrEmpty(now time.Time) string {
	if c == nil {
		return ""
	}
	return c.Summary(now)
}

package exchange

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/internal/emulator/identity"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

type testKeys struct {
	key *rsa.PrivateKey
	kid string
}

func (k testKeys) PublicKey() *rsa.PublicKey { return &k.key.PublicKey }
func (k testKeys) KeyID() string             { return k.kid }

var now0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestAuthorizer(t *testing.T) (*Authorizer, testKeys, *bytes.Buffer) {
	t.Helper()
	w := world.Default()
	if err := w.Resolve(world.NewID); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := testKeys{key: key, kid: "test-kid"}
	logs := &bytes.Buffer{}
	a := NewAuthorizer(world.NewLive(w, nil), k, func() time.Time { return now0 }, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return a, k, logs
}

// delegated is a valid delegated IMAP token's claims for alice.
func delegated() jwt.MapClaims {
	return jwt.MapClaims{
		"aud": world.ExchangeResource, "iss": identity.Issuer(world.DefaultTenantID), "tid": world.DefaultTenantID,
		"iat": now0.Unix(), "nbf": now0.Unix(), "exp": now0.Add(time.Hour).Unix(), "ver": "1.0",
		"appid": world.DesktopClientID, "scp": "IMAP.AccessAsUser.All POP.AccessAsUser.All SMTP.Send",
		"upn": world.Alice, "unique_name": world.Alice, "oid": "a11ce000-0000-4000-8000-00000000a11c",
	}
}

// appOnly is a valid app-only token's claims for the daemon.
func appOnly() jwt.MapClaims {
	return jwt.MapClaims{
		"aud": world.ExchangeResourceAlias, "iss": identity.Issuer(world.DefaultTenantID), "tid": world.DefaultTenantID,
		"iat": now0.Unix(), "nbf": now0.Unix(), "exp": now0.Add(time.Hour).Unix(), "ver": "1.0",
		"appid": world.DaemonClientID, "roles": []any{"IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"}, "idtyp": "app",
	}
}

func sign(t *testing.T, k testKeys, method jwt.SigningMethod, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	tok.Header["kid"] = kid
	var key any = k.key
	switch method {
	case jwt.SigningMethodHS256:
		key = []byte("secret")
	case jwt.SigningMethodNone:
		key = jwt.UnsafeAllowNoneSignatureType
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthorizerClaims(t *testing.T) {
	a, k, logs := newTestAuthorizer(t)
	with := func(base func() jwt.MapClaims, edit func(jwt.MapClaims)) jwt.MapClaims {
		c := base()
		edit(c)
		return c
	}
	cases := []struct {
		name   string
		p      Protocol
		user   string
		token  string
		reason Reason
	}{
		{"delegated ok", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, delegated()), Allowed},
		{"delegated upn in another case", IMAP, "ALICE@contoso.test", sign(t, k, jwt.SigningMethodRS256, k.kid, delegated()), Allowed},
		{"app-only ok", POP, world.Bob, sign(t, k, jwt.SigningMethodRS256, k.kid, appOnly()), Allowed},
		{"aud with slash", SMTP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { c["aud"] = "https://outlook.office365.com/" })), Allowed},
		{"aud Exchange app id", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { c["aud"] = world.ExchangeAppID })), Allowed},
		{"aud Graph", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { c["aud"] = world.GraphResource })), TokenWrongAudience},
		{"aud missing", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { delete(c, "aud") })), TokenWrongAudience},
		{"HS256", IMAP, world.Alice, sign(t, k, jwt.SigningMethodHS256, k.kid, delegated()), TokenBadSignature},
		{"alg none", IMAP, world.Alice, sign(t, k, jwt.SigningMethodNone, k.kid, delegated()), TokenBadSignature},
		{"other kid", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, "other", delegated()), TokenBadSignature},
		{"not a JWT", IMAP, world.Alice, "abc.def", TokenMalformed},
		{"expired", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { c["exp"] = now0.Add(-6 * time.Minute).Unix() })), TokenExpired},
		{"expired within the skew", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { c["exp"] = now0.Add(-4 * time.Minute).Unix() })), Allowed},
		{"not yet valid", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { c["nbf"] = now0.Add(time.Hour).Unix() })), TokenNotYetValid},
		{"no exp", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { delete(c, "exp") })), TokenMalformed},
		{"unknown tenant", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) {
			c["tid"] = "00000000-0000-0000-0000-000000000001"
			c["iss"] = identity.Issuer("00000000-0000-0000-0000-000000000001")
		})), TokenUnknownTenant},
		{"issuer of another tenant", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) {
			c["iss"] = "https://login.microsoftonline.com/" + world.DefaultTenantID + "/v2.0"
		})), TokenUnknownTenant},
		{"scope of another protocol", POP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { c["scp"] = "IMAP.AccessAsUser.All" })), MissingScope},
		{"role of another protocol", SMTP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(appOnly, func(c jwt.MapClaims) { c["roles"] = []any{"IMAP.AccessAsApp"} })), MissingRole},
		{"no roles", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(appOnly, func(c jwt.MapClaims) { delete(c, "roles") })), MissingRole},
		{"unknown app", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(appOnly, func(c jwt.MapClaims) { c["appid"] = "11111111-1111-4111-8111-111111111111" })), UnknownApp},
		{"unknown upn", IMAP, world.Alice, sign(t, k, jwt.SigningMethodRS256, k.kid, with(delegated, func(c jwt.MapClaims) { c["upn"] = "ghost@contoso.test" })), UnknownUser},
		{"shared with FullAccess", IMAP, world.Support, sign(t, k, jwt.SigningMethodRS256, k.kid, delegated()), Allowed},
		{"app on shared without FullAccess", IMAP, world.Support, sign(t, k, jwt.SigningMethodRS256, k.kid, appOnly()), NoFullAccess},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := a.Authorize(tc.p, tc.user, tc.token)
			if d.Reason != tc.reason {
				t.Fatalf("reason %v (%s), want %v", d.Reason, d.Detail, tc.reason)
			}
			if d.Detail == "" || strings.Contains(d.Error(), tc.token) {
				t.Errorf("detail %q", d.Detail)
			}
			if tc.reason == Allowed && d.Mailbox == "" {
				t.Errorf("no mailbox in %+v", d)
			}
		})
	}
	for _, tc := range cases {
		if parts := strings.Split(tc.token, "."); len(parts) == 3 && parts[2] != "" && strings.Contains(logs.String(), parts[2]) {
			t.Fatalf("a token signature reached the logs (%s)", tc.name)
		}
	}
	if !strings.Contains(logs.String(), "reason=token_expired") {
		t.Errorf("logs lack the reason code:\n%s", logs)
	}
}

func TestReasonCodesAreUnique(t *testing.T) {
	seen := map[string]Reason{}
	for r := Allowed; r <= SMTPAuthDisabledMailbox; r++ {
		code := r.String()
		if code == "" || strings.HasPrefix(code, "reason_") {
			t.Errorf("reason %d has no code", int(r))
		}
		if o, dup := seen[code]; dup {
			t.Errorf("%v and %v share code %s", o, r, code)
		}
		seen[code] = r
	}
	for _, p := range []Protocol{IMAP, POP, SMTP} {
		if p.Scope() == "" || p.Role() == "" || p.String() == "" {
			t.Errorf("protocol %d incomplete", int(p))
		}
	}
}

func TestFrontEndNames(t *testing.T) {
	for range 50 {
		f := newFrontEnd()
		if !strings.HasSuffix(f.FQDN(), ".prod.outlook.com") || !strings.HasSuffix(f.SMTPHost(), ".outlook.office365.com") {
			t.Fatalf("%+v", f)
		}
		if b := f.Bracket(now0); !strings.HasPrefix(b, "["+f.FQDN()+" 2026-03-01T12:00:00.000Z 08DC") || len(b) != len(f.FQDN())+44 {
			t.Fatalf("bracket %q", b)
		}
	}
	// The example of research/exchange-wire.md §0.
	f := frontEnd{Name: "MR1P264CA0146", Region: "FRAP264"}
	if got := f.GreetingTag(); got != "TQBSADEAUAAyADYANABDAEEAMAAxADQANgAuAEYAUgBBAFAAMgA2ADQALgBQAFIATwBEAC4ATwBVAFQATABPAE8ASwAuAEMATwBNAA==" {
		t.Errorf("greeting tag %s", got)
	}
}

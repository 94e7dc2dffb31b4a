package emulator_test

// The identity platform against a World that changes while grants are outstanding, the v1 metadata
// document, the lowercase userrealm path, and Entra's answer for an app without a service principal.

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

const (
	webApp    = "web" // confidential, delegated permissions consented, one secret
	webSecret = "web8Q~runtime-secret-value-0000000000000"
)

// webWorld is the default world plus a confidential app whose users sign in with a secret-holding client.
func webWorld() *world.World {
	w := world.Default()
	w.Apps = append(w.Apps, &world.App{
		Name: webApp, Tenant: world.DefaultTenantName, Delegated: world.ExchangeDelegated, Consented: true,
		Secrets: []world.Secret{{Value: webSecret}},
	})
	return w
}

// tokenEvents returns the token events of one grant for one user, oldest first.
func tokenEvents(v *env, grant, user string) []events.Event {
	return v.E.Events.Since(0, func(e events.Event) bool {
		return (e.Kind == events.TokenIssued || e.Kind == events.TokenRefused) && e.Grant == grant && e.User == user
	}, 0)
}

func wantLastEvent(t *testing.T, v *env, grant, user string, kind events.Kind, code string) {
	t.Helper()
	evs := tokenEvents(v, grant, user)
	if len(evs) == 0 {
		t.Fatalf("no %s event names %s", grant, user)
	}
	if e := evs[len(evs)-1]; e.Kind != kind || e.Code != code {
		t.Errorf("last %s event for %s: %s %q, want %s %q", grant, user, e.Kind, e.Code, kind, code)
	}
}

func TestRuntimeChangesReachOutstandingGrants(t *testing.T) {
	v := start(t, webWorld(), world.Alice, nil)
	desktop := world.DesktopClientID

	// Grants handed out before the World changes: alice's authorization code and approved device code
	// (AutoApprove signs her in), refresh tokens of bob (desktop) and of alice (web, with its secret).
	lb := startLoopback(t)
	verifier, challenge := pkce()
	code := v.autoCode(t, lb, desktop, "query", challenge, nil)
	_, dc, _ := deviceCode(t, v, "contoso", desktop)
	bobRT := str(v.mustToken(t, "contoso", ropcForm(desktop, world.Bob, "bob-password", userScopes)), "refresh_token")
	webForm := ropcForm(v.clientID(webApp), world.Alice, "alice-password", userScopes)
	webForm.Set("client_secret", webSecret)
	webRT := str(v.mustToken(t, "contoso", webForm), "refresh_token")
	if bobRT == "" || webRT == "" {
		t.Fatal("the password grant gave no refresh token")
	}
	// Refresh tokens work, and the event log names the user of every delegated grant.
	bobRT = str(v.mustToken(t, "contoso", refreshForm(desktop, bobRT, userScopes)), "refresh_token")
	wantLastEvent(t, v, "refresh_token", world.Bob, events.TokenIssued, "")
	wantLastEvent(t, v, "password", world.Alice, events.TokenIssued, "")

	// Alice is deleted: her code, her device code and her refresh token are refused as Entra refuses
	// a user who no longer exists; bob is unaffected.
	if err := v.E.Live.Update(func(w *world.World) error {
		ten := w.Tenant("contoso")
		ten.Users = slices.DeleteFunc(ten.Users, func(u *world.User) bool { return u.UPN == world.Alice })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantAAD(t, v.token(t, "contoso", codeForm(desktop, code, lb.URI, verifier)), 400, "invalid_grant", 50034)
	wantLastEvent(t, v, "authorization_code", world.Alice, events.TokenRefused, "AADSTS50034")
	wantAAD(t, v.token(t, "contoso", deviceForm(desktop, dc)), 400, "invalid_grant", 50034)
	wantLastEvent(t, v, "device_code", world.Alice, events.TokenRefused, "AADSTS50034")
	rf := refreshForm(v.clientID(webApp), webRT, userScopes)
	rf.Set("client_secret", webSecret)
	wantAAD(t, v.token(t, "contoso", rf), 400, "invalid_grant", 50034)
	bobRT = str(v.mustToken(t, "contoso", refreshForm(desktop, bobRT, userScopes)), "refresh_token")

	// The web app's only secret is removed: bob's refresh through it, with the old secret, is refused
	// as a wrong secret is.
	webForm = ropcForm(v.clientID(webApp), world.Bob, "bob-password", userScopes)
	webForm.Set("client_secret", webSecret)
	webBobRT := str(v.mustToken(t, "contoso", webForm), "refresh_token")
	if err := v.E.Live.Update(func(w *world.World) error {
		w.App(webApp).Secrets = nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rf = refreshForm(v.clientID(webApp), webBobRT, userScopes)
	rf.Set("client_secret", webSecret)
	wantAAD(t, v.token(t, "contoso", rf), 401, "invalid_client", 7000215)

	// The desktop app is deleted: bob's refresh token for it names an app Entra no longer knows.
	if err := v.E.Live.Update(func(w *world.World) error {
		w.Apps = slices.DeleteFunc(w.Apps, func(a *world.App) bool { return a.Name == "desktop" })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e := wantAAD(t, v.token(t, "contoso", refreshForm(desktop, bobRT, userScopes)), 400, "unauthorized_client", 700016)
	if !strings.Contains(e.Description, desktop) {
		t.Errorf("AADSTS700016 does not name the app: %s", e.Description)
	}
	wantLastEvent(t, v, "refresh_token", world.Bob, events.TokenRefused, "AADSTS700016")
}

// A user created again with the same name after being deleted is another user (another object id):
// the deleted one's refresh token does not sign the new one in.
func TestRuntimeRecreatedUserIsAnother(t *testing.T) {
	v := start(t, nil, "", nil)
	rt := str(v.mustToken(t, "contoso", ropcForm(world.DesktopClientID, world.Bob, "bob-password", userScopes)), "refresh_token")
	if err := v.E.Live.Update(func(w *world.World) error {
		ten := w.Tenant("contoso")
		for _, u := range ten.Users {
			if u.UPN == world.Bob {
				u.ObjectID = "" // Resolve gives the new user a new id
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantAAD(t, v.token(t, "contoso", refreshForm(world.DesktopClientID, rt, userScopes)), 400, "invalid_grant", 50034)
}

func TestNoEnterpriseApp(t *testing.T) {
	// From a scenario: an app without a service principal gets no token.
	w, err := world.ParseScenario("s.toml", []byte(`
[tenants.contoso]
domains = ["contoso.test"]
[[tenants.contoso.users]]
upn = "alice@contoso.test"
password = "alice-password"
[apps.orphan]
application = ["https://outlook.office365.com/IMAP.AccessAsApp"]
no_enterprise_app = true
[[apps.orphan.secrets]]
value = "orphan-secret-value-000000000000000000"
`))
	if err != nil {
		t.Fatal(err)
	}
	v := start(t, w, "", nil)
	tid := v.E.World().Tenant("contoso").ID
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {v.clientID("orphan")},
		"client_secret": {"orphan-secret-value-000000000000000000"}, "scope": {exchangeAppDef}}
	e := wantAAD(t, v.token(t, "contoso", form), 401, "invalid_client", 7000229)
	want := "AADSTS7000229: The client application " + v.clientID("orphan") + " is missing service principal in the tenant " + tid + "."
	if !strings.HasPrefix(e.Description, want) {
		t.Errorf("error_description %q\nwant it to begin %q", e.Description, want)
	}

	// At runtime: the desktop app loses its service principal; a refresh token handed out before is
	// refused, and so is a new sign-in.
	v = start(t, nil, "", nil)
	rt := str(v.mustToken(t, "contoso", ropcForm(world.DesktopClientID, world.Bob, "bob-password", userScopes)), "refresh_token")
	if err := v.E.Live.Update(func(w *world.World) error {
		w.App("desktop").NoEnterpriseApp = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantAAD(t, v.token(t, "contoso", refreshForm(world.DesktopClientID, rt, userScopes)), 401, "invalid_client", 7000229)
	wantAAD(t, v.token(t, "contoso", ropcForm(world.DesktopClientID, world.Bob, "bob-password", userScopes)), 401, "invalid_client", 7000229)
}

// MSAL for Python and MSAL.NET ask /common/userrealm/ in lowercase before a password sign-in, MSAL for
// Go /common/UserRealm/: both answer.
func TestUserRealmBothCases(t *testing.T) {
	v := shared(t, envManual)
	for _, p := range []string{"/common/userrealm/", "/common/UserRealm/"} {
		r := v.get(t, p+world.Alice+"?api-version=1.0")
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %s", p, r)
		}
		m := r.JSON(t)
		if m["account_type"] != "Managed" || m["domain_name"] != "contoso.test" || m["ver"] != "1.0" {
			t.Errorf("%s%s: %v", p, world.Alice, m)
		}
		if m := v.get(t, p+"someone@nowhere.test?api-version=1.0").JSON(t); m["account_type"] != "Unknown" {
			t.Errorf("%s for an unknown domain: %v", p, m)
		}
	}
}

// A resource server validating Exchange or Graph tokens (v1 tokens) reads the v1 metadata document:
// its issuer must be the tokens' iss, and its jwks_uri must hold the key that signed them.
func TestV1Metadata(t *testing.T) {
	v := shared(t, envManual)
	tid := world.DefaultTenantID
	for _, seg := range []string{"contoso", tid, "contoso.test"} {
		m := v.get(t, "/"+seg+"/.well-known/openid-configuration").JSON(t)
		if m["issuer"] != "https://sts.windows.net/"+tid+"/" {
			t.Errorf("%s: issuer %v", seg, m["issuer"])
		}
		for k, want := range map[string]string{
			"token_endpoint":                v.E.Authority() + "/" + tid + "/oauth2/token",
			"authorization_endpoint":        v.E.Authority() + "/" + tid + "/oauth2/authorize",
			"device_authorization_endpoint": v.E.Authority() + "/" + tid + "/oauth2/devicecode",
			"jwks_uri":                      v.E.Authority() + "/common/discovery/keys",
		} {
			if m[k] != want {
				t.Errorf("%s: %s = %v, want %s", seg, k, m[k], want)
			}
		}
	}
	if m := v.get(t, "/common/.well-known/openid-configuration").JSON(t); m["issuer"] != "https://sts.windows.net/{tenantid}/" {
		t.Errorf("common: issuer %v", m["issuer"])
	}
	wantAAD(t, v.get(t, "/nosuchtenant/.well-known/openid-configuration"), 400, "invalid_tenant", 90002)

	// An Exchange token's iss is the v1 issuer, and the v1 jwks_uri's key verifies it.
	doc := v.get(t, "/contoso/.well-known/openid-configuration").JSON(t)
	tok := str(v.mustToken(t, "contoso", ropcForm(world.DesktopClientID, world.Bob, "bob-password", userScopes)), "access_token")
	c := v.verify(t, tok)
	if c["iss"] != doc["issuer"] {
		t.Errorf("token iss %v, v1 issuer %v", c["iss"], doc["issuer"])
	}
	keys := v.get(t, str(doc, "jwks_uri")).JSON(t)
	kids := []string{}
	for _, k := range keys["keys"].([]any) {
		kids = append(kids, k.(map[string]any)["kid"].(string))
	}
	if !slices.Contains(kids, v.E.Identity.KeyID()) {
		t.Errorf("v1 jwks_uri keys %v lack the signing key %s", kids, v.E.Identity.KeyID())
	}

	// The v1 protocol's endpoints say the emulator speaks v2.0 only.
	r := v.postForm(t, str(doc, "token_endpoint"), url.Values{"grant_type": {"client_credentials"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.JSON(t)["error_description"].(string), "/oauth2/v2.0/token") {
		t.Errorf("v1 token endpoint: %s", r)
	}
}

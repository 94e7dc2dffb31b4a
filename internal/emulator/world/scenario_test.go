package world_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/tomlconf"
)

// seqID is a deterministic newID for Resolve.
func seqID() func() string {
	n := 0
	return func() string {
		n++
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	}
}

func parseFile(t *testing.T, name string) *world.World {
	t.Helper()
	w, err := world.LoadScenario(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return w
}

// TestScenarioDefault proves testdata/default.toml, the documented form of the default world, is
// the default world.
func TestScenarioDefault(t *testing.T) {
	got := parseFile(t, "default.toml")
	want := world.Default()
	if !reflect.DeepEqual(got.Tenants, want.Tenants) {
		t.Errorf("tenants differ:\n got %s\nwant %s", dump(got.Tenants), dump(want.Tenants))
	}
	if !reflect.DeepEqual(got.Apps, want.Apps) {
		t.Errorf("apps differ:\n got %s\nwant %s", dump(got.Apps), dump(want.Apps))
	}
	if !reflect.DeepEqual(got.Accounts, want.Accounts) {
		t.Errorf("accounts differ:\n got %+v\nwant %+v", got.Accounts, want.Accounts)
	}
	if got.Tokens != want.Tokens || len(got.Faults) != 0 {
		t.Errorf("tokens %+v faults %+v, want %+v and none", got.Tokens, got.Faults, want.Tokens)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("worlds differ")
	}
	// And resolved, both are the same too.
	if err := got.Resolve(seqID()); err != nil {
		t.Fatal(err)
	}
	if err := want.Resolve(seqID()); err != nil {
		t.Fatal(err)
	}
	if dump(got.Tenants) != dump(want.Tenants) || dump(got.Apps) != dump(want.Apps) {
		t.Errorf("resolved worlds differ")
	}
}

func dump(v any) string {
	switch v := v.(type) {
	case []*world.Tenant:
		var b strings.Builder
		for _, t := range v {
			fmt.Fprintf(&b, "{%s %s %q %v smtpoff=%v ea=%v users:", t.Name, t.ID, t.DisplayName, t.Domains, t.SMTPAuthDisabled, t.EnterpriseApps)
			for _, u := range t.Users {
				c := *u
				in := ""
				if c.Tenant != nil {
					in = c.Tenant.Name // not the pointer
				}
				c.Tenant = nil
				fmt.Fprintf(&b, " %+v in %s", c, in)
			}
			b.WriteString(" shared:")
			for _, m := range t.SharedMailboxes {
				fmt.Fprintf(&b, " %+v", *m)
			}
			b.WriteString(" sps:")
			for _, s := range t.ServicePrincipals {
				fmt.Fprintf(&b, " %+v", *s)
			}
			b.WriteString("}")
		}
		return b.String()
	case []*world.App:
		var b strings.Builder
		for _, a := range v {
			fmt.Fprintf(&b, "%+v ", *a)
		}
		return b.String()
	}
	return fmt.Sprint(v)
}

func tenant(t *testing.T, w *world.World, name string) *world.Tenant {
	t.Helper()
	for _, tn := range w.Tenants {
		if tn.Name == name {
			return tn
		}
	}
	t.Fatalf("no tenant %s", name)
	return nil
}

func user(t *testing.T, w *world.World, upn string) *world.User {
	t.Helper()
	tn := w.TenantForUPN(upn)
	if tn == nil || tn.User(upn) == nil {
		t.Fatalf("no user %s", upn)
	}
	return tn.User(upn)
}

func app(t *testing.T, w *world.World, name string) *world.App {
	t.Helper()
	a := w.App(name)
	if a == nil {
		t.Fatalf("no app %s", name)
	}
	return a
}

func account(t *testing.T, w *world.World, name string) world.AccountSpec {
	t.Helper()
	for _, a := range w.Accounts {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no account %s in %+v", name, w.Accounts)
	return world.AccountSpec{}
}

// TestScenarioExamples parses every example of docs/scenarios.md and checks the feature it shows.
func TestScenarioExamples(t *testing.T) {
	checks := map[string]func(t *testing.T, w *world.World){
		"default.toml": func(t *testing.T, w *world.World) {},
		"expired-secret.toml": func(t *testing.T, w *world.World) {
			a := app(t, w, "daemon")
			if a.Public || len(a.Secrets) != 1 || !a.Secrets[0].Expires.Before(time.Now()) {
				t.Errorf("daemon: %+v", a)
			}
			if !a.AdminConsented || tenant(t, w, "contoso").ServicePrincipal(a) == nil {
				t.Errorf("daemon should be consented and registered in Exchange")
			}
			if acc := account(t, w, "daemon"); acc.Flow != "client_credentials" || acc.Credential != "secret" || acc.Mailbox != "alice@contoso.test" {
				t.Errorf("account: %+v", acc)
			}
		},
		"no-service-principal.toml": func(t *testing.T, w *world.World) {
			a := app(t, w, "daemon")
			if tenant(t, w, "contoso").ServicePrincipal(a) != nil || !a.AdminConsented || len(a.Application) != 3 {
				t.Errorf("daemon: %+v", a)
			}
		},
		"no-fullaccess.toml": func(t *testing.T, w *world.World) {
			tn := tenant(t, w, "contoso")
			sp := tn.ServicePrincipal(app(t, w, "daemon"))
			if sp == nil || !reflect.DeepEqual(sp.FullAccess, []string{"alice@contoso.test"}) {
				t.Errorf("service principal: %+v", sp)
			}
			if m := tn.SharedMailbox("support@contoso.test"); m == nil || !reflect.DeepEqual(m.FullAccess, []string{"alice@contoso.test"}) || m.DisplayName != "support" {
				t.Errorf("shared mailbox: %+v", m)
			}
			if acc := account(t, w, "bob-support"); acc.Mailbox != "support@contoso.test" || acc.Email != "bob@contoso.test" || acc.Credential != "" {
				t.Errorf("account: %+v", acc)
			}
		},
		"send-as.toml": func(t *testing.T, w *world.World) {
			m := tenant(t, w, "contoso").SharedMailbox("support@contoso.test")
			if m == nil || !reflect.DeepEqual(m.FullAccess, []string{"alice@contoso.test", "bob@contoso.test"}) ||
				!reflect.DeepEqual(m.SendAs, []string{"alice@contoso.test"}) {
				t.Errorf("shared mailbox: %+v", m)
			}
		},
		"smtp-auth-disabled-tenant.toml": func(t *testing.T, w *world.World) {
			if !tenant(t, w, "contoso").SMTPAuthDisabled {
				t.Error("tenant should have SMTP AUTH disabled")
			}
			if s := user(t, w, "alice@contoso.test").Mailbox.SMTPAuth; s != "enabled" {
				t.Errorf("alice: %q", s)
			}
			if s := user(t, w, "bob@contoso.test").Mailbox.SMTPAuth; s != "" {
				t.Errorf("bob: %q", s)
			}
			if acc := account(t, w, "bob"); !reflect.DeepEqual(acc.Protocols, []string{"smtp"}) || acc.Flow != "interactive" {
				t.Errorf("account: %+v", acc)
			}
		},
		"smtp-auth-disabled-mailbox.toml": func(t *testing.T, w *world.World) {
			if tenant(t, w, "contoso").SMTPAuthDisabled || user(t, w, "bob@contoso.test").Mailbox.SMTPAuth != "disabled" {
				t.Error("bob's mailbox alone should have SMTP AUTH disabled")
			}
		},
		"imap-pop-disabled.toml": func(t *testing.T, w *world.World) {
			a, b := user(t, w, "alice@contoso.test").Mailbox, user(t, w, "bob@contoso.test").Mailbox
			if !a.IMAPDisabled || a.POPDisabled || b.IMAPDisabled || !b.POPDisabled {
				t.Errorf("alice %+v bob %+v", a, b)
			}
		},
		"mfa.toml": func(t *testing.T, w *world.World) {
			u := user(t, w, "carol@contoso.test")
			if !u.MFARequired || u.Password != "carol-password" {
				t.Errorf("carol: %+v", u)
			}
			if acc := account(t, w, "carol-password"); acc.Flow != "password" {
				t.Errorf("account: %+v", acc)
			}
		},
		"unconsented.toml": func(t *testing.T, w *world.World) {
			if app(t, w, "desktop").Consented || app(t, w, "daemon").AdminConsented {
				t.Error("apps should be unconsented")
			}
		},
		"second-tenant.toml": func(t *testing.T, w *world.World) {
			if err := w.Resolve(seqID()); err != nil {
				t.Fatal(err)
			}
			fab := tenant(t, w, "fabrikam")
			if w.TenantForUPN("dave@fabrikam.test") != fab || fab.ID != "f4b1c2d3-0000-4000-8000-00000000fab1" {
				t.Errorf("fabrikam: %+v", fab)
			}
			if w.AppIn(fab, app(t, w, "desktop").ClientID) != nil {
				t.Error("the single-tenant app must not be usable in fabrikam")
			}
			if w.AppIn(fab, app(t, w, "partner").ClientID) == nil {
				t.Error("the multi-tenant app must be usable in fabrikam")
			}
			if acc := account(t, w, "dave-wrong-tenant"); acc.App != "desktop" || acc.Email != "dave@fabrikam.test" {
				t.Errorf("account: %+v", acc)
			}
		},
		"short-lifetimes.toml": func(t *testing.T, w *world.World) {
			want := world.Lifetimes{
				AccessToken: 2 * time.Minute, RefreshTokenInactivity: 10 * time.Minute, AuthorizationCode: 30 * time.Second,
				DeviceCode: time.Minute, DevicePollInterval: 2 * time.Second, SlowDownBelow: 2 * time.Second, RevokeRotatedRefreshTokens: true,
			}
			if w.Tokens != want {
				t.Errorf("tokens %+v, want %+v", w.Tokens, want)
			}
		},
		"revoked-refresh-tokens.toml": func(t *testing.T, w *world.World) {
			if r := user(t, w, "alice@contoso.test").RevokedBefore; !r.Equal(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("alice revoked before %v", r)
			}
			if r := user(t, w, "bob@contoso.test").RevokedBefore; !r.IsZero() {
				t.Errorf("bob revoked before %v", r)
			}
		},
		"graph-access.toml": func(t *testing.T, w *world.World) {
			tn, daemon := tenant(t, w, "contoso"), app(t, w, "daemon")
			if len(tn.ApplicationAccessPolicies) != 1 || !reflect.DeepEqual(tn.ApplicationAccessPolicies[0].Mailboxes, []string{"alice@contoso.test", "carol@contoso.test"}) {
				t.Errorf("policies: %+v", tn.ApplicationAccessPolicies)
			}
			if !tn.GraphAppAccess(daemon, "ALICE@contoso.test") || tn.GraphAppAccess(daemon, "bob@contoso.test") {
				t.Error("the policy should let the daemon open alice's mailbox and not bob's")
			}
			if !user(t, w, "carol@contoso.test").Mailbox.RESTDisabled || user(t, w, "alice@contoso.test").Mailbox.RESTDisabled {
				t.Error("carol's mailbox alone should be out of Graph's reach")
			}
			if acc := account(t, w, "daemon-bob"); acc.Flow != "client_credentials" || !reflect.DeepEqual(acc.Protocols, []string{"graph"}) {
				t.Errorf("account: %+v", acc)
			}
		},
		"graph-gateway.toml": func(t *testing.T, w *world.World) {
			alice := user(t, w, "alice@contoso.test")
			if !tenant(t, w, "contoso").SMTPAuthDisabled || !alice.Mailbox.IMAPDisabled || !alice.Mailbox.POPDisabled || alice.Mailbox.RESTDisabled {
				t.Errorf("SMTP AUTH off for the tenant, IMAP and POP off for alice, Graph on: %+v", alice.Mailbox)
			}
			if acc := account(t, w, "daemon"); acc.Flow != "client_credentials" || !reflect.DeepEqual(acc.Protocols, []string{"graph"}) {
				t.Errorf("account: %+v", acc)
			}
		},
		"graph-throttled.toml": func(t *testing.T, w *world.World) {
			want := []world.Fault{{Endpoint: "graph", Status: 429, After: 2, Times: 2}, {Endpoint: "graph", Status: 429, After: 9, Times: 1},
				{Endpoint: "graph", Status: 503, After: 19, Times: 1}}
			if !reflect.DeepEqual(w.Faults, want) || w.GraphThrottling.Concurrent != 2 {
				t.Errorf("faults %+v, throttling %+v", w.Faults, w.GraphThrottling)
			}
		},
		"mail-faults.toml": func(t *testing.T, w *world.World) {
			if !w.Tenant("contoso").SMTPBasicAuthRetired {
				t.Error("smtp_basic_auth = \"retired\" was not read")
			}
			want := []world.Fault{
				{Endpoint: "smtp", Reply: "421 4.3.2 Service not available", After: 2, Times: 1},
				{Endpoint: "imap", Latency: 200 * time.Millisecond},
				{Endpoint: "pop", Reply: "-ERR Server busy", Times: 10, Probability: 0.5, Seed: 7},
				{Endpoint: "pop", DisconnectAfter: 20, Times: 1},
			}
			if !reflect.DeepEqual(w.Faults, want) {
				t.Errorf("faults %+v\nwant %+v", w.Faults, want)
			}
		},
		"faults.toml": func(t *testing.T, w *world.World) {
			want := []world.Fault{
				{Endpoint: "token", Latency: 2 * time.Second, Status: 503, After: 1, Times: 2},
				{Endpoint: "token", Latency: 500 * time.Millisecond},
				{Endpoint: "devicecode", Drop: true, Times: 1},
				{Endpoint: "discovery", Status: 429, After: 1},
			}
			if !reflect.DeepEqual(w.Faults, want) {
				t.Errorf("faults %+v\nwant %+v", w.Faults, want)
			}
			// No [accounts]: one is derived for the public app.
			if !reflect.DeepEqual(w.Accounts, []world.AccountSpec{{Name: "alice", App: "desktop", Flow: "interactive", Email: "alice@contoso.test"}}) {
				t.Errorf("accounts %+v", w.Accounts)
			}
		},
	}
	files, _ := filepath.Glob("testdata/*.toml")
	if len(files) != len(checks) {
		t.Errorf("testdata has %d scenarios and the test checks %d: add a check for each example", len(files), len(checks))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			w := parseFile(t, name)
			check := checks[name]
			if check == nil {
				t.Fatalf("no check for %s", name)
			}
			check(t, w)
			if err := w.Resolve(seqID()); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			for _, a := range w.Accounts {
				if w.App(a.App) == nil {
					t.Errorf("account %s names a missing app", a.Name)
				}
			}
		})
	}
}

// TestScenarioExamplesDocumented keeps docs/scenarios.md and testdata in step: every example file
// appears in the documentation verbatim.
func TestScenarioExamplesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "scenarios.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/*.toml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "```toml\n"+string(data)+"```\n") {
			t.Errorf("docs/scenarios.md does not show %s verbatim in a ```toml block", f)
		}
	}
}

// base is a valid scenario that error cases extend: tenantExtra goes into [tenants.contoso], rest
// after everything.
func base(tenantExtra, rest string) string {
	return `[tenants.contoso]
domains = ["contoso.test"]
` + tenantExtra + `

[[tenants.contoso.users]]
upn = "alice@contoso.test"

[[tenants.contoso.users]]
upn = "bob@contoso.test"

[[tenants.contoso.shared_mailboxes]]
address = "support@contoso.test"

[apps.desktop]
tenant = "contoso"
public = true
delegated = ["IMAP.AccessAsUser.All"]

[apps.daemon]
tenant = "contoso"
application = ["IMAP.AccessAsApp"]
` + rest
}

// markerLine returns the line holding "#!", where the case expects its error.
func markerLine(doc string) int {
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, "#!") {
			return i + 1
		}
	}
	return 0
}

func TestScenarioBaseIsValid(t *testing.T) {
	w, err := world.ParseScenario("base.toml", []byte(base("", "")))
	if err != nil {
		t.Fatal(err)
	}
	// Derived accounts: alice for the public app, "daemon" for the confidential one.
	want := []world.AccountSpec{
		{Name: "alice", App: "desktop", Flow: "interactive", Email: "alice@contoso.test"},
		{Name: "daemon", App: "daemon", Flow: "client_credentials", Mailbox: "alice@contoso.test", Credential: "secret"},
	}
	if !reflect.DeepEqual(w.Accounts, want) {
		t.Errorf("accounts %+v\nwant %+v", w.Accounts, want)
	}
}

// TestScenarioErrors checks each validation rule: the error names the key (or table), the line
// marked #! and the fix.
func TestScenarioErrors(t *testing.T) {
	fabrikam := `
[tenants.fabrikam]
domains = ["fabrikam.test"]

[[tenants.fabrikam.users]]
upn = "dave@fabrikam.test"
`
	cases := []struct {
		name string
		doc  string
		want []string // fragments of one error's text
	}{
		// Decoding.
		{"unknown key", base("", "[accounts.x]\napp = \"desktop\"\nflwo = \"device\" #!\n"), []string{"unknown key `flwo`", "[accounts.x]", "did you mean `flow`"}},
		{"wrong type", base("smtp_auth_disabled = \"yes\" #!", ""), []string{"wrong type for `smtp_auth_disabled`", "true or false"}},

		// Tenants.
		{"no tenant", "[apps.x]\npublic = true\n", []string{"the scenario has no tenant", "add one"}},
		{"empty tenant name", base("", "[tenants.\"\"] #!\n"), []string{"empty tenant name", `[tenants.""]`}},
		{"invalid tenant name", base("", "[tenants.\"con toso\"] #!\n"), []string{"invalid tenant name", "letters, digits and hyphens"}},
		{"reserved tenant name", base("", "[tenants.organizations] #!\n"), []string{"`organizations` is reserved", "[tenants.organizations]"}},
		{"tenant name as GUID", base("", "[tenants.7c4b8e1a-2f5d-4e3b-9a61-0d8f3c2b1a50] #!\n"), []string{"looks like a tenant id", "write its GUID as `id`"}},
		{"tenant name twice", base("", "[tenants.Contoso] #!\n"), []string{"tenant name `Contoso` is used twice", "without case", "line 1"}},
		{"tenant id not GUID", base(`id = "contoso" #!`, ""), []string{"`id` is not a GUID", "[tenants.contoso]", "8-4-4-4-12"}},
		{"tenant id twice", base(`id = "7c4b8e1a-2f5d-4e3b-9a61-0d8f3c2b1a50"`, "[tenants.fabrikam]\nid = \"7C4B8E1A-2F5D-4E3B-9A61-0D8F3C2B1A50\" #!\n"), []string{"is used twice", "every tenant needs its own"}},
		{"tenant display name empty", base(`display_name = "" #!`, ""), []string{"`display_name` is empty", "[tenants.contoso]"}},
		{"domain invalid", base("", "[tenants.fabrikam]\ndomains = [\"fabrikam_test\"] #!\n"), []string{"element 1 of `domains` `fabrikam_test` is not a domain name", "domains"}},
		{"domain of two tenants", base("", "[tenants.fabrikam]\ndomains = [\"fabrikam.test\", \"contoso.test\"] #!\n"), []string{"domain contoso.test is listed twice", "belongs to one tenant"}},
		{"domain onmicrosoft of another", base("", "[tenants.fabrikam]\ndomains = [\"contoso.onmicrosoft.com\"] #!\n"), []string{"belongs to another tenant", "NAME.onmicrosoft.com"}},

		// Users.
		{"upn missing", base("", "[[tenants.contoso.users]] #!\npassword = \"x\"\n"), []string{"missing `upn`", "[[tenants.contoso.users]]"}},
		{"upn not an address", base("", "[[tenants.contoso.users]]\nupn = \"carol\" #!\n"), []string{"`upn` `carol` is not an email address", "name@domain"}},
		{"upn domain not the tenant's", base("", fabrikam+"\n[[tenants.fabrikam.users]]\nupn = \"erin@contoso.test\" #!\n"), []string{"the domain of `erin@contoso.test` is not one of tenant fabrikam's", "fabrikam.test, fabrikam.onmicrosoft.com"}},
		{"upn onmicrosoft domain ok, other not", base("", "[[tenants.contoso.users]]\nupn = \"carol@contoso.onmicrosoft.com\"\n[[tenants.contoso.users]]\nupn = \"erin@example.test\" #!\n"), []string{"is not one of tenant contoso's", "add the domain to `domains`"}},
		{"upn twice", base("", "[[tenants.contoso.users]]\nupn = \"Alice@contoso.test\" #!\n"), []string{"address `Alice@contoso.test` is used twice", "first used at line 6"}},
		{"shared mailbox address of a user", base("", "[[tenants.contoso.shared_mailboxes]]\naddress = \"bob@contoso.test\" #!\n"), []string{"address `bob@contoso.test` is used twice", "[[tenants.contoso.shared_mailboxes]]"}},
		{"password empty", base("", "[[tenants.contoso.users]]\nupn = \"carol@contoso.test\"\npassword = \"\" #!\n"), []string{"`password` is empty", "remove the key for the default"}},
		{"object id not GUID", base("", "[[tenants.contoso.users]]\nupn = \"carol@contoso.test\"\nobject_id = \"carol\" #!\n"), []string{"`object_id` is not a GUID"}},
		{"object id twice", base("", "[[tenants.contoso.users]]\nupn = \"carol@contoso.test\"\nobject_id = \"a11ce000-0000-4000-8000-00000000a11c\"\n[[tenants.contoso.shared_mailboxes]]\naddress = \"sales@contoso.test\"\nobject_id = \"a11ce000-0000-4000-8000-00000000a11c\" #!\n"), []string{"is used twice", "every user and shared mailbox needs its own"}},
		{"smtp_auth invalid", base("", "[[tenants.contoso.users]]\nupn = \"carol@contoso.test\"\nsmtp_auth = \"off\" #!\n"), []string{"invalid smtp_auth `off`", `"enabled" or "disabled"`}},
		{"user display name empty", base("", "[[tenants.contoso.users]]\nupn = \"carol@contoso.test\"\ndisplay_name = \" \" #!\n"), []string{"`display_name` is empty"}},

		// Shared mailboxes.
		{"shared address missing", base("", "[[tenants.contoso.shared_mailboxes]] #!\nfull_access = []\n"), []string{"missing `address`"}},
		{"full access unknown", base("", "[[tenants.contoso.shared_mailboxes]]\naddress = \"sales@contoso.test\"\nfull_access = [\"carol@contoso.test\"] #!\n"), []string{"element 1 of `full_access` `carol@contoso.test` is not a user of this scenario", "full_access"}},
		{"full access to a shared mailbox", base("", "[[tenants.contoso.shared_mailboxes]]\naddress = \"sales@contoso.test\"\nfull_access = [\"alice@contoso.test\", \"support@contoso.test\"] #!\n"), []string{"element 2 of `full_access` `support@contoso.test` is a shared mailbox", "granted to users"}},
		{"full access other tenant", base("", "[[tenants.contoso.shared_mailboxes]]\naddress = \"sales@contoso.test\"\nfull_access = [\"dave@fabrikam.test\"] #!\n"+fabrikam), []string{"belongs to tenant fabrikam, not contoso", "only within one organisation"}},
		{"full access twice", base("", "[[tenants.contoso.shared_mailboxes]]\naddress = \"sales@contoso.test\"\nfull_access = [\"alice@contoso.test\", \"ALICE@contoso.test\"] #!\n"), []string{"is listed twice", "remove one"}},
		{"send as unknown", base("", "[[tenants.contoso.shared_mailboxes]]\naddress = \"sales@contoso.test\"\nsend_as = [\"carol@contoso.test\"] #!\n"), []string{"element 1 of `send_as` `carol@contoso.test` is not a user of this scenario"}},
		{"send as to a shared mailbox", base("", "[[tenants.contoso.shared_mailboxes]]\naddress = \"sales@contoso.test\"\nsend_as = [\"support@contoso.test\"] #!\n"), []string{"element 1 of `send_as` `support@contoso.test` is a shared mailbox", "SendAs on a shared mailbox is granted to users"}},
		{"send as other tenant", base("", "[[tenants.contoso.shared_mailboxes]]\naddress = \"sales@contoso.test\"\nsend_as = [\"dave@fabrikam.test\"] #!\n"+fabrikam), []string{"belongs to tenant fabrikam, not contoso", "Exchange grants SendAs only within one organisation"}},

		// Exchange service principals.
		{"sp app missing", base("", "[[tenants.contoso.exchange_service_principals]] #!\nfull_access = []\n"), []string{"missing `app`", "[[tenants.contoso.exchange_service_principals]]"}},
		{"sp app unknown", base("", "[[tenants.contoso.exchange_service_principals]]\napp = \"deamon\" #!\n"), []string{"names app `deamon`, which the scenario does not define", "use one of desktop, daemon"}},
		{"sp app of another tenant", base("", fabrikam+"\n[[tenants.fabrikam.exchange_service_principals]]\napp = \"daemon\" #!\n"), []string{"app daemon is registered in tenant contoso and is not multi-tenant", "multi_tenant = true"}},
		{"sp twice", base("", "[[tenants.contoso.exchange_service_principals]]\napp = \"daemon\"\n[[tenants.contoso.exchange_service_principals]]\napp = \"daemon\" #!\n"), []string{"two service principals", "merge"}},
		{"sp full access unknown", base("", "[[tenants.contoso.exchange_service_principals]]\napp = \"daemon\"\nfull_access = [\"sales@contoso.test\"] #!\n"), []string{"`sales@contoso.test` is not a mailbox of this scenario"}},
		{"sp full access other tenant", base("", "[[tenants.contoso.exchange_service_principals]]\napp = \"daemon\"\nfull_access = [\"dave@fabrikam.test\"] #!\n"+fabrikam), []string{"belongs to tenant fabrikam"}},

		// Application access policies.
		{"policy app missing", base("", "[[tenants.contoso.application_access_policies]] #!\nmailboxes = []\n"), []string{"missing `app`", "[[tenants.contoso.application_access_policies]]", "the app the policy restricts"}},
		{"policy app unknown", base("", "[[tenants.contoso.application_access_policies]]\napp = \"deamon\" #!\n"), []string{"application access policy names app `deamon`, which the scenario does not define", "use one of desktop, daemon"}},
		{"policy app of another tenant", base("", fabrikam+"\n[[tenants.fabrikam.application_access_policies]]\napp = \"daemon\" #!\n"), []string{"app daemon is registered in tenant contoso and is not multi-tenant", "A policy can restrict only an app usable in tenant fabrikam", "[[tenants.contoso.application_access_policies]]"}},
		{"policy twice", base("", "[[tenants.contoso.application_access_policies]]\napp = \"daemon\"\n[[tenants.contoso.application_access_policies]]\napp = \"daemon\" #!\n"), []string{"two application access policies", "merge their mailboxes lists"}},
		{"policy mailbox unknown", base("", "[[tenants.contoso.application_access_policies]]\napp = \"daemon\"\nmailboxes = [\"sales@contoso.test\"] #!\n"), []string{"element 1 of `mailboxes` `sales@contoso.test` is not a mailbox of this scenario"}},
		{"policy mailbox other tenant", base("", "[[tenants.contoso.application_access_policies]]\napp = \"daemon\"\nmailboxes = [\"dave@fabrikam.test\"] #!\n"+fabrikam), []string{"belongs to tenant fabrikam", "application access policy only within one organisation"}},

		// Apps.
		{"app name invalid", base("", "[apps.\"my app\"] #!\ntenant = \"contoso\"\n"), []string{"invalid app name", `[apps."my app"]`}},
		{"client id not GUID", base("", "[apps.web]\nclient_id = \"web\" #!\n"), []string{"`client_id` is not a GUID", "[apps.web]"}},
		{"client id twice", base("", "[apps.web]\nclient_id = \"4e6f1b2a-8c3d-4a5e-b7f9-1d2c3b4a5e6f\"\n[apps.web2]\nclient_id = \"4e6f1b2a-8c3d-4a5e-b7f9-1d2c3b4a5e6f\" #!\n"), []string{"client id 4e6f1b2a-8c3d-4a5e-b7f9-1d2c3b4a5e6f is used twice"}},
		{"app tenant unknown", base("", "[apps.web]\ntenant = \"fabrikam\" #!\n"), []string{"app web names tenant `fabrikam`, which the scenario does not define", "use one of contoso"}},
		{"app tenant by domain ok, missing with two tenants", base("", fabrikam+"\n[apps.web] #!\n"), []string{"missing `tenant`", "[apps.web]"}},
		{"app display name empty", base("", "[apps.web]\ndisplay_name = \"\" #!\n"), []string{"`display_name` is empty", "[apps.web]"}},
		{"public app with secret", base("", "[apps.cli]\npublic = true\n[[apps.cli.secrets]] #!\nvalue = \"s\"\n"), []string{"app cli is public but has secrets", "AADSTS700025"}},
		{"secret without value", base("", "[apps.web]\n[[apps.web.secrets]] #!\nexpires = 2020-01-01T00:00:00Z\n"), []string{"missing `value`", "[[apps.web.secrets]]"}},
		{"unknown delegated permission", base("", "[apps.web]\ndelegated = [\"Mail.Frobnicate\"] #!\n"), []string{"element 1 of `delegated` `Mail.Frobnicate` is not a known delegated permission of https://graph.microsoft.com", "Mail.ReadWrite"}},
		{"application permission in delegated", base("", "[apps.web]\ndelegated = [\"SMTP.Send\", \"IMAP.AccessAsApp\"] #!\n"), []string{"element 2 of `delegated` `IMAP.AccessAsApp` is an application permission", "move it to `application`"}},
		{"delegated permission in application", base("", "[apps.web]\napplication = [\"IMAP.AccessAsUser.All\"] #!\n"), []string{"is a delegated permission", "move it to `delegated`"}},
		{"unknown resource", base("", "[apps.web]\napplication = [\"https://example.com/Foo\"] #!\n"), []string{"names an unknown resource", "https://outlook.office.com/"}},
		{".default is no permission", base("", "[apps.web]\napplication = [\"https://outlook.office365.com/.default\"] #!\n"), []string{"is not a permission", "list the permissions themselves"}},
		{"permission twice", base("", "[apps.web]\napplication = [\"IMAP.AccessAsApp\", \"https://outlook.office365.com/imap.accessasapp\"] #!\n"), []string{"element 2 of `application`", "is listed twice"}},
		{"redirect http not loopback", base("", "[apps.web]\nredirect_uris = [\"http://app.example.com/cb\"] #!\n"), []string{"uses http on a host other than localhost", "use https"}},
		{"redirect relative", base("", "[apps.web]\nredirect_uris = [\"/callback\"] #!\n"), []string{"is not an absolute URI"}},
		{"redirect fragment", base("", "[apps.web]\nredirect_uris = [\"https://app.example.com/cb#x\"] #!\n"), []string{"has a fragment"}},

		// Tokens.
		{"duration invalid", base("", "[tokens]\naccess_token_lifetime = \"1 hour\" #!\n"), []string{"invalid duration", "[tokens]", "no unit for days"}},
		{"duration days", base("", "[tokens]\nrefresh_token_inactivity = \"90d\" #!\n"), []string{"invalid duration `90d` in `refresh_token_inactivity`"}},
		{"duration zero", base("", "[tokens]\nauthorization_code_lifetime = \"0s\" #!\n"), []string{"`authorization_code_lifetime` must be at least 1s"}},
		{"duration negative", base("", "[tokens]\nslow_down_below = \"-1s\" #!\n"), []string{"`slow_down_below` is negative"}},
		{"duration fraction", base("", "[tokens]\ndevice_poll_interval = \"1500ms\" #!\n"), []string{"must be a whole number of seconds"}},

		// Faults.
		{"fault endpoint missing", base("", "[[faults]] #!\nstatus = 503\n"), []string{"missing `endpoint`", "[[faults]]", `"token", "devicecode"`}},
		{"fault endpoint unknown", base("", "[[faults]]\nendpoint = \"ews\" #!\nstatus = 503\n"), []string{"invalid endpoint `ews`"}},
		{"mail fault with a status", base("", "[[faults]]\nendpoint = \"smtp\"\nstatus = 503 #!\n"), []string{"a mail server answers no HTTP status", "reply"}},
		{"HTTP fault with a reply", base("", "[[faults]]\nendpoint = \"token\"\nreply = \"x\" #!\n"), []string{"`reply` applies to the mail servers only"}},
		{"mail fault reply two lines", base("", "[[faults]]\nendpoint = \"pop\"\nreply = \"-ERR a\\r\\nb\" #!\n"), []string{"`reply` is not one line"}},
		{"mail fault probability", base("", "[[faults]]\nendpoint = \"imap\"\nreply = \"* BYE\"\nprobability = 1.5 #!\n"), []string{"`probability` is not in (0, 1]"}},
		{"mail fault disconnect and reply", base("", "[[faults]]\nendpoint = \"imap\"\nreply = \"* BYE\"\ndisconnect_after = 10 #!\n"), []string{"make them two faults"}},
		{"smtp_basic_auth unknown", base("smtp_basic_auth = \"off\" #!\n", ""), []string{"invalid smtp_basic_auth `off`", "retired"}},
		{"fault status not an error", base("", "[[faults]]\nendpoint = \"token\"\nstatus = 302 #!\n"), []string{"status 302 is not an HTTP error status", "400-599"}},
		{"fault status too high", base("", "[[faults]]\nendpoint = \"token\"\nstatus = 600 #!\n"), []string{"status 600"}},
		{"fault does nothing", base("", "[[faults]] #!\nendpoint = \"token\"\nafter = 2\n"), []string{"the fault does nothing", "status, latency, drop"}},
		{"fault drop and status", base("", "[[faults]]\nendpoint = \"token\"\nstatus = 503\ndrop = true #!\n"), []string{"drop and status are both set"}},
		{"fault latency invalid", base("", "[[faults]]\nendpoint = \"*\"\nlatency = \"soon\" #!\n"), []string{"invalid duration `soon` in `latency`"}},
		{"fault latency zero", base("", "[[faults]]\nendpoint = \"*\"\nlatency = \"0s\" #!\n"), []string{"`latency` must be at least 1ms"}},
		{"fault after negative", base("", "[[faults]]\nendpoint = \"*\"\ndrop = true\nafter = -1 #!\n"), []string{"`after` is negative"}},
		{"fault times negative", base("", "[[faults]]\nendpoint = \"*\"\ndrop = true\ntimes = -1 #!\n"), []string{"`times` is negative"}},

		// Accounts.
		{"account name invalid", base("", "[accounts.\"-x\"] #!\napp = \"desktop\"\nemail = \"alice@contoso.test\"\n"), []string{"invalid account name", "[accounts.-x]"}},
		{"account app missing", base("", "[accounts.x] #!\nemail = \"alice@contoso.test\"\n"), []string{"missing `app`", "[accounts.x]"}},
		{"account app unknown", base("", "[accounts.x]\napp = \"destkop\" #!\n"), []string{"account x names app `destkop`, which the scenario does not define"}},
		{"account flow invalid", base("", "[accounts.x]\napp = \"desktop\"\nflow = \"browser\" #!\nemail = \"alice@contoso.test\"\n"), []string{"invalid flow `browser`", `"interactive", "device"`}},
		{"interactive needs public", base("", "[apps.web]\nallow_public_client_flows = true\n[accounts.x]\napp = \"web\"\nflow = \"interactive\" #!\nemail = \"alice@contoso.test\"\n"), []string{"the interactive flow needs a public app, and app web is confidential", "public = true"}},
		{"device needs public flows", base("", "[accounts.x]\napp = \"daemon\"\nflow = \"device\" #!\nemail = \"alice@contoso.test\"\n"), []string{"the device flow needs a public app or allow_public_client_flows", "allow_public_client_flows = true"}},
		{"password needs public flows", base("", "[accounts.x]\napp = \"daemon\"\nflow = \"password\" #!\nemail = \"alice@contoso.test\"\n"), []string{"the password flow needs"}},
		{"client credentials needs confidential", base("", "[accounts.x]\napp = \"desktop\"\nflow = \"client_credentials\" #!\nmailbox = \"alice@contoso.test\"\n"), []string{"the client_credentials flow needs a confidential app, and app desktop is public"}},
		{"auth code web needs confidential", base("", "[accounts.x]\napp = \"desktop\"\nflow = \"auth_code_web\" #!\nemail = \"alice@contoso.test\"\n"), []string{"the auth_code_web flow needs a confidential app"}},
		{"email missing", base("", "[accounts.x] #!\napp = \"desktop\"\n"), []string{"missing `email`", "the interactive flow signs a user in"}},
		{"email unknown", base("", "[accounts.x]\napp = \"desktop\"\nemail = \"carol@contoso.test\" #!\n"), []string{"`email` `carol@contoso.test` is not a user of this scenario"}},
		{"email is a shared mailbox", base("", "[accounts.x]\napp = \"desktop\"\nemail = \"support@contoso.test\" #!\n"), []string{"it is a shared mailbox", "open it with `mailbox`"}},
		{"email with client credentials", base("", "[accounts.x]\napp = \"daemon\"\nemail = \"alice@contoso.test\" #!\nmailbox = \"alice@contoso.test\"\n"), []string{"email is set, but the client_credentials flow signs in no user"}},
		{"mailbox missing", base("", "[accounts.x] #!\napp = \"daemon\"\n"), []string{"missing `mailbox`", "[accounts.x]"}},
		{"mailbox unknown", base("", "[accounts.x]\napp = \"daemon\"\nmailbox = \"sales@contoso.test\" #!\n"), []string{"`mailbox` `sales@contoso.test` is not a mailbox of this scenario"}},
		{"delegated mailbox unknown", base("", "[accounts.x]\napp = \"desktop\"\nemail = \"alice@contoso.test\"\nmailbox = \"sales@contoso.test\" #!\n"), []string{"is not a mailbox of this scenario"}},
		{"credential invalid", base("", "[accounts.x]\napp = \"daemon\"\nmailbox = \"alice@contoso.test\"\ncredential = \"p12\" #!\n"), []string{"invalid credential `p12`", `"secret"`, `"pfx"`, `"pem"`}},
		{"credential with public app", base("", "[accounts.x]\napp = \"desktop\"\nemail = \"alice@contoso.test\"\ncredential = \"secret\" #!\n"), []string{"credential is set, but app desktop is public", "AADSTS700025"}},
		{"credential with public flow", base("", "[apps.web]\nallow_public_client_flows = true\n[accounts.x]\napp = \"web\"\nflow = \"device\"\nemail = \"alice@contoso.test\"\ncredential = \"secret\" #!\n"), []string{"credential is set, but the device flow is a public client"}},
		{"certificate with secrets", base("", "[apps.web]\n[[apps.web.secrets]]\nvalue = \"s\"\n[accounts.x]\napp = \"web\"\nmailbox = \"alice@contoso.test\"\ncredential = \"pem\" #!\n"), []string{"needs the certificate the emulator generates, and app web has [[secrets]]", `use credential = "secret"`}},
		{"protocols invalid", base("", "[accounts.x]\napp = \"daemon\"\nmailbox = \"alice@contoso.test\"\nprotocols = [\"imap\", \"ews\"] #!\n"), []string{"element 2 of `protocols` `ews` is not a protocol"}},
		{"protocols twice", base("", "[accounts.x]\napp = \"daemon\"\nmailbox = \"alice@contoso.test\"\nprotocols = [\"imap\", \"imap\"] #!\n"), []string{"is listed twice"}},
		{"protocols empty", base("", "[accounts.x]\napp = \"daemon\"\nmailbox = \"alice@contoso.test\"\nprotocols = [] #!\n"), []string{"`protocols` is empty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := world.ParseScenario("s.toml", []byte(c.doc))
			if err == nil {
				t.Fatalf("no error; world %+v", w)
			}
			if w != nil {
				t.Error("a World came back with the error")
			}
			var es tomlconf.Errors
			var one *tomlconf.Error
			switch {
			case errors.As(err, &es):
			case errors.As(err, &one):
				es = tomlconf.Errors{one}
			default:
				t.Fatalf("error %T is not a tomlconf error: %v", err, err)
			}
			if ce, ok := err.(interface{ ConfigError() bool }); !ok || !ce.ConfigError() {
				t.Errorf("error %T is not a configuration error", err)
			}
			line := markerLine(c.doc)
			for _, e := range es {
				if line != 0 && e.Line != line {
					continue
				}
				text := e.Error()
				ok := strings.Contains(text, "s.toml")
				for _, w := range c.want {
					ok = ok && strings.Contains(text, w)
				}
				if ok {
					if line != 0 && !strings.Contains(text, fmt.Sprintf("s.toml:%d", line)) {
						t.Errorf("%q does not name line %d", text, line)
					}
					if e.Fix == "" {
						t.Errorf("%q has no fix", text)
					}
					return
				}
			}
			t.Errorf("no error at line %d containing %q; got:\n%v", line, c.want, err)
		})
	}
}

// TestScenarioAllErrors checks that problems are collected, not stopped at, and come in line order.
func TestScenarioAllErrors(t *testing.T) {
	doc := base(`id = "x"`, `
[apps.web]
delegated = ["Nope"]

[accounts.x]
app = "nope"

[[faults]]
endpoint = "nope"
status = 1
`)
	_, err := world.ParseScenario("s.toml", []byte(doc))
	var es tomlconf.Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %T %v", err, err)
	}
	if len(es) != 5 {
		t.Errorf("got %d errors, want 5:\n%v", len(es), err)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Errorf("errors out of line order:\n%v", err)
		}
	}
}

// TestScenarioNoSecretsInErrors: passwords and secret values never reach messages.
func TestScenarioNoSecretsInErrors(t *testing.T) {
	doc := base("", `
[[tenants.contoso.users]]
upn = "carol@nowhere.test"
password = "Hunter2-pa55"

[apps.cli]
public = true
[[apps.cli.secrets]]
value = "Zx8Q~secretvalue"

[apps.web]
[[apps.web.secrets]]
value = "Ab8Q~othersecret"
[accounts.x]
app = "web"
mailbox = "alice@contoso.test"
credential = "pfx"
`)
	_, err := world.ParseScenario("s.toml", []byte(doc))
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{"Hunter2", "secretvalue", "othersecret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("message shows a secret %q:\n%v", s, err)
		}
	}
	// Odd-looking values are not repeated either.
	_, err = world.ParseScenario("s.toml", []byte(base("", "[accounts.x]\napp = \"desktop\"\nemail = \"alice@contoso.test\"\nflow = \"pass word=x\"\n")))
	if err == nil || strings.Contains(err.Error(), "pass word") {
		t.Errorf("got %v", err)
	}
}

func TestScenarioDefaults(t *testing.T) {
	w, err := world.ParseScenario("s.toml", []byte(`
[tokens]
access_token_lifetime = "5m"

[tenants.contoso]

[[tenants.contoso.users]]
upn = "erin@contoso.onmicrosoft.com"

[[tenants.contoso.shared_mailboxes]]
address = "desk@contoso.onmicrosoft.com"

[apps.cli]
public = true
delegated = ["smtp.send", "mail.send"]

[apps.web]
tenant = "contoso.onmicrosoft.com"
allow_public_client_flows = true
redirect_uris = ["https://app.example.com/cb", "msal4e6f1b2a-8c3d-4a5e-b7f9-1d2c3b4a5e6f://auth"]
delegated = ["https://outlook.office365.com/IMAP.AccessAsUser.All", "https://graph.microsoft.com/IMAP.AccessAsUser.All"]
application = ["00000002-0000-0ff1-ce00-000000000000/full_access_as_app", "user.read.all"]

[apps.bare]
public = true
redirect_uris = []

[accounts.a]
app = "cli"
flow = "refresh_token"
email = "erin@contoso.onmicrosoft.com"
mailbox = "desk@contoso.onmicrosoft.com"

[accounts.b]
app = "web"
flow = "device"
email = "erin@contoso.onmicrosoft.com"

[accounts.c]
app = "web"
flow = "refresh_token"
email = "erin@contoso.onmicrosoft.com"

[accounts.d]
app = "web"
flow = "auth_code_web"
email = "erin@contoso.onmicrosoft.com"
credential = "pem"
`))
	if err != nil {
		t.Fatal(err)
	}
	wantTokens := world.DefaultLifetimes()
	wantTokens.AccessToken = 5 * time.Minute
	if w.Tokens != wantTokens {
		t.Errorf("tokens %+v", w.Tokens)
	}
	u := user(t, w, "erin@contoso.onmicrosoft.com")
	if u.Password != "erin-password" || u.DisplayName != "" {
		t.Errorf("user %+v", u)
	}
	cli, web, bare := app(t, w, "cli"), app(t, w, "web"), app(t, w, "bare")
	if !reflect.DeepEqual(cli.Delegated, []string{"https://outlook.office.com/SMTP.Send", "https://graph.microsoft.com/Mail.Send"}) {
		t.Errorf("cli delegated %v", cli.Delegated)
	}
	if !cli.Consented || cli.AdminConsented || !reflect.DeepEqual(cli.RedirectURIs, []string{"http://localhost"}) || cli.Tenant != "contoso" {
		t.Errorf("cli %+v", cli)
	}
	if bare.RedirectURIs != nil || bare.Consented {
		t.Errorf("bare %+v", bare)
	}
	if !reflect.DeepEqual(web.Delegated, []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://graph.microsoft.com/IMAP.AccessAsUser.All"}) {
		t.Errorf("web delegated %v", web.Delegated)
	}
	if !reflect.DeepEqual(web.Application, []string{"https://outlook.office.com/full_access_as_app", "https://graph.microsoft.com/User.Read.All"}) {
		t.Errorf("web application %v", web.Application)
	}
	if !web.Consented || !web.AdminConsented || web.Tenant != "contoso" || len(web.RedirectURIs) != 2 {
		t.Errorf("web %+v", web)
	}
	want := []world.AccountSpec{
		{Name: "a", App: "cli", Flow: "refresh_token", Email: "erin@contoso.onmicrosoft.com", Mailbox: "desk@contoso.onmicrosoft.com"},
		{Name: "b", App: "web", Flow: "device", Email: "erin@contoso.onmicrosoft.com"},
		{Name: "c", App: "web", Flow: "refresh_token", Email: "erin@contoso.onmicrosoft.com", Credential: "secret"},
		{Name: "d", App: "web", Flow: "auth_code_web", Email: "erin@contoso.onmicrosoft.com", Credential: "pem"},
	}
	if !reflect.DeepEqual(w.Accounts, want) {
		t.Errorf("accounts %+v\nwant %+v", w.Accounts, want)
	}
	if err := w.Resolve(seqID()); err != nil {
		t.Fatal(err)
	}
}

func TestScenarioDerivedAccounts(t *testing.T) {
	w, err := world.ParseScenario("s.toml", []byte(`
[tenants.contoso]
domains = ["contoso.test"]
[[tenants.contoso.users]]
upn = "alice@contoso.test"
[[tenants.contoso.users]]
upn = "bob@contoso.test"

[tenants.empty]

[apps.one]
tenant = "contoso"
public = true
[apps.two]
tenant = "contoso"
public = true
[apps.alice]
tenant = "contoso"
[apps.lonely]
tenant = "empty"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []world.AccountSpec{
		{Name: "alice", App: "one", Flow: "interactive", Email: "alice@contoso.test"},
		{Name: "alice-two", App: "two", Flow: "interactive", Email: "alice@contoso.test"},
		{Name: "alice-alice", App: "alice", Flow: "client_credentials", Mailbox: "alice@contoso.test", Credential: "secret"},
	}
	if !reflect.DeepEqual(w.Accounts, want) {
		t.Errorf("accounts %+v\nwant %+v", w.Accounts, want)
	}
	// An explicit empty [accounts] table means none.
	w, err = world.ParseScenario("s.toml", []byte(base("", "[accounts]\n")))
	if err != nil || len(w.Accounts) != 0 {
		t.Errorf("accounts %+v, err %v", w, err)
	}
}

func TestLoadScenario(t *testing.T) {
	_, err := world.LoadScenario(filepath.Join("testdata", "missing.toml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no scenario file at") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := world.LoadScenario("testdata"); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	_, err = world.ParseScenario("s.toml", []byte("[tenants.contoso\n"))
	var e *tomlconf.Error
	if !errors.As(err, &e) || e.Line != 1 {
		t.Errorf("syntax error: %v", err)
	}
}

func FuzzParseScenario(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(base("", "")))
	f.Add([]byte(base(`id = "x"`, "[[faults]]\nendpoint = \"token\"\n[accounts.x]\napp = \"daemon\"\ncredential = \"pfx\"\n")))
	f.Add([]byte("[tenants.a]\n[[tenants.a.users]]\nupn = \"x@a.onmicrosoft.com\"\n[apps.b]\n[accounts.c]\napp = \"b\"\nflow = \"device\"\n"))
	f.Add([]byte("tenants = 1\napps = []\n[[faults]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := world.ParseScenario("fuzz.toml", data)
		if err != nil {
			if ce, ok := err.(interface{ ConfigError() bool }); !ok || !ce.ConfigError() {
				t.Fatalf("error %T is not a configuration error: %v", err, err)
			}
			_ = err.Error()
			return
		}
		// What parses must resolve, and what it references must exist.
		if err := w.Resolve(seqID()); err != nil {
			t.Fatalf("parsed scenario does not resolve: %v", err)
		}
		for _, a := range w.Accounts {
			if w.App(a.App) == nil {
				t.Fatalf("account %s names a missing app", a.Name)
			}
		}
		for _, tn := range w.Tenants {
			for _, sp := range tn.ServicePrincipals {
				if w.App(sp.App) == nil {
					t.Fatalf("service principal names a missing app")
				}
			}
		}
	})
}

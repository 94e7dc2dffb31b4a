package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// withAccounts writes a copy of the emulator's config with extra accounts, each a copy of `daemon`
// changed by its function, and returns its path.
func withAccounts(t *testing.T, e *emulator.Emulator, cfg string, changes map[string]func(*config.Account)) string {
	t.Helper()
	f, err := e.Config()
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range changes {
		c := *f.Accounts["daemon"]
		change(&c)
		f.Accounts[name] = &c
	}
	b, err := toml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(cfg), "doctor.toml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDoctorDoneWhen is issue 7's "done when": doctor daemon is healthy; copies of daemon with a wrong
// secret, an unknown tenant, a mailbox the app has no right on, and a Graph scope on IMAP each fail
// with the finding that names AADSTS7000215, AADSTS90002, Add-MailboxPermission and the audience.
func TestDoctorDoneWhen(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{})
	ctx := context.Background()
	code, out, errs := runCLI(t, ctx, "--config", cfg, "doctor", "daemon", "--protocol", "all")
	if code != exitOK || !strings.Contains(out, "healthy") || strings.Contains(out, "✗") {
		t.Fatalf("doctor daemon: exit %d\n%s\n%s", code, out, errs)
	}
	for _, step := range []string{"✓ config", "✓ discovery", "✓ token", "✓ claims", "✓ tls", "✓ capabilities", "✓ authenticate", "✓ select INBOX", "✓ stat", "✓ mail from", "✓ list folders"} {
		if !strings.Contains(out, step) {
			t.Errorf("healthy report lacks %q:\n%s", step, out)
		}
	}

	wrong := filepath.Join(t.TempDir(), "wrong-secret.txt")
	if err := os.WriteFile(wrong, []byte("not-the-secret~0123456789abcdefghijklmnopq\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := withAccounts(t, e, cfg, map[string]func(*config.Account){
		"wrong-secret":   func(a *config.Account) { a.ClientSecretFile = wrong },
		"unknown-tenant": func(a *config.Account) { a.Tenant = "fabrikam.test" },
		"support": func(a *config.Account) {
			a.Email, a.Mailbox = world.Support, world.Support
			a.Protocols = []string{"imap"}
		},
		"graph-scope": func(a *config.Account) {
			a.Scopes, a.Protocols = []string{"https://graph.microsoft.com/.default"}, []string{"imap"}
		},
	})
	for _, tc := range []struct {
		account, code string
		want          []string // in the terminal output
	}{
		{"wrong-secret", "MO-AADSTS7000215", []string{"AADSTS7000215", "Certificates & secrets", "✗ token", "client_secret_file " + wrong}},
		{"unknown-tenant", "MO-AADSTS90002", []string{"AADSTS90002", "✗ discovery", "Directory (tenant) ID"}},
		{"support", "MO-APP-NO-FULLACCESS", []string{"Add-MailboxPermission -Identity support@contoso.test -User ", "-AccessRights FullAccess", "✗ select INBOX", "✓ probe smtp"}},
		{"graph-scope", "MO-AUD-GRAPH", []string{"audience is https://graph.microsoft.com", "✗ claims", "https://outlook.office365.com/.default"}},
	} {
		t.Run(tc.account, func(t *testing.T) {
			code, out, errs := runCLI(t, ctx, "--config", p, "doctor", tc.account)
			if code != exitFailure {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, exitFailure, out, errs)
			}
			if !strings.Contains(out, "finding "+tc.code) || !strings.Contains(errs, tc.code) {
				t.Errorf("no finding %s:\n%s\n%s", tc.code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			code, out, _ = runCLI(t, ctx, "--config", p, "--json", "doctor", tc.account)
			var rep doctor.Report
			if code != exitFailure || json.Unmarshal([]byte(out), &rep) != nil || rep.OK {
				t.Fatalf("--json: exit %d\n%s", code, out)
			}
			if fs := rep.Findings(); len(fs) != 1 || fs[0].Code != tc.code || fs[0].Fix == "" || fs[0].Cause == "" {
				t.Errorf("--json findings %+v, want one %s", fs, tc.code)
			}
			secret, _ := os.ReadFile(filepath.Join(filepath.Dir(cfg), "daemon-secret.txt"))
			if s := strings.TrimSpace(string(secret)); s == "" || strings.Contains(out, s) || strings.Contains(out, "eyJ") {
				t.Errorf("the report shows the secret or a token")
			}
		})
	}

	// setup daemon: the client id and the Exchange steps with the values filled in.
	code, out, _ = runCLI(t, ctx, "--config", cfg, "setup", "daemon")
	for _, w := range []string{world.DaemonClientID, "New-ServicePrincipal -AppId " + world.DaemonClientID + " -ObjectId <Enterprise Application object id>",
		"Add-MailboxPermission -Identity alice@contoso.test", "Office 365 Exchange Online > Application permissions > IMAP.AccessAsApp", "adminconsent?client_id=" + world.DaemonClientID} {
		if code != exitOK || !strings.Contains(out, w) {
			t.Errorf("setup daemon: exit %d, lacks %q:\n%s", code, w, out)
		}
	}
	// Nobody signs in to an app-only account: "Try it" gets a token instead.
	if strings.Contains(out, " login daemon") || !strings.Contains(out, "mailoauth --config "+cfg+" token daemon") {
		t.Errorf("setup daemon suggests a login for an app-only account, or no token command:\n%s", out)
	}
	code, out, _ = runCLI(t, ctx, "--config", cfg, "--json", "setup", "alice")
	var cl doctor.Checklist
	if code != exitOK || json.Unmarshal([]byte(out), &cl) != nil || cl.ClientID != world.DesktopClientID || !strings.Contains(out, "Mobile and desktop applications") || !strings.Contains(out, "http://localhost") {
		t.Errorf("setup alice --json: exit %d\n%s", code, out)
	}
}

// TestDoctorExitCodes: a config link finding is a finding (exit 1); a file that does not load, an
// unknown account and a bad --protocol are usage or configuration errors (exit 2).
func TestDoctorExitCodes(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{})
	ctx := context.Background()
	p := withAccounts(t, e, cfg, map[string]func(*config.Account){
		"no-secret-file": func(a *config.Account) { a.ClientSecretFile = "missing-secret.txt" },
	})
	code, out, errs := runCLI(t, ctx, "--config", p, "doctor", "no-secret-file")
	if code != exitFailure || !strings.Contains(out, "finding MO-CFG-SECRET:") || !strings.Contains(out, "✗ config") || strings.Contains(out, "discovery") {
		t.Errorf("unreadable secret: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, ctx, "--config", cfg, "doctor", "nobody"); code != exitUsage || !strings.Contains(errs, "nobody") {
		t.Errorf("unknown account: exit %d %q", code, errs)
	}
	if code, _, _ := runCLI(t, ctx, "--config", cfg, "doctor", "daemon", "--protocol", "ews"); code != exitUsage {
		t.Errorf("--protocol ews: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	_ = os.WriteFile(bad, []byte("[accounts.x]\nflwo = 1\n"), 0o600)
	if code, _, _ := runCLI(t, ctx, "--config", bad, "doctor", "x"); code != exitUsage {
		t.Errorf("bad config: exit %d", code)
	}
}

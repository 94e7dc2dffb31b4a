package check_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// setup starts an emulator over w (nil: the default world) and returns a manager over the config it
// wrote, with extra accounts (pointing at the emulator) added.
func setup(t *testing.T, w *world.World, now func() time.Time, extra map[string]*config.Account) *auth.Manager {
	t.Helper()
	e, err := emulator.Start(context.Background(), emulator.Options{World: w, AutoApprove: world.Alice, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	dir := t.TempDir()
	if err := e.WriteData(dir); err != nil {
		t.Fatal(err)
	}
	f, err := e.Config()
	if err != nil {
		t.Fatal(err)
	}
	base := f.Accounts["alice"]
	for name, a := range extra {
		a.Authority, a.CAFile, a.IMAP, a.POP, a.SMTP, a.Graph = base.Authority, base.CAFile, base.IMAP, base.POP, base.SMTP, base.Graph
		if a.Tenant == "" {
			a.Tenant = base.Tenant
		}
		f.Accounts[name] = a
	}
	b, _ := toml.Marshal(f)
	p := filepath.Join(dir, "check.toml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return auth.New(cfg, auth.Options{})
}

func run(t *testing.T, m *auth.Manager, account string, protocols ...string) check.Report {
	t.Helper()
	a, err := m.Account(account)
	if err != nil {
		t.Fatal(err)
	}
	if len(protocols) == 0 {
		protocols = check.Protocols()
	}
	return check.Run(context.Background(), a, protocols)
}

func TestDaemonPassesEveryProtocol(t *testing.T) {
	m := setup(t, nil, nil, nil)
	rep := run(t, m, "daemon")
	if !rep.OK || len(rep.Results) != 4 {
		t.Fatalf("check daemon: %+v", rep)
	}
	for _, r := range rep.Results {
		var names []string
		for _, s := range r.Steps {
			names = append(names, s.Name)
			if s.Duration <= 0 {
				t.Errorf("%s: step %s has no duration", r.Protocol, s.Name)
			}
		}
		got := strings.Join(names, ",")
		if r.Protocol == "graph" {
			if got != "token,list folders" || !strings.Contains(r.Steps[1].Detail, "Inbox has") {
				t.Errorf("graph steps: %s (%+v)", got, r.Steps)
			}
			continue
		}
		want := map[string]string{"imap": "select INBOX", "pop": "stat", "smtp": "mail from"}[r.Protocol]
		if !strings.Contains(got, "token,resolve,connect") || !strings.HasSuffix(got, want) || !strings.Contains(got, "authenticate") {
			t.Errorf("%s steps: %s", r.Protocol, got)
		}
	}
}

// TestRefusals reproduces each refusal condition with a world or an account and checks that check
// reports the server's exact words and the cause.
func TestRefusals(t *testing.T) {
	daemon := func(mailbox string) *config.Account {
		return &config.Account{ClientID: world.DaemonClientID, Flow: "client_credentials", Mailbox: mailbox, ClientSecretFile: "daemon-secret.txt", Protocols: []string{"imap", "pop", "smtp"}}
	}
	for _, tc := range []struct {
		name     string
		world    func(*world.World)
		account  string
		extra    *config.Account
		protocol string
		said     string // substring of the server's words
		cause    string // substring of the likely cause
	}{
		{name: "no FullAccess on the shared mailbox", account: "x", extra: daemon(world.Support), protocol: "imap",
			said: "", cause: "FullAccess"},
		{name: "app without an Exchange service principal", world: func(w *world.World) { w.Tenants[0].ServicePrincipals = nil },
			account: "daemon", protocol: "imap", said: "AUTHENTICATE failed.", cause: "New-ServicePrincipal"},
		{name: "application permission not consented", world: func(w *world.World) { w.Apps[1].AdminConsented = false },
			account: "daemon", protocol: "pop", said: "Authentication failure", cause: "POP.AccessAsApp"},
		{name: "SMTP AUTH disabled for the tenant", world: func(w *world.World) { w.Tenants[0].SMTPAuthDisabled = true },
			account: "daemon", protocol: "smtp", said: "5.7.139", cause: "SmtpClientAuthenticationDisabled $false"},
		{name: "Graph without an application permission", world: func(w *world.World) { w.Apps[1].Application = world.ExchangeApplication },
			account: "daemon", protocol: "graph", said: "403 ErrorAccessDenied", cause: "no Mail.Read or Mail.ReadWrite role"},
		{name: "IMAP disabled on the mailbox", world: func(w *world.World) { w.Tenants[0].Users[0].Mailbox.IMAPDisabled = true },
			account: "daemon", protocol: "imap", said: "", cause: "ImapEnabled $true"},
		{name: "a Graph token on IMAP (unprefixed scope)", account: "x", protocol: "imap", said: "AUTHENTICATE failed.", cause: "not Exchange Online",
			extra: &config.Account{ClientID: world.DesktopClientID, Flow: "password", Email: world.Alice, PasswordEnv: "CHECK_TEST_PW", Scopes: []string{"Mail.ReadWrite"}, Protocols: []string{"imap"}}},
		{name: "alice's token on bob's mailbox", account: "x", protocol: "imap", said: "", cause: "holds no FullAccess on bob@contoso.test",
			extra: &config.Account{ClientID: world.DesktopClientID, Flow: "password", Email: world.Alice, Mailbox: world.Bob, PasswordEnv: "CHECK_TEST_PW", Protocols: []string{"imap"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CHECK_TEST_PW", "alice-password")
			var w *world.World
			if tc.world != nil {
				w = world.Default()
				tc.world(w)
			}
			var extra map[string]*config.Account
			if tc.extra != nil {
				extra = map[string]*config.Account{"x": tc.extra}
			}
			m := setup(t, w, nil, extra)
			rep := run(t, m, tc.account, tc.protocol)
			r := rep.Results[0]
			if rep.OK || r.OK {
				t.Fatalf("check passed; want a refusal")
			}
			if !strings.Contains(r.Said, tc.said) || !strings.Contains(r.Cause, tc.cause) {
				t.Fatalf("server said %q (want %q), cause %q (want %q)\nsteps: %+v", r.Said, tc.said, r.Cause, tc.cause, r.Steps)
			}
		})
	}
}

// TestRetryWithFreshToken: the server refuses a token the client's cache still thinks valid (here the
// emulator's clock has moved past its expiry); the client gets a fresh one and succeeds.
func TestRetryWithFreshToken(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := setup(t, nil, clock, nil)
	a, _ := m.Account("daemon")
	if _, err := a.Token(context.Background(), token.Exchange); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour) // the cached token has expired for the server, not for the client
	mu.Unlock()
	for _, p := range check.Protocols() {
		rep := check.Run(context.Background(), a, []string{p})
		if !rep.OK {
			t.Fatalf("%s: %+v", p, rep.Results[0])
		}
		var auth string
		for _, s := range rep.Results[0].Steps {
			if s.Name == "authenticate" {
				auth = s.Detail
			}
		}
		if p == check.Protocols()[0] && !strings.Contains(auth, "fresh") {
			t.Errorf("%s: authenticate step %q does not say it retried with a fresh token", p, auth)
		}
	}
}

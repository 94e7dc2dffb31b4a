package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

func TestCheckCommand(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{})
	ctx := context.Background()
	code, out, errs := runCLI(t, ctx, "--config", cfg, "--json", "check", "daemon", "--protocol", "all")
	var rep check.Report
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || !rep.OK || len(rep.Results) != 4 {
		t.Fatalf("check daemon --protocol all --json: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, ctx, "--config", cfg, "check", "daemon-cert", "--protocol", "imap")
	if code != exitOK || !strings.Contains(out, "✓ IMAP") || !strings.Contains(out, "select INBOX") {
		t.Fatalf("check daemon-cert: %d\n%s", code, out)
	}

	// The app pointed at the shared mailbox it has no permission on: check fails, exit 1, with the
	// server's words and the cause.
	f, _ := e.Config()
	f.Accounts["daemon-support"] = f.Accounts["daemon"]
	f.Accounts["daemon-support"].Mailbox = world.Support
	b, _ := toml.Marshal(f)
	bad := filepath.Join(filepath.Dir(cfg), "support.toml")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, ctx, "--config", bad, "check", "daemon-support", "--protocol", "all")
	if code != exitFailure || !strings.Contains(out, "✗ IMAP") || !strings.Contains(out, "likely cause:") || !strings.Contains(out, "FullAccess") {
		t.Fatalf("check daemon-support: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "check of account daemon-support failed for imap, pop, smtp") {
		t.Errorf("stderr: %q", errs)
	}
	// The same refusal met by a mail command, reading or sending, is explained too.
	code, _, errs = runCLI(t, ctx, "--config", bad, "send", "daemon-support", "--to", world.Bob, "--subject", "s", "--body", "b")
	if code != exitFailure || !strings.Contains(errs, "535 5.7.3") || !strings.Contains(errs, "likely cause:") {
		t.Errorf("send as daemon-support: exit %d, %q", code, errs)
	}
	code, _, errs = runCLI(t, ctx, "--config", bad, "mail", "list", "daemon-support")
	if code != exitFailure || !strings.Contains(errs, "authenticated but not connected") || !strings.Contains(errs, "likely cause:") || !strings.Contains(errs, "FullAccess") {
		t.Errorf("mail list daemon-support: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI(t, ctx, "--config", cfg, "check", "daemon", "--protocol", "ews"); code != exitUsage {
		t.Errorf("--protocol ews: exit %d %q", code, errs)
	}
}

// A delegated user reading a mailbox she has no permission on over Graph: Graph's 403 is shown with
// the likely cause.
func TestGraphRefusalExplained(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{})
	f, _ := e.Config()
	base := f.Accounts["alice"]
	f.Accounts["alice-on-bob"] = &config.Account{Email: world.Alice, Mailbox: world.Bob, Tenant: base.Tenant, ClientID: base.ClientID,
		Flow: "password", PasswordEnv: "CLI_TEST_ALICE_PW", Authority: base.Authority, CAFile: base.CAFile,
		IMAP: base.IMAP, POP: base.POP, SMTP: base.SMTP, Graph: base.Graph, Protocols: []string{"graph"}}
	b, _ := toml.Marshal(f)
	p := filepath.Join(filepath.Dir(cfg), "graph.toml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLI_TEST_ALICE_PW", "alice-password")
	code, _, errs := runCLI(t, context.Background(), "--config", p, "mail", "list", "alice-on-bob", "--via", "graph")
	if code != exitFailure || !strings.Contains(errs, "ErrorAccessDenied") || !strings.Contains(errs, "likely cause:") || !strings.Contains(errs, "FullAccess") {
		t.Fatalf("exit %d, %q", code, errs)
	}
}

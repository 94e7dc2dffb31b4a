package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// viaGraphConfig is the emulator's configuration, checked to have its three listeners via Graph.
func viaGraphConfig(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), "via = 'graph'") != 3 {
		t.Fatalf("the emulator's configuration does not have the three listeners via Graph expected:\n%s", b)
	}
	return cfg
}

// TestProxyCheckGateway: with listeners via Graph, proxy --check gets each mapped account's Graph
// token and checks its roles: the daemon has Mail.ReadWrite and Mail.Send; without Mail.Send
// (SMTP via Graph cannot submit) it fails with the doctor's finding and the fix.
func TestProxyCheckGateway(t *testing.T) {
	ctx := context.Background()
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	code, out, errs := runCLI(t, ctx, "--config", viaGraphConfig(t, cfg), "proxy", "--check")
	if code != exitOK || !strings.Contains(out, "(local TLS none, via Graph)") || !strings.Contains(out, "✓ account daemon via Graph (imap, pop, smtp): the token has Mail.ReadWrite and Mail.Send") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}

	w := world.Default()
	for _, app := range w.Apps {
		if app.Name == "daemon" {
			app.Application = append(append([]string{}, world.ExchangeApplication...), world.GraphResource+"/Mail.ReadWrite")
		}
	}
	_, cfg = startEmulator(t, emulator.Options{World: w, AutoApprove: world.Alice})
	code, out, errs = runCLI(t, ctx, "--config", viaGraphConfig(t, cfg), "proxy", "--check")
	if code != exitFailure || !strings.Contains(out, "✗ account daemon via Graph") || !strings.Contains(out, "has no Mail.Send role, which the gateway needs (MO-GRAPH-SEND-MISSING)") ||
		!strings.Contains(out, "fix: ") || !strings.Contains(errs, "the Graph gateway cannot serve account(s) daemon") {
		t.Fatalf("without Mail.Send: exit %d\n%s%s", code, out, errs)
	}
}

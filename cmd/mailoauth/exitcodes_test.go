package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestLocalProblemsExitTwo: README's rule — every problem found before any network call is a usage or
// configuration error (exit 2), with one sentence on stderr.
func TestLocalProblemsExitTwo(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	ctx := context.Background()
	if code, out, errs := runCLI(t, ctx, "--config", cfg, "token", "daemon"); code != exitOK {
		t.Fatalf("token daemon: %d %q %q", code, out, errs)
	}
	empty := filepath.Join(t.TempDir(), "empty.toml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"mail", "get", "daemon-bob", "not-an-id"}, "not-an-id"},
		{"", []string{"mail", "delete", "daemon-bob", "0"}, `"0" is not an IMAP message id`},
		{"Subject: x\n\nx\n", []string{"sendmail", "-t", "--account", "daemon"}, "no To, Cc or Bcc recipient"},
		{"", []string{"send", "daemon", "--to", "", "--subject", "x", "--body", "x"}, "is not an email address"},
		{"", []string{"send", "daemon", "--to", world.Bob, "--cc", "bob", "--subject", "x", "--body", "x"}, `"bob" is not an email address`},
	}
	for _, c := range cases {
		code, out, errs := runCLIStdin(t, c.stdin, append([]string{"--config", cfg}, c.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d %q %q", c.args, code, out, errs)
		}
	}
	if code, out, errs := runCLI(t, ctx, "--config", empty, "accounts"); code != exitUsage || !strings.Contains(errs, "no accounts are configured") {
		t.Errorf("empty config: exit %d %q %q", code, out, errs)
	}
	if code, out, errs := runCLI(t, ctx, "--config", empty, "token", "daemon"); code != exitUsage {
		t.Errorf("empty config token: exit %d %q %q", code, out, errs)
	}
	// A wrong passphrase for the store the emulator's configuration names.
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg), "store-passphrase.txt"), []byte("not the passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"token", "daemon"}, {"accounts"}, {"logout", "alice"}, {"mail", "list", "daemon-bob"}} {
		code, out, errs := runCLI(t, ctx, append([]string{"--config", cfg}, args...)...)
		if code != exitUsage || !strings.Contains(errs, "the passphrase or key does not open this token store") || strings.Count(errs, "\n") != 1 {
			t.Errorf("wrong passphrase, %v: exit %d %q %q", args, code, out, errs)
		}
	}
}

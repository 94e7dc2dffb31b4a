package main

import (
	"context"
	"encoding/json"
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

// TestDoctorStoreFinding: a passphrase that does not open the token store is the doctor's own store
// finding, printed once (not an AADSTS finding per protocol), and exit 2 as docs/doctor.md promises.
func TestDoctorStoreFinding(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{})
	ctx := context.Background()
	if code, _, errs := runCLI(t, ctx, "--config", cfg, "token", "daemon"); code != exitOK {
		t.Fatalf("token daemon: %d %q", code, errs)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg), "store-passphrase.txt"), []byte("not the passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, ctx, "--config", cfg, "doctor", "daemon", "--protocol", "all")
	if code != exitUsage || strings.Count(out, "finding ") != 1 || !strings.Contains(out, "finding MO-STORE-KEY:") ||
		!strings.Contains(out, "✗ store") || !strings.Contains(out, "the passphrase or key does not open this token store") ||
		strings.Contains(out+errs, "AADSTS") || strings.Contains(out, "discovery") {
		t.Errorf("doctor with a wrong passphrase: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, ctx, "--config", cfg, "--json", "doctor", "daemon")
	var rep struct {
		Finding struct{ Code, Step string }
		Steps   []struct {
			Step  string
			Error string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitUsage || rep.Finding.Code != "MO-STORE-KEY" || rep.Finding.Step != "store" ||
		len(rep.Steps) != 2 || !strings.Contains(rep.Steps[1].Error, "the passphrase or key does not open this token store") {
		t.Errorf("doctor --json with a wrong passphrase: exit %d %v\n%s", code, err, out)
	}
}

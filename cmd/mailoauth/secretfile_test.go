package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestSecretFileReadableByOthersExitsTwo: a client secret file that other users can read is refused
// before any network call, as an inline secret in a readable configuration is, with the chmod that
// fixes it; after that chmod the same command succeeds.
func TestSecretFileReadableByOthersExitsTwo(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits; the check is skipped there")
	}
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	ctx := context.Background()
	dir, err := filepath.Abs(filepath.Dir(cfg))
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "daemon-secret.txt")
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, ctx, "--config", cfg, "token", "daemon")
	if code != exitUsage || out != "" || !strings.Contains(errs, "client_secret_file") ||
		!strings.Contains(errs, "mode 0644") || !strings.Contains(errs, "chmod 600 "+secret) {
		// stdout is not shown: it may hold an access token.
		t.Fatalf("token daemon with a world-readable client_secret_file: exit %d, %d bytes on stdout, stderr %q", code, len(out), errs)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, ctx, "--config", cfg, "token", "daemon"); code != exitOK {
		t.Fatalf("after chmod 600: exit %d, stderr %q", code, errs)
	}
}

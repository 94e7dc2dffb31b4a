package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestStrictRotationManyProcesses (issue 13, item 6): twenty `mailoauth token` processes at once, for
// a token that needs a refresh (Graph, after an Exchange login), against an identity platform that
// revokes a refresh token once it is redeemed. Every process prints a token, and one refresh request
// reaches the identity platform: the process holding the store's refresh lock refreshes, the others
// wait for it and read its result. The first refresh is slowed by a second so that the processes
// overlap however fast the machine is; before the lock each redeemed the same refresh token and most
// were told to log in again.
func TestStrictRotationManyProcesses(t *testing.T) {
	const procs = 20
	w := world.Default()
	w.Tokens.RevokeRotatedRefreshTokens = true
	w.Faults = []world.Fault{{Endpoint: "token", After: 1, Times: 1, Latency: time.Second}} // after the login
	e, cfg := startEmulator(t, emulator.Options{World: w, AutoApprove: world.Alice})
	useKeyFile(t, cfg) // twenty argon2id derivations would test the machine, not the lock

	if code, out, errs := runCLI(t, context.Background(), "--config", cfg, "login", "alice-device"); code != exitOK {
		t.Fatalf("login: exit %d, %q %q", code, out, errs)
	}
	before := e.Identity.Requests("token")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		err            error
		stdout, stderr string
	}
	results := make([]result, procs)
	var wg sync.WaitGroup
	for i := range procs {
		cmd := exec.CommandContext(ctx, os.Args[0], "--config", cfg, "token", "alice-device", "--resource", "graph")
		cmd.Env = append(os.Environ(), asCLI+"=1")
		var out, errs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			results[i] = result{err, out.String(), errs.String()}
		}()
	}
	wg.Wait()

	failed := 0
	for i, r := range results {
		if r.err != nil || strings.Count(r.stdout, "\n") != 1 {
			failed++
			t.Errorf("process %d: %v, stderr %q", i, r.err, strings.TrimSpace(r.stderr))
			continue
		}
		if aud := payload(t, strings.TrimSpace(r.stdout))["aud"]; aud != "https://graph.microsoft.com" {
			t.Errorf("process %d printed a token for %v", i, aud)
		}
	}
	n := e.Identity.Requests("token") - before
	t.Logf("%d processes: %d failed, %d token requests reached the identity platform", procs, failed, n)
	if n != 1 {
		t.Errorf("%d token requests for %d processes needing one refresh, want 1", n, procs)
	}
}

// useKeyFile switches the emulator's configuration from a passphrase to a key file.
func useKeyFile(t *testing.T, cfg string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const from, to = `passphrase_file = 'store-passphrase.txt'`, `key_file = 'store.key'`
	if !bytes.Contains(b, []byte(from)) {
		t.Fatalf("the emulator's configuration does not say %s", from)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg), "store.key"), bytes.Repeat([]byte("k"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(b, []byte(from), []byte(to), 1), 0o600); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/redistest"
)

// The stores a command opened are closed when it ends, and a Redis store that could not write what
// it queued during an outage says so on stderr (the tokens' updates are lost with the process),
// without the Redis password.
func TestCloseStoresWarnsOfLostUpdates(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "store.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAILOAUTH_TEST_REDIS_PASSWORD", srv.Password)
	var stderr bytes.Buffer
	a := &app{stderr: &stderr}
	st, err := a.openStore(config.Store{Backend: config.BackendRedis, URL: srv.URL(), Username: srv.User,
		PasswordEnv: "MAILOAUTH_TEST_REDIS_PASSWORD", KeyFile: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(v string) {
		t.Helper()
		if err := st.Update(ctx, "account/work", func([]byte) ([]byte, error) { return []byte(v), nil }); err != nil {
			t.Fatal(err)
		}
	}
	put("v1")
	srv.Kill()
	put("v2") // queued
	a.closeStores()
	if got := stderr.String(); !strings.Contains(got, "warning: ") || !strings.Contains(got, "1 token update(s)") || strings.Contains(got, srv.Password) {
		t.Fatalf("stderr after closing a store with a write it could not make: %q", got)
	}
	if len(a.stores) != 0 {
		t.Fatalf("%d stores left open", len(a.stores))
	}
}

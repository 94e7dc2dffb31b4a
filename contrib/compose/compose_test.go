// Package compose_test checks contrib/compose without a Docker engine (none runs where the tests do):
// the proxies' configuration loads, and the compose file mounts what it names.
package compose_test

import (
	"os"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/config"
)

func TestComposeConfig(t *testing.T) {
	raw, err := os.ReadFile("mailoauth.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("mailoauth.toml", raw, 0o600)
	if err != nil {
		t.Fatalf("the proxies' configuration does not load: %v", err)
	}
	if c.Store.Backend != config.BackendRedis || c.Proxy == nil || c.Proxy.Admin == "" {
		t.Fatalf("the proxies must share a Redis store and serve /readyz: %+v", c.Store)
	}
	compose, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Overriding the redis image's entrypoint skips its docker-entrypoint.sh, which drops root.
	if !strings.Contains(string(compose), "exec docker-entrypoint.sh redis-server ") {
		t.Error("compose.yaml starts redis-server without the image's docker-entrypoint.sh: it would run as root")
	}
	for _, path := range []string{c.Store.PasswordFile, c.Store.KeyFile, c.Proxy.Listeners[0].TLSCert, c.Proxy.Listeners[0].TLSKey} {
		name := strings.TrimPrefix(path, "/run/secrets/")
		if !strings.Contains(string(compose), "\n  "+name+":\n") {
			t.Errorf("the configuration reads %s, which compose.yaml does not define as a secret", path)
		}
	}
}

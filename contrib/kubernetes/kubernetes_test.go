// Package kubernetes_test checks contrib/kubernetes without a cluster: the example configuration loads
// and the Deployment has what a fleet needs (replicas, probes on the admin address, limits, non-root).
package kubernetes_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/config"
)

func TestManifest(t *testing.T) {
	raw, err := os.ReadFile("mailoauth-proxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := string(raw)
	// The example config.toml: the block scalar's lines, unindented.
	m := regexp.MustCompile(`(?s)config\.toml: \|\n(.*?)\n---`).FindStringSubmatch(y)
	if m == nil {
		t.Fatal("no example config.toml in the manifest")
	}
	var toml []string
	for _, l := range strings.Split(m[1], "\n") {
		toml = append(toml, strings.TrimPrefix(l, "    "))
	}
	c, err := config.Parse("config.toml", []byte(strings.Join(toml, "\n")), 0o600)
	if err != nil {
		t.Fatalf("the example configuration does not load: %v", err)
	}
	if c.Store.Backend != config.BackendRedis || !strings.Contains(y, `"--config", "/run/mailoauth/config.toml"`) {
		t.Error("the replicas must share a Redis store, and read the configuration the init container copies")
	}
	for _, want := range []string{"replicas: 2", "path: /healthz, port: admin", "path: /readyz, port: admin", "containerPort: 9090",
		"limits: {cpu: \"1\", memory: 256Mi}", "runAsNonRoot: true", "kind: Service", "secretName: mailoauth-proxy"} {
		if !strings.Contains(y, want) {
			t.Errorf("the manifest lacks %q", want)
		}
	}
	if c.Proxy.Admin != "0.0.0.0:9090" {
		t.Errorf("the probes ask port 9090, the configuration's admin address is %s", c.Proxy.Admin)
	}
}

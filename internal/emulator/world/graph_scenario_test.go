package world_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestScenarioGraphThrottling: [graph] sets Graph's throttling (default: on, Graph's limits), a
// runtime copy keeps it, and bad values are reported with their key.
func TestScenarioGraphThrottling(t *testing.T) {
	w, err := world.ParseScenario("s.toml", []byte(base("", "")))
	if err != nil {
		t.Fatal(err)
	}
	if c, r, win := w.GraphThrottling.Limits(); w.GraphThrottling.Off || c != 4 || r != 10000 || win != 10*time.Minute {
		t.Errorf("default throttling: off %v, %d, %d, %v", w.GraphThrottling.Off, c, r, win)
	}
	w, err = world.ParseScenario("s.toml", []byte(base("", "[graph]\nconcurrent_requests = 2\nrequests = 5\nwindow = \"30s\"\n")))
	if err != nil {
		t.Fatal(err)
	}
	want := world.GraphThrottling{Concurrent: 2, Requests: 5, Window: 30 * time.Second}
	if w.GraphThrottling != want || w.Clone().GraphThrottling != want {
		t.Errorf("throttling %+v, clone %+v, want %+v", w.GraphThrottling, w.Clone().GraphThrottling, want)
	}
	if w, err = world.ParseScenario("s.toml", []byte(base("", "[graph]\nthrottling = false\n"))); err != nil || !w.GraphThrottling.Off {
		t.Errorf("throttling = false: %v", err)
	}
	for doc, text := range map[string]string{
		"[graph]\nconcurrent_requests = 0\n": "`concurrent_requests` is less than 1",
		"[graph]\nrequests = -1\n":           "`requests` is less than 1",
		"[graph]\nwindow = \"soon\"\n":       "invalid duration",
		"[graph]\nwindow = \"10ms\"\n":       "must be at least 1s",
	} {
		if _, err := world.ParseScenario("s.toml", []byte(base("", doc))); err == nil || !strings.Contains(err.Error(), text) {
			t.Errorf("%q: %v, want %q", doc, err, text)
		}
	}
}

// TestScenarioGraphFaultProbability: a graph fault may fail requests by chance (probability, seed),
// as the mail servers' faults do; the identity platform's faults may not.
func TestScenarioGraphFaultProbability(t *testing.T) {
	w, err := world.ParseScenario("s.toml", []byte(base("", "[[faults]]\nendpoint = \"graph\"\nstatus = 429\nprobability = 0.25\nseed = 3\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Faults) != 1 || w.Faults[0].Probability != 0.25 || w.Faults[0].Seed != 3 {
		t.Errorf("faults %+v", w.Faults)
	}
	_, err = world.ParseScenario("s.toml", []byte(base("", "[[faults]]\nendpoint = \"token\"\nstatus = 503\nprobability = 0.5\n")))
	if err == nil || !strings.Contains(err.Error(), "applies to the mail servers only") {
		t.Errorf("a token fault with probability: %v", err)
	}
}

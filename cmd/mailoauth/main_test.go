package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLI runs the CLI in-process as a user would run the binary.
func runCLI(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDemoSucceedsAndShowsWhatTokensSay(t *testing.T) {
	code, out, errs := runCLI(t, context.Background(), "demo")
	if code != exitOK {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{
		"aud        https://outlook.office365.com", // app-only Exchange
		"IMAP.AccessAsApp",
		"aud        https://outlook.office.com", // delegated Exchange
		"upn        alice@contoso.test",
		"aud        https://graph.microsoft.com",
		"demo complete",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "eyJ") {
		t.Errorf("demo printed something that looks like a JWT:\n%s", out)
	}
}

func TestDemoJSONIsAnArrayOfSteps(t *testing.T) {
	code, out, errs := runCLI(t, context.Background(), "--json", "demo")
	if code != exitOK {
		t.Fatalf("demo --json exited %d: %s", code, errs)
	}
	var steps []struct {
		Step   string         `json:"step"`
		OK     bool           `json:"ok"`
		Claims map[string]any `json:"claims"`
	}
	if err := json.Unmarshal([]byte(out), &steps); err != nil {
		t.Fatalf("stdout is not the JSON array of steps: %v\n%s", err, out)
	}
	if len(steps) < 4 {
		t.Fatalf("got %d steps, want at least 4", len(steps))
	}
	for _, s := range steps {
		if !s.OK {
			t.Errorf("step %q not ok", s.Step)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--log-level", "loud", "demo"},
		{"demo", "extra-argument"},
	} {
		code, _, errs := runCLI(t, context.Background(), args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, errs)
		}
		if !strings.HasPrefix(errs, "mailoauth: ") {
			t.Errorf("%v: stderr %q does not start with one clear sentence", args, errs)
		}
	}
}

func TestEmulatorBadScenarioIsAConfigError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "scenario.toml")
	if err := os.WriteFile(p, []byte("[tenants.contoso]\ndomanis = [\"x.test\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, context.Background(), "emulator", "--data", t.TempDir(), "--scenario", p)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitUsage, errs)
	}
	if !strings.Contains(errs, "domanis") || !strings.Contains(errs, "scenario.toml:2") {
		t.Errorf("error does not name the key and the line: %q", errs)
	}
}

// TestEmulatorWithCurl is the "done when": a running `mailoauth emulator` answers curl
// --cacert DIR/ca.pem for discovery, a client-credentials token with the written secret, AADSTS7000215
// for a wrong secret, AADSTS90002 for an unknown tenant, and the device-code flow to a token for alice.
func TestEmulatorWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required for this test (scripts/test installs it)")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb syncBuffer
	go func() {
		done <- run(ctx, []string{"--json", "emulator", "--data", dir, "--auto-approve", "alice@contoso.test"}, strings.NewReader(""), &out, &errb)
	}()
	var info struct {
		Authority string `json:"authority"`
		CAFile    string `json:"ca_file"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for json.Unmarshal([]byte(out.String()), &info) != nil || info.Authority == "" {
		if time.Now().After(deadline) {
			t.Fatalf("emulator did not start; stderr: %s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	curl := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command("curl", append([]string{"-sS", "--cacert", info.CAFile}, args...)...)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("curl %v: not JSON: %s", args, b)
		}
		return m
	}
	daemon, desktop := "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "4e6f1b2a-8c3d-4a5e-b7f9-1d2c3b4a5e6f"
	tokenURL := info.Authority + "/contoso/oauth2/v2.0/token"

	if d := curl(info.Authority + "/contoso/v2.0/.well-known/openid-configuration"); !strings.HasPrefix(d["issuer"].(string), info.Authority+"/") {
		t.Errorf("issuer %v is not on the authority's host %s", d["issuer"], info.Authority)
	}
	secret, err := os.ReadFile(filepath.Join(dir, "daemon-secret.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tok := curl(tokenURL, "-d", "grant_type=client_credentials", "-d", "client_id="+daemon,
		"--data-urlencode", "client_secret="+strings.TrimSpace(string(secret)),
		"--data-urlencode", "scope=https://outlook.office365.com/.default")
	if claims := payload(t, tok["access_token"]); claims["aud"] != "https://outlook.office365.com" {
		t.Errorf("client credentials token aud = %v", claims["aud"])
	}
	bad := curl(tokenURL, "-d", "grant_type=client_credentials", "-d", "client_id="+daemon, "-d", "client_secret=wrong",
		"--data-urlencode", "scope=https://outlook.office365.com/.default")
	if !strings.HasPrefix(bad["error_description"].(string), "AADSTS7000215:") {
		t.Errorf("wrong secret: %v", bad["error_description"])
	}
	if e := curl(info.Authority + "/nosuchtenant/v2.0/.well-known/openid-configuration"); !strings.HasPrefix(e["error_description"].(string), "AADSTS90002:") {
		t.Errorf("unknown tenant: %v", e["error_description"])
	}
	dc := curl(info.Authority+"/contoso/oauth2/v2.0/devicecode", "-d", "client_id="+desktop,
		"--data-urlencode", "scope=https://outlook.office.com/IMAP.AccessAsUser.All offline_access openid")
	dt := curl(tokenURL, "-d", "grant_type=urn:ietf:params:oauth:grant-type:device_code", "-d", "client_id="+desktop,
		"--data-urlencode", "device_code="+dc["device_code"].(string))
	claims := payload(t, dt["access_token"])
	if claims["aud"] != "https://outlook.office.com" || claims["upn"] != "alice@contoso.test" {
		t.Errorf("device-code token: aud %v upn %v", claims["aud"], claims["upn"])
	}

	cancel() // SIGINT/SIGTERM cancel the same context in main
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("emulator exited %d after interrupt; stderr %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not stop after interrupt")
	}
}

func payload(t *testing.T, tok any) map[string]any {
	t.Helper()
	s, _ := tok.(string)
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20q", s)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

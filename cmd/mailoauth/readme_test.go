//go:build unix

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeWalk names the README's parts whose shell blocks run in one shell, in order, as a user
// pastes them: the quick start leaves the emulator running for mail and the proxy's try-out.
var readmeWalk = []struct{ from, to string }{
	{"## Quick start against the emulator", "\n## "},
	{"## Sending and reading mail", "\n## "},
	{"**Try it first on the emulator**", "**Then for real:**"},
}

// readmeScript extracts the command blocks (4-space indented after a blank line, or ```sh fences)
// of the walked parts of README.md.
func readmeScript(t *testing.T, readme string) string {
	t.Helper()
	var script []string
	for _, part := range readmeWalk {
		i := strings.Index(readme, part.from)
		if i < 0 {
			t.Fatalf("README.md has no %q", part.from)
		}
		body := readme[i:]
		if j := strings.Index(body[len(part.from):], part.to); j >= 0 {
			body = body[:len(part.from)+j]
		}
		lines := strings.Split(body, "\n")
		for k := 0; k < len(lines); k++ {
			switch {
			case strings.HasPrefix(lines[k], "```sh"):
				for k++; k < len(lines) && !strings.HasPrefix(lines[k], "```"); k++ {
					script = append(script, lines[k])
				}
			case strings.HasPrefix(lines[k], "    ") && k > 0 && strings.TrimSpace(lines[k-1]) == "":
				for ; k < len(lines) && (strings.HasPrefix(lines[k], "    ") || strings.TrimSpace(lines[k]) == ""); k++ {
					script = append(script, strings.TrimPrefix(lines[k], "    "))
				}
			}
		}
	}
	return strings.Join(script, "\n") + "\n"
}

// secretish matches what the walk prints that must not reach test output: tokens and codes.
var secretish = regexp.MustCompile(`eyJ[A-Za-z0-9_.\-]+|"(refresh_token|id_token|device_code|user_code)":"[^"]*"|enter the code \S+`)

// TestReadmeCommandsWorkAsPasted runs the README's quick start, mail and proxy try-out blocks, taken
// from README.md itself, in bash with `set -euo pipefail` against the installed binary (built here),
// and checks that each did what the README says it does.
func TestReadmeCommandsWorkAsPasted(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required for this test (scripts/test installs it)", tool)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script := readmeScript(t, string(readme))

	bin, tmp := t.TempDir(), t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "mailoauth"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(withoutEnv(os.Environ(), "MAILOAUTH_CONFIG", "PATH", "TMPDIR"),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+tmp)
	// Its own process group, so that a failed walk leaves no emulator or proxy behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	shown := secretish.ReplaceAllString(string(out), "[redacted]")
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatal(err)
		}
		t.Fatalf("the README's blocks failed (%v):\n--- script\n%s--- output\n%s", err, script, shown)
	}
	for _, want := range []string{
		"  Graph ", "  proxy IMAP ", // the banner
		"Signed in: account alice-device as alice@contoso.test",
		"✓ GRAPH", // check --protocol all
		"Signed in: account alice as alice@contoso.test", // login --no-browser, with curl as the browser
		"Forgot the tokens of account alice",
		`"access_token"`, "AADSTS7000215", "AADSTS90002",
		"Rapport — März", "saved as attachments/report.pdf", "to Archive", "Deleted ",
		"to Exchange: ('OK', [b'AUTHENTICATE completed", // imaplib through the proxy
		"via Graph: ('OK'", // and through the Graph gateway
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the walk's output lacks %q:\n%s", want, shown)
		}
	}
	if n := strings.Count(string(out), `"access_token"`); n != 2 {
		t.Errorf("the curl block got %d access tokens, want 2 (client credentials, device code):\n%s", n, shown)
	}
}

// withoutEnv returns env without the named variables.
func withoutEnv(env []string, names ...string) []string {
	var kept []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			kept = append(kept, kv)
		}
	}
	return kept
}

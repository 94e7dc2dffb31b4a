package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// saysLogin reports whether errs tells the user to log in to account, with or without --config.
func saysLogin(errs, account string) bool {
	return regexp.MustCompile(`run: mailoauth (--config \S+ )?login ` + regexp.QuoteMeta(account) + `\b`).MatchString(errs)
}

// TestSuggestionsRepeatConfig: every command the CLI suggests (login advice, doctor and check fixes,
// setup's "Try it") repeats the --config FILE the user gave, quoted for the shell, so that pasting it
// reads the same file; with $MAILOAUTH_CONFIG instead, the suggestion stays bare.
func TestSuggestionsRepeatConfig(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	// A path outside the working directory, with a space: the suggestion must quote it.
	spaced := filepath.Join(t.TempDir(), "my mail")
	if err := os.Symlink(filepath.Dir(cfg), spaced); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(spaced, filepath.Base(cfg))
	ctx := context.Background()
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, ctx, append([]string{"--config", path}, args...)...)
	}
	want := "mailoauth --config '" + path + "' login alice-device"

	code, _, errs := cli("token", "alice-device")
	if code != exitFailure || !strings.HasSuffix(strings.TrimSpace(errs), "run: "+want) {
		t.Fatalf("token before login: exit %d, stderr %q; want it to end with %q", code, errs, "run: "+want)
	}
	// Pasted into a shell, the suggestion is the command that logs in with the same file.
	pasted := shellWords(t, strings.TrimPrefix(want, "mailoauth "))
	if code, out, errs := runCLI(t, ctx, pasted...); code != exitOK || !strings.Contains(out, "Signed in: account alice-device") {
		t.Fatalf("the suggested command %q: exit %d, %q %q", want, code, out, errs)
	}
	if code, out, _ := cli("logout", "alice-device"); code != exitOK {
		t.Fatalf("logout: %q", out)
	}

	code, out, _ := cli("doctor", "alice-device", "--protocol", "imap")
	if code != exitFailure || !strings.Contains(out, "fix: sign in: "+want) {
		t.Errorf("doctor before login: exit %d; want the fix %q in:\n%s", code, want, out)
	}
	_, out, _ = cli("--json", "doctor", "alice-device", "--protocol", "imap")
	var rep struct {
		Protocols []struct{ Finding struct{ Fix string } }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Protocols) != 1 || !strings.HasSuffix(rep.Protocols[0].Finding.Fix, want) {
		t.Errorf("doctor --json before login: %v; want the fix to end with %q in:\n%s", err, want, out)
	}
	if code, out, _ := cli("check", "alice-device", "--protocol", "smtp"); code != exitFailure || !strings.Contains(out, want) {
		t.Errorf("check before login: exit %d; want %q in:\n%s", code, want, out)
	}
	if code, out, _ := cli("setup", "alice-device"); code != exitOK || !strings.Contains(out, want) ||
		!strings.Contains(out, "mailoauth --config '"+path+"' doctor alice-device") {
		t.Errorf("setup's Try it: exit %d; want %q and the doctor in:\n%s", code, want, out)
	}

	// $MAILOAUTH_CONFIG works in the same shell: the advice stays bare.
	t.Setenv("MAILOAUTH_CONFIG", path)
	code, _, errs = runCLI(t, ctx, "token", "alice-device")
	if code != exitFailure || !strings.HasSuffix(strings.TrimSpace(errs), "run: mailoauth login alice-device") {
		t.Errorf("with MAILOAUTH_CONFIG: exit %d, stderr %q; want the bare login advice", code, errs)
	}
}

// shellWords splits a command line as bash would.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	out, err := exec.Command("bash", "-c", `printf '%s\0' `+line).Output()
	if err != nil {
		t.Fatalf("bash cannot read %q: %v", line, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/mailoauth/config.toml": "/etc/mailoauth/config.toml",
		"my mail.toml":               "'my mail.toml'",
		"it's.toml":                  `'it'\''s.toml'`,
		"":                           "''",
		"$HOME/x":                    "'$HOME/x'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestAdviseRewritesCommandsOnly: library text names commands bare and uses "mailoauth" as a word;
// only commands that read the configuration get --config.
func TestAdviseRewritesCommandsOnly(t *testing.T) {
	a := &app{}
	a.rootCommand()
	a.configPath = "/srv/m.toml" // as --config sets it
	for in, want := range map[string]string{
		"sign in: mailoauth login alice":                   "sign in: mailoauth --config /srv/m.toml login alice",
		"(mailoauth token bob refreshes silently)":         "(mailoauth --config /srv/m.toml token bob refreshes silently)",
		"put it behind `mailoauth proxy`":                  "put it behind `mailoauth --config /srv/m.toml proxy`",
		"mailoauth already retried; mailoauth gets one":    "mailoauth already retried; mailoauth gets one",
		"run `mailoauth proxy hash-password` and paste it": "run `mailoauth proxy hash-password` and paste it",
		"`mailoauth emulator` writes a working one":        "`mailoauth emulator` writes a working one",
		"mailoauth doctor x, then mailoauth check x":       "mailoauth --config /srv/m.toml doctor x, then mailoauth --config /srv/m.toml check x",
	} {
		if got := a.advise(in); got != want {
			t.Errorf("advise(%q) = %q, want %q", in, got, want)
		}
	}
	a.configPath = ""
	if got := a.advise("mailoauth login alice"); got != "mailoauth login alice" {
		t.Errorf("without --config: %q", got)
	}
}

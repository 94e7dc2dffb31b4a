package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHelpTopics: `mailoauth help config` and `help exit-codes` print their pages, the root's help
// lists them, and the exit codes read as the README's rule.
func TestHelpTopics(t *testing.T) {
	ctx := context.Background()
	code, out, errs := runCLI(t, ctx, "help", "config")
	for _, w := range []string{"--config FILE", "$MAILOAUTH_CONFIG", "~/.config/mailoauth/config.toml", "[store]", "[accounts.NAME]", "[proxy]", "client_secret_file", "passphrase_env", "docs/config.md"} {
		if code != exitOK || !strings.Contains(out, w) {
			t.Errorf("help config: exit %d, lacks %q:\n%s%s", code, w, out, errs)
		}
	}
	code, out, _ = runCLI(t, ctx, "help", "exit-codes")
	if code != exitOK {
		t.Fatalf("help exit-codes: exit %d", code)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// README: "0 success; 1 the operation failed (...); 2 usage or configuration error."
	flat := strings.Join(strings.Fields(string(readme)), " ")
	rule := regexp.MustCompile(`0 success; 1 ([a-z ]+) \([^)]*\); 2 ([a-z ]+) error\.`).FindStringSubmatch(flat)
	if rule == nil {
		t.Fatal("README.md's Exit codes section no longer reads \"0 success; 1 ... (...); 2 ... error.\": update this test with it")
	}
	for _, w := range []string{"0  success", "1  " + rule[1], "2  " + rule[2]} {
		if !strings.Contains(out, w) {
			t.Errorf("help exit-codes lacks %q (the README's rule):\n%s", w, out)
		}
	}
	_, out, _ = runCLI(t, ctx, "--help")
	if !strings.Contains(out, "Additional help topics:") || !strings.Contains(out, "mailoauth config") || !strings.Contains(out, "mailoauth exit-codes") {
		t.Errorf("mailoauth --help does not list the help topics:\n%s", out)
	}
}

// TestManPages: `mailoauth man DIR` writes mailoauth.1, with NAME, SYNOPSIS and every visible
// subcommand in SEE ALSO, a page per subcommand and per help topic; the man command itself is hidden.
func TestManPages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if code, out, errs := runCLI(t, ctx, "man", dir); code != exitOK {
		t.Fatalf("man: exit %d, %q %q", code, out, errs)
	}
	page, err := os.ReadFile(filepath.Join(dir, "mailoauth.1"))
	if err != nil {
		t.Fatal(err)
	}
	root := string(page)
	for _, w := range []string{`.TH "MAILOAUTH" "1"`, ".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS", "--config", ".SH SEE ALSO"} {
		if !strings.Contains(root, w) {
			t.Errorf("mailoauth.1 lacks %q", w)
		}
	}
	a := &app{}
	visible := 0
	for _, c := range a.rootCommand().Commands() {
		name := "mailoauth-" + c.Name()
		_, err := os.Stat(filepath.Join(dir, name+".1"))
		switch {
		case c.IsAdditionalHelpTopicCommand():
			if err != nil {
				t.Errorf("no page for the help topic %s: %v", c.Name(), err)
			}
		case c.IsAvailableCommand():
			visible++
			if err != nil || !strings.Contains(root, `\fB`+name+`(1)\fP`) {
				t.Errorf("subcommand %s: page %v, in mailoauth.1's SEE ALSO %v", c.Name(), err, strings.Contains(root, name+"(1)"))
			}
		default:
			if strings.Contains(root, name+"(1)") {
				t.Errorf("the hidden command %s is in mailoauth.1", c.Name())
			}
		}
	}
	if visible < 10 {
		t.Errorf("only %d visible subcommands", visible)
	}
	login, err := os.ReadFile(filepath.Join(dir, "mailoauth-login.1"))
	if err != nil || !strings.Contains(string(login), ".SH SYNOPSIS") || !strings.Contains(string(login), `\fBmailoauth login ACCOUNT`) {
		t.Errorf("mailoauth-login.1: %v\n%s", err, login)
	}
	if code, _, errs := runCLI(t, ctx, "man", filepath.Join(dir, "missing")); code != exitUsage || !strings.Contains(errs, "mkdir -p") {
		t.Errorf("man into a missing directory: exit %d, %q", code, errs)
	}
}

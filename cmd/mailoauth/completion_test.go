package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// completionConfig writes a configuration whose token store cannot be opened (its passphrase
// variable is unset) and whose identity platform does not exist: completion must need neither.
func completionConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	text := `[store]
path = '` + filepath.Join(dir, "tokens.enc") + `'
passphrase_env = 'MAILOAUTH_TEST_NO_SUCH_VARIABLE'

[accounts.daemon]
flow = 'client_credentials'
tenant = 'contoso.onmicrosoft.com'
client_id = '11111111-2222-3333-4444-555555555555'
client_secret_env = 'MAILOAUTH_TEST_NO_SUCH_SECRET'
mailbox = 'shared@contoso.com'

[accounts.daemon-graph]
flow = 'client_credentials'
tenant = 'contoso.onmicrosoft.com'
client_id = '11111111-2222-3333-4444-555555555555'
client_secret_env = 'MAILOAUTH_TEST_NO_SUCH_SECRET'
mailbox = 'shared@contoso.com'

[accounts.work]
flow = 'device'
client_id = '11111111-2222-3333-4444-555555555555'
email = 'alice@contoso.com'
`
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// complete asks the CLI what the shell should offer, through cobra's hidden __complete command that
// the scripts of `mailoauth completion bash|zsh|fish|powershell` call.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	code, out, errs := runCLI(t, context.Background(), append([]string{"__complete"}, args...)...)
	if code != exitOK {
		t.Fatalf("__complete %q: exit %d, stderr %q", args, code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// The last line is the directive (":4" is "no file names").
	if last := lines[len(lines)-1]; last != ":4" {
		t.Errorf("__complete %q: directive %s, want :4 (never file names)", args, last)
	}
	return lines[:len(lines)-1]
}

func TestCompletion(t *testing.T) {
	cfg := completionConfig(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--config", cfg, "token", ""}, []string{"daemon", "daemon-graph", "work"}},
		{[]string{"--config", cfg, "login", "d"}, []string{"daemon", "daemon-graph"}},
		{[]string{"--config", cfg, "logout", "w"}, []string{"work"}},
		{[]string{"--config", cfg, "check", ""}, []string{"daemon", "daemon-graph", "work"}},
		{[]string{"--config", cfg, "doctor", "dae"}, []string{"daemon", "daemon-graph"}},
		{[]string{"--config", cfg, "setup", "x"}, nil},
		{[]string{"--config", cfg, "mail", "list", "w"}, []string{"work"}},
		{[]string{"--config", cfg, "mail", "get", "work", ""}, nil}, // the ID is not an account
		{[]string{"--config", cfg, "send", "wo"}, []string{"work"}},
		{[]string{"--config", cfg, "sendmail", "--account", "da"}, []string{"daemon", "daemon-graph"}},
		{[]string{"check", "work", "--protocol", ""}, []string{"imap", "pop", "smtp", "graph", "all"}},
		{[]string{"doctor", "work", "--protocol", "p"}, []string{"pop"}},
		{[]string{"token", "work", "--resource", ""}, []string{"exchange", "graph"}},
		{[]string{"mail", "folders", "work", "--via", ""}, []string{"imap", "graph"}},
		{[]string{"mail", "list", "work", "--via", ""}, []string{"imap", "pop", "graph"}},
		{[]string{"send", "work", "--via", ""}, []string{"smtp", "graph"}},
	} {
		if got := complete(t, tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.args, got, tc.want)
		}
	}

	// With MAILOAUTH_CONFIG instead of --config.
	t.Setenv("MAILOAUTH_CONFIG", cfg)
	if got := complete(t, "token", "w"); !slices.Equal(got, []string{"work"}) {
		t.Errorf("with MAILOAUTH_CONFIG: %q", got)
	}
	// An unreadable configuration completes nothing, quietly.
	t.Setenv("MAILOAUTH_CONFIG", filepath.Join(t.TempDir(), "missing.toml"))
	if got := complete(t, "token", ""); len(got) != 0 {
		t.Errorf("without a configuration: %q", got)
	}
}

// TestEveryValueFlagCompletes keeps new commands honest: every --protocol, --via, --resource and
// --account offers values, and every command taking ACCOUNT first completes it.
func TestEveryValueFlagCompletes(t *testing.T) {
	a := &app{}
	root := a.rootCommand()
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if _, ok := flagValues[f.Name]; !ok && f.Name != "account" {
				return
			}
			if _, ok := c.GetFlagCompletionFunc(f.Name); !ok {
				t.Errorf("%s --%s has no completion", c.CommandPath(), f.Name)
			}
			if vals := named(f.Usage, flagValues[f.Name]); f.Name != "account" && len(vals) < 2 {
				t.Errorf("%s --%s: its help %q names %q, too few values to complete", c.CommandPath(), f.Name, f.Usage, vals)
			}
		})
		if strings.Contains(c.Use, " ACCOUNT") && strings.Fields(c.Use)[1] == "ACCOUNT" && c.ValidArgsFunction == nil {
			t.Errorf("%s takes ACCOUNT but does not complete it", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// TestUnknownAccountSuggests: a typo of an account name is answered as a typo of a config key is.
func TestUnknownAccountSuggests(t *testing.T) {
	cfg := completionConfig(t)
	t.Setenv("MAILOAUTH_TEST_NO_SUCH_VARIABLE", "a passphrase for a store made on the spot")
	code, out, errs := runCLI(t, context.Background(), "--config", cfg, "token", "deamon")
	if code != exitUsage || out != "" || !strings.Contains(errs, `did you mean "daemon"?`) || !strings.Contains(errs, "Known accounts: daemon, daemon-graph, work") {
		t.Errorf("token deamon: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = runCLI(t, context.Background(), "--config", cfg, "token", "personal")
	if code != exitUsage || strings.Contains(errs, "did you mean") {
		t.Errorf("token personal: exit %d, stderr %q", code, errs)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Help topics: pages with no command of their own, shown by `mailoauth help TOPIC` and listed under
// "Additional help topics". cobra treats a command with no Run and no subcommands as one.
func helpTopics() []*cobra.Command {
	return []*cobra.Command{
		{
			Use:   "config",
			Short: "The configuration file: where it is found, its tables and keys, environment variables",
			Long:  configTopic,
		},
		{
			Use:   "exit-codes",
			Short: "What the exit status means: 0 success, 1 the operation failed, 2 usage or configuration",
			Long:  exitCodesTopic,
		},
	}
}

const configTopic = `mailoauth reads one TOML file, the first found of:

  1. --config FILE;
  2. $MAILOAUTH_CONFIG;
  3. $XDG_CONFIG_HOME/mailoauth/config.toml (an absolute $XDG_CONFIG_HOME only);
  4. ~/.config/mailoauth/config.toml.

Commands that mailoauth suggests repeat the --config FILE you gave; with $MAILOAUTH_CONFIG or the
default file they stay bare (they read the same file in the same shell).

The file has these tables:

[store] is where tokens are kept: backend ("file", "keyring" or "redis"), path (default
$XDG_STATE_HOME/mailoauth/tokens, else ~/.local/state/mailoauth/tokens), and for the file and redis
backends one of passphrase_env, passphrase_file or key_file (with none, the passphrase is asked on the
terminal). The redis backend, shared by a fleet, takes url (redis:// or rediss://), ca_file,
username, password_env or password_file, and prefix (docs/fleet.md).

[accounts.NAME], one per account; NAME is what you type (mailoauth login NAME). Every account has
flow (interactive, device, client_credentials, auth_code_web, refresh_token or password) and
client_id; most have tenant, email, mailbox, protocols (imap, pop, smtp, graph; default imap and
smtp). A confidential flow takes one client credential: client_secret_file, client_secret_env,
client_secret (inline, only in a file others cannot read) or certificate. The servers (imap, pop,
smtp, graph, authority) default to those of the account's cloud.

[proxy] is the local IMAP/POP3/SMTP proxy: its listeners, its users and their accounts, and its TLS
(tls_cert, tls_key). A listener with via = "graph" serves the protocol itself over Microsoft Graph
(the Graph gateway, for mailboxes whose IMAP, POP or SMTP AUTH is off); [proxy.gateway] tunes it:
save_to_sent_items (default true), delete ("deleted_items", the default, or "permanent") and
poll_interval (default "30s", at least "5s"). [console] is the local web console.

Checking: keys are case-sensitive, an unknown key is an error (with "did you mean"), every problem is
reported at once with its table, key and line, and any problem is exit status 2. Relative paths are
relative to the configuration file's directory; ~/ is your home directory. Secrets come from a file or
an environment variable, never from the command line; a file holding a secret (and an inline
client_secret's configuration file) must not be readable by other users (chmod 600 FILE).

Environment variables mailoauth reads itself: MAILOAUTH_CONFIG, XDG_CONFIG_HOME, XDG_STATE_HOME,
XDG_DATA_HOME (mailoauth emulator's data); and the variables the configuration names in its *_env keys
(client_secret_env, certificate_password_env, refresh_token_env, password_env, passphrase_env).

docs/config.md, in the source repository, describes every key, the flows and examples.`

const exitCodesTopic = `Every mailoauth command exits with one of:

  0  success.
  1  the operation failed: a server or the identity platform refused (a login, a token, a mailbox),
     a server could not be reached, a check or doctor found a problem at a server, a sign-in is
     needed (mailoauth token never prompts).
  2  usage or configuration: a problem found on this machine before any network call — a wrong
     flag or argument, a configuration file that does not load or has no accounts, an unknown
     account, a token store the passphrase or key does not open (or a damaged one), input the
     command does not take (a malformed message id, a message with no recipient, an address that
     is not one).

Errors go to stderr as one sentence, with the fix where it is known. mailoauth doctor documents its
own use of 1 and 2 in its help.`

// manCommand writes the man pages: mailoauth.1, one page per subcommand (mailoauth-login.1, ...)
// and one per help topic (mailoauth-config.1, ...). Hidden: it is for packagers and scripts/release.
func (a *app) manCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages (mailoauth.1 and one per command) into DIR",
		Hidden: true,
		Args:   args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return writeManPages(cmd.Root(), argv[0])
		},
	}
}

func writeManPages(root *cobra.Command, dir string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("%s is not a directory; create it first (mkdir -p %s)", dir, shellQuote(dir))
	}
	// No Date: cobra takes SOURCE_DATE_EPOCH (reproducible builds set it), else now.
	header := func() *doc.GenManHeader {
		return &doc.GenManHeader{Section: "1", Source: "mailoauth " + buildVersion(debugBuildInfo()).Version, Manual: "mailoauth manual"}
	}
	root.DisableAutoGenTag = true
	if err := doc.GenManTree(root, header(), dir); err != nil {
		return fmt.Errorf("write the man pages into %s: %w", dir, err)
	}
	for _, t := range root.Commands() {
		if t.IsAdditionalHelpTopicCommand() {
			if err := writeManPage(t, header(), filepath.Join(dir, "mailoauth-"+t.Name()+".1")); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeManPage(cmd *cobra.Command, h *doc.GenManHeader, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = doc.GenMan(cmd, h, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the man page %s: %w", path, err)
	}
	return nil
}

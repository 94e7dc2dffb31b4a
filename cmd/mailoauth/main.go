// Command mailoauth gets OAuth 2.0 tokens from the Microsoft identity platform and uses them for
// Exchange Online mail. This package is CLI wiring only: flags, output and exit codes. Everything it
// does is done by the library packages; it must never hold protocol or identity logic of its own.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/store"
	"github.com/spf13/cobra"
)

// Exit codes, as the README's "Exit codes" section promises.
const (
	exitOK      = 0 // success
	exitFailure = 1 // the operation failed: refused login, unreachable server, ...
	exitUsage   = 2 // usage or configuration error
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app holds what every command shares: the global flags and the output streams.
type app struct {
	configPath string
	jsonOut    bool
	logLevel   string

	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	root           *cobra.Command // for advise, which tells commands from words
	stores         []store.Store  // the token stores the command opened, closed when it ends
}

// usageError marks an error as the caller's mistake (exit 2) rather than a failed operation (exit 1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// args wraps a cobra argument check so that its complaint is a usage error (exit 2).
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{fmt.Errorf("%w; see `%s --help`", err, cmd.CommandPath())}
		}
		return nil
	}
}

// run executes the CLI with the given arguments and streams and returns the process exit code. It is
// the whole program, so tests drive it in-process exactly as a user would.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	a.closeStores()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "mailoauth: "+a.advise(oneLine(err))+a.loginAdvice(err))
	return exitCode(err)
}

// loginAdvice is what to run when err says an account needs a sign-in: the library speaks of Go.
func (a *app) loginAdvice(err error) string {
	var lr *auth.LoginRequiredError
	if errors.As(err, &lr) && lr.Account != "" {
		return "; run: " + a.suggest("login", lr.Account)
	}
	return ""
}

// exitCode maps an error to the README's exit codes: 2 for every problem found locally before any
// network call (usage, configuration, a token store the key does not open, input that is not what
// the command takes), 1 for refusals and unreachable servers.
func exitCode(err error) int {
	var ue usageError
	var ce configError
	switch {
	case errors.As(err, &ue), errors.As(err, &ce), isLocal(err):
		return exitUsage
	default:
		return exitFailure
	}
}

// localErrors are the library's sentinels for problems found on this machine, without a server's say.
var localErrors = []error{store.ErrWrongKey, store.ErrCorrupt, store.ErrNewerFormat, mail.ErrBadID, mail.ErrMalformed, mail.ErrNotSupported}

func isLocal(err error) bool {
	for _, l := range localErrors {
		if errors.Is(err, l) {
			return true
		}
	}
	return false
}

// configError is implemented by errors that come from reading or validating configuration.
type configError interface{ ConfigError() bool }

// infoUnlessTold logs at info for the long-running commands (proxy, console, emulator), whose Info
// lines are what an operator reads, unless --log-level was given.
func (a *app) infoUnlessTold(cmd *cobra.Command) error {
	if cmd.Flags().Changed("log-level") || cmd.Root().PersistentFlags().Changed("log-level") {
		return nil
	}
	a.logLevel = "info"
	return a.setupLogging()
}

// oneLine keeps multi-error messages readable: each line of the error is kept, indented after the first.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "\n  ")
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "mailoauth",
		Short:         "OAuth 2.0 for Exchange Online IMAP, POP3, SMTP and Microsoft Graph mail",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setupLogging()
		},
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "config file (default $MAILOAUTH_CONFIG, else $XDG_CONFIG_HOME/mailoauth/config.toml)")
	root.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "machine-readable output on stdout")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.Args = args(func(cmd *cobra.Command, a []string) error {
		if len(a) > 0 {
			return fmt.Errorf("unknown command %q", a[0])
		}
		return nil
	})
	var showVersion bool
	root.Flags().BoolVar(&showVersion, "version", false, "print the version (as mailoauth version does)")
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if showVersion {
			return a.printVersion()
		}
		return cmd.Help()
	}
	root.AddCommand(a.emulatorCommand(), a.demoCommand(), a.loginCommand(), a.tokenCommand(), a.accountsCommand(), a.logoutCommand(), a.checkCommand(), a.sendCommand(), a.sendmailCommand(), a.mailCommand())
	root.AddCommand(a.proxyCommand(), a.consoleCommand())
	root.AddCommand(a.doctorCommand(), a.setupCommand(), a.storeCommand())
	root.AddCommand(a.versionCommand(), a.manCommand())
	root.AddCommand(helpTopics()...)
	a.addCompletions(root)
	a.root = root
	return root
}

func (a *app) setupLogging() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usagef("--log-level %q is not a level; use debug, info, warn or error", a.logLevel)
	}
	a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

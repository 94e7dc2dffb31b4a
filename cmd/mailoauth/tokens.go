package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store"
)

// loadConfig reads --config, else $MAILOAUTH_CONFIG, else the XDG default.
func (a *app) loadConfig() (*config.File, error) {
	path := a.configPath
	if path == "" {
		p, err := config.DefaultPath()
		if err != nil {
			return nil, usageError{err}
		}
		path = p
	}
	cfg, err := config.Load(path)
	if err == nil && len(cfg.Accounts) == 0 {
		// Every command names or lists accounts: an empty file is a configuration mistake (exit 2).
		return nil, &config.Error{File: path, Msg: "no accounts are configured; add an [accounts.NAME] table (see docs/config.md)"}
	}
	return cfg, err
}

// manager opens the store and the accounts. interactive allows a passphrase prompt on a terminal;
// `token` never prompts.
func (a *app) manager(interactive bool) (*auth.Manager, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	st, err := a.openStore(cfg.Store, a.storePrompt(cfg.Store, interactive))
	if err != nil {
		return nil, err
	}
	return auth.New(cfg, auth.Options{Store: st, Prompt: a.stderr, Log: a.log}), nil
}

// account opens the store and the named account: what login, token and logout start with.
func (a *app) account(name string, interactive bool) (*auth.Account, error) {
	m, err := a.manager(interactive)
	if err != nil {
		return nil, err
	}
	return m.Account(name)
}

func (a *app) loginCommand() *cobra.Command {
	var o auth.LoginOptions
	cmd := &cobra.Command{
		Use:   "login ACCOUNT",
		Short: "Sign an account in with its flow and keep its tokens",
		Long: `Sign an account in with its configured flow: a browser for interactive (or --device, or
--no-browser to print the URL), a code to enter elsewhere for device, the client credential for
client_credentials, the imported refresh token for refresh_token. Tokens go to the token store.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			acc, err := a.account(argv[0], true)
			if err != nil {
				return err
			}
			si, err := acc.Login(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := keepOnlyUser(cmd.Context(), acc, si.User); err != nil {
				return err
			}
			tok := si.Token
			if a.jsonOut {
				return json.NewEncoder(a.stdout).Encode(map[string]any{
					"account": argv[0], "username": si.User.Username, "resource": tok.Resource, "expires_on": tok.ExpiresOn.UTC(),
				})
			}
			until := tok.ExpiresOn.Local().Format(time.DateTime)
			if acc.AppOnly() {
				// Nobody signs in with client credentials: say what was done instead.
				fmt.Fprintf(a.stdout, "Account %s is app-only (client credentials): nobody signs in. Got its %s token for mailbox %s, valid until %s; mailoauth gets a new one when needed.\n", argv[0], tok.Resource, acc.Mailbox(), until)
				return nil
			}
			fmt.Fprintf(a.stdout, "Signed in: account %s as %s; %s token valid until %s.\n", argv[0], si.User.Username, tok.Resource, until)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.Device, "device", false, "use the device-code flow (sign in on another device)")
	cmd.Flags().BoolVar(&o.NoBrowser, "no-browser", false, "print the sign-in URL on stderr instead of opening a browser, then wait")
	return cmd
}

// keepOnlyUser makes u the account's one user: a CLI account stands for one person, so signing
// someone in replaces whoever was signed in before.
func keepOnlyUser(ctx context.Context, acc *auth.Account, u auth.User) error {
	if u.HomeAccountID == "" {
		return nil
	}
	users, err := acc.Users(ctx)
	if err != nil {
		return err
	}
	for _, other := range users {
		if other.HomeAccountID != u.HomeAccountID {
			if err := acc.RemoveUser(ctx, other.HomeAccountID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *app) tokenCommand() *cobra.Command {
	var resource string
	cmd := &cobra.Command{
		Use:   "token ACCOUNT",
		Short: "Print a valid access token (for msmtp passwordeval, mbsync PassCmd, mutt)",
		Long: `Print the account's access token and a newline, refreshing it silently when needed. It never
prompts: when a sign-in is needed it exits 1 and says to run mailoauth login ACCOUNT.
With --json it prints {"access_token", "token_type", "expires_on", "resource"}.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			r, err := token.ParseResource(resource)
			if err != nil {
				return usageError{err}
			}
			acc, err := a.account(argv[0], false)
			if err != nil {
				return err
			}
			tok, err := acc.Token(cmd.Context(), r)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return json.NewEncoder(a.stdout).Encode(map[string]any{
					"access_token": tok.AccessToken, "token_type": "Bearer", "expires_on": tok.ExpiresOn.UTC(), "resource": r,
				})
			}
			_, err = fmt.Fprintln(a.stdout, tok.AccessToken) // printed on purpose: the one place a token is shown
			return err
		},
	}
	cmd.Flags().StringVar(&resource, "resource", "exchange", "exchange (IMAP, POP, SMTP) or graph")
	return cmd
}

// accountStatus is one line of `accounts` (and its --json form, which is stable).
type accountStatus struct {
	Name         string           `json:"name"`
	Flow         string           `json:"flow"`
	User         string           `json:"user,omitempty"`
	Mailbox      string           `json:"mailbox,omitempty"`
	RefreshToken bool             `json:"refresh_token"`
	Tokens       []auth.HeldToken `json:"access_tokens"`
	Error        string           `json:"error,omitempty"`
}

func (a *app) accountsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "accounts",
		Short: "List the configured accounts and the tokens held for each",
		Long: `List the configured accounts and what the token store holds for each; no token is printed.
--json prints an array (in name order) of {"name", "flow", "user", "mailbox", "refresh_token",
"access_tokens", "error"}: user (the signed-in user, else the configured email), mailbox and error are
left out when empty; refresh_token is false for app-only accounts; access_tokens is an array (never
null) of {"resource", "scopes", "expires_on"}; error says why one account's tokens cannot be read.
A token store that cannot be opened is an error for the whole command (exit 2).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.manager(true)
			if err != nil {
				return err
			}
			cfg, _ := a.loadConfig()
			var list []accountStatus
			for _, name := range cfg.Names() {
				c := cfg.Accounts[name]
				s := accountStatus{Name: name, Flow: c.Flow, User: c.Email, Mailbox: c.Mailbox, Tokens: []auth.HeldToken{}}
				acc, err := m.Account(name)
				if err == nil {
					var h auth.Held
					if h, err = acc.Held(cmd.Context()); err == nil {
						s.RefreshToken = h.RefreshToken
						s.Tokens = append(s.Tokens, h.AccessTokens...) // [] rather than null in --json
						if h.Username != "" {
							s.User = h.Username
						}
					}
				}
				if err != nil {
					var ke *store.KeyError
					if errors.As(err, &ke) || errors.Is(err, store.ErrWrongKey) || errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNewerFormat) {
						return err // the store itself is unusable: say so once
					}
					s.Error = err.Error()
				}
				sort.Slice(s.Tokens, func(i, j int) bool { return s.Tokens[i].Resource < s.Tokens[j].Resource })
				list = append(list, s)
			}
			if a.jsonOut {
				if list == nil {
					list = []accountStatus{}
				}
				return json.NewEncoder(a.stdout).Encode(list)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ACCOUNT\tFLOW\tUSER / MAILBOX\tREFRESH TOKEN\tACCESS TOKENS")
			now := time.Now()
			for _, s := range list {
				who := s.User
				if s.Mailbox != "" {
					who = s.Mailbox
				}
				rt := "no"
				if s.RefreshToken {
					rt = "yes"
				}
				if s.Flow == config.FlowClientCredentials {
					rt = "n/a"
				}
				toks := "none"
				if s.Error != "" {
					toks = "error: " + s.Error
				}
				for i, t := range s.Tokens {
					state := "valid until " + t.ExpiresOn.Local().Format("2006-01-02 15:04")
					if !t.ExpiresOn.After(now) {
						state = "expired"
					}
					if i == 0 {
						toks = ""
					} else {
						toks += "; "
					}
					toks += t.Resource + " " + state
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Flow, who, rt, toks)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "\nTokens are kept in %s.\n", storeWhere(cfg.Store))
			return err
		},
	}
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout ACCOUNT",
		Short: "Forget an account's tokens",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			acc, err := a.account(argv[0], true)
			if err != nil {
				return err
			}
			h, err := acc.Held(cmd.Context())
			if err != nil && !errors.Is(err, auth.ErrSeveralUsers) {
				return err
			}
			held := err != nil || h.RefreshToken || len(h.AccessTokens) > 0
			if err := acc.Logout(cmd.Context()); err != nil {
				return err
			}
			switch {
			case a.jsonOut:
			case held:
				fmt.Fprintf(a.stdout, "Forgot the tokens of account %s.\n", argv[0])
			default:
				fmt.Fprintf(a.stdout, "Account %s held no tokens; nothing to forget.\n", argv[0])
			}
			return nil
		},
	}
}

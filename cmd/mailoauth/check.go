package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
)

func (a *app) checkCommand() *cobra.Command {
	var protocol string
	cmd := &cobra.Command{
		Use:   "check ACCOUNT",
		Short: "Connect, authenticate and open the mailbox as a real client would, step by step",
		Long: `For each protocol: get a token, resolve, connect, TLS, capabilities, authenticate, then the first
command that needs the mailbox (SELECT INBOX, STAT, MAIL FROM + RSET) — because Exchange can accept
the token and still refuse the mailbox. Each step is shown with its time; on failure, the server's exact
words and the likely cause. Exits 1 if any protocol fails.

--protocol: imap, pop, smtp, graph or all; default: the account's protocols. For graph the mailbox
step lists the folders (HTTPS: resolve, connect and TLS happen inside that request).
--json prints {"account", "ok", "protocols": [{"protocol", "server", "ok", "steps": [{"step",
"duration_ns", "ok", "detail", "error"}], "server_said", "likely_cause"}]}.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			acc, err := a.account(argv[0], true)
			if err != nil {
				return err
			}
			var protocols []string
			switch protocol {
			case "":
				for _, p := range acc.Config().Protocols {
					if slices.Contains(check.Protocols(), p) {
						protocols = append(protocols, p)
					}
				}
				if len(protocols) == 0 {
					return usagef("account %s lists no protocols; pass --protocol", argv[0])
				}
			case "all":
				protocols = check.Protocols()
			case config.ProtocolIMAP, config.ProtocolPOP, config.ProtocolSMTP, config.ProtocolGraph:
				protocols = []string{protocol}
			default:
				return usagef("--protocol %q: use imap, pop, smtp, graph or all", protocol)
			}
			rep := check.Run(cmd.Context(), acc, protocols)
			a.adviseCheck(&rep)
			if a.jsonOut {
				if err := json.NewEncoder(a.stdout).Encode(rep); err != nil {
					return err
				}
			} else {
				a.printCheck(rep)
			}
			var failed []string
			for _, r := range rep.Results {
				var ce configError
				if errors.As(r.Err, &ce) {
					return r.Err // a configuration problem, not a refusal: exit 2
				}
				if !r.OK {
					failed = append(failed, r.Protocol)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("check of account %s failed for %s", argv[0], strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&protocol, "protocol", "", "imap, pop, smtp, graph or all (default: the account's protocols)")
	return cmd
}

func (a *app) printCheck(rep check.Report) {
	for _, r := range rep.Results {
		mark := "✓"
		if !r.OK {
			mark = "✗"
		}
		fmt.Fprintf(a.stdout, "%s %s %s (account %s)\n", mark, strings.ToUpper(r.Protocol), r.Server, rep.Account)
		for _, s := range r.Steps {
			m := "✓"
			text := s.Detail
			if !s.OK {
				m, text = "✗", s.Error
			}
			fmt.Fprintf(a.stdout, "  %s %-14s %7s  %s\n", m, s.Name, s.Duration.Round(100*time.Microsecond), text)
		}
		if !r.OK {
			if r.Said != "" {
				fmt.Fprintf(a.stdout, "  server said: %s\n", r.Said)
			}
			if r.Cause != "" {
				fmt.Fprintf(a.stdout, "  likely cause: %s\n", r.Cause)
			}
		}
	}
}

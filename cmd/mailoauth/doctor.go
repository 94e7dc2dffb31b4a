package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor"
	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/trace"
)

func (a *app) doctorCommand() *cobra.Command {
	var protocol string
	cmd := &cobra.Command{
		Use:   "doctor ACCOUNT",
		Short: "Walk the chain from the configuration to the mailbox and name the one fix that is needed",
		Long: `Walk the chain an account's mail depends on, stopping at the first broken link: config (the
keys the flow needs, secrets readable, certificate loads and is valid) → the token store opens → tenant discovery → token (AADSTS
codes explained) → the token's claims against the protocol (audience, scp or roles, user, tenant, clock)
→ resolve → connect → TLS → capabilities → authenticate → the first mailbox command. Each protocol walks
its own chain after the shared links. A broken link is a finding: a stable code, the cause and the fix,
with the PowerShell or portal step filled in (docs/doctor.md lists them all).

--protocol: imap, pop, smtp, graph or all; default: the account's protocols.
--json prints the report documented in docs/doctor.md.
Exit status: 0 healthy; 1 a finding (including a problem the config link finds, such as an unreadable
secret or an expired certificate); 2 a configuration file that does not load, an unknown account, a
token store that cannot be opened, or a usage error.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			protocols, err := doctorProtocols(protocol)
			if err != nil {
				return err
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if _, err := cfg.Account(argv[0]); err != nil {
				return err
			}
			m, err := a.manager(true)
			if err != nil {
				return err
			}
			rep, err := doctor.Run(cmd.Context(), cfg, m, argv[0], doctor.Options{Protocols: protocols})
			if err != nil {
				return err
			}
			a.adviseDoctor(&rep)
			if a.jsonOut {
				if err := json.NewEncoder(a.stdout).Encode(rep); err != nil {
					return err
				}
			} else {
				printDoctor(a.stdout, rep)
			}
			if !rep.OK {
				var codes []string
				for _, f := range rep.Findings() {
					codes = append(codes, f.Code)
				}
				err := fmt.Errorf("doctor: account %s: %s", argv[0], strings.Join(codes, ", "))
				if rep.Finding != nil && rep.Finding.Step == "store" {
					return usageError{err} // the doctor could not start: docs/doctor.md's exit 2
				}
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&protocol, "protocol", "", "imap, pop, smtp, graph or all (default: the account's protocols)")
	return cmd
}

func doctorProtocols(p string) ([]string, error) {
	switch {
	case p == "":
		return nil, nil
	case p == "all":
		return check.Protocols(), nil
	case slices.Contains(check.Protocols(), p):
		return []string{p}, nil
	}
	return nil, usagef("--protocol %q: use imap, pop, smtp, graph or all", p)
}

func printDoctor(w io.Writer, rep doctor.Report) {
	fmt.Fprintf(w, "Doctor for account %s\n", rep.Account)
	printSteps(w, "", rep.Steps)
	printFindings(w, "", rep.Finding, rep.Notes)
	for _, p := range rep.Protocols {
		mark := "✓"
		if !p.OK {
			mark = "✗"
		}
		name := strings.ToUpper(p.Protocol)
		if p.Protocol == config.ProtocolGraph {
			name = "Graph"
		}
		fmt.Fprintf(w, "%s %s %s\n", mark, name, p.Server)
		printSteps(w, "  ", p.Steps)
		if p.Said != "" {
			fmt.Fprintf(w, "  server said: %s\n", p.Said)
		}
		printFindings(w, "  ", p.Finding, p.Notes)
	}
	if rep.OK {
		fmt.Fprintln(w, "healthy: every link holds")
	}
}

func printSteps(w io.Writer, indent string, steps []trace.Step) {
	for _, s := range steps {
		m, text := "✓", s.Detail
		if !s.OK {
			m, text = "✗", s.Error
		}
		fmt.Fprintf(w, "%s%s %-14s %8s  %s\n", indent, m, s.Name, s.Duration.Round(100*time.Microsecond), text)
	}
}

func printFindings(w io.Writer, indent string, f *catalog.Finding, notes []catalog.Finding) {
	for _, n := range notes {
		fmt.Fprintf(w, "%snote %s: %s\n%s  %s\n", indent, n.Code, n.Cause, indent, n.Fix)
	}
	if f == nil {
		return
	}
	fmt.Fprintf(w, "%sfinding %s: %s\n%sfix: %s\n", indent, f.Code, f.Cause, indent, f.Fix)
	if f.Docs != "" {
		fmt.Fprintf(w, "%sdocs: %s\n", indent, f.Docs)
	}
}

package main

import (
	"slices"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/token"
)

// flagValues are the values shell completion offers for these flags. A command offers those its
// flag's help text names ("imap or graph" for `mail folders --via`), so completion and help agree.
var flagValues = map[string][]string{
	"protocol": {config.ProtocolIMAP, config.ProtocolPOP, config.ProtocolSMTP, config.ProtocolGraph, "all"},
	"via":      {viaIMAP, viaPOP, viaSMTP, viaGraph},
	"resource": {string(token.Exchange), string(token.Graph)},
}

// addCompletions walks the command tree: a command whose first argument is ACCOUNT (and the
// --account flag) completes account names, and --protocol, --via and --resource complete their
// values. Cobra's own `completion` command writes the shell scripts that call these.
func (a *app) addCompletions(cmd *cobra.Command) {
	if fields := strings.Fields(cmd.Use); len(fields) > 1 && fields[1] == "ACCOUNT" && cmd.ValidArgsFunction == nil {
		cmd.ValidArgsFunction = func(_ *cobra.Command, argv []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(argv) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return a.completeAccounts(toComplete)
		}
	}
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "account" {
			_ = cmd.RegisterFlagCompletionFunc(f.Name, func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				return a.completeAccounts(toComplete)
			})
			return
		}
		known, ok := flagValues[f.Name]
		if !ok {
			return
		}
		values := named(f.Usage, known)
		_ = cmd.RegisterFlagCompletionFunc(f.Name, func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return withPrefix(values, toComplete), cobra.ShellCompDirectiveNoFileComp
		})
	})
	for _, c := range cmd.Commands() {
		a.addCompletions(c)
	}
}

// completeAccounts offers the configured account names. It reads the configuration only: no token
// store is opened (that may prompt for a passphrase) and nothing goes to the network.
func (a *app) completeAccounts(toComplete string) ([]string, cobra.ShellCompDirective) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return withPrefix(cfg.Names(), toComplete), cobra.ShellCompDirectiveNoFileComp
}

// named returns the words of known that usage names, in usage's order.
func named(usage string, known []string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(usage, func(r rune) bool { return !unicode.IsLetter(r) }) {
		if slices.Contains(known, w) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// withPrefix keeps the values that start with prefix.
func withPrefix(values []string, prefix string) []string {
	out := []string{}
	for _, v := range values {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/doctor"
)

func (a *app) setupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "setup ACCOUNT",
		Short: "Print the registration checklist for an account's flow and protocols, values filled in",
		Long: `Print what must be set up in Entra ID and Exchange Online for the account: the app registration,
the platform and redirect URI (or "Allow public client flows"), the client credential, the API
permissions by their exact names, consent (with the admin-consent URL), and for app-only access the
Exchange Online PowerShell (New-ServicePrincipal, Add-MailboxPermission, Set-CASMailbox) with the
account's client id and mailbox filled in. Nothing is contacted. --json prints the checklist documented
in docs/doctor.md.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			acc, err := cfg.Account(argv[0])
			if err != nil {
				return err
			}
			cl := doctor.Setup(acc)
			a.adviseSetup(&cl)
			if a.jsonOut {
				return json.NewEncoder(a.stdout).Encode(cl)
			}
			fmt.Fprintf(a.stdout, "Setup for account %s: flow %s, client id %s, tenant %s", cl.Account, cl.Flow, cl.ClientID, cl.Tenant)
			if cl.Mailbox != "" {
				fmt.Fprintf(a.stdout, ", mailbox %s", cl.Mailbox)
			}
			fmt.Fprintln(a.stdout)
			for _, s := range cl.Scopes {
				fmt.Fprintf(a.stdout, "  scope %s\n", s)
			}
			for i, it := range cl.Steps {
				fmt.Fprintf(a.stdout, "\n%d. %s\n", i+1, it.Title)
				for _, d := range it.Details {
					fmt.Fprintf(a.stdout, "   - %s\n", d)
				}
				for _, c := range it.Commands {
					fmt.Fprintf(a.stdout, "     %s\n", c)
				}
			}
			return nil
		},
	}
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/demo"
)

func (a *app) demoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run the main job end to end on the built-in emulator (no setup, no network)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := demo.Options{}
			if !a.jsonOut {
				opts.Out = a.stdout
				fmt.Fprintln(a.stdout, "mailoauth demo: the emulator stands in for Microsoft 365; nothing leaves this machine.")
			}
			steps, err := demo.Run(cmd.Context(), opts)
			if a.jsonOut {
				out, jerr := demo.MarshalSteps(steps)
				if jerr != nil {
					return jerr
				}
				fmt.Fprintln(a.stdout, string(out))
			}
			if err != nil {
				return fmt.Errorf("demo failed: %w", err)
			}
			if !a.jsonOut {
				fmt.Fprintln(a.stdout, "demo complete: app-only and delegated tokens for Exchange and Graph from the config the emulator wrote; IMAP, POP3, SMTP and Graph checked with them, and a message with an attachment sent to bob over SMTP and Graph and read back byte-identical over IMAP, POP3 and Graph; a password-only program through the proxy, and through the Graph gateway (IMAP via Graph); a healthy doctor.")
			}
			return nil
		},
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

func (a *app) emulatorCommand() *cobra.Command {
	var listen, advertise, data, scenario, autoApprove string
	var ports map[string]int
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Run a local Microsoft 365 (identity platform and mail) for tests and offline development",
		Long: `Run a local Microsoft 365 on loopback: the Microsoft identity platform over HTTPS, with the
tenants, users and apps of the default world (see docs/emulator.md) or of a scenario file.

It writes into --data: ca.pem (the CA of its TLS certificates), mailoauth.toml (a ready
configuration whose accounts point at it), and the credentials of its apps. It runs until
interrupted (Ctrl-C, SIGTERM).

In a container: --listen 0.0.0.0 --advertise NAME --ports identity=8443,graph=8444,imap=1993,...
listens on every interface, on fixed ports, with a certificate for the name clients use (see
docs/emulator-ci.md).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Info by default: each event (token issued or refused, login accepted or refused,
			// message delivered) is an Info line of the emulator's log.
			if err := a.infoUnlessTold(cmd); err != nil {
				return err
			}
			var w *world.World
			if scenario != "" {
				var err error
				if w, err = world.LoadScenario(scenario); err != nil {
					return err
				}
			}
			if data == "" {
				var err error
				if data, err = defaultEmulatorDir(); err != nil {
					return err
				}
			}
			if err := checkPorts(ports); err != nil {
				return err
			}
			e, err := emulator.Start(cmd.Context(), emulator.Options{Listen: listen, Advertise: advertise, Ports: ports,
				World: w, AutoApprove: autoApprove, Log: a.log})
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.WriteData(data); err != nil {
				return err
			}
			a.printEmulator(e, data)
			<-e.Done()
			if !a.jsonOut {
				fmt.Fprintln(a.stderr, "mailoauth emulator: stopped")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1", "host or IP address to listen on (0.0.0.0: every interface)")
	f.StringVar(&advertise, "advertise", "", "host name clients use: the certificate, authority and config name it (default: --listen, or localhost for 0.0.0.0)")
	f.StringToIntVar(&ports, "ports", nil, "fixed ports by server, e.g. identity=8443,graph=8444,imap=1993,imap-starttls=1143,pop=1995,smtp=1587; the written config's proxy listeners: proxy-imap, proxy-pop, proxy-smtp and, via Graph, gateway-imap, gateway-pop, gateway-smtp (default: free ports)")
	f.Lookup("ports").DefValue = "" // not pflag's "[]"
	f.StringVar(&data, "data", "", "directory for ca.pem, mailoauth.toml and app credentials (default $XDG_DATA_HOME/mailoauth/emulator)")
	f.StringVar(&scenario, "scenario", "", "TOML file describing the world to emulate (default: the built-in world; see docs/scenarios.md)")
	f.StringVar(&autoApprove, "auto-approve", "", "sign this user (UPN) in and consent at once for interactive and device-code logins")
	cmd.AddCommand(a.emulatorCtlCommand())
	return cmd
}

// emulatorServers are the names --ports takes.
var emulatorServers = []string{"identity", "graph", "imap", "imap-starttls", "pop", "smtp",
	"proxy-imap", "proxy-pop", "proxy-smtp", "gateway-imap", "gateway-pop", "gateway-smtp"}

func checkPorts(ports map[string]int) error {
	for name, p := range ports {
		if !slices.Contains(emulatorServers, name) {
			return usagef("--ports: no server is called %q; the servers are %s", name, strings.Join(emulatorServers, ", "))
		}
		if p < 1 || p > 65535 {
			return usagef("--ports: %s=%d is not a port number (1 to 65535)", name, p)
		}
	}
	return nil
}

func defaultEmulatorDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "mailoauth", "emulator"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", usagef("cannot find a home directory for the emulator's files; pass --data DIR")
	}
	return filepath.Join(home, ".local", "share", "mailoauth", "emulator"), nil
}

// printEmulator says where everything is. It prints no secret: the credentials are in files.
func (a *app) printEmulator(e *emulator.Emulator, data string) {
	// Absolute, so that the paths work when pasted into a shell in another directory.
	if abs, err := filepath.Abs(data); err == nil {
		data = abs
	}
	cfg := filepath.Join(data, emulator.ConfigName)
	var tenants []map[string]any
	for _, t := range e.World().Tenants {
		tenants = append(tenants, map[string]any{"name": t.Name, "id": t.ID, "domains": t.Domains})
	}
	if a.jsonOut {
		_ = json.NewEncoder(a.stdout).Encode(map[string]any{
			"authority": e.Authority(), "ca_file": filepath.Join(data, "ca.pem"), "config": cfg,
			"data": data, "tenants": tenants, "mail": e.MailAddrs, "graph": e.MailAddrs["graph"],
			"proxy": e.ProxyAddrs, "gateway": e.GatewayAddrs, "control": e.ControlURL(), "web": e.ControlURL() + "/ui/",
		})
		return
	}
	fmt.Fprintf(a.stdout, "mailoauth emulator running (Ctrl-C to stop)\n")
	fmt.Fprintf(a.stdout, "  identity platform  %s  (authority; tenant paths /%s, /%s, /organizations)\n", e.Authority(), e.World().Tenants[0].Name, e.World().Tenants[0].ID)
	fmt.Fprintf(a.stdout, "  discovery          %s/%s/v2.0/.well-known/openid-configuration\n", e.Authority(), e.World().Tenants[0].Name)
	fmt.Fprintf(a.stdout, "  IMAP               %s (implicit TLS), %s (STARTTLS)\n", e.MailAddrs["imap"], e.MailAddrs["imap-starttls"])
	fmt.Fprintf(a.stdout, "  POP3               %s (implicit TLS)\n", e.MailAddrs["pop"])
	fmt.Fprintf(a.stdout, "  SMTP submission    %s (STARTTLS)\n", e.MailAddrs["smtp"])
	fmt.Fprintf(a.stdout, "  Graph              %s\n", e.MailAddrs["graph"])
	fmt.Fprintf(a.stdout, "  control API        %s  (mailoauth emulator ctl --data %s ...; bearer token in %s)\n", e.ControlURL(), shellQuote(data), filepath.Join(data, emulator.ControlTokenName))
	access := "mailboxes, messages, events"
	if !e.WebPageOpen() {
		access += "; any user name, the control token as password"
	}
	fmt.Fprintf(a.stdout, "  web page           %s/ui/  (%s)\n", e.ControlURL(), access)
	// The emulator does not serve these: `mailoauth proxy` binds them, and the README's proxy
	// walk-through reads them from here.
	fmt.Fprintf(a.stdout, "  proxy IMAP         %s (plain; served by: mailoauth proxy --config %s)\n", e.ProxyAddrs["imap"], cfg)
	fmt.Fprintf(a.stdout, "  proxy POP3         %s (plain)\n", e.ProxyAddrs["pop"])
	fmt.Fprintf(a.stdout, "  proxy SMTP         %s (plain)\n", e.ProxyAddrs["smtp"])
	// Not "proxy IMAP via Graph": the README's awk takes the third field of "proxy IMAP" lines.
	fmt.Fprintf(a.stdout, "  gateway IMAP       %s (plain; the same proxy, via Graph)\n", e.GatewayAddrs["imap"])
	fmt.Fprintf(a.stdout, "  gateway POP3       %s (plain; via Graph)\n", e.GatewayAddrs["pop"])
	fmt.Fprintf(a.stdout, "  gateway SMTP       %s (plain; via Graph)\n", e.GatewayAddrs["smtp"])
	fmt.Fprintf(a.stdout, "  CA certificate     %s\n", filepath.Join(data, "ca.pem"))
	fmt.Fprintf(a.stdout, "  config             %s\n", cfg)
	fmt.Fprintf(a.stdout, "  accounts           ")
	for i, acc := range e.World().Accounts {
		if i > 0 {
			fmt.Fprint(a.stdout, ", ")
		}
		fmt.Fprint(a.stdout, acc.Name)
	}
	fmt.Fprintf(a.stdout, "\n  try                curl --cacert %s %s/%s/v2.0/.well-known/openid-configuration\n", filepath.Join(data, "ca.pem"), e.Authority(), e.World().Tenants[0].Name)
}

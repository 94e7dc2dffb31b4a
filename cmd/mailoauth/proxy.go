package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/passhash"
	"github.com/mailoauth/mailoauth/proxy"
	"github.com/mailoauth/mailoauth/store"
)

func (a *app) proxyCommand() *cobra.Command {
	var checkOnly, service bool
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Let password-only programs use the accounts' mail servers through OAuth 2.0",
		Long: `Listens for IMAP, POP3 and SMTP as configured under [proxy] (see docs/proxy.md), checks the
local user's password against its argon2id hash, and logs in upstream with XOAUTH2 (or OAUTHBEARER)
using the mapped account's token; then copies the session untouched. A listener with via = "graph"
serves the protocol itself and carries it out with Microsoft Graph instead (the Graph gateway, for
mailboxes whose IMAP, POP or SMTP AUTH is off: docs/gateway.md).

Signals: SIGHUP reloads the configuration, all or nothing (new users and listeners; open sessions
are kept; [proxy.gateway] needs a restart; if anything fails, nothing changes and the log says
what); SIGTERM or SIGINT stop accepting and let sessions finish for --drain, then close them,
/healthz answering 503 meanwhile.
--check validates the configuration (listeners, certificates, users, accounts; for listeners via
Graph, that each mapped account gets a Graph token with Mail.ReadWrite or Mail.Send) and exits.
Logs go to stderr at --log-level (info by default for the proxy), never with a password or token.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.infoUnlessTold(cmd); err != nil {
				return err
			}
			if service {
				return a.runProxyService(cmd.Context(), checkOnly, drain)
			}
			return a.runProxy(cmd.Context(), checkOnly, drain, proxyHooks{})
		},
	}
	cmd.Flags().BoolVar(&checkOnly, "check", false, "validate the configuration and exit")
	cmd.Flags().DurationVar(&drain, "drain", 30*time.Second, "how long open sessions may go on after SIGTERM")
	addServiceFlag(cmd, &service)
	cmd.AddCommand(a.hashPasswordCommand(), a.installServiceCommand(), a.uninstallServiceCommand())
	return cmd
}

// proxyConfig loads the configuration and insists on a [proxy] section.
func (a *app) proxyConfig() (*config.File, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	if cfg.Proxy == nil || len(cfg.Proxy.Listeners) == 0 {
		return nil, usagef("%s has no [[proxy.listener]]: add a [proxy] section (docs/proxy.md shows one)", cfg.Path)
	}
	return cfg, nil
}

// proxyAccounts opens every account the proxy maps users to, so that a bad one is found now rather
// than at someone's login.
func proxyAccounts(cfg *config.File, m *auth.Manager) error {
	names := map[string]bool{}
	for _, u := range cfg.Proxy.Users {
		names[u.Account] = true
	}
	for _, d := range cfg.Proxy.Domains {
		names[d.Account] = true
	}
	for name := range names {
		if _, err := m.Account(name); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) runProxy(ctx context.Context, checkOnly bool, drain time.Duration, hooks proxyHooks) error {
	cfg, err := a.proxyConfig()
	if err != nil {
		return err
	}
	st, err := a.openStore(cfg.Store, nil)
	if err != nil {
		return err
	}
	mgr := auth.New(cfg, auth.Options{Store: st, Log: a.log})
	if err := proxyAccounts(cfg, mgr); err != nil {
		return err
	}
	opts := proxy.Options{Log: a.log.With("component", "proxy"), Ready: storeReady(st)}
	opts.LoginTimeout, opts.IdleTimeout, opts.MaxSession = cfg.Proxy.Timeouts()
	gw, gwStore, err := newGateway(cfg, opts.Log, opts.IdleTimeout)
	if err != nil {
		return err
	}
	defer gwStore.Close()
	opts.Gateway = gw
	srv, err := proxy.New(cfg.Proxy, mgr, opts)
	if err != nil {
		return usageError{err}
	}
	if checkOnly {
		fmt.Fprintf(a.stdout, "%s: the proxy configuration is valid: %s; %d user(s), %d domain catch-all(s)\n",
			cfg.Path, describeListeners(cfg.Proxy), len(cfg.Proxy.Users), len(cfg.Proxy.Domains))
		return a.checkGatewayAccounts(ctx, cfg.Proxy, mgr)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	if cfg.Proxy.Admin != "" {
		ln, err := net.Listen("tcp", cfg.Proxy.Admin)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("cannot listen on the admin address %s: %w; free the port or choose another [proxy] admin address", cfg.Proxy.Admin, err)
		}
		if err := a.serveAdmin(cfg, mgr, srv, ln); err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
	}
	hooks.ready()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			a.reloadProxy(srv, cfg, st)
			continue
		case <-hooks.Reload:
			a.reloadProxy(srv, cfg, st)
			continue
		case <-ctx.Done():
		}
		break
	}
	a.log.Info("stopping: draining sessions", "drain", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Warn("sessions still open at the end of the drain were closed")
	}
	return nil
}

// reloadProxy applies the configuration file again. Whatever fails — the file, an account, a
// password hash, a certificate, binding a new listener — is logged with its reason, and nothing is
// applied: Reload is all or nothing, so the running proxy goes on exactly as it was.
func (a *app) reloadProxy(srv *proxy.Server, running *config.File, st store.Store) {
	cfg, err := a.proxyConfig()
	switch {
	case err != nil:
	case cfg.Store != running.Store:
		err = errors.New("the [store] section changed; restart the proxy to use another token store")
	case !reflect.DeepEqual(gatewayOptions(cfg.Proxy.Gateway, nil), gatewayOptions(running.Proxy.Gateway, nil)):
		err = errors.New("the [proxy.gateway] section changed; restart the proxy to apply it")
	}
	var mgr *auth.Manager
	if err == nil {
		mgr = auth.New(cfg, auth.Options{Store: st, Log: a.log})
		err = proxyAccounts(cfg, mgr)
	}
	if err == nil {
		err = srv.Reload(cfg.Proxy, mgr)
	}
	if err != nil {
		a.log.Error("reload failed; nothing was changed and the previous configuration stays in force", "err", err)
		return
	}
	a.log.Info("configuration reloaded", "listeners", describeListeners(cfg.Proxy), "users", len(cfg.Proxy.Users), "domains", len(cfg.Proxy.Domains))
}

func describeListeners(p *config.Proxy) string {
	var parts []string
	for _, l := range p.Listeners {
		tls := l.LocalTLS
		if tls == "" {
			tls = config.LocalTLSNone
		}
		via := ""
		if l.Via == config.ViaGraph {
			via = ", via Graph"
		}
		parts = append(parts, fmt.Sprintf("%s on %s (local TLS %s%s)", l.Protocol, l.Listen, tls, via))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func (a *app) hashPasswordCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Read a local password (without echo) and print its argon2id hash for password_hash",
		Long: `Reads the password a local program will send to the proxy — from the terminal without echo
(asked twice), or as the first line of standard input — and prints its argon2id hash, for
[proxy.users."NAME"] password_hash. The password itself is never printed or stored.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := a.readNewPassword()
			if err != nil {
				return err
			}
			h, err := passhash.Hash(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, h)
			return nil
		},
	}
}

func (a *app) readNewPassword() (string, error) {
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(a.stderr, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", usagef("the two passwords differ; run hash-password again")
		}
		if len(p1) == 0 {
			return "", usagef("the password is empty; type one")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", usagef("no password on standard input: pipe one line, or run hash-password on a terminal")
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usagef("the password on standard input is empty")
	}
	return pw, nil
}

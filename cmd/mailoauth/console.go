package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/console"
	"github.com/mailoauth/mailoauth/proxy"
)

func (a *app) consoleCommand() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the web console: every account's health, sign-in from a browser, the doctor",
		Long: `Serves the web console (docs/console.md) on [console] listen (127.0.0.1:8090 by default) until
SIGTERM or SIGINT: each account's flow, users, token expiry and last refresh, its last problem as the
doctor's finding; device-code sign-in shown on the page, sign-out, and the doctor for one account.
A running proxy serves the same console on its [proxy] admin address.

The configuration needs a [console] section: password_hash (from mailoauth proxy hash-password) for
the admin login, or auth = "none" on a loopback address. An address that is not loopback needs
tls_cert and tls_key. The token store must open without a prompt (passphrase_env, passphrase_file,
key_file or the keyring). Logs go to stderr, never with a token, secret, code or password.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.infoUnlessTold(cmd); err != nil {
				return err
			}
			return a.runConsole(cmd.Context(), listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "host:port to serve on, instead of [console] listen")
	return cmd
}

// consoleConfig loads the configuration and insists on a [console] section.
func (a *app) consoleConfig() (*config.File, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	if cfg.Console == nil {
		return nil, usagef(`%s has no [console] section: add one with password_hash (mailoauth proxy hash-password), or auth = "none" to serve it on loopback without a login (docs/console.md)`, cfg.Path)
	}
	return cfg, nil
}

func (a *app) runConsole(ctx context.Context, listen string) error {
	cfg, err := a.consoleConfig()
	if err != nil {
		return err
	}
	if listen == "" {
		listen = cfg.Console.Listen
	}
	st, err := a.openStore(cfg.Store, nil)
	if err != nil {
		return err
	}
	mgr := auth.New(cfg, auth.Options{Store: st, Log: a.log})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s for the console: %w; free the port or choose another with --listen or [console] listen", listen, err)
	}
	h, ln, err := a.newConsole(cfg, mgr, nil, ln)
	if err != nil {
		return err
	}
	defer h.Close()
	// A slow or idle client cannot hold a connection for ever: a request is read within 30 s and an idle
	// keep-alive connection closed after 2 minutes. No write timeout: a doctor run may take 3 minutes.
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return nil
}

// newConsole makes the console for ln (the console's own address, or the proxy's admin address),
// and wraps ln in TLS when [console] has a certificate. A console that may not be served there
// (not loopback without TLS, or without a login) is a usage error: exit 2.
func (a *app) newConsole(cfg *config.File, mgr *auth.Manager, srv *proxy.Server, ln net.Listener) (*console.Console, net.Listener, error) {
	cc := cfg.Console
	opts := console.Options{Config: cfg, Manager: mgr, Addr: ln.Addr().String(), Log: a.log}
	if srv != nil {
		opts.Proxy = srv
	}
	if cc.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cc.TLSCert, cc.TLSKey)
		if err != nil {
			ln.Close()
			return nil, nil, usagef("cannot load the console's certificate ([console] tls_cert %s, tls_key %s): %v", cc.TLSCert, cc.TLSKey, err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		opts.TLS = true
	}
	c, err := console.New(opts)
	if err != nil {
		ln.Close()
		if errors.Is(err, console.ErrNeedsTLS) || errors.Is(err, console.ErrNeedsPassword) {
			return nil, nil, usageError{err}
		}
		return nil, nil, err
	}
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	a.log.Info("console listening", "url", scheme+"://"+ln.Addr().String()+"/", "auth", cc.Auth)
	return c, ln, nil
}

// serveAdmin serves the proxy's admin endpoint on ln, with the console beside /healthz and /metrics
// when the configuration has a [console] section.
func (a *app) serveAdmin(cfg *config.File, mgr *auth.Manager, srv *proxy.Server, ln net.Listener) error {
	if cfg.Console == nil {
		srv.ServeAdmin(ln) // Shutdown stops it last, so /healthz says 503 through the drain
		a.log.Info("admin endpoint listening", "addr", ln.Addr().String(), "paths", "/healthz /metrics")
		return nil
	}
	c, ln, err := a.newConsole(cfg, mgr, srv, ln)
	if err != nil {
		return err
	}
	srv.ServeAdminWith(ln, c)
	a.log.Info("admin endpoint listening", "addr", ln.Addr().String(), "paths", "/healthz /metrics / (console)")
	return nil
}

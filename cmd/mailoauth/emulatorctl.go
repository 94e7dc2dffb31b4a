package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/events"
)

// emulatorCtlCommand is `mailoauth emulator ctl`: the running emulator's control API from a shell.
func (a *app) emulatorCtlCommand() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Change a running emulator: users, apps, faults, mail, events, reset",
		Long: `Change a running emulator through its control API (docs/emulator.md, "Control API").
It finds the emulator through --data, the directory the emulator wrote: control-url,
control-token and ca.pem.

Settings are KEY=VALUE words with the keys of the scenario format (docs/scenarios.md):
true/false and numbers are read as such, and list keys (delegated, application, redirect_uris,
full_access, send_as, mailboxes) take commas: delegated=IMAP.AccessAsUser.All,SMTP.Send.

Exit codes: 0 done, 1 the emulator refused or could not be reached, 2 a local problem (no data
directory, a malformed argument, an unreadable file).`,
		Example: `  mailoauth emulator ctl users add carol@contoso.test password=carol-pw
  mailoauth emulator ctl users set bob@contoso.test imap_disabled=true
  mailoauth emulator ctl apps add tool application=IMAP.AccessAsApp
  mailoauth emulator ctl fault set endpoint=smtp reply="421 4.3.2 Service not available" times=1
  mailoauth emulator ctl deliver alice@contoso.test message.eml
  mailoauth emulator ctl events --since 0 --follow`,
		Args: args(cobra.NoArgs),
	}
	cmd.PersistentFlags().StringVar(&data, "data", "", "the emulator's data directory (default $XDG_DATA_HOME/mailoauth/emulator)")
	c := func() (*ctlClient, error) { return newCtlClient(data) }
	cmd.AddCommand(
		a.ctlGroup("users", "Add, change or remove users (UPN; the tenant is the one of its domain)", c, "tenants/{tenant}/users", true),
		a.ctlGroup("shared", "Add or remove shared mailboxes (ADDRESS full_access=UPN,... send_as=UPN,...)", c, "tenants/{tenant}/shared-mailboxes", false),
		a.ctlApps(c), a.ctlFault(c), a.ctlDeliver(c), a.ctlEvents(c), a.ctlSimple(c, "reset", "Reset the emulator to its scenario (World and mailboxes)", "POST", "reset"),
		a.ctlSimple(c, "world", "Print the World as it is now, as JSON (no passwords, no secrets)", "GET", "world"),
	)
	return cmd
}

// ctlClient calls one emulator's control API.
type ctlClient struct {
	base, token string
	http        *http.Client
}

func newCtlClient(data string) (*ctlClient, error) {
	if data == "" {
		var err error
		if data, err = defaultEmulatorDir(); err != nil {
			return nil, err
		}
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(data, name))
		if err != nil {
			return "", usagef("cannot read %s: is an emulator running with --data %s? (%v)", filepath.Join(data, name), data, errors.Unwrap(err))
		}
		return strings.TrimSpace(string(b)), nil
	}
	base, err := read(emulator.ControlURLName)
	if err != nil {
		return nil, err
	}
	token, err := read(emulator.ControlTokenName)
	if err != nil {
		return nil, err
	}
	caPEM, err := read("ca.pem")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, usagef("%s holds no certificate; restart the emulator to write it again", filepath.Join(data, "ca.pem"))
	}
	return &ctlClient{base: base, token: token, http: &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}}, nil
}

// do sends a request; an answer of 400 or more is an error with the emulator's message (exit 1).
func (c *ctlClient) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/"+path, body)
	if err != nil {
		return nil, usagef("bad request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the emulator at %s cannot be reached (is it still running?): %w", c.base, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var e struct{ Error string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("the emulator refused %s %s (%d): %s", method, path, resp.StatusCode, e.Error)
	}
	return resp, nil
}

// call sends keys as JSON (nil: no body) and copies the answer to out.
func (c *ctlClient) call(ctx context.Context, out io.Writer, method, path string, keys map[string]any) error {
	var body io.Reader
	if keys != nil {
		b, _ := json.Marshal(keys)
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(out, resp.Body)
	return err
}

// listKeys take comma-separated values.
var listKeys = map[string]bool{"delegated": true, "application": true, "redirect_uris": true, "full_access": true,
	"send_as": true, "mailboxes": true}

// parseKeys reads KEY=VALUE words.
func parseKeys(words []string) (map[string]any, error) {
	keys := map[string]any{}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, usagef("%q is not KEY=VALUE (the keys are the scenario format's, e.g. imap_disabled=true)", w)
		}
		switch {
		case listKeys[k]:
			var l []string
			for _, e := range strings.Split(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					l = append(l, e)
				}
			}
			keys[k] = l
		case v == "true" || v == "false":
			keys[k] = v == "true"
		default:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				keys[k] = n
			} else if f, err := strconv.ParseFloat(v, 64); err == nil && strings.Contains(v, ".") {
				keys[k] = f
			} else {
				keys[k] = v
			}
		}
	}
	return keys, nil
}

// tenantOf is the domain of an address, which the control API takes as the tenant.
func tenantOf(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", usagef("%q is not an email address", addr)
	}
	return url.PathEscape(addr[at+1:]), nil
}

// ctlGroup is add/set/rm for mailboxes of a tenant (users, shared mailboxes).
func (a *app) ctlGroup(name, short string, c func() (*ctlClient, error), path string, settable bool) *cobra.Command {
	g := &cobra.Command{Use: name, Short: short, Args: args(cobra.NoArgs)}
	at := func(addr string) (string, error) {
		t, err := tenantOf(addr)
		return strings.Replace(path, "{tenant}", t, 1), err
	}
	idKey := "upn"
	if name == "shared" {
		idKey = "address"
	}
	g.AddCommand(&cobra.Command{
		Use: "add ADDRESS [KEY=VALUE...]", Short: "Add one", Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			keys, err := parseKeys(argv[1:])
			if err != nil {
				return err
			}
			keys[idKey] = argv[0]
			p, err := at(argv[0])
			if err != nil {
				return err
			}
			return withClient(c, func(cl *ctlClient) error { return cl.call(cmd.Context(), a.stdout, "POST", p, keys) })
		},
	}, &cobra.Command{
		Use: "rm ADDRESS", Short: "Remove one", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p, err := at(argv[0])
			if err != nil {
				return err
			}
			return withClient(c, func(cl *ctlClient) error {
				return cl.call(cmd.Context(), a.stdout, "DELETE", p+"/"+url.PathEscape(argv[0]), nil)
			})
		},
	})
	if settable {
		g.AddCommand(&cobra.Command{
			Use: "set ADDRESS KEY=VALUE...", Short: "Change settings (revoke_sessions=true revokes refresh tokens)", Args: args(cobra.MinimumNArgs(2)),
			RunE: func(cmd *cobra.Command, argv []string) error {
				keys, err := parseKeys(argv[1:])
				if err != nil {
					return err
				}
				p, err := at(argv[0])
				if err != nil {
					return err
				}
				return withClient(c, func(cl *ctlClient) error {
					return cl.call(cmd.Context(), a.stdout, "PATCH", p+"/"+url.PathEscape(argv[0]), keys)
				})
			},
		})
	}
	return g
}

func withClient(c func() (*ctlClient, error), f func(*ctlClient) error) error {
	cl, err := c()
	if err != nil {
		return err
	}
	return f(cl)
}

func (a *app) ctlApps(c func() (*ctlClient, error)) *cobra.Command {
	g := &cobra.Command{Use: "apps", Short: "Add, change or remove app registrations and their secrets", Args: args(cobra.NoArgs)}
	keyed := func(use, short, method string, min int, path func(argv []string) string, named bool) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: args(cobra.MinimumNArgs(min)),
			RunE: func(cmd *cobra.Command, argv []string) error {
				keys, err := parseKeys(argv[min:])
				if err != nil {
					return err
				}
				if named {
					keys["name"] = argv[0]
				}
				if method == "DELETE" {
					keys = nil
				}
				return withClient(c, func(cl *ctlClient) error { return cl.call(cmd.Context(), a.stdout, method, path(argv), keys) })
			}}
	}
	app := func(argv []string) string { return "apps/" + url.PathEscape(argv[0]) }
	g.AddCommand(
		keyed("add NAME [KEY=VALUE...]", "Register an app (a confidential one gets a secret, printed once)", "POST", 1, func([]string) string { return "apps" }, true),
		keyed("set NAME KEY=VALUE...", "Change its permissions or consent (delegated, application, consented, admin_consented, redirect_uris)", "PATCH", 1, app, false),
		keyed("rm NAME", "Remove the registration", "DELETE", 1, app, false),
		keyed("secret-add NAME [expires=RFC3339]", "Add a client secret (printed once)", "POST", 1, func(argv []string) string { return app(argv) + "/secrets" }, false),
		keyed("secret-rm NAME N", "Remove its secret number N (as `ctl world` lists them)", "DELETE", 2, func(argv []string) string { return app(argv) + "/secrets/" + url.PathEscape(argv[1]) }, false),
		&cobra.Command{Use: "cert-add NAME FILE", Short: "Register a PEM certificate for client assertions (only its public part is sent)", Args: args(cobra.ExactArgs(2)),
			RunE: func(cmd *cobra.Command, argv []string) error {
				pemData, err := os.ReadFile(argv[1])
				if err != nil {
					return usagef("cannot read the certificate: %v", err)
				}
				cert, err := publicPEM(pemData)
				if err != nil {
					return err
				}
				return withClient(c, func(cl *ctlClient) error {
					resp, err := cl.do(cmd.Context(), "POST", app(argv)+"/certificates", bytes.NewReader(cert), "application/x-pem-file")
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					_, err = io.Copy(a.stdout, resp.Body)
					return err
				})
			}},
		keyed("cert-rm NAME N", "Remove its certificate number N (as `ctl world` lists them)", "DELETE", 2, func(argv []string) string { return app(argv) + "/certificates/" + url.PathEscape(argv[1]) }, false),
	)
	return g
}

// publicPEM keeps the CERTIFICATE blocks of a PEM file, so that a private key in the same file
// (as the emulator's <app>-cert.pem holds) never leaves this machine.
func publicPEM(data []byte) ([]byte, error) {
	var out []byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			out = append(out, pem.EncodeToMemory(b)...)
		}
	}
	if out == nil {
		return nil, usagef("the file holds no PEM CERTIFICATE block")
	}
	return out, nil
}

func (a *app) ctlFault(c func() (*ctlClient, error)) *cobra.Command {
	g := &cobra.Command{Use: "fault", Short: "Set or clear faults of the identity platform, Graph and the mail servers", Args: args(cobra.NoArgs)}
	g.AddCommand(&cobra.Command{
		Use: "set KEY=VALUE...", Short: "Add a fault (the keys of a scenario's [[faults]]); prints it with its id", Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			keys, err := parseKeys(argv)
			if err != nil {
				return err
			}
			return withClient(c, func(cl *ctlClient) error { return cl.call(cmd.Context(), a.stdout, "POST", "faults", keys) })
		},
	}, &cobra.Command{
		Use: "clear [ID]", Short: "Remove one fault, or every fault", Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			p := "faults"
			if len(argv) == 1 {
				p += "/" + url.PathEscape(argv[0])
			}
			return withClient(c, func(cl *ctlClient) error { return cl.call(cmd.Context(), a.stdout, "DELETE", p, nil) })
		},
	})
	return g
}

func (a *app) ctlDeliver(c func() (*ctlClient, error)) *cobra.Command {
	return &cobra.Command{
		Use: "deliver MAILBOX FILE", Short: "Deliver an RFC 5322 message (FILE, or - for standard input) into a mailbox's Inbox",
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			var msg []byte
			var err error
			if argv[1] == "-" {
				msg, err = io.ReadAll(a.stdin)
			} else {
				msg, err = os.ReadFile(argv[1])
			}
			if err != nil {
				return usagef("cannot read the message: %v", err)
			}
			return withClient(c, func(cl *ctlClient) error {
				resp, err := cl.do(cmd.Context(), "POST", "mailboxes/"+url.PathEscape(argv[0])+"/messages", bytes.NewReader(msg), "message/rfc822")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.Copy(a.stdout, resp.Body)
				return err
			})
		},
	}
}

func (a *app) ctlEvents(c func() (*ctlClient, error)) *cobra.Command {
	var since uint64
	var follow bool
	cmd := &cobra.Command{
		Use:   "events [FILTER=VALUE...]",
		Short: "Print the event log as JSON lines (filters: kind, protocol, user, app, client_id, mailbox)",
		Args:  args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, argv []string) error {
			q := url.Values{}
			for _, w := range argv {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					return usagef("%q is not FILTER=VALUE (e.g. kind=auth.refused)", w)
				}
				q.Add(k, v)
			}
			return withClient(c, func(cl *ctlClient) error { return a.followEvents(cmd.Context(), cl, q, since, follow) })
		},
	}
	cmd.Flags().Uint64Var(&since, "since", 0, "print only events after this sequence number")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing events as they happen, until interrupted")
	return cmd
}

// followEvents prints the events after since, and with follow keeps waiting for more.
func (a *app) followEvents(ctx context.Context, cl *ctlClient, q url.Values, since uint64, follow bool) error {
	for {
		q.Set("since", strconv.FormatUint(since, 10))
		if follow {
			q.Set("wait", "30s")
		}
		resp, err := cl.do(ctx, "GET", "events?"+q.Encode(), nil, "")
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		_, err = io.Copy(a.stdout, resp.Body)
		resp.Body.Close()
		if err != nil || !follow {
			return err
		}
		if n, perr := strconv.ParseUint(resp.Header.Get(events.CursorHeader), 10, 64); perr == nil {
			since = n
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (a *app) ctlSimple(c func() (*ctlClient, error), use, short, method, path string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(c, func(cl *ctlClient) error { return cl.call(cmd.Context(), a.stdout, method, path, nil) })
		}}
}

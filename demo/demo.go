// Package demo is the guided tour that `mailoauth demo` runs: it starts the emulator in-process, reads
// the configuration the emulator writes, and walks through the flows a user of mailoauth needs,
// printing each step and what the tokens say. It is the README's first command, so it must work on a
// fresh machine with no network and no setup, and it must never print a token or a secret.
//
// Every flow goes through the auth package with the token store, configured from the written
// mailoauth.toml exactly as a user's program would be.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/mail/graphmail"
	"github.com/mailoauth/mailoauth/pop3"
	"github.com/mailoauth/mailoauth/proxy"
	"github.com/mailoauth/mailoauth/smtp"
	"github.com/mailoauth/mailoauth/store"
)

// Step is one step of the tour, as printed (and as --json emits it).
type Step struct {
	Name     string         `json:"step"`
	OK       bool           `json:"ok"`
	Duration time.Duration  `json:"duration_ns"`
	Detail   string         `json:"detail,omitempty"`
	Claims   map[string]any `json:"claims,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// Options tune the tour.
type Options struct {
	// Out receives the human-readable tour as it goes; nil prints nothing (JSON callers use the Steps).
	Out io.Writer
	// Dir is where the emulator writes its files; "" means a temporary directory removed at the end.
	Dir string
}

// Run runs the tour and returns its steps; the error is the first failed step's.
func Run(ctx context.Context, opts Options) ([]Step, error) {
	t := &tour{out: opts.Out}
	if t.out == nil {
		t.out = io.Discard
	}
	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "mailoauth-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	var (
		emu *emulator.Emulator
		cfg *config.File
	)
	if err := t.step("start the emulator (Microsoft identity platform on loopback, auto-approving alice)", func(s *Step) error {
		var err error
		emu, err = emulator.Start(ctx, emulator.Options{AutoApprove: world.Alice})
		if err != nil {
			return err
		}
		if err := emu.WriteData(dir); err != nil {
			return err
		}
		s.Detail = "authority " + emu.Authority() + ", config " + filepath.Join(dir, emulator.ConfigName)
		return nil
	}); err != nil {
		return t.steps, err
	}
	defer emu.Close()
	if err := t.step("read the configuration the emulator wrote", func(s *Step) error {
		var err error
		cfg, err = config.Load(filepath.Join(dir, emulator.ConfigName))
		if err != nil {
			return err
		}
		s.Detail = "accounts: " + strings.Join(cfg.Names(), ", ")
		return nil
	}); err != nil {
		return t.steps, err
	}
	st, err := store.Open(cfg.Store, nil)
	if err != nil {
		return t.steps, err
	}
	m := auth.New(cfg, auth.Options{Store: st, Prompt: indent{t.out}})
	steps := []struct {
		name, account string
		do            func(*auth.Account) (*token.Token, error)
	}{
		{"account daemon: app-only Exchange token, client credentials with a secret", "daemon",
			func(a *auth.Account) (*token.Token, error) { return a.Token(ctx, token.Exchange) }},
		{"account daemon-cert: the same with a certificate from a password-protected PFX", "daemon-cert",
			func(a *auth.Account) (*token.Token, error) { return a.Token(ctx, token.Exchange) }},
		{"account daemon: app-only Graph token", "daemon",
			func(a *auth.Account) (*token.Token, error) { return a.Token(ctx, token.Graph) }},
		{"account alice-device: device-code sign-in for IMAP, POP and SMTP (auto-approved)", "alice-device",
			func(a *auth.Account) (*token.Token, error) { return signedIn(a.Login(ctx, auth.LoginOptions{})) }},
		{"account alice-device: Graph token from the same sign-in (refresh token, no prompt)", "alice-device",
			func(a *auth.Account) (*token.Token, error) { return a.Token(ctx, token.Graph) }},
		{"account alice: interactive sign-in (PKCE; the demo plays the browser)", "alice",
			func(a *auth.Account) (*token.Token, error) {
				return signedIn(a.Login(ctx, auth.LoginOptions{OpenURL: func(u string) error {
					resp, err := emu.HTTPClient().Get(u)
					if err == nil {
						resp.Body.Close()
					}
					return err
				}}))
			}},
	}
	for _, sp := range steps {
		if err := t.step(sp.name, func(s *Step) error {
			acc, err := m.Account(sp.account)
			if err != nil {
				return err
			}
			tok, err := sp.do(acc)
			if err != nil {
				return err
			}
			return describe(s, tok.AccessToken)
		}); err != nil {
			return t.steps, err
		}
	}
	if err := t.step("a second process over the same token store: alice-device's token without a request", func(s *Step) error {
		m2 := auth.New(cfg, auth.Options{Store: st})
		acc, err := m2.Account("alice-device")
		if err != nil {
			return err
		}
		tok, err := acc.Token(ctx, token.Exchange)
		if err != nil {
			return err
		}
		s.Detail = "token store " + cfg.Store.Path + " (encrypted)"
		return describe(s, tok.AccessToken)
	}); err != nil {
		return t.steps, err
	}
	for _, p := range check.Protocols() {
		if err := t.step("account daemon: check "+strings.ToUpper(p)+" as a mail client would (connect, TLS, authenticate, open the mailbox)", func(s *Step) error {
			acc, err := m.Account("daemon")
			if err != nil {
				return err
			}
			rep := check.Run(ctx, acc, []string{p})
			r := rep.Results[0]
			s.Detail = r.Server
			for _, st := range r.Steps {
				mark, text := "✓", st.Detail
				if !st.OK {
					mark, text = "✗", st.Error
				}
				fmt.Fprintf(t.out, "    %s %-14s %s\n", mark, st.Name, text)
			}
			if !r.OK {
				return fmt.Errorf("%s: %s (%s)", p, r.Said, r.Cause)
			}
			return nil
		}); err != nil {
			return t.steps, err
		}
	}
	if err := t.mail(ctx, m, dir); err != nil {
		return t.steps, err
	}
	if err := t.proxyAndDoctor(ctx, cfg, m); err != nil {
		return t.steps, err
	}
	return t.steps, nil
}

// proxyAndDoctor runs the proxy of the emulator's config for a password-only program, and the
// doctor on the account behind it.
func (t *tour) proxyAndDoctor(ctx context.Context, cfg *config.File, m *auth.Manager) error {
	if cfg.Proxy == nil {
		return nil
	}
	if err := t.step("the proxy: a password-only program logs in as "+world.Alice+" (IMAP LOGIN, local password); the proxy uses daemon's token upstream", func(s *Step) error {
		p := *cfg.Proxy
		p.Listeners = []config.Listener{{Protocol: config.ProtocolIMAP, Listen: "127.0.0.1:0", LocalTLS: config.LocalTLSNone}}
		c, addr, stop, err := loginThrough(ctx, &p, m, proxy.Options{})
		if err != nil {
			return err
		}
		defer stop()
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			return err
		}
		s.Detail = fmt.Sprintf("LOGIN %s ok through %s; SELECT INBOX: %d messages", world.Alice, addr, sel.NumMessages)
		return c.Logout().Wait()
	}); err != nil {
		return err
	}
	if err := t.gateway(ctx, cfg, m); err != nil {
		return err
	}
	return t.step("the doctor: account daemon, every link from its config to the mailbox", func(s *Step) error {
		rep, err := doctor.Run(ctx, cfg, m, "daemon", doctor.Options{})
		if err != nil {
			return err
		}
		if !rep.OK {
			return errors.New("the doctor found a problem with account daemon")
		}
		s.Detail = "healthy: config, discovery, token, claims, connection, authentication and mailbox for every protocol"
		return nil
	})
}

// mail sends a message with an attachment from alice to bob over SMTP and over Graph (account daemon,
// which sends as alice), then reads both back as bob (account daemon-bob) over IMAP, POP3 and Graph,
// showing that the attachment comes back byte-identical each way.
func (t *tour) mail(ctx context.Context, m *auth.Manager, dir string) error {
	name, data := attachmentName, attachmentData()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	att, err := mail.AttachFile(path)
	if err != nil {
		return err
	}
	sum := fingerprint(data)
	subjects := map[string]string{
		"SMTP":  "Démo — über SMTP",
		"Graph": graphSubject,
	}
	draft := func(via string) mail.Draft {
		return mail.Draft{To: []string{world.Bob}, Subject: subjects[via],
			Text: "Hello Bob,\nthis came over " + via + ", with a file attached.\n", Attachments: []mail.Attachment{att}}
	}
	shown := fmt.Sprintf("attachment %q (%d bytes, sha256 %s)", name, len(data), sum)
	daemon, err := m.Account("daemon")
	if err != nil {
		return err
	}
	bob, err := m.Account("daemon-bob")
	if err != nil {
		return err
	}
	if err := t.step("account daemon: send a message with an attachment from alice to bob over SMTP", func(s *Step) error {
		d := draft("SMTP")
		d.From = []string{daemon.Mailbox()}
		raw, err := mail.Build(d)
		if err != nil {
			return err
		}
		c, err := smtp.Dial(ctx, smtp.ForAccount(daemon))
		if err != nil {
			return err
		}
		defer c.Close()
		if err := (&mail.SMTPSender{C: c}).Send(ctx, mail.Envelope{From: daemon.Mailbox(), To: []string{world.Bob}}, raw); err != nil {
			return err
		}
		_ = c.Quit()
		s.Detail = fmt.Sprintf("%q from %s to %s, %s", d.Subject, daemon.Mailbox(), world.Bob, shown)
		return nil
	}); err != nil {
		return err
	}
	if err := t.step("account daemon: send the same over Microsoft Graph (sendMail as alice)", func(s *Step) error {
		if err := graphmail.Send(ctx, graph.ForAccount(daemon), draft("Graph")); err != nil {
			return err
		}
		s.Detail = fmt.Sprintf("%q from %s to %s, %s", subjects["Graph"], daemon.Mailbox(), world.Bob, shown)
		return nil
	}); err != nil {
		return err
	}
	readers := []struct {
		name string
		open func() (mail.Reader, error)
	}{
		{"IMAP", func() (mail.Reader, error) {
			c, err := imap.Dial(ctx, imap.ForAccount(bob))
			if err != nil {
				return nil, err
			}
			return &mail.IMAPReader{C: c}, nil
		}},
		{"POP3", func() (mail.Reader, error) {
			c, err := pop3.Dial(ctx, pop3.ForAccount(bob))
			if err != nil {
				return nil, err
			}
			return &mail.POPReader{C: c}, nil
		}},
		{"Graph", func() (mail.Reader, error) { return &graphmail.Reader{C: graph.ForAccount(bob)}, nil }},
	}
	for _, rd := range readers {
		if err := t.step("account daemon-bob: read both back as bob over "+rd.name, func(s *Step) error {
			r, err := rd.open()
			if err != nil {
				return err
			}
			defer r.Close()
			list, err := r.List(ctx, "", 0, false)
			if err != nil {
				return err
			}
			for _, via := range []string{"SMTP", "Graph"} {
				var id string
				for _, sm := range list {
					if sm.Subject == subjects[via] {
						id = sm.ID
					}
				}
				if id == "" {
					return fmt.Errorf("the message sent over %s is not in bob's inbox over %s", via, rd.name)
				}
				msg, err := r.Get(ctx, id, "")
				if err != nil {
					return err
				}
				if len(msg.Attachments) != 1 {
					return fmt.Errorf("the message sent over %s has %d attachments over %s, want 1", via, len(msg.Attachments), rd.name)
				}
				a := msg.Attachments[0]
				got := fingerprint(a.Data)
				if a.Name != name || !bytes.Equal(a.Data, data) {
					return fmt.Errorf("the attachment sent over %s came back over %s as %q, %d bytes, sha256 %s; sent %q, %d bytes, sha256 %s",
						via, rd.name, a.Name, len(a.Data), got, name, len(data), sum)
				}
				fmt.Fprintf(t.out, "    ✓ sent over %-5s %q  attachment %q  sha256 %s (identical)\n", via, msg.Subject, a.Name, got)
			}
			s.Detail = fmt.Sprintf("%d messages in bob's inbox; both attachments byte-identical", len(list))
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// The attachment the tour sends, and the subject of the message sent over Graph, which the gateway
// step finds again.
const (
	attachmentName = "Grüße aus Köln — 報告.txt"
	graphSubject   = "Démo — über Graph"
)

func attachmentData() []byte {
	return []byte(strings.Repeat("mailoauth demo: an attachment with a non-ASCII name, Grüße, 東京.\r\n", 64))
}

// loginThrough starts a proxy serving p's one listener and logs in to it as alice with the local
// password, as a password-only program does. stop ends the session and the proxy.
func loginThrough(ctx context.Context, p *config.Proxy, m *auth.Manager, o proxy.Options) (c *imapclient.Client, addr string, stop func(), err error) {
	srv, err := proxy.New(p, m, o)
	if err != nil {
		return nil, "", nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, "", nil, err
	}
	for _, a := range srv.Addrs() {
		addr = a
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		srv.Shutdown(ctx)
		return nil, "", nil, err
	}
	c = imapclient.New(conn, nil)
	stop = func() {
		c.Close()
		srv.Shutdown(ctx)
	}
	if err := c.Login(world.Alice, emulator.ProxyPassword).Wait(); err != nil {
		stop()
		return nil, "", nil, fmt.Errorf("LOGIN through the proxy at %s: %w", addr, err)
	}
	return c, addr, stop, nil
}

// fingerprint is the start of a SHA-256, enough to show two files are the same.
func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

type tour struct {
	out   io.Writer
	steps []Step
}

func (t *tour) step(name string, f func(*Step) error) error {
	s := Step{Name: name}
	fmt.Fprintf(t.out, "• %s\n", name)
	start := time.Now()
	err := f(&s)
	s.Duration = time.Since(start)
	s.OK = err == nil
	if err != nil {
		s.Error = err.Error()
		fmt.Fprintf(t.out, "  ✗ failed after %s: %s\n", s.Duration.Round(time.Millisecond), err)
	} else {
		fmt.Fprintf(t.out, "  ✓ %s", s.Duration.Round(time.Millisecond))
		if s.Detail != "" {
			fmt.Fprintf(t.out, "  %s", s.Detail)
		}
		fmt.Fprintln(t.out)
		for _, k := range []string{"aud", "roles", "scp", "upn", "tid", "expires_in"} {
			if v, ok := s.Claims[k]; ok {
				fmt.Fprintf(t.out, "    %-10s %v\n", k, v)
			}
		}
	}
	t.steps = append(t.steps, s)
	return err
}

// describe records what a token says, never the token itself.
func describe(s *Step, token string) error {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		return fmt.Errorf("the access token is not a JWT: %w", err)
	}
	s.Claims = map[string]any{}
	for _, k := range []string{"aud", "roles", "scp", "upn", "tid", "appid", "oid"} {
		if v, ok := claims[k]; ok {
			s.Claims[k] = v
		}
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		s.Claims["expires_in"] = time.Until(exp.Time).Round(time.Second).String()
	}
	return nil
}

// indent prefixes what the flows print for the user (the device code message) so it reads as part of
// its step.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(i.w, "    %s", p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// MarshalSteps is the --json form of a tour.
func MarshalSteps(steps []Step) ([]byte, error) { return json.MarshalIndent(steps, "", "  ") }

// signedIn is the token of a sign-in.
func signedIn(si *auth.SignIn, err error) (*token.Token, error) {
	if err != nil {
		return nil, err
	}
	return si.Token, nil
}

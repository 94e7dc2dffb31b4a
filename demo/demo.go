// Package demo is the guided tour that `mailoauth demo` runs: it starts the emulator in-process, reads
// the configuration the emulator writes, and walks through the flows a user of mailoauth needs,
// printing each step and what the tokens say. It is the README's first command, so it must work on a
// fresh machine with no network and no setup, and it must never print a token or a secret.
//
// Every flow goes through the auth package with the token store, configured from the written
// mailoauth.toml exactly as a user's program would be.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/emulator"
	"github.com/mailoauth/mailoauth/emulator/world"
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
		do            func(*auth.Account) (*auth.Token, error)
	}{
		{"account daemon: app-only Exchange token, client credentials with a secret", "daemon",
			func(a *auth.Account) (*auth.Token, error) { return a.Token(ctx, auth.Exchange) }},
		{"account daemon-cert: the same with a certificate from a password-protected PFX", "daemon-cert",
			func(a *auth.Account) (*auth.Token, error) { return a.Token(ctx, auth.Exchange) }},
		{"account daemon: app-only Graph token", "daemon",
			func(a *auth.Account) (*auth.Token, error) { return a.Token(ctx, auth.Graph) }},
		{"account alice-device: device-code sign-in for IMAP, POP and SMTP (auto-approved)", "alice-device",
			func(a *auth.Account) (*auth.Token, error) { return a.Login(ctx, auth.LoginOptions{}) }},
		{"account alice-device: Graph token from the same sign-in (refresh token, no prompt)", "alice-device",
			func(a *auth.Account) (*auth.Token, error) { return a.Token(ctx, auth.Graph) }},
		{"account alice: interactive sign-in (PKCE; the demo plays the browser)", "alice",
			func(a *auth.Account) (*auth.Token, error) {
				return a.Login(ctx, auth.LoginOptions{OpenURL: func(u string) error {
					resp, err := emu.HTTPClient().Get(u)
					if err == nil {
						resp.Body.Close()
					}
					return err
				}})
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
		tok, err := acc.Token(ctx, auth.Exchange)
		if err != nil {
			return err
		}
		s.Detail = "token store " + cfg.Store.Path + " (encrypted)"
		return describe(s, tok.AccessToken)
	}); err != nil {
		return t.steps, err
	}
	for _, p := range check.Protocols {
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
	return t.steps, nil
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

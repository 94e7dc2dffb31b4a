// Package demo is the guided tour that `mailoauth demo` runs: it starts the emulator in-process, reads
// the configuration the emulator writes, and walks through the flows a user of mailoauth needs,
// printing each step and what the tokens say. It is the README's first command, so it must work on a
// fresh machine with no network and no setup, and it must never print a token or a secret.
//
// Until the auth package lands, the flows are driven with MSAL for Go directly, configured from the
// written mailoauth.toml exactly as a user's program would be.
package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/emulator"
	"github.com/mailoauth/mailoauth/emulator/world"
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
	if err := t.step("account daemon: app-only token with client credentials (secret) for Exchange IMAP/POP/SMTP", func(s *Step) error {
		acc, err := cfg.Account("daemon")
		if err != nil {
			return err
		}
		tok, err := appOnlyToken(ctx, acc, world.ExchangeResourceAlias+"/.default")
		if err != nil {
			return err
		}
		return describe(s, tok)
	}); err != nil {
		return t.steps, err
	}
	var (
		pub     public.Client
		account public.Account
	)
	if err := t.step("account alice-device: device-code sign-in for IMAP, POP and SMTP (auto-approved)", func(s *Step) error {
		acc, err := cfg.Account("alice-device")
		if err != nil {
			return err
		}
		if pub, err = publicClient(acc); err != nil {
			return err
		}
		dc, err := pub.AcquireTokenByDeviceCode(ctx, world.ExchangeDelegated)
		if err != nil {
			return err
		}
		fmt.Fprintf(t.out, "    %s\n", dc.Result.Message)
		res, err := dc.AuthenticationResult(ctx)
		if err != nil {
			return err
		}
		account = res.Account
		return describe(s, res.AccessToken)
	}); err != nil {
		return t.steps, err
	}
	if err := t.step("account alice-device: Graph token from the same sign-in (refresh token, no prompt)", func(s *Step) error {
		res, err := pub.AcquireTokenSilent(ctx, []string{world.GraphResource + "/Mail.ReadWrite", world.GraphResource + "/Mail.Send"}, public.WithSilentAccount(account))
		if err != nil {
			return err
		}
		return describe(s, res.AccessToken)
	}); err != nil {
		return t.steps, err
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

// httpClient trusts the account's extra CA (the emulator's) on top of nothing else: the emulator's
// certificates chain only to it.
func httpClient(acc *config.Account) (*http.Client, error) {
	pool := x509.NewCertPool()
	if acc.CAFile != "" {
		pem, err := os.ReadFile(acc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", acc.CAFile)
		}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}, nil
}

func appOnlyToken(ctx context.Context, acc *config.Account, scope string) (string, error) {
	secret, err := os.ReadFile(acc.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("read client_secret_file: %w", err)
	}
	cred, err := confidential.NewCredFromSecret(strings.TrimSpace(string(secret)))
	if err != nil {
		return "", err
	}
	hc, err := httpClient(acc)
	if err != nil {
		return "", err
	}
	c, err := confidential.New(acc.Authority+"/"+acc.Tenant, acc.ClientID, cred,
		confidential.WithHTTPClient(hc), confidential.WithInstanceDiscovery(false))
	if err != nil {
		return "", err
	}
	res, err := c.AcquireTokenByCredential(ctx, []string{scope})
	if err != nil {
		return "", err
	}
	return res.AccessToken, nil
}

func publicClient(acc *config.Account) (public.Client, error) {
	hc, err := httpClient(acc)
	if err != nil {
		return public.Client{}, err
	}
	return public.New(acc.ClientID, public.WithAuthority(acc.Authority+"/"+acc.Tenant),
		public.WithHTTPClient(hc), public.WithInstanceDiscovery(false))
}

// MarshalSteps is the --json form of a tour.
func MarshalSteps(steps []Step) ([]byte, error) { return json.MarshalIndent(steps, "", "  ") }

// Package mailoauthtest runs a local Microsoft 365 in-process for the tests and examples of programs
// that use Microsoft 365 mail: the identity platform (device code, authorization code, client
// credentials, refresh), Exchange Online's IMAP, POP3 and SMTP, and Microsoft Graph mail, all over
// TLS on loopback and all answering from one organisation — the default one (tenant contoso.test with
// alice, bob and the apps "desktop" and "daemon"), one built in Go (World), or one described in a
// TOML scenario. It is to Microsoft 365 mail what net/http/httptest is to HTTP.
//
// A Server hands out ready-to-use accounts (config.Account values pointing at its listeners and
// trusting its CA, with their credentials as values), drives sign-ins without a browser (ApproveDevice,
// SignIn, Options.AutoApprove), shows what mailboxes hold (Messages, Deliver), records what happened
// for a test to assert on (Events, WaitEvent: "exactly one token request", "refused because the app
// lacks SMTP.SendAsApp") and changes its organisation while it runs (AddUser, RemoveUser, AddFault,
// ClearFaults, Reset).
//
// It must never stand in for a real service: its CA, certificates and tokens are generated at each
// start and are valid only against that Server, and it keeps mail in memory only.
//
//	func TestSend(t *testing.T) {
//		srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
//		acc, err := auth.NewAccount(srv.Account("daemon"), auth.Options{})
//		// ... send with smtp.Dial(ctx, smtp.ForAccount(acc)) ...
//		msgs, err := srv.Messages("bob@contoso.test")
//	}
package mailoauthtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/tomlconf"
)

// Options configure a Server. The zero value is the default organisation.
type Options struct {
	// World is an organisation built in Go; nil (with no scenario) is the default organisation.
	World *World
	// Scenario is the text of a TOML scenario (docs/scenarios.md), for what World does not model:
	// several tenants, shared mailboxes, disabled protocols, lifetimes other than the access
	// token's, faults. Start reports its problems as config.Errors, each naming the line and key,
	// or, for a file it cannot read, a *config.Error.
	Scenario string
	// ScenarioFile is the path of a TOML scenario. At most one of World, Scenario and ScenarioFile.
	ScenarioFile string
	// AutoApprove is the address of a user who signs in and consents at once to every device-code
	// and authorization-code login, with no call to ApproveDevice or SignIn. For a loopback redirect
	// URI (an interactive login) the Server delivers the code itself, so fetching the authorization
	// URL finishes the login.
	AutoApprove string
	// Now is the Server's clock (token lifetimes and expiry, codes, received times); nil is
	// time.Now. A test advances it to expire tokens. Its certificates are valid from an hour before
	// Now at start, so keep that no later than the real time plus an hour.
	Now func() time.Time
}

// Server is a running local Microsoft 365. Its methods are safe for concurrent use.
type Server struct {
	e        *emulator.Emulator
	accounts map[string]*config.Account // checked; copies are handed out

	autoApprove bool
}

// Start starts a Server on loopback. It runs until Close is called or ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	w, err := opts.world()
	if err != nil {
		return nil, err
	}
	e, err := emulator.Start(ctx, emulator.Options{World: w, AutoApprove: opts.AutoApprove, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("mailoauthtest: %w", err)
	}
	s := &Server{e: e, autoApprove: opts.AutoApprove != ""}
	if s.accounts, err = e.Accounts(); err != nil {
		e.Close()
		return nil, fmt.Errorf("mailoauthtest: %w", err)
	}
	return s, nil
}

// NewServer starts a Server for a test and closes it when the test ends; it fails the test if the
// Server cannot start (opts names an invalid world, say).
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

func (o Options) world() (*world.World, error) {
	n := 0
	for _, set := range []bool{o.World != nil, o.Scenario != "", o.ScenarioFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("mailoauthtest: Options set more than one of World, Scenario and ScenarioFile: keep one")
	}
	switch {
	case o.World != nil:
		return o.World.build()
	case o.Scenario != "":
		w, err := world.ParseScenario("Options.Scenario", []byte(o.Scenario))
		return w, configErrors(err)
	case o.ScenarioFile != "":
		w, err := world.LoadScenario(o.ScenarioFile)
		return w, configErrors(err)
	}
	return nil, nil // the emulator's default world
}

// configErrors turns a scenario's problems, which the emulator reports in the configuration
// decoder's internal types, into config's public ones (the same fields), so that a caller can
// name them with errors.As.
func configErrors(err error) error {
	switch e := err.(type) {
	case *tomlconf.Error:
		return (*config.Error)(e)
	case tomlconf.Errors:
		out := make(config.Errors, len(e))
		for i, x := range e {
			out[i] = (*config.Error)(x)
		}
		return out
	}
	return err
}

// Close stops every listener of the Server. It may be called more than once.
func (s *Server) Close() { s.e.Close() }

// Account is a ready-to-use account of the Server's world, checked (config.Account.Check): its
// authority, tenant, client id and flow, its credential as a value (ClientSecret, PFX or
// ClientCertificate), RootCAs holding only the Server's CA, and the Server's IMAP, POP, SMTP and
// Graph addresses. It is nil if the world has no account of that name. The default world's are
// "alice" (interactive), "alice-device" (device code), "daemon" and "daemon-bob" (client
// credentials with a secret, opening alice's and bob's mailbox) and "daemon-cert" (client
// credentials with a certificate). Each call returns a new copy, which the caller may change
// (Email, Mailbox, Protocols...).
func (s *Server) Account(name string) *config.Account {
	a := s.accounts[name]
	if a == nil {
		return nil
	}
	return clone(a)
}

func clone(a *config.Account) *config.Account {
	c := *a
	c.Protocols = append([]string(nil), a.Protocols...)
	c.Scopes = append([]string(nil), a.Scopes...)
	c.PFX = append(config.SecretBytes(nil), a.PFX...)
	return &c
}

// TLSConfig trusts the Server's CA and nothing else: for a client of its servers that takes no
// account (a plain go-imap or net/http client).
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.e.CAPool(), MinVersion: tls.VersionTLS12}
}

// Authority is the identity platform's base URL, without a tenant (config.Account.Authority).
func (s *Server) Authority() string { return s.e.Authority() }

// IMAP is the host:port of the IMAP server (implicit TLS, as Exchange Online's port 993).
func (s *Server) IMAP() string { return s.e.MailAddrs["imap"] }

// POP is the host:port of the POP3 server (implicit TLS, as port 995).
func (s *Server) POP() string { return s.e.MailAddrs["pop"] }

// SMTP is the host:port of the SMTP submission server (STARTTLS, as port 587).
func (s *Server) SMTP() string { return s.e.MailAddrs["smtp"] }

// GraphURL is the base URL of Microsoft Graph, as https://graph.microsoft.com/v1.0.
func (s *Server) GraphURL() string { return s.e.MailAddrs["graph"] }

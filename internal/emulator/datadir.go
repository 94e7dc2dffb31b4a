package emulator

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/atomicfile"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/passhash"
)

// Files WriteData writes: the config, and the control API's token and base URL.
const (
	ConfigName       = "mailoauth.toml"
	ControlTokenName = "control-token"
	ControlURLName   = "control-url"
)

// WriteData writes into dir what a client needs to use this emulator: ca.pem; control-token (0600)
// and control-url, the control API's token and address; each generated app
// credential (<app>-secret.txt, <app>-cert.pem with its key, <app>-cert.pfx and
// <app>-cert.pfx-password.txt); <account>-password.txt for password-flow accounts; a store
// passphrase; and mailoauth.toml, whose accounts point at the
// emulator with every path relative to dir, so the directory can be moved. Files holding secrets are
// 0600 and the directory 0700. Everything is regenerated at each start: tokens issued by an earlier
// run of the emulator are not valid in this one.
func (e *Emulator) WriteData(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("emulator: create data directory: %w", err)
	}
	write := func(name string, data []byte, perm os.FileMode) error {
		return atomicfile.WriteFile(filepath.Join(dir, name), data, perm)
	}
	if err := write("ca.pem", e.CAPEM(), 0o644); err != nil {
		return err
	}
	for name, c := range e.Credentials {
		if err := write(name+"-secret.txt", []byte(c.Secret+"\n"), 0o600); err != nil {
			return err
		}
		if c.Cert == nil {
			continue
		}
		if err := write(name+"-cert.pem", c.CertPEM, 0o600); err != nil {
			return err
		}
		if err := write(name+"-cert.pfx", c.PFX, 0o600); err != nil {
			return err
		}
		if err := write(name+"-cert.pfx-password.txt", []byte(c.PFXPassword+"\n"), 0o600); err != nil {
			return err
		}
	}
	// A token store left by an earlier run is sealed with that run's passphrase and holds tokens this
	// run does not know: remove it with the passphrase it goes with.
	// The gateway's UIDs, kept beside the token store, number messages that are gone too.
	for _, stale := range []string{"tokens", "tokens.lock", "uids"} {
		if err := os.RemoveAll(filepath.Join(dir, stale)); err != nil {
			return fmt.Errorf("emulator: remove the previous run's token store: %w", err)
		}
	}
	if err := write("store-passphrase.txt", []byte(randomString(24)+"\n"), 0o600); err != nil {
		return err
	}
	// The control API's address and token, for `mailoauth emulator ctl` and scripts (curl -H
	// "Authorization: Bearer $(cat control-token)" $(cat control-url)/world).
	if err := write(ControlTokenName, []byte(e.controlToken+"\n"), 0o600); err != nil {
		return err
	}
	if err := write(ControlURLName, []byte(e.ControlURL()+"\n"), 0o644); err != nil {
		return err
	}
	// Password (ROPC) accounts read the emulated user's password from a file, as a user's would.
	for _, spec := range e.World().Accounts {
		if spec.Flow != "password" {
			continue
		}
		if t := e.World().TenantForUPN(spec.Email); t != nil && t.User(spec.Email) != nil {
			if err := write(spec.Name+"-password.txt", []byte(t.User(spec.Email).Password+"\n"), 0o600); err != nil {
				return err
			}
		}
	}
	cfg, err := e.Config()
	if err != nil {
		return err
	}
	out, err := toml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("emulator: write %s: %w", ConfigName, err)
	}
	header := "# Written by `mailoauth emulator` for the emulator at " + e.Authority() + ".\n" +
		"# Paths are relative to this file. Regenerated at every start of the emulator.\n\n"
	return write(ConfigName, append([]byte(header), out...), 0o600)
}

// Config is the configuration WriteData writes, with paths relative to the data directory.
func (e *Emulator) Config() (*config.File, error) {
	f := &config.File{
		Store:    config.Store{Backend: "file", Path: "tokens", PassphraseFile: "store-passphrase.txt"},
		Accounts: map[string]*config.Account{},
	}
	for _, spec := range e.World().Accounts {
		a, app, err := e.account(spec)
		if err != nil {
			return nil, err
		}
		a.CAFile = "ca.pem"
		switch {
		case app == nil: // a public client
		case spec.Credential == "pfx":
			a.Certificate, a.CertificatePasswordFile = app.Name+"-cert.pfx", app.Name+"-cert.pfx-password.txt"
		case spec.Credential == "pem":
			a.Certificate = app.Name + "-cert.pem"
		default:
			a.ClientSecretFile = app.Name + "-secret.txt"
		}
		if spec.Flow == "password" {
			a.PasswordFile = spec.Name + "-password.txt"
		}
		f.Accounts[spec.Name] = a
	}
	var err error
	if f.Proxy, err = e.proxyConfig(f); err != nil {
		return nil, err
	}
	return f, nil
}

// Accounts are the World's accounts as Config describes them, with every credential and the trust
// given as values (config.Account.ClientSecret, PFX, ClientCertificate, Password, RootCAs) instead
// of files, and checked (config.Account.Check): what a program in the same process uses.
func (e *Emulator) Accounts() (map[string]*config.Account, error) {
	out := map[string]*config.Account{}
	for _, spec := range e.World().Accounts {
		a, app, err := e.account(spec)
		if err != nil {
			return nil, err
		}
		a.Name, a.RootCAs = spec.Name, e.CAPool()
		if app != nil {
			c := e.Credentials[app.Name]
			if spec.Credential != "" && spec.Credential != "secret" && c.Cert == nil {
				return nil, fmt.Errorf("emulator: account %s needs a certificate of app %s, and the emulator generated none (the scenario gave the app its own credentials)", spec.Name, app.Name)
			}
			switch spec.Credential {
			case "pfx":
				a.PFX, a.PFXPassword = config.SecretBytes(c.PFX), config.Secret(c.PFXPassword)
			case "pem":
				cert, err := tls.X509KeyPair(c.CertPEM, c.CertPEM)
				if err != nil {
					return nil, fmt.Errorf("emulator: the certificate of app %s: %w", app.Name, err)
				}
				a.ClientCertificate = &cert
			default:
				a.ClientSecret = config.Secret(c.Secret)
			}
		}
		if spec.Flow == "password" {
			if t := e.World().TenantForUPN(spec.Email); t != nil && t.User(spec.Email) != nil {
				a.Password = config.Secret(t.User(spec.Email).Password)
			}
		}
		if err := a.Check(); err != nil {
			return nil, fmt.Errorf("emulator: account %s: %w", spec.Name, err)
		}
		out[spec.Name] = a
	}
	return out, nil
}

// account is spec's account pointing at the emulator, without credentials or trust; app is the
// confidential app whose credential it needs, nil for a public client.
func (e *Emulator) account(spec world.AccountSpec) (*config.Account, *world.App, error) {
	app := e.World().App(spec.App)
	if app == nil {
		return nil, nil, fmt.Errorf("emulator: account %s names app %q, which does not exist", spec.Name, spec.App)
	}
	t := e.World().Tenant(app.Tenant)
	a := &config.Account{
		Email: spec.Email, ClientID: app.ClientID, Flow: spec.Flow,
		Protocols: spec.Protocols, Mailbox: spec.Mailbox, Authority: e.Authority(),
		IMAP: e.MailAddrs["imap"], POP: e.MailAddrs["pop"], SMTP: e.MailAddrs["smtp"], Graph: e.MailAddrs["graph"],
	}
	if len(a.Protocols) == 0 {
		a.Protocols = []string{"imap", "pop", "smtp", "graph"}
	}
	a.Tenant = t.ID
	if len(t.Domains) > 0 {
		a.Tenant = t.Domains[0]
	}
	if spec.Flow == "auth_code_web" && len(app.RedirectURIs) > 0 {
		a.RedirectURI = app.RedirectURIs[0]
	}
	// An interactive account listens on http://localhost (any port) unless its app registered
	// another loopback URI first.
	if spec.Flow == "interactive" && len(app.RedirectURIs) > 0 && app.RedirectURIs[0] != "http://localhost" &&
		strings.HasPrefix(app.RedirectURIs[0], "http://") {
		a.RedirectURI = app.RedirectURIs[0]
	}
	if app.Public || !slices.Contains([]string{"client_credentials", "auth_code_web", "refresh_token"}, spec.Flow) {
		return a, nil, nil
	}
	if e.Credentials[app.Name] == nil {
		return nil, nil, fmt.Errorf("emulator: account %s needs a credential of app %s, and the emulator generated none (the scenario gave it its own)", spec.Name, app.Name)
	}
	return a, app, nil
}

// The [proxy] section of the written config: plain loopback listeners for IMAP, POP3 and SMTP to
// Exchange Online's servers (ProxyAddrs), the same three via Graph (GatewayAddrs), and one local user — the mailbox of the account ProxyAccount (alice@contoso.test in the
// default world), with ProxyPassword —
// mapped to that account, so that a password-only program can be tried at once.
const (
	ProxyAccount  = "daemon"
	ProxyPassword = "proxy-password"
)

func (e *Emulator) proxyConfig(f *config.File) (*config.Proxy, error) {
	acc := f.Accounts[ProxyAccount]
	if acc == nil {
		return nil, nil
	}
	user := acc.Mailbox
	if user == "" {
		user = acc.Email
	}
	if user == "" {
		return nil, nil
	}
	e.proxyHashOnce.Do(func() { e.proxyHash, e.proxyHashErr = passhash.Hash(ProxyPassword) })
	if e.proxyHashErr != nil {
		return nil, fmt.Errorf("emulator: hash the proxy password: %w", e.proxyHashErr)
	}
	p := &config.Proxy{Users: map[string]*config.ProxyUser{
		user: {Account: ProxyAccount, PasswordHash: e.proxyHash},
	}}
	for _, proto := range []string{config.ProtocolIMAP, config.ProtocolPOP, config.ProtocolSMTP} {
		p.Listeners = append(p.Listeners, config.Listener{Protocol: proto, Listen: e.ProxyAddrs[proto], LocalTLS: config.LocalTLSNone})
	}
	for _, proto := range []string{config.ProtocolIMAP, config.ProtocolPOP, config.ProtocolSMTP} {
		p.Listeners = append(p.Listeners, config.Listener{Protocol: proto, Listen: e.GatewayAddrs[proto], LocalTLS: config.LocalTLSNone, Via: config.ViaGraph})
	}
	return p, nil
}

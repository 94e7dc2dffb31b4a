package auth_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/token"
)

// daemonInGo starts the emulator and returns its daemon app's generated credentials and an
// app-only account for it built in Go, with no credential yet and the emulator's CA as a value.
func daemonInGo(t *testing.T) (*emulator.Emulator, *emulator.AppCredentials, config.Account) {
	t.Helper()
	emu, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	f, err := emu.Config()
	if err != nil {
		t.Fatal(err)
	}
	d := f.Accounts["daemon"]
	creds := emu.Credentials["daemon"]
	if d == nil || creds == nil || creds.PFX == nil {
		t.Fatalf("the default world has no daemon with generated credentials")
	}
	return emu, creds, config.Account{
		Name: "daemon", Flow: config.FlowClientCredentials, ClientID: d.ClientID, Tenant: d.Tenant,
		Mailbox: d.Mailbox, Authority: emu.Authority(), RootCAs: emu.CAPool(),
	}
}

// appToken checks acc and asks for an Exchange token through a Manager over it alone.
func appToken(t *testing.T, acc *config.Account) (*token.Token, error) {
	t.Helper()
	if err := acc.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	m := auth.New(&config.File{Accounts: map[string]*config.Account{acc.Name: acc}}, auth.Options{})
	a, err := m.Account(acc.Name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return a.Token(ctx, token.Exchange)
}

// rsaSigner hides the *rsa.PrivateKey behind crypto.Signer, as a key in an HSM would be.
type rsaSigner struct{ k *rsa.PrivateKey }

func (s rsaSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s rsaSigner) Sign(r io.Reader, digest []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, digest, o)
}

// TestValueCredentials: an account built in Go, with no file, gets an app-only token with each
// kind of credential given as a value.
func TestValueCredentials(t *testing.T) {
	_, creds, base := daemonInGo(t)
	pair, err := tls.X509KeyPair(creds.CertPEM, creds.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	signer := pair
	signer.PrivateKey = rsaSigner{pair.PrivateKey.(*rsa.PrivateKey)}

	cases := []struct {
		name string
		set  func(*config.Account)
	}{
		{"client secret", func(a *config.Account) { a.ClientSecret = config.Secret(creds.Secret) }},
		{"certificate", func(a *config.Account) { a.ClientCertificate = &pair }},
		{"certificate with a crypto.Signer", func(a *config.Account) { a.ClientCertificate = &signer }},
		{"PFX", func(a *config.Account) { a.PFX, a.PFXPassword = creds.PFX, config.Secret(creds.PFXPassword) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			acc := base
			c.set(&acc)
			tok, err := appToken(t, &acc)
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || time.Until(tok.ExpiresOn) < time.Minute {
				t.Fatalf("token expires %v", tok.ExpiresOn)
			}
		})
	}
}

// TestValueCredentialsRefused: a wrong value is really what is sent (the identity platform
// refuses it), and a value that cannot be used is reported by its Go field, without the value.
func TestValueCredentialsRefused(t *testing.T) {
	_, creds, base := daemonInGo(t)

	wrong := base
	wrong.ClientSecret = "not-the-daemon-secret-value"
	_, err := appToken(t, &wrong)
	var ae *auth.Error
	if !errors.As(err, &ae) || strings.Contains(err.Error(), string(wrong.ClientSecret)) {
		t.Fatalf("wrong secret: %T %v", err, err)
	}

	pfx := base
	pfx.PFX, pfx.PFXPassword = creds.PFX, "wrong-pfx-password-value"
	_, err = appToken(t, &pfx)
	var ce *auth.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Account.PFXPassword") || strings.Contains(err.Error(), string(pfx.PFXPassword)) {
		t.Fatalf("wrong PFX password: %T %v", err, err)
	}

	// Without RootCAs (and no CAFile) the system's roots are used, which do not trust the emulator:
	// RootCAs is what made the other tests' TLS work.
	untrusted := base
	untrusted.RootCAs = nil
	untrusted.ClientSecret = config.Secret(creds.Secret)
	if _, err := appToken(t, &untrusted); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("system roots trusted the emulator: %v", err)
	}
}

// TestConfigErrorNaming: a problem found when an account is used names what its user wrote: the
// Go field for an account built in code, the TOML key for one read from a file.
func TestConfigErrorNaming(t *testing.T) {
	_, _, base := daemonInGo(t)
	missing := filepath.Join(t.TempDir(), "no-such-secret.txt")

	inGo := base
	inGo.ClientSecretFile = missing
	_, err := appToken(t, &inGo)
	var ce *auth.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Account.ClientSecretFile "+missing+" cannot be read") {
		t.Fatalf("Go account: %v", err)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	src := "[accounts.daemon]\nflow = \"client_credentials\"\nclient_id = \"" + base.ClientID + "\"\ntenant = \"" + base.Tenant +
		"\"\nmailbox = \"" + base.Mailbox + "\"\nauthority = \"" + base.Authority + "\"\nclient_secret_file = \"" + missing + "\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = auth.New(f, auth.Options{}).Account("daemon")
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "client_secret_file "+missing+" cannot be read") || strings.Contains(err.Error(), "Account.") {
		t.Fatalf("file account: %v", err)
	}
}

func TestCloudsAreCopies(t *testing.T) {
	names := auth.CloudNames()
	if strings.Join(names, ",") != "china,global,usgovernment,usgovernmentdod" {
		t.Fatalf("CloudNames() = %v", names)
	}
	c, err := auth.LookupCloud(config.CloudGlobal)
	if err != nil {
		t.Fatal(err)
	}
	c.IMAP = "evil.example:993"
	names[0] = "mars"
	if again, _ := auth.LookupCloud(config.CloudGlobal); again.IMAP != "outlook.office365.com:993" || auth.CloudNames()[0] != "china" {
		t.Errorf("a caller changed the clouds: %+v", again)
	}
	if _, err := auth.LookupCloud("mars"); err == nil || !strings.Contains(err.Error(), "global, usgovernment") {
		t.Errorf("unknown cloud: %v", err)
	}
}

// TestAccountKeepsItsOwnConfig: NewAccount keeps a copy of the configuration it was given, and
// Config returns a copy: a caller changing either afterwards (reusing the struct for the next
// account, say) changes nothing in the live account.
func TestAccountKeepsItsOwnConfig(t *testing.T) {
	acc := &config.Account{Name: "shared", Flow: config.FlowDevice, Tenant: "contoso.com", ClientID: "00000000-0000-4000-8000-0000000000aa",
		Email: "alice@contoso.com", Mailbox: "shared@contoso.com", Protocols: []string{"imap"}, IMAP: "imap.contoso.test:993"}
	a, err := auth.NewAccount(acc, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		scopes := strings.Join(a.Scopes(token.Exchange), " ")
		if a.Mailbox() != "shared@contoso.com" || a.Server("imap") != "imap.contoso.test:993" || a.Name() != "shared" ||
			!strings.Contains(scopes, "IMAP.AccessAsUser.All") || strings.Contains(scopes, "POP") || a.Config().ClientID != acc.ClientID {
			t.Errorf("%s: mailbox %q, IMAP server %q, name %q, scopes %q: the account changed", when, a.Mailbox(), a.Server("imap"), a.Name(), scopes)
		}
	}
	acc.Mailbox, acc.IMAP, acc.Name, acc.Protocols[0] = "other@contoso.com", "evil.test:993", "other", "pop"
	check("after the caller changed its config.Account")
	cfg := a.Config()
	cfg.Mailbox, cfg.IMAP, cfg.Protocols[0] = "other@contoso.com", "evil.test:993", "pop"
	check("after the caller changed what Config returned")
}

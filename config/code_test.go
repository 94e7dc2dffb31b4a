package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// checkErrors runs Check and returns its problems, failing the test if it passed.
func checkErrors(t *testing.T, a *Account) Errors {
	t.Helper()
	err := a.Check()
	if err == nil {
		t.Fatalf("Check accepted %+v", a)
	}
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("Check returned %T, not config.Errors: %v", err, err)
	}
	var ce interface{ ConfigError() bool }
	if !errors.As(err, &ce) || !ce.ConfigError() {
		t.Fatalf("%T is not a configuration error", err)
	}
	return es
}

// tomlKeyInText finds a TOML key of an account (not a flow name) in a message about a Go account.
var tomlKeyInText = regexp.MustCompile(`\b(client_id|client_secret(_env|_file)?|certificate_password_(env|file)|refresh_token_(env|file)|password_(env|file)|redirect_uri|login_hint|ca_file|flow =|tenant =|mailbox =|email =)\b`)

func TestCheckNamesGoFields(t *testing.T) {
	cases := []struct {
		name  string
		acc   Account
		field string
		want  []string // fragments of the message
	}{
		{"flow", Account{Flow: "devic", ClientID: appID}, "Account.Flow",
			[]string{`invalid Account.Flow "devic": use one of interactive, device, client_credentials`}},
		{"missing flow", Account{ClientID: appID}, "Account.Flow",
			[]string{"missing Account.Flow: set Account.Flow to one of interactive"}},
		{"client id", Account{Flow: FlowDevice, ClientID: "my-app"}, "Account.ClientID",
			[]string{"Account.ClientID is not a GUID: set it to the Application (client) ID"}},
		{"protocol", Account{Flow: FlowDevice, ClientID: appID, Protocols: []string{"imap", "imaps"}}, "Account.Protocols",
			[]string{`Account.Protocols: unknown protocol "imaps": use imap, pop, smtp or graph`}},
		{"no credential", Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "a@contoso.com"}, "Account.ClientSecretFile",
			[]string{"missing client credential", "set one of Account.ClientSecret, Account.ClientCertificate, Account.PFX, Account.ClientSecretEnv, Account.ClientSecretFile, Account.Certificate"}},
		{"two credentials", Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "a@contoso.com",
			ClientSecret: "x", PFX: []byte{1}}, "Account.PFX",
			[]string{"Account.ClientSecret and Account.PFX are both set: keep exactly one client credential"}},
		{"public with secret", Account{Flow: FlowDevice, ClientID: appID, ClientCertificate: &tls.Certificate{}}, "Account.ClientCertificate",
			[]string{"Account.ClientCertificate is set, but the device flow is a public client"}},
		{"mailbox", Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", ClientSecret: "x"}, "Account.Mailbox",
			[]string{`missing Account.Mailbox: the client_credentials flow signs in no user, so it must be told which mailbox to open: set Account.Mailbox = "user@domain"`}},
		{"env name", Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "a@contoso.com", ClientSecretEnv: "my secret"}, "Account.ClientSecretEnv",
			[]string{"Account.ClientSecretEnv is not the name of an environment variable", `e.g. Account.ClientSecretEnv = "MAILOAUTH_CLIENT_SECRET"`}},
		{"refresh token", Account{Flow: FlowRefreshToken, ClientID: appID}, "Account.RefreshTokenFile",
			[]string{"missing refresh token", "set Account.RefreshToken, Account.RefreshTokenEnv or Account.RefreshTokenFile"}},
		{"password elsewhere", Account{Flow: FlowDevice, ClientID: appID, Password: "pw"}, "Account.Password",
			[]string{`Account.Password is only used by the password flow, and this account's flow is "device": remove it, or set Account.Flow = "password"`}},
		{"pfx password alone", Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "a@contoso.com",
			ClientSecret: "x", PFXPassword: "p"}, "Account.PFXPassword",
			[]string{"Account.PFXPassword is set without Account.PFX"}},
		{"authority", Account{Flow: FlowDevice, ClientID: appID, Authority: "http://login.example.com"}, "Account.Authority",
			[]string{"Account.Authority uses http"}},
		{"certificate without key", Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "a@contoso.com",
			ClientCertificate: &tls.Certificate{Certificate: [][]byte{{1}}}}, "Account.ClientCertificate",
			[]string{"Account.ClientCertificate has no private key"}},
		{"root CAs and ca_file", Account{Flow: FlowDevice, ClientID: appID, CAFile: "/ca.pem", RootCAs: x509.NewCertPool()}, "Account.CAFile",
			[]string{"Account.RootCAs and Account.CAFile are both set"}},
		{"name", Account{Name: "my work", Flow: FlowDevice, ClientID: appID}, "Account.Name",
			[]string{"invalid Account.Name", "leave it empty for a name derived from the account"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			es := checkErrors(t, &c.acc)
			var got *Error
			for _, e := range es {
				if e.Field == c.field {
					got = e
				}
				if e.File != "" || e.Line != 0 || e.Table != "" || e.Key != "" {
					t.Errorf("an error about a Go account names a place in a file: %+v", e)
				}
				if m := tomlKeyInText.FindString(e.Error()); m != "" {
					t.Errorf("%q names the TOML key %q", e.Error(), m)
				}
			}
			if got == nil {
				t.Fatalf("no error names %s: %v", c.field, es)
			}
			for _, w := range c.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("got  %s\nwant %s", got.Error(), w)
				}
			}
		})
	}
}

func TestCheckDefaults(t *testing.T) {
	a := &Account{Flow: FlowDevice, ClientID: appID, Email: "alice@contoso.com"}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	// A nil Protocols must mean IMAP and SMTP, whose tokens are Exchange's, not a Graph token.
	if !reflect.DeepEqual(a.Protocols, []string{ProtocolIMAP, ProtocolSMTP}) || a.Cloud != CloudGlobal ||
		a.Tenant != TenantOrganizations || a.Mechanism != MechanismXOAUTH2 {
		t.Errorf("defaults: protocols %v, cloud %q, tenant %q, mechanism %q", a.Protocols, a.Cloud, a.Tenant, a.Mechanism)
	}
	if !accountName.MatchString(a.Name) || !strings.Contains(a.Name, appID) {
		t.Errorf("derived name %q", a.Name)
	}
	// The name keys the store: the same account gets the same name in the next run, another
	// user of the same app another name.
	again := &Account{Flow: FlowDevice, ClientID: appID, Email: "alice@contoso.com"}
	bob := &Account{Flow: FlowDevice, ClientID: appID, Email: "bob@contoso.com"}
	if again.Check() != nil || bob.Check() != nil || again.Name != a.Name || bob.Name == a.Name {
		t.Errorf("names: %q, %q, %q", a.Name, again.Name, bob.Name)
	}
	// A name given is kept; a failed check leaves Name alone.
	named := &Account{Name: "work", Flow: FlowDevice, ClientID: appID}
	bad := &Account{Flow: "devic", ClientID: appID}
	if named.Check() != nil || named.Name != "work" || bad.Check() == nil || bad.Name != "" {
		t.Errorf("named %q, failed %q", named.Name, bad.Name)
	}
	// Defaults are not shared between accounts.
	a.Protocols[0] = ProtocolPOP
	if again.Protocols[0] != ProtocolIMAP || DefaultProtocols()[0] != ProtocolIMAP {
		t.Error("default protocols are shared")
	}
}

func TestCheckIdempotent(t *testing.T) {
	a := &Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "alice@contoso.com",
		ClientSecret: "s", Authority: "https://login.example.com/"}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	first := a.snapshot()
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	if now := a.snapshot(); !reflect.DeepEqual(first, now) {
		t.Errorf("a second Check changed the account:\n%+v\n%+v", first, now)
	}
	if a.Authority != "https://login.example.com" {
		t.Errorf("authority %q", a.Authority)
	}
	// A change after a Check is checked again.
	a.Protocols = append(a.Protocols, "imaps")
	if es := checkErrors(t, a); es[0].Field != "Account.Protocols" {
		t.Errorf("after a change: %v", es)
	}

	// An account from a file is checked already, and keeps the file's naming.
	f, err := Parse("config.toml", []byte(daemon), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d := f.Accounts["daemon"]
	before := d.snapshot()
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	if after := d.snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("Check changed an account from a file:\n%+v\n%+v", before, after)
	}
	if d.KeyName("client_secret_file") != "client_secret_file" || a.KeyName("client_secret_file") != "Account.ClientSecretFile" ||
		a.KeyName("pfx_password") != "Account.PFXPassword" || a.KeyName("root_cas") != "Account.RootCAs" {
		t.Errorf("KeyName: %q %q %q %q", d.KeyName("client_secret_file"), a.KeyName("client_secret_file"),
			a.KeyName("pfx_password"), a.KeyName("root_cas"))
	}
}

// TestCheckSameAsParse: an account built in Go and the same account written to a file and parsed
// get the same defaults, and are refused for the same problems.
func TestCheckSameAsParse(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	cases := []Account{
		{Flow: FlowDevice, ClientID: appID},
		{Flow: FlowInteractive, ClientID: appID, Email: "alice@contoso.com", Protocols: []string{ProtocolGraph}, Cloud: CloudUSGovernment},
		{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.onmicrosoft.com", ClientSecretFile: secret,
			Mailbox: "alice@contoso.com", Protocols: []string{ProtocolSMTP}, Authority: "https://login.example.com/"},
		{Flow: FlowAuthCodeWeb, ClientID: appID, Tenant: "contoso.com", ClientSecretEnv: "APP_SECRET", RedirectURI: "https://app.example.com/cb"},
		{Flow: FlowRefreshToken, ClientID: appID, RefreshTokenEnv: "RT", Mechanism: "OAUTHBEARER"},
		{Flow: FlowPassword, ClientID: appID, Email: "alice@contoso.com", PasswordFile: secret, Tenant: TenantOrganizations},
		// Refused, for the same reasons.
		{Flow: "devic", ClientID: appID},
		{Flow: FlowClientCredentials, ClientID: "nope", Tenant: TenantCommon},
		{Flow: FlowDevice, ClientID: appID, ClientSecretFile: secret, RefreshTokenEnv: "RT", Protocols: []string{"imap", "imap"}},
		{Flow: FlowInteractive, ClientID: appID, RedirectURI: "https://example.com", Email: "Alice <alice@contoso.com>", Cloud: "mars"},
		{Flow: FlowPassword, ClientID: appID, Tenant: TenantCommon, PasswordEnv: "1PW", PasswordFile: secret, Scopes: []string{"a b"}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i, c.Flow), func(t *testing.T) {
			name := "acct" + fmt.Sprint(i)
			inGo := c
			inGo.Name = name
			data, err := toml.Marshal(File{Accounts: map[string]*Account{name: &c}})
			if err != nil {
				t.Fatal(err)
			}
			f, parseErr := Parse(filepath.Join(dir, "config.toml"), data, 0o600)
			checkErr := inGo.Check()
			if (parseErr == nil) != (checkErr == nil) {
				t.Fatalf("Parse: %v\nCheck: %v\n%s", parseErr, checkErr, data)
			}
			if parseErr != nil {
				// The same problems, about the same settings (Parse orders them by line).
				var pe, ce Errors
				errors.As(parseErr, &pe)
				errors.As(checkErr, &ce)
				if len(pe) != len(ce) {
					t.Fatalf("Parse found %d problems, Check %d:\n%v\n%v", len(pe), len(ce), parseErr, checkErr)
				}
				var pf, cf []string
				for j := range pe {
					pf, cf = append(pf, goField(pe[j].Key)), append(cf, ce[j].Field)
				}
				slices.Sort(pf)
				slices.Sort(cf)
				if !slices.Equal(pf, cf) {
					t.Errorf("Parse's problems are about %v, Check's about %v", pf, cf)
				}
				return
			}
			fromFile := f.Accounts[name].snapshot()
			fromGo := inGo.snapshot()
			if !reflect.DeepEqual(fromFile, fromGo) {
				t.Errorf("defaults differ:\nfile %+v\nGo   %+v", fromFile, fromGo)
			}
		})
	}
}

// TestSecretsNeverShown prints and logs an account holding every kind of secret, and checks one
// that puts a secret where it does not belong: no secret may appear.
func TestSecretsNeverShown(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"client-secret-value-1", "refresh-token-value-2", "password-value-3", "pfx-password-value-4",
		key.D.String(), fmt.Sprint(key.D.Bytes())}
	pfx := SecretBytes("PFX-CONTENT-VALUE-5")
	secrets = append(secrets, string(pfx), fmt.Sprint([]byte(pfx)))
	a := &Account{Name: "app", Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "a@contoso.com",
		ClientSecret: Secret(secrets[0]), RefreshToken: Secret(secrets[1]), Password: Secret(secrets[2]),
		PFXPassword: Secret(secrets[3]), PFX: pfx,
		ClientCertificate: &tls.Certificate{Certificate: [][]byte{{1, 2}}, PrivateKey: key}}

	var out bytes.Buffer
	fmt.Fprintf(&out, "%v\n%+v\n%#v\n%s\n%v\n%#v\n", a, a, a, a.PFX, *a, a.PFX)
	j, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("account", "acc", a, "pfx", a.PFX, "pw", a.Password)
	slog.New(slog.NewTextHandler(&out, nil)).Info("account", "acc", a, "pfx", a.PFX, "pw", a.Password)
	// Check refuses the account (four credentials, a refresh token and a password for the wrong
	// flow) and must not quote any of them.
	fmt.Fprintln(&out, a.Check())
	// A secret pasted into a key that names where it is.
	b := &Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "a@contoso.com",
		ClientSecretEnv: "s3cr3t~value~6", Scopes: []string{"s3cr3t~value~7"}}
	secrets = append(secrets, b.ClientSecretEnv, b.Scopes[0])
	fmt.Fprintln(&out, b.Check())
	if !strings.Contains(out.String(), redacted) {
		t.Fatalf("nothing was redacted:\n%s", out.String())
	}
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Errorf("a secret (%d bytes) is in the output:\n%s", len(s), out.String())
		}
	}
}

func TestCheckCertificateKey(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	base := Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.com", Mailbox: "a@contoso.com"}
	a := base
	a.ClientCertificate = &tls.Certificate{Certificate: [][]byte{{1}}, PrivateKey: ec}
	es := checkErrors(t, &a)
	if !slices.ContainsFunc(es, func(e *Error) bool {
		return strings.Contains(e.Error(), "Account.ClientCertificate has a key that is not RSA")
	}) {
		t.Errorf("ECDSA key: %v", es)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := base
	b.ClientCertificate = &tls.Certificate{Certificate: [][]byte{{1}}, PrivateKey: rsaKey}
	if err := b.Check(); err != nil {
		t.Error(err)
	}
}

func TestFileErrorsArePublic(t *testing.T) {
	_, err := Parse("config.toml", []byte("[accounts.work]\nflow = \"devic\"\nclient_id = \""+appID+"\"\n"), 0o600)
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || e.Key != "flow" || e.File != "config.toml" || e.Field != "" {
		t.Fatalf("%T %+v", err, e)
	}
	_, err = Parse("config.toml", []byte("[accounts.work\n"), 0o600)
	if !errors.As(err, &e) || e.Line != 1 || e.Column == 0 {
		t.Fatalf("syntax error: %T %+v", err, e)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.toml")); !errors.As(err, &e) {
		t.Fatalf("missing file: %T", err)
	}
}

// TestFileInCode: an account of a File built in code is named by its key, as Load names it, and
// not by a derived name that would key its tokens elsewhere in the store.
func TestFileInCode(t *testing.T) {
	f := &File{Accounts: map[string]*Account{"work": {Flow: FlowDevice, ClientID: appID}}}
	a, err := f.Account("work")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Check(); err != nil || a.Name != "work" {
		t.Fatalf("name %q, %v", a.Name, err)
	}
}

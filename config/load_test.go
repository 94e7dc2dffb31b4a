package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// write puts a configuration file with the given mode in a fresh directory.
func write(t *testing.T, src string, mode fs.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)

	t.Setenv("MAILOAUTH_CONFIG", "/etc/mailoauth.toml")
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	if p, err := DefaultPath(); err != nil || p != "/etc/mailoauth.toml" {
		t.Errorf("with $MAILOAUTH_CONFIG: %q, %v", p, err)
	}
	t.Setenv("MAILOAUTH_CONFIG", "")
	if p, err := DefaultPath(); err != nil || p != "/xdg/mailoauth/config.toml" {
		t.Errorf("with $XDG_CONFIG_HOME: %q, %v", p, err)
	}
	t.Setenv("XDG_CONFIG_HOME", "relative/dir") // ignored, as the XDG specification says
	if p, err := DefaultPath(); err != nil || p != filepath.Join(home, ".config/mailoauth/config.toml") {
		t.Errorf("with a relative $XDG_CONFIG_HOME: %q, %v", p, err)
	}
	t.Setenv("XDG_CONFIG_HOME", "")
	if p, err := DefaultPath(); err != nil || p != filepath.Join(home, ".config/mailoauth/config.toml") {
		t.Errorf("with $HOME: %q, %v", p, err)
	}
	t.Setenv("HOME", "")
	if _, err := DefaultPath(); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("without $HOME: %v", err)
	}
}

func TestDefaultStorePath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_STATE_HOME", "/state")
	if p, _ := DefaultStorePath(); p != "/state/mailoauth/tokens" {
		t.Errorf("with $XDG_STATE_HOME: %q", p)
	}
	t.Setenv("XDG_STATE_HOME", "")
	if p, _ := DefaultStorePath(); p != filepath.Join(home, ".local/state/mailoauth/tokens") {
		t.Errorf("with $HOME: %q", p)
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	src := `[accounts.i]
flow = "interactive"
client_id = "` + appID + `"

[accounts.d]
flow = "device"
client_id = "` + appID + `"

[accounts.p]
flow = "password"
client_id = "` + appID + `"
email = "a@contoso.com"
password_env = "PW"

[accounts.r]
flow = "refresh_token"
client_id = "` + appID + `"
refresh_token_env = "RT"

[accounts.c]
flow = "client_credentials"
client_id = "` + appID + `"
tenant = "contoso.com"
client_secret_env = "S"
mailbox = "a@contoso.com"

[accounts.g]
flow = "device"
client_id = "` + appID + `"
tenant = "contoso.com"
cloud = "usgovernment"
protocols = ["graph"]

[[proxy.listener]]
protocol = "imap"
listen = "127.0.0.1:1993"
`
	f, err := Load(write(t, src, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	if f.Store.Backend != "file" || f.Store.Path != "/state/mailoauth/tokens" {
		t.Errorf("store defaults: %+v", f.Store)
	}
	for _, name := range []string{"i", "d", "p", "r"} {
		if a := f.Accounts[name]; a.Tenant != "organizations" {
			t.Errorf("%s: tenant %q, want organizations", name, a.Tenant)
		}
	}
	for name, a := range f.Accounts {
		if a.Name != name {
			t.Errorf("Name = %q, want %q", a.Name, name)
		}
		if name == "g" {
			continue
		}
		if !reflect.DeepEqual(a.Protocols, []string{"imap", "smtp"}) || a.Cloud != "global" {
			t.Errorf("%s: protocols %q, cloud %q", name, a.Protocols, a.Cloud)
		}
	}
	if g := f.Accounts["g"]; g.Tenant != "contoso.com" || g.Cloud != "usgovernment" || !reflect.DeepEqual(g.Protocols, []string{"graph"}) {
		t.Errorf("written values replaced by defaults: %+v", g)
	}
	if f.Proxy.Listeners[0].LocalTLS != "none" {
		t.Errorf("local_tls = %q", f.Proxy.Listeners[0].LocalTLS)
	}
	// Defaults must not be shared between accounts.
	f.Accounts["i"].Protocols[0] = "pop"
	if f.Accounts["d"].Protocols[0] != "imap" || DefaultProtocols()[0] != "imap" {
		t.Error("default protocols are shared")
	}
}

func TestPathsResolved(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	src := `[store]
path = "state/tokens"
key_file = "~/keys/store.key"

[accounts.daemon]
flow = "client_credentials"
client_id = "` + appID + `"
tenant = "contoso.com"
certificate = "certs/app.pfx"
certificate_password_file = "/run/secrets/pfx-password"
ca_file = "../ca.pem"
mailbox = "a@contoso.com"

[[proxy.listener]]
protocol = "imap"
listen = "127.0.0.1:1993"
local_tls = "starttls"
tls_cert = "tls/cert.pem"
tls_key = "~/tls/key.pem"
`
	path := write(t, src, 0o600)
	dir := filepath.Dir(path)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := f.Accounts["daemon"]
	l := f.Proxy.Listeners[0]
	checks := map[string][2]string{
		"store.path":                {f.Store.Path, filepath.Join(dir, "state/tokens")},
		"store.key_file":            {f.Store.KeyFile, filepath.Join(home, "keys/store.key")},
		"certificate":               {a.Certificate, filepath.Join(dir, "certs/app.pfx")},
		"certificate_password_file": {a.CertificatePasswordFile, "/run/secrets/pfx-password"},
		"ca_file":                   {a.CAFile, filepath.Join(filepath.Dir(dir), "ca.pem")},
		"tls_cert":                  {l.TLSCert, filepath.Join(dir, "tls/cert.pem")},
		"tls_key":                   {l.TLSKey, filepath.Join(home, "tls/key.pem")},
	}
	for key, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", key, c[0], c[1])
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want fs.ErrNotExist, got %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, path) || !strings.Contains(msg, "--config") || !strings.Contains(msg, "mailoauth emulator") {
		t.Errorf("message: %s", msg)
	}
	var ce interface{ ConfigError() bool }
	if !errors.As(err, &ce) {
		t.Error("not a ConfigError")
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("got %v", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	path := write(t, strings.Repeat("# padding\n", maxFileSize/10+1), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("got %v", err)
	}
}

func TestLoadChecksTheFileMode(t *testing.T) {
	src := strings.Replace(daemon, "client_secret_file = \"secret.txt\"", "client_secret = \"s3cr3t~value\"", 1)
	path := write(t, src, 0o644)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "can be read by other users (mode 0644)") || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("got %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
}

// full is a configuration that uses every key at least once.
const full = `[store]
backend = "file"
path = "/var/lib/mailoauth/tokens"
passphrase_env = "MAILOAUTH_PASSPHRASE"

[accounts.work]
email = "alice@contoso.com"
tenant = "contoso.onmicrosoft.com"
client_id = "` + appID + `"
flow = "interactive"
protocols = ["imap", "smtp", "graph"]
cloud = "global"
login_hint = "alice@contoso.com"
scopes = ["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"]
mailbox = "support@contoso.com"
authority = "https://127.0.0.1:8443"
ca_file = "/etc/mailoauth/ca.pem"
redirect_uri = "http://localhost:8400"
imap = "127.0.0.1:1993"
pop = "127.0.0.1:1995"
smtp = "127.0.0.1:1587"
graph = "https://127.0.0.1:8444/v1.0"

[accounts.daemon]
tenant = "00000000-1111-2222-3333-444444444444"
client_id = "` + appID + `"
flow = "client_credentials"
protocols = ["imap", "pop", "smtp"]
certificate = "/etc/mailoauth/app.pfx"
certificate_password_file = "/etc/mailoauth/app.pass"
mailbox = "alice@contoso.com"
cloud = "usgovernment"

[accounts.web]
tenant = "contoso.com"
client_id = "` + appID + `"
flow = "auth_code_web"
client_secret = "s3cr3t~inline"
redirect_uri = "https://app.example.com/callback"

[accounts.import]
client_id = "` + appID + `"
flow = "refresh_token"
refresh_token_file = "/etc/mailoauth/rt"
client_secret_env = "APP_SECRET"

[accounts.legacy]
email = "bob@contoso.com"
client_id = "` + appID + `"
flow = "password"
password_file = "/etc/mailoauth/bob.pass"

[proxy]
admin = "127.0.0.1:9090"

[[proxy.listener]]
protocol = "imap"
listen = "127.0.0.1:1143"
upstream = "outlook.office365.com:993"

[[proxy.listener]]
protocol = "smtp"
listen = "0.0.0.0:1587"
local_tls = "starttls"
tls_cert = "/etc/mailoauth/tls.crt"
tls_key = "/etc/mailoauth/tls.key"

[proxy.users."alice@contoso.com"]
account = "work"
password_hash = "` + hashOK + `"

[proxy.domains."contoso.com"]
account = "daemon"
password_hash = "` + hashOK + `"
`

func TestRoundTrip(t *testing.T) {
	first, err := Load(write(t, full, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	data, err := toml.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	path := write(t, string(data), 0o600)
	second, err := Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	first.Path, first.pos = "", nil
	second.Path, second.pos = "", nil
	if !reflect.DeepEqual(first, second) {
		t.Errorf("round trip changed the configuration:\n%+v\n%+v\n%s", first, second, data)
	}
}

// TestMarshalledFromCode is what the emulator does: build a File in code, marshal it, load it.
func TestMarshalledFromCode(t *testing.T) {
	dir := t.TempDir()
	f := File{
		Accounts: map[string]*Account{
			"alice": {Flow: FlowInteractive, ClientID: appID, Tenant: "contoso", Authority: "https://127.0.0.1:8443",
				CAFile: filepath.Join(dir, "ca.pem"), IMAP: "127.0.0.1:10993", POP: "127.0.0.1:10995", SMTP: "127.0.0.1:10587",
				Graph: "https://127.0.0.1:8443/v1.0"},
			"daemon": {Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso", Authority: "https://127.0.0.1:8443",
				ClientSecretFile: filepath.Join(dir, "daemon.secret"), Mailbox: "alice@contoso.test",
				Protocols: []string{"imap", "pop", "smtp", "graph"}},
		},
		Proxy: &Proxy{
			Listeners: []Listener{{Protocol: ProtocolIMAP, Listen: "127.0.0.1:11993", LocalTLS: LocalTLSNone}},
			Users:     map[string]*ProxyUser{"alice@contoso.test": {Account: "daemon", PasswordHash: hashOK}},
		},
	}
	data, err := toml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mailoauth.toml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if a := g.Accounts["daemon"]; a.ClientSecretFile != f.Accounts["daemon"].ClientSecretFile || a.Mailbox != "alice@contoso.test" ||
		a.Authority != "https://127.0.0.1:8443" || len(a.Protocols) != 4 {
		t.Errorf("daemon: %+v", a)
	}
	if g.Proxy.Users["alice@contoso.test"].Account != "daemon" || g.Proxy.Listeners[0].Listen != "127.0.0.1:11993" {
		t.Errorf("proxy: %+v", g.Proxy)
	}
}

func TestAccountLookup(t *testing.T) {
	f, err := Parse("config.toml", []byte(interactive+daemon), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := f.Account("work"); err != nil || a.Name != "work" {
		t.Fatalf("Account(work) = %v, %v", a, err)
	}
	_, err = f.Account("wrok")
	if err == nil || err.Error() != "no account `wrok` in config.toml; did you mean \"work\"? Known accounts: daemon, work" {
		t.Errorf("got %v", err)
	}
	// A name close to none is not guessed at.
	_, err = f.Account("personal")
	if err == nil || err.Error() != "no account `personal` in config.toml; known accounts: daemon, work" {
		t.Errorf("got %v", err)
	}
	var ce interface{ ConfigError() bool }
	if !errors.As(err, &ce) {
		t.Error("not a ConfigError")
	}
	empty, err := Parse("config.toml", nil, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := empty.Account("work"); err == nil || !strings.Contains(err.Error(), "[accounts.work]") {
		t.Errorf("got %v", err)
	}
}

func TestPublicAndNeedsUser(t *testing.T) {
	cases := []struct {
		a                 Account
		public, needsUser bool
	}{
		{Account{Flow: FlowInteractive}, true, true},
		{Account{Flow: FlowDevice}, true, true},
		{Account{Flow: FlowPassword}, true, true},
		{Account{Flow: FlowRefreshToken}, true, true},
		{Account{Flow: FlowRefreshToken, ClientSecretEnv: "S"}, false, true},
		{Account{Flow: FlowAuthCodeWeb}, false, true},
		{Account{Flow: FlowClientCredentials}, false, false},
	}
	for _, c := range cases {
		if c.a.Public() != c.public || c.a.NeedsUser() != c.needsUser {
			t.Errorf("%s (%v): Public %v NeedsUser %v", c.a.Flow, c.a.clientCredentials(), c.a.Public(), c.a.NeedsUser())
		}
	}
}

func TestSecretIsRedacted(t *testing.T) {
	a := &Account{Name: "web", ClientSecret: "s3cr3t~inline"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("account", "account", a, "secret", a.ClientSecret)
	j, _ := json.Marshal(a)
	out := fmt.Sprintf("%v %+v %#v %s %q", a, *a, *a, a.ClientSecret, a.ClientSecret) + string(j) + buf.String()
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("secret printed: %s", out)
	}
	if !strings.Contains(out, "[redacted]") {
		t.Errorf("no placeholder: %s", out)
	}
	if Secret("").String() != "" {
		t.Error("an empty secret should print empty")
	}
}

// TestDocsExamples loads every ```toml block of docs/config.md, so that the reference stays true
// to the code. A block preceded by <!-- invalid --> must be refused instead.
func TestDocsExamples(t *testing.T) {
	data, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	rest := string(data)
	for {
		i := strings.Index(rest, "```toml\n")
		if i < 0 {
			break
		}
		invalid := strings.HasSuffix(strings.TrimSpace(rest[:i]), "<!-- invalid -->")
		rest = rest[i+len("```toml\n"):]
		j := strings.Index(rest, "```")
		if j < 0 {
			t.Fatal("unterminated ```toml block")
		}
		block := rest[:j]
		rest = rest[j:]
		blocks++
		_, err := Parse("config.toml", []byte(block), 0o600)
		switch {
		case invalid && err == nil:
			t.Errorf("block %d should be refused:\n%s", blocks, block)
		case !invalid && err != nil:
			t.Errorf("block %d:\n%s\n%v", blocks, block, err)
		case invalid:
			// The page shows the messages in the next plain ``` block.
			after := rest[3:]
			k := strings.Index(after, "```\n")
			if k < 0 || !strings.Contains(after[:k], "is refused with") {
				t.Errorf("block %d: no messages shown after it", blocks)
				break
			}
			shown := after[k+4:]
			shown = shown[:strings.Index(shown, "```")]
			if strings.TrimSpace(shown) != err.Error() {
				t.Errorf("block %d: the page shows\n%s\nbut the messages are\n%v", blocks, shown, err)
			}
		}
	}
	if blocks < 6 {
		t.Errorf("only %d toml blocks found", blocks)
	}
}

func TestParseErrorsAreTomlconfErrors(t *testing.T) {
	_, err := Parse("config.toml", []byte("[accounts.work]\nflow = \"device\"\n"), 0o600)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("%T", err)
	}
}

// TestGatewaySettings: a via = "graph" listener and [proxy.gateway] load, and what is not set takes
// the gateway's defaults (a copy in Sent Items, Deleted Items, 30 s).
func TestGatewaySettings(t *testing.T) {
	var none *Gateway
	if !none.SavesToSentItems() || none.DeletesPermanently() || none.Poll() != 30*time.Second {
		t.Errorf("defaults: sent %v, permanent %v, poll %v; want true, false, 30s", none.SavesToSentItems(), none.DeletesPermanently(), none.Poll())
	}
	src := "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"127.0.0.1:1993\"\nvia = \"graph\"\n\n" +
		"[proxy.gateway]\nsave_to_sent_items = false\ndelete = \"permanent\"\npoll_interval = \"1m\"\n"
	f, err := Parse("config.toml", []byte(src), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if f.Proxy.Listeners[0].Via != ViaGraph {
		t.Errorf("via = %q, want graph", f.Proxy.Listeners[0].Via)
	}
	g := f.Proxy.Gateway
	if g.SavesToSentItems() || !g.DeletesPermanently() || g.Poll() != time.Minute {
		t.Errorf("set: sent %v, permanent %v, poll %v; want false, true, 1m", g.SavesToSentItems(), g.DeletesPermanently(), g.Poll())
	}
}

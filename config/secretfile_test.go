package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// secretFiles is a configuration whose every secret is in a file of dir: the store's passphrase,
// a client secret, a PEM certificate with its key, a PKCS#12 file and its password, a refresh
// token, a password, and the private key of the proxy's TLS (its certificate, public, is beside it).
func secretFiles(dir string) (src string, files map[string]string) {
	files = map[string]string{}
	for key, name := range map[string]string{
		"passphrase_file": "passphrase.txt", "client_secret_file": "secret.txt", "certificate": "cert.pem",
		"pfx": "cert.pfx", "certificate_password_file": "pfx-password.txt",
		"refresh_token_file": "refresh-token.txt", "password_file": "password.txt", "tls_key": "proxy-key.pem",
	} {
		files[key] = filepath.Join(dir, name)
	}
	src = `[store]
passphrase_file = "passphrase.txt"

[accounts.secret]
flow = "client_credentials"
client_id = "` + appID + `"
tenant = "contoso.onmicrosoft.com"
mailbox = "alice@contoso.com"
client_secret_file = "secret.txt"

[accounts.pem]
flow = "client_credentials"
client_id = "` + appID + `"
tenant = "contoso.onmicrosoft.com"
mailbox = "alice@contoso.com"
certificate = "cert.pem"

[accounts.pfx]
flow = "client_credentials"
client_id = "` + appID + `"
tenant = "contoso.onmicrosoft.com"
mailbox = "alice@contoso.com"
certificate = "cert.pfx"
certificate_password_file = "pfx-password.txt"

[accounts.imported]
flow = "refresh_token"
client_id = "` + appID + `"
refresh_token_file = "refresh-token.txt"

[accounts.legacy]
flow = "password"
client_id = "` + appID + `"
email = "alice@contoso.com"
password_file = "password.txt"

[[proxy.listener]]
protocol = "imap"
listen = "127.0.0.1:1993"
local_tls = "implicit"
tls_cert = "proxy-cert.pem"
tls_key = "proxy-key.pem"
`
	return src, files
}

// writeMode writes a file and gives it exactly mode, whatever the umask.
func writeMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("not read by config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestSecretFilesReadableByOthersRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits; the check is skipped there")
	}
	dir := t.TempDir()
	src, files := secretFiles(dir)
	path := filepath.Join(dir, "config.toml")
	writeMode(t, path, 0o600)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		writeMode(t, f, 0o644)
	}
	writeMode(t, files["certificate"], 0o640)                 // readable by the group is refused too
	writeMode(t, filepath.Join(dir, "proxy-cert.pem"), 0o644) // a certificate alone is public: not refused

	_, err := Load(path)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load with secret files readable by others: got %v, want config.Errors", err)
	}
	if len(es) != len(files) {
		t.Errorf("got %d problems, want one per file (%d), all at once:\n%v", len(es), len(files), err)
	}
	msg := err.Error()
	for key, f := range files {
		if key == "pfx" {
			key = "certificate"
		}
		mode := "0644"
		if strings.HasSuffix(f, "cert.pem") {
			mode = "0640"
		}
		want := "the file in `" + key + "` can be read by other users"
		fix := f + " has mode " + mode + ": run chmod 600 " + f
		if !strings.Contains(msg, want) || !strings.Contains(msg, fix) {
			t.Errorf("no %q ... %q in\n%s", want, fix, msg)
		}
	}
	var ce interface{ ConfigError() bool }
	if !errors.As(err, &ce) || !ce.ConfigError() {
		t.Errorf("%T is not a configuration error (exit 2)", err)
	}

	// The fix the message gives is the whole fix.
	for _, f := range files {
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("after chmod 600 of every file: %v", err)
	}

	// A missing file is still reported when it is read, not by Load.
	if err := os.Remove(files["client_secret_file"]); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("with a missing client_secret_file: %v", err)
	}
}

func TestKeyFileReadableByOthersRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits; the check is skipped there")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "store key")
	writeMode(t, key, 0o604)
	path := write(t, "[store]\nkey_file = \""+key+"\"\n", 0o600)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "the file in `key_file` can be read by other users in [store]") ||
		!strings.Contains(err.Error(), "run chmod 600 '"+key+"'") {
		t.Fatalf("got %v, want key_file refused with a chmod that can be pasted", err)
	}
}

func TestCheckRefusesSecretFileReadableByOthers(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits; the check is skipped there")
	}
	secret := filepath.Join(t.TempDir(), "secret.txt")
	writeMode(t, secret, 0o644)
	a := &Account{Flow: FlowClientCredentials, ClientID: appID, Tenant: "contoso.onmicrosoft.com", Mailbox: "alice@contoso.com", ClientSecretFile: secret}
	es := checkErrors(t, a)
	if len(es) != 1 || es[0].Field != "Account.ClientSecretFile" ||
		!strings.Contains(es[0].Error(), "the file in Account.ClientSecretFile can be read by other users") ||
		!strings.Contains(es[0].Error(), "mode 0644: run chmod 600 "+secret) {
		t.Fatalf("got %v", es)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(); err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
}

// TestConsoleTLSKeyReadableByOthersRefused: the console's TLS private key is a secret file too.
func TestConsoleTLSKeyReadableByOthersRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits; the check is skipped there")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	src := interactive + "[console]\npassword_hash = \"" + hashOK + "\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	writeMode(t, filepath.Join(dir, "cert.pem"), 0o644)
	key := filepath.Join(dir, "key.pem")
	writeMode(t, key, 0o644)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "the file in `tls_key` can be read by other users in [console]") ||
		!strings.Contains(err.Error(), "run chmod 600 "+key) || strings.Contains(err.Error(), "tls_cert") {
		t.Fatalf("console tls_key readable by others: %v", err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
}

package config

import (
	"errors"
	"strings"
	"testing"
)

func TestConsoleRules(t *testing.T) {
	cases := []struct {
		name, src string
		line      int
		key       string
		want      []string
	}{
		{"no password hash", "[console]\n", 1, "password_hash",
			[]string{"missing `password_hash` in [console]", "mailoauth proxy hash-password", `auth = "none"`}},
		{"hash not argon2id", "[console]\npassword_hash = \"$2y$10$abcdefghij\"\n", 2, "password_hash",
			[]string{"`password_hash` is not an argon2id hash"}},
		{"auth unknown", "[console]\nauth = \"basic\"\n", 2, "auth",
			[]string{"invalid auth `basic` in [console]", `"password"`, `"none"`}},
		{"none off loopback", "[console]\nauth = \"none\"\nlisten = \"0.0.0.0:8090\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n", 2, "auth",
			[]string{"not loopback", `set auth = "password"`}},
		{"none on a proxy admin off loopback", "[proxy]\nadmin = \"192.0.2.1:9090\"\n[console]\nauth = \"none\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n", 4, "auth",
			[]string{"`192.0.2.1:9090`, which is not loopback"}},
		{"no TLS off loopback", "[console]\nlisten = \"0.0.0.0:8090\"\npassword_hash = \"" + hashOK + "\"\n", 2, "listen",
			[]string{"not loopback, without TLS", "set tls_cert and tls_key"}},
		{"no TLS on a proxy admin off loopback", "[proxy]\nadmin = \"0.0.0.0:9090\"\n[console]\npassword_hash = \"" + hashOK + "\"\n", 2, "admin",
			[]string{"the console is served on `0.0.0.0:9090`"}},
		{"key without cert", "[console]\npassword_hash = \"" + hashOK + "\"\ntls_key = \"k.pem\"\n", 1, "tls_cert",
			[]string{"missing `tls_cert`"}},
		{"bad listen", "[console]\nauth = \"none\"\nlisten = \"8090\"\n", 3, "listen",
			[]string{"`listen`", "host:port"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(c.src), 0o600)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Fatalf("want exactly one error, got %v", err)
			}
			one := errs[0]
			for _, w := range c.want {
				if !strings.Contains(one.Error(), w) {
					t.Errorf("message lacks %q:\n%s", w, one.Error())
				}
			}
			if one.Line != c.line || one.Key != c.key {
				t.Errorf("at line %d key %q, want %d %q: %s", one.Line, one.Key, c.line, c.key, one.Error())
			}
		})
	}
}

func TestConsoleDefaults(t *testing.T) {
	f, err := Parse("/etc/mailoauth/config.toml", []byte("[console]\nauth = \"none\"\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if f.Console.Listen != DefaultConsoleListen || f.Console.Auth != ConsoleAuthNone {
		t.Errorf("console = %+v", f.Console)
	}
	f, err = Parse("/etc/mailoauth/config.toml", []byte("[console]\nlisten = \"[::]:8443\"\npassword_hash = \""+hashOK+"\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if f.Console.Auth != ConsoleAuthPassword || f.Console.TLSCert != "/etc/mailoauth/c.pem" {
		t.Errorf("console = %+v (auth defaults to password, paths are relative to the file)", f.Console)
	}
}

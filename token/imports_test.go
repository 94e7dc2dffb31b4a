package token_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMailClientsStaySmall: a program that imports only sasl and one mail client (or graph, or this
// package) must not pull in MSAL, a keyring, a TOML parser, flock or PKCS#12 — the weight of package
// auth and the CLI. go list -deps of the packages is what such a program's build contains.
func TestMailClientsStaySmall(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	heavy := []string{
		"github.com/AzureAD/microsoft-authentication-library-for-go",
		"github.com/zalando/go-keyring",
		"github.com/godbus/dbus",
		"github.com/pelletier/go-toml",
		"github.com/gofrs/flock",
		"software.sslmate.com/src/go-pkcs12",
		"github.com/mailoauth/mailoauth/auth",
		"github.com/mailoauth/mailoauth/config",
		"github.com/mailoauth/mailoauth/store",
	}
	for _, pkgs := range [][]string{
		{"token"},
		{"sasl", "imap"},
		{"sasl", "smtp"},
		{"sasl", "pop3"},
		{"graph"},
	} {
		args := []string{"list", "-deps"}
		for _, p := range pkgs {
			args = append(args, "github.com/mailoauth/mailoauth/"+p)
		}
		out, err := exec.Command(gobin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, h := range heavy {
				if dep == h || strings.HasPrefix(dep, h+"/") {
					t.Errorf("a program importing %s depends on %s", strings.Join(pkgs, " + "), dep)
				}
			}
		}
	}
}

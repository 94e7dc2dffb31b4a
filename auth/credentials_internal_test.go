package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/config"
)

// TestUserSecretSources: the password and the refresh token come from the value, else the
// variable, else the file; a source that fails is named as its user wrote it, without the secret.
func TestUserSecretSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ENGA_TEST_SECRET", "from-env")

	for _, c := range []struct {
		acc  config.Account
		want string
	}{
		{config.Account{Password: "from-value", PasswordEnv: "ENGA_TEST_SECRET", PasswordFile: file}, "from-value"},
		{config.Account{PasswordEnv: "ENGA_TEST_SECRET", PasswordFile: file}, "from-env"},
		{config.Account{PasswordFile: file}, "from-file"},
		{config.Account{}, ""},
	} {
		if got, err := passwordOf(&c.acc); err != nil || got != c.want {
			t.Errorf("passwordOf = %q, %v; want %q", got, err, c.want)
		}
		rt := config.Account{RefreshToken: c.acc.Password, RefreshTokenEnv: c.acc.PasswordEnv, RefreshTokenFile: c.acc.PasswordFile}
		if got, err := refreshTokenOf(&rt); err != nil || got != c.want {
			t.Errorf("refreshTokenOf = %q, %v; want %q", got, err, c.want)
		}
	}

	unset := &config.Account{Name: "x", RefreshTokenEnv: "ENGA_TEST_UNSET"}
	_, err := refreshTokenOf(unset)
	if err == nil || !strings.Contains(err.Error(), "Account.RefreshTokenEnv names the environment variable ENGA_TEST_UNSET, which is not set") ||
		!strings.Contains(err.Error(), "Account.RefreshTokenFile") {
		t.Errorf("unset variable: %v", err)
	}
}

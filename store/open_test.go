package store

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/config"
)

func TestOpenKeySources(t *testing.T) {
	dir := t.TempDir()
	hexKey := filepath.Join(dir, "key.hex")
	_ = os.WriteFile(hexKey, []byte(hex.EncodeToString(testKey)+"\n"), 0o600)
	passFile := filepath.Join(dir, "pass")
	_ = os.WriteFile(passFile, []byte("from a file\n"), 0o600)
	t.Setenv("MAILOAUTH_TEST_PASS", "from the environment")
	for name, c := range map[string]config.Store{
		"key_file":        {KeyFile: hexKey},
		"passphrase_file": {PassphraseFile: passFile},
		"passphrase_env":  {PassphraseEnv: "MAILOAUTH_TEST_PASS"},
	} {
		t.Run(name, func(t *testing.T) {
			c.Path = filepath.Join(dir, name, "tokens")
			s, err := Open(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, "k", "v")
			s2, _ := Open(c, nil)
			if got, err := s2.Load(context.Background(), "k"); err != nil || string(got) != "v" {
				t.Fatalf("reopen: %q, %v", got, err)
			}
		})
	}
}

func TestOpenWithoutKeyNamesTheSettings(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]config.Store{
		"no source":      {},
		"unset variable": {PassphraseEnv: "MAILOAUTH_TEST_UNSET"},
		"missing file":   {PassphraseFile: filepath.Join(dir, "nope")},
		"short key":      {KeyFile: writeFile(t, dir, "short", "abc")},
	} {
		t.Run(name, func(t *testing.T) {
			c.Path = filepath.Join(dir, "tokens")
			s, err := Open(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Update(context.Background(), "k", func([]byte) ([]byte, error) { return []byte("v"), nil })
			var ke *KeyError
			if !errors.As(err, &ke) || !strings.Contains(err.Error(), "[store]") && !strings.Contains(err.Error(), "key_file") && !strings.Contains(err.Error(), "passphrase") {
				t.Fatalf("got %v", err)
			}
			if _, statErr := os.Stat(c.Path); statErr == nil {
				t.Fatal("a store file was written without a key")
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A redis backend whose own settings are wrong (its password's variable unset, an unreadable ca_file)
// is a configuration error naming the setting — not ErrNoKey, which would blame the store's key.
func TestOpenRedisSettings(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	_ = os.WriteFile(keyFile, []byte(hex.EncodeToString(testKey)), 0o600)
	for name, c := range map[string]struct {
		s    config.Store
		want string
	}{
		"password_env unset": {config.Store{URL: "redis://127.0.0.1:1", PasswordEnv: "MAILOAUTH_TEST_UNSET_REDIS"}, "MAILOAUTH_TEST_UNSET_REDIS is not set"},
		"ca_file missing":    {config.Store{URL: "rediss://127.0.0.1:1", CAFile: filepath.Join(dir, "nope.pem")}, "ca_file cannot be read"},
	} {
		t.Run(name, func(t *testing.T) {
			c.s.Backend, c.s.KeyFile = config.BackendRedis, keyFile
			_, err := Open(c.s, nil)
			var ce interface{ ConfigError() bool }
			if err == nil || !errors.As(err, &ce) || errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v; want a configuration error saying %q, not ErrNoKey", err, c.want)
			}
		})
	}
}

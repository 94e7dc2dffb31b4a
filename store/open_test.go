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

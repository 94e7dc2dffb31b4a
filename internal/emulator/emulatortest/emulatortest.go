// Package emulatortest starts an in-process emulator for a test and loads the configuration it
// writes — what the tests of almost every package begin with — and stops it when the test ends.
// It is for tests only (it takes a testing.TB, like net/http/httptest).
package emulatortest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
)

// Lab is a running emulator and what it wrote.
type Lab struct {
	E      *emulator.Emulator
	Dir    string       // the data directory: ca.pem, the apps' secrets, the store passphrase, the config
	Path   string       // Dir/mailoauth.toml
	Config *config.File // loaded from Path, validated
}

// Start starts an emulator with opts, writes its data into a temporary directory and loads the
// configuration; the emulator is closed when tb ends.
func Start(tb testing.TB, opts emulator.Options) *Lab {
	tb.Helper()
	e, err := emulator.Start(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	l := &Lab{E: e, Dir: tb.TempDir()}
	if err := e.WriteData(l.Dir); err != nil {
		tb.Fatal(err)
	}
	l.Path = filepath.Join(l.Dir, emulator.ConfigName)
	if l.Config, err = config.Load(l.Path); err != nil {
		tb.Fatal(err)
	}
	return l
}

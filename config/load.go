package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/mailoauth/mailoauth/internal/tomlconf"
)

// maxFileSize bounds what Load reads: a configuration is a few kilobytes, and anything far larger
// is the wrong file.
const maxFileSize = 1 << 20

// DefaultPath returns the configuration file used when --config is not given: $MAILOAUTH_CONFIG,
// else $XDG_CONFIG_HOME/mailoauth/config.toml, else ~/.config/mailoauth/config.toml. A relative
// $XDG_CONFIG_HOME is ignored, as the XDG Base Directory specification requires.
func DefaultPath() (string, error) {
	if p := os.Getenv("MAILOAUTH_CONFIG"); p != "" {
		return p, nil
	}
	if dir := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "mailoauth", "config.toml"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", &Error{
			Msg: "cannot find the configuration file: neither $MAILOAUTH_CONFIG, $XDG_CONFIG_HOME nor $HOME is set",
			Fix: "name the file with --config FILE", Err: err,
		}
	}
	return filepath.Join(home, ".config", "mailoauth", "config.toml"), nil
}

// DefaultStorePath returns the token file used when [store] has no path:
// $XDG_STATE_HOME/mailoauth/tokens, else ~/.local/state/mailoauth/tokens.
func DefaultStorePath() (string, error) {
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "mailoauth", "tokens"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "state", "mailoauth", "tokens"), nil
}

// Load reads, decodes, completes with defaults and validates the configuration file at path.
// Every error it returns is a configuration error (ConfigError() bool); a missing file wraps
// fs.ErrNotExist.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, readError(path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, readError(path, err)
	}
	if info.IsDir() {
		return nil, &Error{Msg: fmt.Sprintf("%s is a directory, not a configuration file", path),
			Fix: "name the file itself, e.g. " + filepath.Join(path, "config.toml")}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, readError(path, err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{Msg: fmt.Sprintf("%s is larger than 1 MiB, which no mailoauth configuration is", path),
			Fix: "check that --config or $MAILOAUTH_CONFIG names the right file"}
	}
	mode := info.Mode().Perm()
	if runtime.GOOS == "windows" {
		// Windows reports no group/other bits (access is by ACL), so the check cannot be made.
		mode = 0o600
	}
	return Parse(path, data, mode)
}

func readError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &Error{
			Msg: "no configuration file at " + path,
			Fix: "create one (docs/config.md describes it; `mailoauth emulator` writes a working one for its " +
				"local Microsoft 365), or name another with --config FILE or $MAILOAUTH_CONFIG",
			Err: err,
		}
	}
	reason := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		reason = pe.Err.Error()
	}
	return &Error{Msg: fmt.Sprintf("cannot read configuration file %s: %s", path, reason), Err: err}
}

// Parse decodes, completes and validates data, the content of the configuration file at path.
// path names the file in messages and is the base of relative paths in path-valued keys; mode is
// the file's permission bits, which decide whether an inline client_secret is acceptable. The
// files that hold secrets (client_secret_file, certificate, passphrase_file, ...) are refused when
// they exist and other users can read them; Parse looks at their mode, never at their content.
func Parse(path string, data []byte, mode fs.FileMode) (*File, error) {
	var f File
	pos, err := tomlconf.Decode(path, data, &f)
	if err != nil {
		return nil, publicErrors(err)
	}
	f.Path = path
	f.pos = pos

	v := &validator{pos: pos, file: path, mode: mode}
	v.resolvePaths(&f)
	v.defaults(&f)
	v.validate(&f)
	if len(v.errs) > 0 {
		v.sort()
		return nil, publicErrors(v.errs)
	}
	for _, a := range f.Accounts {
		a.remember()
	}
	return &f, nil
}

// resolvePaths expands ~/ and makes relative paths relative to the configuration file's directory.
func (v *validator) resolvePaths(f *File) {
	base, err := filepath.Abs(filepath.Dir(v.file))
	if err != nil {
		base = filepath.Dir(v.file)
	}
	resolve := func(p *string, path ...string) {
		if *p == "" {
			return
		}
		r, problem := resolvePath(*p, base)
		if problem != "" {
			v.key(path, fmt.Sprintf("cannot use the path in `%s`", path[len(path)-1]), problem)
			return
		}
		*p = r
	}
	resolve(&f.Store.Path, "store", "path")
	resolve(&f.Store.PassphraseFile, "store", "passphrase_file")
	resolve(&f.Store.KeyFile, "store", "key_file")
	resolve(&f.Store.CAFile, "store", "ca_file")
	resolve(&f.Store.PasswordFile, "store", "password_file")
	for name, a := range f.Accounts {
		if a == nil {
			continue
		}
		at := func(key string) []string { return []string{"accounts", name, key} }
		resolve(&a.ClientSecretFile, at("client_secret_file")...)
		resolve(&a.Certificate, at("certificate")...)
		resolve(&a.CertificatePasswordFile, at("certificate_password_file")...)
		resolve(&a.RefreshTokenFile, at("refresh_token_file")...)
		resolve(&a.PasswordFile, at("password_file")...)
		resolve(&a.CAFile, at("ca_file")...)
	}
	if f.Proxy != nil {
		for i := range f.Proxy.Listeners {
			l := &f.Proxy.Listeners[i]
			at := func(key string) []string { return []string{"proxy", "listener", fmt.Sprint(i), key} }
			resolve(&l.TLSCert, at("tls_cert")...)
			resolve(&l.TLSKey, at("tls_key")...)
		}
	}
	if f.Console != nil {
		resolve(&f.Console.TLSCert, "console", "tls_cert")
		resolve(&f.Console.TLSKey, "console", "tls_key")
	}
}

// resolvePath returns p made absolute, or why it cannot be.
func resolvePath(p, base string) (string, string) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "~ needs $HOME, which is not set; write the full path"
		}
		return filepath.Join(home, p[1:]), ""
	}
	if strings.HasPrefix(p, "~") {
		return "", "only ~/ (your own home directory) is expanded; write the full path"
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p), ""
	}
	return filepath.Join(base, p), ""
}

// defaults fills in what the file leaves out. It runs before validation, and only sets values
// that are valid by construction, so a default can never be the subject of an error.
func (v *validator) defaults(f *File) {
	if f.Store.Backend == "" && !v.pos.Has("store", "backend") {
		f.Store.Backend = BackendFile
	}
	if f.Store.Path == "" && !v.pos.Has("store", "path") {
		p, err := DefaultStorePath()
		if err != nil {
			v.key([]string{"store", "path"}, "cannot choose where to keep tokens: $HOME is not set",
				"set path in [store]")
		} else {
			f.Store.Path = p
		}
	}
	for name, a := range f.Accounts {
		if a == nil {
			a = &Account{}
			f.Accounts[name] = a
		}
		a.Name = name
		a.fromFile = true
		v.accountDefaults(name, a)
	}
	if f.Proxy != nil {
		for i := range f.Proxy.Listeners {
			l := &f.Proxy.Listeners[i]
			if l.LocalTLS == "" && !v.pos.Has("proxy", "listener", fmt.Sprint(i), "local_tls") {
				l.LocalTLS = LocalTLSNone
			}
		}
	}
	if c := f.Console; c != nil {
		if c.Listen == "" && !v.pos.Has("console", "listen") {
			c.Listen = DefaultConsoleListen
		}
		if c.Auth == "" && !v.pos.Has("console", "auth") {
			c.Auth = ConsoleAuthPassword
		}
	}
}

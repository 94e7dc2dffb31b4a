package store

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store/redis"
)

// KeyError is a problem with where the store's key comes from: the CLI treats it as a configuration
// error (exit 2).
type KeyError struct{ msg string }

func (e *KeyError) Error() string { return e.msg }

// ConfigError marks the error as the configuration's (the CLI exits 2 for it).
func (e *KeyError) ConfigError() bool { return true }
func (e *KeyError) Unwrap() error     { return ErrNoKey }

// redisConfigError is a problem with the redis backend's settings (its url, ca_file or password): a
// configuration error for the CLI (exit 2), and not ErrNoKey, which is about the store's key.
type redisConfigError struct{ msg string }

func (e *redisConfigError) Error() string     { return e.msg }
func (e *redisConfigError) ConfigError() bool { return true }

// Open opens the store a configuration's [store] describes. prompt asks a person for the passphrase
// on a terminal; nil means nobody can be asked (`mailoauth token`, a cron job), and a store that needs
// one fails with a message naming the settings that would provide it.
func Open(c config.Store, prompt func() ([]byte, error)) (Store, error) {
	switch c.Backend {
	case "", config.BackendFile, config.BackendRedis:
	case config.BackendKeyring:
		return OpenKeyring(c.Path)
	default:
		return nil, &KeyError{fmt.Sprintf("unknown store backend %q; use file, keyring or redis", c.Backend)}
	}
	src := keySource(c, prompt)
	if c.Backend == config.BackendRedis {
		return openRedis(c, src)
	}
	return OpenFile(c.Path, src)
}

// openRedis opens the redis backend, its password read now (a missing one is a configuration error).
func openRedis(c config.Store, src KeySource) (Store, error) {
	o, err := redisOptions(c)
	if err != nil {
		return nil, err
	}
	o.Passphrase, o.Key = src.Passphrase, src.Key
	s, err := redis.Open(o)
	if err != nil {
		return nil, &redisConfigError{err.Error()}
	}
	return s, nil
}

// RedisClient returns a client of the Redis server a [store] with backend "redis" names, with the
// token store's connection settings and password, for what is kept beside the tokens (the
// gateway's UIDs). Close it when done.
func RedisClient(c config.Store) (*goredis.Client, error) {
	o, err := redisOptions(c)
	if err != nil {
		return nil, err
	}
	rc, err := redis.NewClient(o)
	if err != nil {
		return nil, &redisConfigError{err.Error()}
	}
	return rc, nil
}

// redisOptions are the redis backend's connection settings, its password read now.
func redisOptions(c config.Store) (redis.Options, error) {
	var pass string
	switch {
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok || v == "" {
			return redis.Options{}, &redisConfigError{fmt.Sprintf("the Redis password variable %s is not set; export it, or set password_file in [store]", c.PasswordEnv)}
		}
		pass = v
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return redis.Options{}, &redisConfigError{fmt.Sprintf("the Redis password_file %s cannot be read: %v", c.PasswordFile, errors.Unwrap(err))}
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	return redis.Options{URL: c.URL, CAFile: c.CAFile, Username: c.Username, Password: pass, Prefix: c.Prefix}, nil
}

// keySource is where the file and redis backends get their key, from [store].
func keySource(c config.Store, prompt func() ([]byte, error)) KeySource {
	var src KeySource
	switch {
	case c.KeyFile != "":
		src.Key = func() ([]byte, error) { return readKeyFile(c.KeyFile) }
	case c.PassphraseEnv != "":
		src.Passphrase = func() ([]byte, error) {
			v, ok := os.LookupEnv(c.PassphraseEnv)
			if !ok || v == "" {
				return nil, &KeyError{fmt.Sprintf("the token store's passphrase variable %s is not set; export it, or set passphrase_file in [store]", c.PassphraseEnv)}
			}
			return []byte(v), nil
		}
	case c.PassphraseFile != "":
		src.Passphrase = func() ([]byte, error) {
			b, err := os.ReadFile(c.PassphraseFile)
			if err != nil {
				return nil, &KeyError{fmt.Sprintf("the token store's passphrase_file %s cannot be read: %v", c.PassphraseFile, errors.Unwrap(err))}
			}
			return []byte(strings.TrimRight(string(b), "\r\n")), nil
		}
	case prompt != nil:
		src.Passphrase = prompt
	default:
		src.Passphrase = func() ([]byte, error) {
			return nil, &KeyError{"the token store needs a passphrase and there is no terminal to ask for it: set passphrase_env, passphrase_file or key_file in [store]"}
		}
	}
	return src
}

// readKeyFile reads a 32-byte key: raw, hex or base64 (what `head -c32 /dev/urandom`, `openssl rand
// -hex 32` and `openssl rand -base64 32` write).
func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &KeyError{fmt.Sprintf("the token store's key_file %s cannot be read: %v", path, errors.Unwrap(err))}
	}
	if len(b) == 32 {
		return b, nil
	}
	s := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, &KeyError{fmt.Sprintf("the token store's key_file %s must hold 32 bytes, raw, hex or base64 (openssl rand -hex 32 > FILE)", path)}
}

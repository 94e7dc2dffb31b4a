// Package passhash hashes and verifies the proxy's local passwords with argon2id, in the PHC string
// form ($argon2id$v=19$m=...,t=...,p=...$salt$hash) that [proxy.users] password_hash holds. It is
// shared by the proxy (which verifies) and the emulator (which writes a ready-made proxy section).
// It never keeps or logs a password.
package passhash

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Local passwords are hashed with argon2id at the parameters OWASP recommends for interactive logins
// (19 MiB, 2 passes, 1 lane: "Password Storage Cheat Sheet"), lighter than the token store's key
// derivation because a proxy verifies passwords while serving, not once per process.
const (
	hashMemory  = 19 * 1024 // KiB
	hashTime    = 2
	hashThreads = 1
	hashSaltLen = 16
	hashKeyLen  = 32
)

// Hash returns password's argon2id hash in the PHC string form
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash) that [proxy.users] password_hash takes.
func Hash(password string) (string, error) {
	salt := make([]byte, hashSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, hashTime, hashMemory, hashThreads, hashKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, hashMemory, hashTime, hashThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a parsed argon2id hash.
type params struct {
	memory    uint32
	time      uint32
	threads   uint8
	salt, key []byte
}

// Bounds on what a hash may ask for, so that a mistyped hash cannot make every login allocate
// gigabytes.
const (
	maxHashMemory = 1 << 20 // KiB (1 GiB)
	maxHashTime   = 64
)

func parse(s string) (*params, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errors.New("not an argon2id hash ($argon2id$v=19$m=...,t=...,p=...$salt$hash)")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("argon2 version %q is not supported (want v=%d)", parts[2], argon2.Version)
	}
	var h params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("argon2id parameter %q is not a number", kv)
		}
		switch k {
		case "m":
			h.memory = uint32(n)
		case "t":
			h.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("argon2id parallelism %d is too high", n)
			}
			h.threads = uint8(n)
		default:
			return nil, fmt.Errorf("unknown argon2id parameter %q", k)
		}
	}
	switch {
	case h.memory == 0 || h.time == 0 || h.threads == 0:
		return nil, errors.New("argon2id parameters m, t and p must all be set")
	case h.memory > maxHashMemory || h.time > maxHashTime:
		return nil, fmt.Errorf("argon2id parameters m=%d,t=%d exceed the limits (m≤%d, t≤%d)", h.memory, h.time, maxHashMemory, maxHashTime)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, errors.New("argon2id salt is not valid base64 of at least 8 bytes")
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 {
		return nil, errors.New("argon2id hash is not valid base64 of at least 16 bytes")
	}
	return &h, nil
}

// Check reports whether s is a hash that can be verified against.
func Check(s string) error {
	_, err := parse(s)
	return err
}

// Key derives password's key under hash's parameters and salt, returning it with the key the hash
// holds, for the caller to compare in constant time. hash == "" uses the default parameters and a
// fixed salt, so that a caller can spend the same time for an unknown user.
func Key(hash, password string) (got, want []byte, err error) {
	p := &params{memory: hashMemory, time: hashTime, threads: hashThreads, salt: make([]byte, hashSaltLen), key: make([]byte, hashKeyLen)}
	if hash != "" {
		if p, err = parse(hash); err != nil {
			return nil, nil, err
		}
	}
	return argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key))), p.key, nil
}

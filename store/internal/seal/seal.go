// Package seal is the token store's encryption, shared by its backends (the file in store, Redis in
// store/redis): key parameters (argon2id over a passphrase, or a raw 32-byte key) with a key check,
// the key derived once per process, and XChaCha20-Poly1305. It must never log or return a key or a
// passphrase, nor anything it decrypted, in an error.
package seal

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors the store package re-exports as its own (store.ErrWrongKey, store.ErrNoKey, ...), so that
// errors.Is works whichever backend returned them.
var (
	ErrWrongKey    = errors.New("the passphrase or key does not open this token store")
	ErrCorrupt     = errors.New("the token store was modified or damaged after it was written")
	ErrNewerFormat = errors.New("the token store was written by a newer mailoauth")
	ErrNoKey       = errors.New("the token store needs a passphrase and none is configured")
)

// Argon2id parameters for new stores: RFC 9106's second recommended option (64 MiB, 3 passes,
// 4 lanes). They are written with the store, so they can be raised without breaking old ones.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 4
)

// Key derivations.
const (
	KDFArgon2 = 1
	KDFRawKey = 2
)

// Sizes of the parameters' parts.
const (
	SaltLen  = 16
	CheckLen = 16
	// ParamsLen is the length of Params.Marshal's output.
	ParamsLen = 1 + 4 + 4 + 1 + SaltLen + CheckLen
	// NonceLen is XChaCha20-Poly1305's nonce.
	NonceLen = chacha20poly1305.NonceSizeX
)

// Params say how a store's key is made and let a key be checked without decrypting anything.
type Params struct {
	KDF     byte
	Time    uint32
	Memory  uint32
	Threads uint8
	Salt    []byte
	Check   []byte
}

// Marshal writes the parameters in ParamsLen bytes (the layout of the file store's header).
func (p *Params) Marshal() []byte {
	var b bytes.Buffer
	b.WriteByte(p.KDF)
	_ = binary.Write(&b, binary.BigEndian, p.Time)
	_ = binary.Write(&b, binary.BigEndian, p.Memory)
	b.WriteByte(p.Threads)
	b.Write(p.Salt)
	b.Write(p.Check)
	return b.Bytes()
}

// ParseParams reads what Marshal wrote (at least ParamsLen bytes), refusing what a tampered or
// damaged store could make argon2 allocate without limit.
func ParseParams(b []byte) (Params, error) {
	if len(b) < ParamsLen {
		return Params{}, fmt.Errorf("%w: its key parameters are truncated", ErrCorrupt)
	}
	p := Params{KDF: b[0], Time: binary.BigEndian.Uint32(b[1:5]), Memory: binary.BigEndian.Uint32(b[5:9]), Threads: b[9]}
	b = b[10:]
	p.Salt = append([]byte(nil), b[:SaltLen]...)
	p.Check = append([]byte(nil), b[SaltLen:SaltLen+CheckLen]...)
	if p.KDF != KDFArgon2 && p.KDF != KDFRawKey {
		return Params{}, fmt.Errorf("%w: unknown key derivation %d", ErrCorrupt, p.KDF)
	}
	if p.KDF == KDFArgon2 && (p.Time == 0 || p.Time > 64 || p.Memory < 8*1024 || p.Memory > 4*1024*1024 || p.Threads == 0) {
		return Params{}, fmt.Errorf("%w: implausible key-derivation parameters", ErrCorrupt)
	}
	return p, nil
}

// Keys makes and checks a store's key from a passphrase or a raw key: exactly one is set.
type Keys struct {
	// Passphrase returns the passphrase; it is called at most once per Keys.
	Passphrase func() ([]byte, error)
	// Key returns a 32-byte key, used as is.
	Key func() ([]byte, error)

	passOnce sync.Once
	pass     []byte
	passErr  error
}

// derived caches argon2id results for the life of the process: the key is derived once per process,
// not per use (argon2id at these settings costs ~100 ms and 64 MiB).
var derived sync.Map // sha256(passphrase|salt|params) -> key

// New returns parameters for a new store (a fresh salt) and the key they give.
func (k *Keys) New() (Params, []byte, error) {
	p := Params{KDF: KDFArgon2, Time: argonTime, Memory: argonMemory, Threads: argonThreads, Salt: make([]byte, SaltLen)}
	if k.Key != nil {
		p = Params{KDF: KDFRawKey, Salt: make([]byte, SaltLen)}
	}
	if _, err := rand.Read(p.Salt); err != nil {
		return Params{}, nil, err
	}
	key, err := k.Derive(p)
	if err != nil {
		return Params{}, nil, err
	}
	p.Check = Check(key)
	return p, key, nil
}

// Derive returns the key p describes, without checking it against p.Check (Open does).
func (k *Keys) Derive(p Params) ([]byte, error) {
	if p.KDF == KDFRawKey {
		if k.Key == nil {
			return nil, fmt.Errorf("%w: this store was made with a key file; configure key_file", ErrWrongKey)
		}
		key, err := k.Key()
		if err != nil {
			return nil, err
		}
		if len(key) != chacha20poly1305.KeySize {
			return nil, fmt.Errorf("the token store's key file must hold %d bytes (or their hex or base64), it holds %d", chacha20poly1305.KeySize, len(key))
		}
		return key, nil
	}
	if k.Passphrase == nil {
		return nil, fmt.Errorf("%w: this store was made with a passphrase; configure passphrase_env or passphrase_file", ErrWrongKey)
	}
	pass, err := k.Pass()
	if err != nil {
		return nil, err
	}
	id := sha256.New()
	id.Write(pass)
	id.Write(p.Salt)
	_ = binary.Write(id, binary.BigEndian, []uint32{p.Time, p.Memory, uint32(p.Threads)})
	cacheKey := string(id.Sum(nil))
	if key, ok := derived.Load(cacheKey); ok {
		return key.([]byte), nil
	}
	key := argon2.IDKey(pass, p.Salt, p.Time, p.Memory, p.Threads, chacha20poly1305.KeySize)
	derived.Store(cacheKey, key)
	return key, nil
}

// Open derives p's key and checks it: ErrWrongKey when it is not the key the store was made with.
func (k *Keys) Open(p Params) ([]byte, error) {
	key, err := k.Derive(p)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(Check(key), p.Check) {
		return nil, ErrWrongKey
	}
	return key, nil
}

// Pass asks for the passphrase once: a prompt on a terminal happens at most once per Keys.
func (k *Keys) Pass() ([]byte, error) {
	k.passOnce.Do(func() {
		k.pass, k.passErr = k.Passphrase()
		if k.passErr == nil && len(k.pass) == 0 {
			k.passErr = fmt.Errorf("%w: the passphrase is empty", ErrNoKey)
		}
	})
	return k.pass, k.passErr
}

// Check is what Params.Check holds for key: an HMAC, which tells a wrong key without revealing it.
func Check(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mailoauth token store key check"))
	return m.Sum(nil)[:CheckLen]
}

// Seal encrypts plain under key with a fresh random nonce, bound to ad: nonce || ciphertext.
func Seal(key, plain, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, NonceLen, NonceLen+len(plain)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out, plain, ad), nil
}

// Unseal decrypts what Seal wrote with the same ad; ErrCorrupt when it was changed or moved.
func Unseal(key, sealed, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < NonceLen+aead.Overhead() {
		return nil, ErrCorrupt
	}
	plain, err := aead.Open(nil, sealed[:NonceLen], sealed[NonceLen:], ad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

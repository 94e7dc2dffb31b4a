package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"runtime"
	"sync"

	"github.com/mailoauth/mailoauth/internal/passhash"
)

// verifier checks local passwords. argon2id is slow on purpose, so two things keep a busy proxy
// fast and safe: at most GOMAXPROCS derivations run at once (a flood of logins queues instead of
// exhausting memory), and a successful (hash, password) pair is remembered as an HMAC under a
// per-process random key, so a program that logs in every minute pays for argon2id once. Failures
// are never remembered: every wrong guess costs a full derivation, and an unknown user costs the
// same as a known one, so that user names cannot be told apart by timing.
type verifier struct {
	sem  chan struct{}
	key  [32]byte
	mu   sync.Mutex
	good map[string][]byte // hash string → HMAC(key, hash || password) of the last password that matched
}

func newVerifier() *verifier {
	v := &verifier{sem: make(chan struct{}, runtime.GOMAXPROCS(0)), good: map[string][]byte{}}
	if _, err := rand.Read(v.key[:]); err != nil {
		panic("proxy: no randomness: " + err.Error())
	}
	return v
}

func (v *verifier) mac(hash, password string) []byte {
	m := hmac.New(sha256.New, v.key[:])
	m.Write([]byte(hash))
	m.Write([]byte{0})
	m.Write([]byte(password))
	return m.Sum(nil)
}

// verify reports whether password matches hash. hash == "" (unknown user) always fails, after the
// same work as a real check. err is ctx's when it ended while the check waited for its turn.
func (v *verifier) verify(ctx context.Context, hash, password string) (bool, error) {
	if hash != "" {
		sum := v.mac(hash, password)
		v.mu.Lock()
		known := v.good[hash]
		v.mu.Unlock()
		if known != nil && hmac.Equal(known, sum) {
			return true, nil
		}
	}
	select {
	case v.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	got, want, err := passhash.Key(hash, password)
	<-v.sem
	if err != nil || hash == "" || subtle.ConstantTimeCompare(got, want) != 1 {
		return false, nil
	}
	v.mu.Lock()
	if len(v.good) > 100_000 { // bounded: reloads with ever new hashes cannot grow it without end
		clear(v.good)
	}
	v.good[hash] = v.mac(hash, password)
	v.mu.Unlock()
	return true, nil
}

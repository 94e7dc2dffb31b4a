package catalog

import (
	"errors"

	"github.com/mailoauth/mailoauth/store"
	"github.com/mailoauth/mailoauth/store/redis"
)

// Store explains a token store that cannot be opened on this machine: the passphrase or key does not
// open it (or none can be had), a Redis store cannot be reached or refuses the credentials, or the file is damaged or from a newer mailoauth. ok is false when err
// is not one of those. Nothing was asked of the identity platform, so it is never an AADSTS finding.
func Store(err error) (f Finding, ok bool) {
	switch {
	case errors.Is(err, store.ErrWrongKey), errors.Is(err, store.ErrNoKey):
		return Finding{Code: CodeStoreKey, Step: "store", Cause: codes[CodeStoreKey],
			Fix: "give [store] the passphrase or key file the store was created with (passphrase_env, passphrase_file or key_file), or remove the store's file and log in again"}, true
	case errors.Is(err, redis.ErrUnavailable), errors.Is(err, redis.ErrRefused):
		return Finding{Code: CodeStoreUnreachable, Step: "store", Cause: codes[CodeStoreUnreachable],
			Fix: "start Redis or correct [store] url (and ca_file for rediss://); check [store] username and password_env or password_file"}, true
	case errors.Is(err, store.ErrCorrupt), errors.Is(err, store.ErrNewerFormat):
		return Finding{Code: CodeStoreDamaged, Step: "store", Cause: codes[CodeStoreDamaged],
			Fix: "use the mailoauth that wrote the store, or remove the store's file and log in again"}, true
	}
	return Finding{}, false
}

package auth

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mailoauth/mailoauth/store"
	"github.com/mailoauth/mailoauth/token"
)

// User is a person signed in through an account's app registration (a delegated flow). An account
// holds the tokens of any number of users, each under its own key in the store.
type User struct {
	// Username is the sign-in name (the UPN, e.g. alice@contoso.com), which is also the user's
	// own mailbox.
	Username string
	// HomeAccountID identifies the user for ForUser and RemoveUser: stable, unlike a username,
	// which an administrator can change.
	HomeAccountID string
	// TenantID is the ID of the user's home directory (tenant).
	TenantID string
}

// newUser is the user of a home account id, which is the user's object id and home tenant id.
func newUser(home, username string) User {
	_, tid, _ := strings.Cut(home, ".")
	return User{Username: username, HomeAccountID: home, TenantID: tid}
}

// UserAccount is one user of an account: a token.Account whose tokens are that user's, so that
// imap.ForAccount(acc.ForUser(u)) opens u's mailbox with u's tokens. It is cheap to make; make one
// per request if that is simplest.
type UserAccount struct {
	a *Account
	u User
}

// ForUser returns the account as u sees it: u's tokens, and u's mailbox unless the account's
// Mailbox names another. u is as Login, ExchangeCode or Users returned it (HomeAccountID picks the
// tokens). A user the store holds no tokens for gets an error wrapping token.ErrLoginRequired
// from the TokenSource.
func (a *Account) ForUser(u User) *UserAccount { return &UserAccount{a: a, u: u} }

// User is who this is.
func (ua *UserAccount) User() User { return ua.u }

// Server is the account's server for protocol (Account.Server).
func (ua *UserAccount) Server(protocol string) string { return ua.a.Server(protocol) }

// Mailbox is the account's Mailbox if set, else the user's username.
func (ua *UserAccount) Mailbox() string {
	return firstNonEmpty(ua.a.cfg.Mailbox, ua.u.Username, ua.a.cfg.Email)
}

// Mechanism is the account's SASL mechanism (Account.Mechanism).
func (ua *UserAccount) Mechanism() string { return ua.a.Mechanism() }

// TLSConfig is the account's (Account.TLSConfig).
func (ua *UserAccount) TLSConfig() *tls.Config { return ua.a.TLSConfig() }

// AppOnly is false: a user's tokens are delegated.
func (ua *UserAccount) AppOnly() bool { return false }

// OtherMailbox reports whether the account's Mailbox names a mailbox other than the user's own.
func (ua *UserAccount) OtherMailbox() bool {
	return ua.a.cfg.Mailbox != "" && !strings.EqualFold(ua.a.cfg.Mailbox, ua.u.Username)
}

// TokenSource gives the user's tokens for r, silently, as Account.Token does for the account's
// one user: from memory, from the store, or by a refresh, one request however many callers.
func (ua *UserAccount) TokenSource(r token.Resource) token.Source {
	return slotSource{ua.a, slot{ua.u.HomeAccountID, r}}
}

// slotSource is a token.Refresher over one slot.
type slotSource struct {
	a *Account
	s slot
}

func (s slotSource) Token(ctx context.Context) (*token.Token, error) {
	if s.s.home == "" {
		return nil, s.a.loginRequired("", nil)
	}
	return s.a.token(ctx, s.s)
}

func (s slotSource) Refresh(ctx context.Context) (*token.Token, error) {
	if s.s.home == "" {
		return nil, s.a.loginRequired("", nil)
	}
	return s.a.refresh(ctx, s.s)
}

// TokenSource returns the source of the account's tokens for r (Account.Token and Refresh).
func (a *Account) TokenSource(r token.Resource) token.Source { return resourceSource{a, r} }

type resourceSource struct {
	a *Account
	r token.Resource
}

func (s resourceSource) Token(ctx context.Context) (*token.Token, error) { return s.a.Token(ctx, s.r) }

func (s resourceSource) Refresh(ctx context.Context) (*token.Token, error) {
	return s.a.Refresh(ctx, s.r)
}

// Users lists the users whose tokens the store holds for the account, by username. An app-only
// account has none.
func (a *Account) Users(ctx context.Context) ([]User, error) {
	if a.AppOnly() {
		return nil, nil
	}
	if err := a.migrate(ctx); err != nil {
		return nil, err
	}
	entries, err := a.userEntries(ctx)
	if err != nil {
		return nil, err
	}
	prefix := userKey(a.cfg.Name, "")
	var users []User
	for k, raw := range entries {
		home := strings.TrimPrefix(k, prefix)
		e := a.storeCache(k).parse(raw)
		if home == "" || e == nil { // e nil: another app's tokens, left from an earlier configuration
			continue
		}
		users = append(users, entryUser(e, home))
	}
	sort.Slice(users, func(i, j int) bool {
		if users[i].Username != users[j].Username {
			return users[i].Username < users[j].Username
		}
		return users[i].HomeAccountID < users[j].HomeAccountID
	})
	return users, nil
}

// userEntries reads the store's entries of the account's users: at once when the store is a
// store.Lister, else one Load per key (a store of the caller's own without Lister).
func (a *Account) userEntries(ctx context.Context) (map[string][]byte, error) {
	prefix := userKey(a.cfg.Name, "")
	if l, ok := a.opts.Store.(store.Lister); ok {
		return l.Entries(ctx, prefix)
	}
	keys, err := a.opts.Store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	entries := map[string][]byte{}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		raw, err := a.opts.Store.Load(ctx, k)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			entries[k] = raw
		}
	}
	return entries, nil
}

// entryUser reads who a user's entry belongs to from MSAL's cache blob.
func entryUser(e *entry, home string) User {
	u := newUser(home, "")
	blob, ok := parseBlob(e)
	if !ok {
		return u
	}
	for _, ac := range blob.Account {
		if strings.EqualFold(ac.Home, home) {
			u.Username = ac.Username
		}
	}
	return u
}

// ownUser is the account's one user (Token): the one whose username is LoginHint or Email, else
// the only one.
func (a *Account) ownUser(ctx context.Context) (User, error) {
	users, err := a.Users(ctx)
	if err != nil {
		return User{}, err
	}
	want := firstNonEmpty(a.cfg.LoginHint, a.cfg.Email)
	for _, u := range users {
		if want != "" && strings.EqualFold(u.Username, want) {
			return u, nil
		}
	}
	switch len(users) {
	case 0:
		return User{}, a.loginRequired("", nil)
	case 1:
		return users[0], nil
	}
	return User{}, fmt.Errorf("account %s holds the tokens of %d users and neither its LoginHint nor its Email names one of them: %w", a.cfg.Name, len(users), ErrSeveralUsers)
}

// Held describes what the store holds for this user, without any token (Account.Held for an
// account with several users).
func (ua *UserAccount) Held(ctx context.Context) (Held, error) {
	e, err := ua.a.storeCache(userKey(ua.a.cfg.Name, ua.u.HomeAccountID)).load(ctx)
	if err != nil {
		return Held{}, err
	}
	return parseHeld(e), nil
}

// RemoveUser forgets a user's tokens, in the store and in memory. Removing a user the store does
// not hold is not an error. A refresh of the user already running, in this process or another
// sharing a store.Locker store, ends before the tokens go; one running over a store without
// Locker finds them gone and keeps nothing: the user stays signed out either way.
func (a *Account) RemoveUser(ctx context.Context, homeAccountID string) error {
	if err := a.migrate(ctx); err != nil {
		return err
	}
	return a.removeEntry(ctx, userKey(a.cfg.Name, homeAccountID), homeAccountID)
}

// removeEntry deletes an entry of the store holding its lock, which a refresh holds while it runs,
// then forgets its tokens in memory (home "" for the application's): afterwards, so that a token
// read from the entry before it went is not remembered.
func (a *Account) removeEntry(ctx context.Context, key, home string) error {
	release, err := a.lockStore(ctx, key)
	if err != nil {
		return err
	}
	defer release()
	err = a.opts.Store.Update(ctx, key, func([]byte) ([]byte, error) { return nil, nil })
	if home != "" {
		a.dropUser(home)
	} else {
		a.forget("")
	}
	return err
}

// dropUser forgets a user in memory: tokens, client, and as the account's one user.
func (a *Account) dropUser(home string) {
	a.forget(home)
	a.forgetOwn(home)
	a.mu.Lock()
	a.users.remove(home)
	a.mu.Unlock()
}

// Logout forgets all the account's tokens — every user's, and the application's — in the store and
// in memory.
func (a *Account) Logout(ctx context.Context) error {
	users, err := a.Users(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := a.RemoveUser(ctx, u.HomeAccountID); err != nil {
			return err
		}
	}
	return a.removeEntry(ctx, storeKey(a.cfg.Name), "")
}

// migrate moves what an earlier version stored for a delegated account — one entry under
// storeKey holding its user's tokens — to the entry of each user it holds, once per process.
// A user entry already there is newer and kept. Processes that migrate at the same time write
// the same thing.
func (a *Account) migrate(ctx context.Context) error {
	a.mu.Lock()
	done := a.migrated
	a.mu.Unlock()
	if done {
		return nil
	}
	legacy := storeKey(a.cfg.Name)
	raw, err := a.opts.Store.Load(ctx, legacy)
	if err != nil {
		return err
	}
	if raw != nil {
		if e := a.storeCache(legacy).parse(raw); e != nil {
			for home, blob := range splitByHome(e.MSAL) {
				if err := a.opts.Store.Update(ctx, userKey(a.cfg.Name, home), func(old []byte) ([]byte, error) {
					if old != nil {
						return nil, errUnchanged
					}
					return json.Marshal(entry{Authority: e.Authority, ClientID: e.ClientID, HomeAccountID: home, MSAL: blob})
				}); err != nil && !errors.Is(err, errUnchanged) {
					return err
				}
			}
		}
		if err := a.opts.Store.Update(ctx, legacy, func([]byte) ([]byte, error) { return nil, nil }); err != nil {
			return err
		}
	}
	a.mu.Lock()
	a.migrated = true
	a.mu.Unlock()
	return nil
}

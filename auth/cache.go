package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"

	"github.com/mailoauth/mailoauth/store"
)

// entry is what the store holds for an account: MSAL's cache blob, plus what ties it to the
// configuration that made it, so a changed client id or authority starts afresh instead of using
// tokens of another app.
type entry struct {
	Authority     string          `json:"authority"`
	ClientID      string          `json:"client_id"`
	HomeAccountID string          `json:"home_account_id,omitempty"`
	MSAL          json.RawMessage `json:"msal,omitempty"`
}

// storeKey is the store entry of an account's application tokens (and, written by earlier
// versions, of its one user).
func storeKey(account string) string { return "account/" + account }

// userKey is the store entry of one user of an account.
func userKey(account, home string) string { return "account/" + account + "/user/" + home }

// storeCache is MSAL's cache persistence (cache.ExportReplace) over the token store: MSAL calls
// Replace before it looks in its cache and Export after it changed it.
type storeCache struct {
	st        store.Store
	key       string
	authority string
	clientID  string
	// create lets Export write an entry the store does not hold: a sign-in's (signInCache) and the
	// application's own. A user's silent refresh never may: its entry gone means the user was
	// removed (RemoveUser, Logout, another process) while it ran, and writing it back would sign
	// the user in again.
	create bool
}

var _ cache.ExportReplace = (*storeCache)(nil)

func (c *storeCache) load(ctx context.Context) (*entry, error) {
	raw, err := c.st.Load(ctx, c.key)
	if err != nil || raw == nil {
		return nil, err
	}
	return c.parse(raw), nil
}

// parse reads a stored entry; nil for another configuration's tokens, which are ignored.
func (c *storeCache) parse(raw []byte) *entry {
	var e entry
	if json.Unmarshal(raw, &e) != nil || !strings.EqualFold(e.Authority, c.authority) || !strings.EqualFold(e.ClientID, c.clientID) {
		return nil
	}
	return &e
}

func (c *storeCache) Replace(ctx context.Context, u cache.Unmarshaler, _ cache.ReplaceHints) error {
	e, err := c.load(ctx)
	if err != nil {
		return err
	}
	if e == nil || len(e.MSAL) == 0 {
		return u.Unmarshal([]byte("{}")) // forget what this process held: logout elsewhere must take effect
	}
	return u.Unmarshal(e.MSAL)
}

// refreshPrint is a digest of the refresh tokens the store holds now ("" for none or unreadable), to
// compare, not to show: a different one after a refused refresh means another process rotated them.
func (c *storeCache) refreshPrint(ctx context.Context) string {
	e, err := c.load(ctx)
	if err != nil {
		return ""
	}
	return entryRefreshPrint(e)
}

func entryRefreshPrint(e *entry) string {
	if e == nil || len(e.MSAL) == 0 {
		return ""
	}
	var blob struct {
		RefreshToken json.RawMessage `json:"RefreshToken"`
	}
	if json.Unmarshal(e.MSAL, &blob) != nil || len(blob.RefreshToken) == 0 || string(blob.RefreshToken) == "{}" {
		return ""
	}
	sum := sha256.Sum256(blob.RefreshToken)
	return string(sum[:])
}

func (c *storeCache) Export(ctx context.Context, m cache.Marshaler, _ cache.ExportHints) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return c.st.Update(ctx, c.key, func(old []byte) ([]byte, error) {
		var e entry
		switch {
		case old != nil && json.Unmarshal(old, &e) == nil && strings.EqualFold(e.Authority, c.authority) && strings.EqualFold(e.ClientID, c.clientID):
			e.MSAL = data
		case c.create:
			e = entry{Authority: c.authority, ClientID: c.clientID, MSAL: data}
		default:
			return nil, errEntryGone
		}
		return json.Marshal(e)
	})
}

// errEntryGone is what a user's silent refresh gets from MSAL when the user's entry left the store
// while it ran: the user was removed, and the refresh's tokens are not kept.
var errEntryGone = errors.New("the user's tokens were removed from the store during the refresh")

// signInCache is the cache of the client that signs users in: it starts each sign-in from the
// user's entry when MSAL names the user (PartitionKey: confidential clients), else from nothing,
// and files what the sign-in got under the entry of the user it names, or of the one user the
// blob holds (public clients sign in with an empty cache, so it holds exactly the new user). MSAL
// serialises a client's Replace, write and Export for a sign-in under its own lock.
type signInCache struct {
	st        store.Store
	account   string
	authority string
	clientID  string
}

func (c *signInCache) user(home string) *storeCache {
	return &storeCache{st: c.st, key: userKey(c.account, home), authority: c.authority, clientID: c.clientID, create: true}
}

func (c *signInCache) Replace(ctx context.Context, u cache.Unmarshaler, h cache.ReplaceHints) error {
	if h.PartitionKey != "" {
		return c.user(h.PartitionKey).Replace(ctx, u, h)
	}
	return u.Unmarshal([]byte("{}"))
}

func (c *signInCache) Export(ctx context.Context, m cache.Marshaler, h cache.ExportHints) error {
	home := h.PartitionKey
	if home == "" {
		data, err := m.Marshal()
		if err != nil {
			return err
		}
		homes := splitByHome(data)
		if len(homes) != 1 {
			return fmt.Errorf("the sign-in left %d users in the token cache, want 1", len(homes))
		}
		for k := range homes {
			home = k
		}
	}
	return c.user(home).Export(ctx, m, cache.ExportHints{PartitionKey: home})
}

// splitByHome splits MSAL's cache blob by user: each item that names a home account goes to that
// user's blob, and items that name none (app metadata) to every user's. The application's own
// tokens (an empty home account) are left out.
func splitByHome(msal []byte) map[string]json.RawMessage {
	var blob map[string]map[string]json.RawMessage
	if json.Unmarshal(msal, &blob) != nil {
		return nil
	}
	parts := map[string]map[string]map[string]json.RawMessage{}
	type item struct {
		section, key string
		raw          json.RawMessage
	}
	var shared []item
	for section, items := range blob {
		for k, raw := range items {
			var it struct {
				Home *string `json:"home_account_id"`
			}
			_ = json.Unmarshal(raw, &it)
			if it.Home == nil {
				shared = append(shared, item{section, k, raw})
				continue
			}
			if *it.Home == "" {
				continue
			}
			p := parts[*it.Home]
			if p == nil {
				p = map[string]map[string]json.RawMessage{}
				parts[*it.Home] = p
			}
			if p[section] == nil {
				p[section] = map[string]json.RawMessage{}
			}
			p[section][k] = raw
		}
	}
	out := map[string]json.RawMessage{}
	for home, p := range parts {
		for _, it := range shared {
			if p[it.section] == nil {
				p[it.section] = map[string]json.RawMessage{}
			}
			p[it.section][it.key] = it.raw
		}
		out[home], _ = json.Marshal(p)
	}
	return out
}

// errUnchanged ends an Update that has nothing to write.
var errUnchanged = errors.New("unchanged")

// dropAccessToken removes from the store the access token whose secret is secret, keeping the rest of
// MSAL's cache as it is: a server refused that token, so no process may serve it again, not even
// during an outage when its refresh fails.
func (c *storeCache) dropAccessToken(ctx context.Context, secret string) error {
	return c.dropAccessTokens(ctx, func(at cachedAccessToken) bool { return at.Secret == secret })
}

// dropAccessTokens removes from the store the access tokens drop says to, keeping the rest of MSAL's
// cache as it is.
func (c *storeCache) dropAccessTokens(ctx context.Context, drop func(cachedAccessToken) bool) error {
	err := c.st.Update(ctx, c.key, func(old []byte) ([]byte, error) {
		var e map[string]json.RawMessage
		var blob map[string]json.RawMessage
		var ats map[string]json.RawMessage
		if json.Unmarshal(old, &e) != nil || json.Unmarshal(e["msal"], &blob) != nil || json.Unmarshal(blob["AccessToken"], &ats) != nil {
			return nil, errUnchanged
		}
		n := len(ats)
		for k, raw := range ats {
			var at cachedAccessToken
			if json.Unmarshal(raw, &at) == nil && drop(at) {
				delete(ats, k)
			}
		}
		if len(ats) == n {
			return nil, errUnchanged
		}
		var err error
		if blob["AccessToken"], err = json.Marshal(ats); err != nil {
			return nil, err
		}
		if e["msal"], err = json.Marshal(blob); err != nil {
			return nil, err
		}
		return json.Marshal(e)
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// Held describes what the store holds for an account, without any token.
type Held struct {
	RefreshToken bool        `json:"refresh_token"`
	AccessTokens []HeldToken `json:"access_tokens"`
	Username     string      `json:"username,omitempty"`
}

// HeldToken is one cached access token: for what, and until when.
type HeldToken struct {
	Resource  string    `json:"resource"`
	Scopes    string    `json:"scopes"`
	ExpiresOn time.Time `json:"expires_on"`
	// ObtainedAt is when it was fetched (MSAL's cached_at): the last sign-in or refresh for it. It is
	// left out of JSON, whose form `mailoauth accounts --json` documents.
	ObtainedAt time.Time `json:"-"`
}

// msalBlob is what auth reads of MSAL's cache blob (the unified cache schema shared by the MSAL
// libraries): the access tokens, whether a refresh token is held, and the accounts' user names.
type msalBlob struct {
	AccessToken  map[string]cachedAccessToken `json:"AccessToken"`
	RefreshToken map[string]json.RawMessage   `json:"RefreshToken"`
	Account      map[string]struct {
		Home     string `json:"home_account_id"`
		Username string `json:"username"`
	} `json:"Account"`
}

// cachedAccessToken is one access token as MSAL stores it.
type cachedAccessToken struct {
	Home      string `json:"home_account_id"`
	ClientID  string `json:"client_id"`
	Secret    string `json:"secret"`
	Target    string `json:"target"` // its scopes, space-separated
	ExpiresOn string `json:"expires_on"`
	CachedAt  string `json:"cached_at"`
}

// expiry is when the token expires; false when the cache says nothing readable.
func (at cachedAccessToken) expiry() (time.Time, bool) {
	sec, err := strconv.ParseInt(at.ExpiresOn, 10, 64)
	return time.Unix(sec, 0), err == nil
}

// parseBlob reads the entry's MSAL cache; false when there is none or it is unreadable.
func parseBlob(e *entry) (msalBlob, bool) {
	var b msalBlob
	if e == nil || len(e.MSAL) == 0 || json.Unmarshal(e.MSAL, &b) != nil {
		return msalBlob{}, false
	}
	return b, true
}

// parseHeld reads MSAL's cache blob for presence and expiry only.
func parseHeld(e *entry) Held {
	var h Held
	blob, ok := parseBlob(e)
	if !ok {
		return h
	}
	h.RefreshToken = len(blob.RefreshToken) > 0
	for _, a := range blob.Account {
		h.Username = a.Username
	}
	for _, at := range blob.AccessToken {
		exp, _ := at.expiry()
		res := at.Target
		if i := strings.Index(res, " "); i >= 0 {
			res = res[:i]
		}
		if i := strings.LastIndex(res, "/"); i > len("https://") {
			res = res[:i]
		}
		ht := HeldToken{Resource: res, Scopes: at.Target, ExpiresOn: exp}
		if sec, err := strconv.ParseInt(at.CachedAt, 10, 64); err == nil {
			ht.ObtainedAt = time.Unix(sec, 0)
		}
		h.AccessTokens = append(h.AccessTokens, ht)
	}
	return h
}

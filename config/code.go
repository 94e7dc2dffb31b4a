package config

import (
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// origin records where an Account came from and that it passed its checks.
type origin struct {
	// fromFile: the account was read by Load or Parse; messages name its TOML keys.
	fromFile bool
	// checked is a copy of the account as it last passed Check (or Parse), so that Check of an
	// unchanged account returns at once.
	checked *Account
}

// Check completes the account with its defaults and checks it by the rules Load applies to an
// [accounts.NAME] table, so that an account built in code behaves exactly as the same account
// read from a file. It reports every problem at once, as Errors whose entries name the Go field
// ("Account.Flow"), and changes only fields that are empty (or, for Mechanism and Authority, their
// spelling: lower case, no trailing slash).
//
// The defaults: Protocols imap and smtp; Cloud global; Tenant organizations for the flows that
// sign in a user of any work or school tenant (interactive, device, password, refresh_token);
// Mechanism xoauth2. An empty Name becomes one derived from the tenant, the client ID and the
// email, such as "contoso.onmicrosoft.com_00000000-0000-0000-0000-000000000000_alice-contoso.com":
// the name keys the account's tokens in the store, so it must stay the same from one run to the
// next; set Name yourself to choose it.
//
// Check is idempotent: for an account that Load, Parse or an earlier Check accepted and that has
// not changed since, it returns nil at once. It never reads a secret (a file, a variable) and never
// opens a network connection: a missing file or variable is found when the account is used. It
// does look at the mode of the secret files that exist, and refuses one that other users can read. Like
// any change to the account, it must not run while another goroutine uses the account.
func (a *Account) Check() error {
	if a.checked != nil && a.unchanged() {
		return nil
	}
	v := &validator{code: true}
	v.accountDefaults(a.Name, a)
	name := a.Name
	if name == "" {
		name = derivedName(a)
	}
	v.account(name, a)
	if len(v.errs) > 0 {
		return publicErrors(v.errs)
	}
	a.Name = name
	a.remember()
	return nil
}

// accountDefaults fills in what the account leaves out (see Check). It runs before validation,
// and only sets values that are valid by construction, so a default can never be the subject of
// an error.
func (v *validator) accountDefaults(name string, a *Account) {
	has := func(key string) bool { return v.pos.Has("accounts", name, key) }
	if len(a.Protocols) == 0 && !has("protocols") {
		a.Protocols = DefaultProtocols()
	}
	if a.Cloud == "" && !has("cloud") {
		a.Cloud = CloudGlobal
	}
	if a.Tenant == "" && !has("tenant") {
		switch a.Flow {
		case FlowInteractive, FlowDevice, FlowPassword, FlowRefreshToken:
			// A work or school account of any tenant; the user's tenant is found at sign-in.
			a.Tenant = TenantOrganizations
		}
	}
	if a.Mechanism == "" && !has("mechanism") {
		a.Mechanism = MechanismXOAUTH2
	}
}

// derivedName is the Name of an account built in code without one: its tenant, client ID and
// email, in the characters an account name may have.
func derivedName(a *Account) string {
	parts := []string{a.Tenant, a.ClientID}
	if a.Email != "" {
		parts = append(parts, a.Email)
	}
	name := strings.Map(func(r rune) rune {
		if r < unicode.MaxASCII && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return r
		}
		return '-'
	}, strings.Join(parts, "_"))
	return strings.TrimLeft(name, "._-")
}

// remember records that the account, as it is now, passed its checks.
func (a *Account) remember() {
	c := a.snapshot()
	a.checked = &c
}

// snapshot is a copy of the account that shares no slice with it, without its origin.
func (a *Account) snapshot() Account {
	c := *a
	c.origin = origin{}
	c.Protocols = slices.Clone(a.Protocols)
	c.Scopes = slices.Clone(a.Scopes)
	c.PFX = slices.Clone(a.PFX)
	return c
}

// unchanged reports whether the account is as it was when it last passed its checks.
func (a *Account) unchanged() bool {
	now := a.snapshot()
	return reflect.DeepEqual(&now, a.checked)
}

// KeyName returns how messages name the account's setting whose TOML key is tomlKey: the key
// itself for an account read from a file ("client_secret_file"), the Go field for one built in
// code ("Account.ClientSecretFile"). A field that a file cannot set is named by its Go name in
// snake case ("pfx_password" for PFXPassword). Code that reports problems found while using an
// account (a file that cannot be read) uses it so that the user is told what they wrote.
func (a *Account) KeyName(tomlKey string) string {
	if a.fromFile {
		return tomlKey
	}
	return goField(tomlKey)
}

// goFields maps each Account key to its Go field: the toml tag's name, or, for the fields that a
// file cannot set, the field's name in snake case ("ClientCertificate": "client_certificate").
var goFields = func() map[string]string {
	m := map[string]string{}
	t := reflect.TypeFor[Account]()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if key == "-" || key == "" {
			key = snake(f.Name)
		}
		m[key] = f.Name
	}
	return m
}()

// goField returns "Account.Field" for an Account key; a key that is not one comes back as it is.
func goField(key string) string {
	if f, ok := goFields[key]; ok {
		return "Account." + f
	}
	return key
}

// snake writes a Go name in snake case, an initialism (and its plural) as one word: PFXPassword is
// pfx_password, RootCAs root_cas.
func snake(name string) string {
	var b strings.Builder
	rs := []rune(name)
	upper := func(i int) bool { return i >= len(rs) || unicode.IsUpper(rs[i]) }
	for i, r := range rs {
		plural := i+1 < len(rs) && rs[i+1] == 's' && upper(i+2)
		if unicode.IsUpper(r) && i > 0 && (!upper(i-1) || !upper(i+1) && !plural) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

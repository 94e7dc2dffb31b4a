package world

// Runtime changes (the emulator's control API): each adds or changes one thing of a World, given in
// the keys of the scenario format (docs/scenarios.md), and checks it with the scenario parser itself,
// on a small scenario made of the thing and what it refers to. A runtime change is therefore refused
// for exactly the reasons a scenario file would be. Call them inside Live.Update, on its copy.

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/internal/tomlconf"
)

// Keys are the keys of one scenario table (a user, an app, a fault, ...), as decoded from JSON.
type Keys map[string]any

// ErrNotFound is returned by runtime changes that name a tenant, user, mailbox, app or fault the
// World does not have.
var ErrNotFound = errors.New("not found")

func notFound(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotFound}, args...)...)
}

// tenant finds a tenant or says it does not exist.
func (w *World) tenantOrErr(ref string) (*Tenant, error) {
	if t := w.Tenant(ref); t != nil {
		return t, nil
	}
	return nil, notFound("no tenant %q; name one by its name, id or domain", ref)
}

// tenantKeys is the part of a tenant's table that its addresses are checked against.
func tenantKeys(t *Tenant) Keys {
	k := Keys{"id": t.ID, "display_name": t.DisplayName}
	var doms []any
	for _, d := range t.Domains {
		if !strings.EqualFold(d, t.Name+".onmicrosoft.com") {
			doms = append(doms, d)
		}
	}
	if len(doms) > 0 {
		k["domains"] = doms
	}
	return k
}

// check parses a scenario made of frag and returns the World the parser made of it, or its errors
// without file positions (the caller sent JSON, not this file).
func check(frag Keys) (*World, error) {
	data, err := toml.Marshal(normalise(map[string]any(frag)))
	if err != nil {
		return nil, fmt.Errorf("the request cannot be written as a scenario: %w", err)
	}
	w, err := ParseScenario("request", data)
	if err == nil {
		return w, nil
	}
	var es tomlconf.Errors
	if !errors.As(err, &es) {
		var e *tomlconf.Error
		if errors.As(err, &e) {
			es = tomlconf.Errors{e}
		} else {
			return nil, err
		}
	}
	out := make(tomlconf.Errors, len(es))
	for i, e := range es {
		c := *e
		c.File, c.Line, c.Column = "", 0, 0
		out[i] = &c
	}
	return nil, out
}

// normalise turns JSON's numbers into TOML's integers and floats, and arrays of objects into arrays
// of tables.
func normalise(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalise(e)
		}
		return out
	case Keys:
		return normalise(map[string]any(v))
	case []any:
		tables := len(v) > 0
		for _, e := range v {
			if _, ok := e.(map[string]any); !ok {
				tables = false
			}
		}
		if tables {
			out := make([]map[string]any, len(v))
			for i, e := range v {
				out[i] = normalise(e).(map[string]any)
			}
			return out
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalise(e)
		}
		return out
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

func userKeys(u *User) Keys {
	k := Keys{"upn": u.UPN, "password": u.Password, "display_name": u.DisplayName, "object_id": u.ObjectID,
		"mfa_required": u.MFARequired, "imap_disabled": u.Mailbox.IMAPDisabled, "pop_disabled": u.Mailbox.POPDisabled,
		"rest_disabled": u.Mailbox.RESTDisabled}
	if u.Mailbox.SMTPAuth != "" {
		k["smtp_auth"] = u.Mailbox.SMTPAuth
	}
	if !u.RevokedBefore.IsZero() {
		k["revoked_before"] = u.RevokedBefore
	}
	return k
}

// AddUser adds a user (the keys of a [[tenants.NAME.users]] table) to a tenant and returns it.
func (w *World) AddUser(tenant string, keys Keys) (*User, error) {
	t, err := w.tenantOrErr(tenant)
	if err != nil {
		return nil, err
	}
	if upn, _ := keys["upn"].(string); upn != "" && (t.User(upn) != nil || t.SharedMailbox(upn) != nil) {
		return nil, fmt.Errorf("address %s is taken in tenant %s; remove that mailbox first or choose another", upn, t.Name)
	}
	tk := tenantKeys(t)
	tk["users"] = []any{map[string]any(keys)}
	nw, err := check(Keys{"tenants": map[string]any{t.Name: map[string]any(tk)}})
	if err != nil {
		return nil, err
	}
	u := nw.Tenants[0].Users[0]
	u.Tenant = t
	t.Users = append(t.Users, u)
	return u, nil
}

// SetUser changes a user's settings: keys replace the ones the user has (upn cannot change).
// "revoke_sessions": true sets revoked_before to now, as Revoke-MgUserSignInSession does.
func (w *World) SetUser(tenant, upn string, keys Keys, now time.Time) error {
	t, err := w.tenantOrErr(tenant)
	if err != nil {
		return err
	}
	u := t.User(upn)
	if u == nil {
		return notFound("no user %s in tenant %s", upn, t.Name)
	}
	merged := userKeys(u)
	for k, v := range keys {
		merged[k] = v
	}
	if v, ok := merged["revoke_sessions"]; ok {
		delete(merged, "revoke_sessions")
		if b, ok := v.(bool); !ok {
			return errors.New("revoke_sessions must be true or false")
		} else if b {
			merged["revoked_before"] = now.UTC().Truncate(time.Second).Add(time.Second)
		}
	}
	if s, _ := merged["upn"].(string); !strings.EqualFold(s, u.UPN) {
		return errors.New("a user's upn cannot change: remove the user and add another")
	}
	tk := tenantKeys(t)
	tk["users"] = []any{map[string]any(merged)}
	nw, err := check(Keys{"tenants": map[string]any{t.Name: map[string]any(tk)}})
	if err != nil {
		return err
	}
	n := nw.Tenants[0].Users[0]
	n.Tenant = t
	*u = *n
	return nil
}

// RemoveUser deletes a user, and the FullAccess and SendAs it was granted.
func (w *World) RemoveUser(tenant, upn string) error {
	t, err := w.tenantOrErr(tenant)
	if err != nil {
		return err
	}
	for i, u := range t.Users {
		if strings.EqualFold(u.UPN, upn) {
			t.Users = append(t.Users[:i:i], t.Users[i+1:]...)
			t.forgetMailbox(upn)
			return nil
		}
	}
	return notFound("no user %s in tenant %s", upn, t.Name)
}

// forgetMailbox removes an address from every grant of the tenant.
func (t *Tenant) forgetMailbox(addr string) {
	drop := func(list []string) []string {
		out := list[:0:0]
		for _, a := range list {
			if !strings.EqualFold(a, addr) {
				out = append(out, a)
			}
		}
		return out
	}
	for _, m := range t.SharedMailboxes {
		m.FullAccess, m.SendAs = drop(m.FullAccess), drop(m.SendAs)
	}
	for _, sp := range t.ServicePrincipals {
		sp.FullAccess = drop(sp.FullAccess)
	}
	for _, p := range t.ApplicationAccessPolicies {
		p.Mailboxes = drop(p.Mailboxes)
	}
}

// AddSharedMailbox adds a shared mailbox (the keys of a [[tenants.NAME.shared_mailboxes]] table, with
// full_access and send_as naming users of the tenant).
func (w *World) AddSharedMailbox(tenant string, keys Keys) (*SharedMailbox, error) {
	t, err := w.tenantOrErr(tenant)
	if err != nil {
		return nil, err
	}
	if addr, _ := keys["address"].(string); addr != "" && (t.User(addr) != nil || t.SharedMailbox(addr) != nil) {
		return nil, fmt.Errorf("address %s is taken in tenant %s; remove that mailbox first or choose another", addr, t.Name)
	}
	tk := tenantKeys(t)
	var users []any
	for _, u := range t.Users {
		users = append(users, map[string]any{"upn": u.UPN})
	}
	if len(users) > 0 {
		tk["users"] = users
	}
	tk["shared_mailboxes"] = []any{map[string]any(keys)}
	nw, err := check(Keys{"tenants": map[string]any{t.Name: map[string]any(tk)}})
	if err != nil {
		return nil, err
	}
	m := nw.Tenants[0].SharedMailboxes[0]
	t.SharedMailboxes = append(t.SharedMailboxes, m)
	return m, nil
}

// RemoveSharedMailbox deletes a shared mailbox and the grants on it.
func (w *World) RemoveSharedMailbox(tenant, addr string) error {
	t, err := w.tenantOrErr(tenant)
	if err != nil {
		return err
	}
	for i, m := range t.SharedMailboxes {
		if strings.EqualFold(m.Address, addr) {
			t.SharedMailboxes = append(t.SharedMailboxes[:i:i], t.SharedMailboxes[i+1:]...)
			t.forgetMailbox(addr)
			return nil
		}
	}
	return notFound("no shared mailbox %s in tenant %s", addr, t.Name)
}

// SetTenant changes a tenant's settings: smtp_auth_disabled (true or false) and smtp_basic_auth
// ("disabled" or "retired").
func (w *World) SetTenant(tenant string, keys Keys) error {
	t, err := w.tenantOrErr(tenant)
	if err != nil {
		return err
	}
	for k := range keys {
		if k != "smtp_auth_disabled" && k != "smtp_basic_auth" {
			return fmt.Errorf("unknown tenant setting %q: a tenant's settings are smtp_auth_disabled and smtp_basic_auth", k)
		}
	}
	tk := tenantKeys(t)
	for k, v := range keys {
		tk[k] = v
	}
	nw, err := check(Keys{"tenants": map[string]any{t.Name: map[string]any(tk)}})
	if err != nil {
		return err
	}
	if _, ok := keys["smtp_auth_disabled"]; ok {
		t.SMTPAuthDisabled = nw.Tenants[0].SMTPAuthDisabled
	}
	if _, ok := keys["smtp_basic_auth"]; ok {
		t.SMTPBasicAuthRetired = nw.Tenants[0].SMTPBasicAuthRetired
	}
	return nil
}

// allTenants is every tenant's table, for checking what names a tenant.
func (w *World) allTenants() map[string]any {
	ts := map[string]any{}
	for _, t := range w.Tenants {
		ts[t.Name] = map[string]any(tenantKeys(t))
	}
	return ts
}

// AddApp registers an app (the keys of an [apps.NAME] table). A confidential app given no secret
// gets none: add one with AddSecret.
func (w *World) AddApp(name string, keys Keys) (*App, error) {
	if w.App(name) != nil {
		return nil, fmt.Errorf("an app named %s exists; remove it first or choose another name", name)
	}
	if id, _ := keys["client_id"].(string); id != "" && w.App(id) != nil {
		return nil, fmt.Errorf("client id %s is taken by another app; leave client_id out for a new one", id)
	}
	nw, err := check(Keys{"tenants": w.allTenants(), "apps": map[string]any{name: map[string]any(keys)}})
	if err != nil {
		return nil, err
	}
	a := nw.App(name)
	w.Apps = append(w.Apps, a)
	return a, nil
}

// SetApp changes what an app holds: any of delegated, application, consented, admin_consented,
// redirect_uris, allow_public_client_flows.
func (w *World) SetApp(name string, keys Keys) error {
	a := w.App(name)
	if a == nil {
		return notFound("no app %s", name)
	}
	allowed := map[string]bool{"delegated": true, "application": true, "consented": true, "admin_consented": true,
		"redirect_uris": true, "allow_public_client_flows": true}
	merged := map[string]any{"tenant": a.Tenant, "public": a.Public, "multi_tenant": a.MultiTenant,
		"delegated": strs(a.Delegated), "application": strs(a.Application), "consented": a.Consented,
		"admin_consented": a.AdminConsented, "redirect_uris": strs(a.RedirectURIs), "allow_public_client_flows": a.AllowPublicClientFlows}
	for k, v := range keys {
		if !allowed[k] {
			return fmt.Errorf("app key %q cannot change at runtime: those that can are delegated, application, consented, admin_consented, redirect_uris and allow_public_client_flows", k)
		}
		merged[k] = v
	}
	nw, err := check(Keys{"tenants": w.allTenants(), "apps": map[string]any{a.Name: merged}})
	if err != nil {
		return err
	}
	n := nw.App(a.Name)
	a.Delegated, a.Application, a.Consented, a.AdminConsented = n.Delegated, n.Application, n.Consented, n.AdminConsented
	a.RedirectURIs, a.AllowPublicClientFlows = n.RedirectURIs, n.AllowPublicClientFlows || a.Public
	return nil
}

func strs(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// RemoveApp deletes an app registration and its Exchange service principals and access policies.
func (w *World) RemoveApp(name string) error {
	a := w.App(name)
	if a == nil {
		return notFound("no app %s", name)
	}
	for i, x := range w.Apps {
		if x == a {
			w.Apps = append(w.Apps[:i:i], w.Apps[i+1:]...)
		}
	}
	for _, t := range w.Tenants {
		delete(t.EnterpriseApps, a.ClientID)
		sps := t.ServicePrincipals[:0:0]
		for _, sp := range t.ServicePrincipals {
			if sp.App != a.Name && !strings.EqualFold(sp.App, a.ClientID) {
				sps = append(sps, sp)
			}
		}
		t.ServicePrincipals = sps
		pols := t.ApplicationAccessPolicies[:0:0]
		for _, p := range t.ApplicationAccessPolicies {
			if p.App != a.Name && !strings.EqualFold(p.App, a.ClientID) {
				pols = append(pols, p)
			}
		}
		t.ApplicationAccessPolicies = pols
	}
	return nil
}

// AddSecret gives a confidential app a new client secret, valid until expires (zero: never).
func (w *World) AddSecret(app, value string, expires time.Time) error {
	a := w.App(app)
	if a == nil {
		return notFound("no app %s", app)
	}
	if a.Public {
		return fmt.Errorf("app %s is a public client, which holds no secret", a.Name)
	}
	a.Secrets = append(a.Secrets, Secret{Value: value, Expires: expires})
	return nil
}

// RemoveSecret removes an app's secret by its position (1 for the first), as listed.
func (w *World) RemoveSecret(app string, n int) error {
	a := w.App(app)
	if a == nil {
		return notFound("no app %s", app)
	}
	if n < 1 || n > len(a.Secrets) {
		return notFound("app %s has no secret %d (it has %d)", a.Name, n, len(a.Secrets))
	}
	a.Secrets = append(a.Secrets[:n-1:n-1], a.Secrets[n:]...)
	return nil
}

// AddServicePrincipal registers an app in a tenant's Exchange (the keys of an
// [[tenants.NAME.exchange_service_principals]] table: app and full_access), replacing its registration.
func (w *World) AddServicePrincipal(tenant string, keys Keys) error {
	t, err := w.tenantOrErr(tenant)
	if err != nil {
		return err
	}
	tk := tenantKeys(t)
	var users, shared []any
	for _, u := range t.Users {
		users = append(users, map[string]any{"upn": u.UPN})
	}
	for _, m := range t.SharedMailboxes {
		shared = append(shared, map[string]any{"address": m.Address})
	}
	if len(users) > 0 {
		tk["users"] = users
	}
	if len(shared) > 0 {
		tk["shared_mailboxes"] = shared
	}
	tk["exchange_service_principals"] = []any{map[string]any(keys)}
	ts := w.allTenants()
	ts[t.Name] = map[string]any(tk)
	apps := map[string]any{}
	for _, a := range w.Apps {
		apps[a.Name] = map[string]any{"client_id": a.ClientID, "tenant": a.Tenant, "multi_tenant": a.MultiTenant, "public": a.Public}
	}
	nw, err := check(Keys{"tenants": ts, "apps": apps})
	if err != nil {
		return err
	}
	sp := nw.Tenant(t.Name).ServicePrincipals[0]
	for i, old := range t.ServicePrincipals {
		if old.App == sp.App {
			t.ServicePrincipals[i] = sp
			return nil
		}
	}
	t.ServicePrincipals = append(t.ServicePrincipals, sp)
	return nil
}

// AddFault adds a fault (the keys of a [[faults]] table) and returns it with its ID.
func (w *World) AddFault(keys Keys, newID func() string) (Fault, error) {
	if len(w.Tenants) == 0 {
		return Fault{}, errors.New("the world has no tenant")
	}
	t := w.Tenants[0]
	nw, err := check(Keys{"tenants": map[string]any{t.Name: map[string]any(tenantKeys(t))}, "faults": []any{map[string]any(keys)}})
	if err != nil {
		return Fault{}, err
	}
	f := nw.Faults[0]
	f.ID = newID()
	w.Faults = append(w.Faults, f)
	return f, nil
}

// RemoveFault removes the fault with this ID.
func (w *World) RemoveFault(id string) error {
	for i, f := range w.Faults {
		if f.ID == id {
			w.Faults = append(w.Faults[:i:i], w.Faults[i+1:]...)
			return nil
		}
	}
	return notFound("no fault %s", id)
}

// AddCertificate registers a certificate's public key with a confidential app, for client
// assertions (Entra's "Certificates" of an app registration).
func (w *World) AddCertificate(app string, cert *x509.Certificate) error {
	a := w.App(app)
	if a == nil {
		return notFound("no app %s", app)
	}
	if a.Public {
		return fmt.Errorf("app %s is a public client, which holds no certificate", a.Name)
	}
	for _, c := range a.Certificates {
		if c.Equal(cert) {
			return fmt.Errorf("app %s has this certificate already", a.Name)
		}
	}
	a.Certificates = append(a.Certificates, cert)
	return nil
}

// RemoveCertificate removes an app's certificate by its position (1 for the first), as listed.
func (w *World) RemoveCertificate(app string, n int) error {
	a := w.App(app)
	if a == nil {
		return notFound("no app %s", app)
	}
	if n < 1 || n > len(a.Certificates) {
		return notFound("app %s has no certificate %d (it has %d)", a.Name, n, len(a.Certificates))
	}
	a.Certificates = append(a.Certificates[:n-1:n-1], a.Certificates[n:]...)
	return nil
}

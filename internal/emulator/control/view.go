package control

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// The JSON forms of GET world and of what the POSTs create. Keys are the scenario format's; no
// password and no secret's value appears (a secret shows its first three characters, as Entra's
// portal does).

type worldView struct {
	Tenants []tenantView `json:"tenants"`
	Apps    []appView    `json:"apps"`
	Faults  []faultView  `json:"faults"`
}

type tenantView struct {
	Name              string       `json:"name"`
	ID                string       `json:"id"`
	Domains           []string     `json:"domains"`
	SMTPAuthDisabled  bool         `json:"smtp_auth_disabled"`
	SMTPBasicAuth     string       `json:"smtp_basic_auth"`
	Users             []userView   `json:"users"`
	SharedMailboxes   []sharedView `json:"shared_mailboxes"`
	ServicePrincipals []spView     `json:"exchange_service_principals"`
}

type spView struct {
	App        string   `json:"app"`
	FullAccess []string `json:"full_access"`
}

type userView struct {
	UPN           string     `json:"upn"`
	ObjectID      string     `json:"object_id"`
	DisplayName   string     `json:"display_name"`
	MFARequired   bool       `json:"mfa_required"`
	IMAPDisabled  bool       `json:"imap_disabled"`
	POPDisabled   bool       `json:"pop_disabled"`
	SMTPAuth      string     `json:"smtp_auth,omitempty"`
	RESTDisabled  bool       `json:"rest_disabled"`
	RevokedBefore *time.Time `json:"revoked_before,omitempty"`
}

type sharedView struct {
	Address    string   `json:"address"`
	ObjectID   string   `json:"object_id"`
	FullAccess []string `json:"full_access"`
	SendAs     []string `json:"send_as"`
}

type appView struct {
	Name           string       `json:"name"`
	ClientID       string       `json:"client_id"`
	Tenant         string       `json:"tenant"`
	Public         bool         `json:"public"`
	MultiTenant    bool         `json:"multi_tenant"`
	Delegated      []string     `json:"delegated"`
	Application    []string     `json:"application"`
	Consented      bool         `json:"consented"`
	AdminConsented bool         `json:"admin_consented"`
	Secrets        []secretView `json:"secrets"`
	Certificates   []certView   `json:"certificates"`
	// Secret is the value of the secret made with the app, in the answer that creates it only.
	Secret string `json:"secret,omitempty"`
}

type secretView struct {
	N       int       `json:"n"` // its number, for DELETE apps/{app}/secrets/{n}
	Hint    string    `json:"hint"`
	Expires time.Time `json:"expires,omitzero"`
	Value   string    `json:"value,omitempty"` // in the answer that creates it only
}

type certView struct {
	N          int       `json:"n"`          // its number, for DELETE apps/{app}/certificates/{n}
	Thumbprint string    `json:"thumbprint"` // SHA-1, hexadecimal, as Entra's portal shows it
	Subject    string    `json:"subject"`
	Expires    time.Time `json:"expires"`
}

type faultView struct {
	ID              string  `json:"id"`
	Endpoint        string  `json:"endpoint"`
	Status          int     `json:"status,omitempty"`
	Latency         string  `json:"latency,omitempty"`
	Drop            bool    `json:"drop,omitempty"`
	After           int     `json:"after,omitempty"`
	Times           int     `json:"times,omitempty"`
	Reply           string  `json:"reply,omitempty"`
	DisconnectAfter int     `json:"disconnect_after,omitempty"`
	Probability     float64 `json:"probability,omitempty"`
	Seed            int64   `json:"seed,omitempty"`
}

func viewWorld(w *world.World) worldView {
	v := worldView{Tenants: []tenantView{}, Apps: []appView{}, Faults: []faultView{}}
	for _, t := range w.Tenants {
		tv := tenantView{Name: t.Name, ID: t.ID, Domains: t.Domains, SMTPAuthDisabled: t.SMTPAuthDisabled,
			SMTPBasicAuth: "disabled", Users: []userView{}, SharedMailboxes: []sharedView{}, ServicePrincipals: []spView{}}
		if t.SMTPBasicAuthRetired {
			tv.SMTPBasicAuth = "retired"
		}
		for _, u := range t.Users {
			tv.Users = append(tv.Users, viewUser(u))
		}
		for _, m := range t.SharedMailboxes {
			tv.SharedMailboxes = append(tv.SharedMailboxes, viewShared(m))
		}
		for _, sp := range t.ServicePrincipals {
			tv.ServicePrincipals = append(tv.ServicePrincipals, spView{App: sp.App, FullAccess: nonNil(sp.FullAccess)})
		}
		v.Tenants = append(v.Tenants, tv)
	}
	for _, a := range w.Apps {
		v.Apps = append(v.Apps, viewApp(a))
	}
	for _, f := range w.Faults {
		v.Faults = append(v.Faults, viewFault(f))
	}
	return v
}

func viewUser(u *world.User) userView {
	v := userView{UPN: u.UPN, ObjectID: u.ObjectID, DisplayName: u.DisplayName, MFARequired: u.MFARequired,
		IMAPDisabled: u.Mailbox.IMAPDisabled, POPDisabled: u.Mailbox.POPDisabled, SMTPAuth: u.Mailbox.SMTPAuth,
		RESTDisabled: u.Mailbox.RESTDisabled}
	if !u.RevokedBefore.IsZero() {
		t := u.RevokedBefore
		v.RevokedBefore = &t
	}
	return v
}

func viewShared(m *world.SharedMailbox) sharedView {
	return sharedView{Address: m.Address, ObjectID: m.ObjectID, FullAccess: nonNil(m.FullAccess), SendAs: nonNil(m.SendAs)}
}

func viewApp(a *world.App) appView {
	v := appView{Name: a.Name, ClientID: a.ClientID, Tenant: a.Tenant, Public: a.Public, MultiTenant: a.MultiTenant,
		Delegated: nonNil(a.Delegated), Application: nonNil(a.Application), Consented: a.Consented,
		AdminConsented: a.AdminConsented, Secrets: []secretView{}, Certificates: []certView{}}
	for i, s := range a.Secrets {
		v.Secrets = append(v.Secrets, secretView{N: i + 1, Hint: hint(s.Value), Expires: s.Expires})
	}
	for i, c := range a.Certificates {
		v.Certificates = append(v.Certificates, viewCert(i+1, c))
	}
	return v
}

func viewCert(n int, c *x509.Certificate) certView {
	sum := sha1.Sum(c.Raw)
	return certView{N: n, Thumbprint: strings.ToUpper(hex.EncodeToString(sum[:])), Subject: c.Subject.String(), Expires: c.NotAfter.UTC()}
}

func viewFault(f world.Fault) faultView {
	v := faultView{ID: f.ID, Endpoint: f.Endpoint, Status: f.Status, Drop: f.Drop, After: f.After, Times: f.Times,
		Reply: f.Reply, DisconnectAfter: f.DisconnectAfter, Probability: f.Probability, Seed: f.Seed}
	if f.Latency > 0 {
		v.Latency = f.Latency.String()
	}
	return v
}

// hint is the start of a secret that Entra shows to tell secrets apart.
func hint(s string) string {
	if len(s) < 3 {
		return ""
	}
	return s[:3]
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

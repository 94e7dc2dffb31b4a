// Package world is the emulator's model of a Microsoft 365 organisation: tenants, users, mailboxes,
// app registrations with their credentials and permissions, Exchange's view of service principals and
// mailbox permissions, token lifetimes and injected faults. The identity platform and (later) the mail
// servers and Graph all answer from one World, so a setting changes every protocol's behaviour at once.
//
// It holds data and lookups only: it must never serve requests, mint tokens or touch the network.
package world

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// Well-known resources. The app ids are Microsoft's first-party application ids, which tokens carry in
// some claims; the URIs are the ones scopes are written with.
const (
	// ExchangeResource is Office 365 Exchange Online as delegated scopes name it
	// (https://outlook.office.com/IMAP.AccessAsUser.All). outlook.office365.com is an alias that app-only
	// requests use (https://outlook.office365.com/.default), per Microsoft's "Authenticate an IMAP, POP
	// or SMTP connection using OAuth".
	ExchangeResource      = "https://outlook.office.com"
	ExchangeResourceAlias = "https://outlook.office365.com"
	ExchangeAppID         = "00000002-0000-0ff1-ce00-000000000000"
	GraphResource         = "https://graph.microsoft.com"
	GraphAppID            = "00000003-0000-0000-c000-000000000000"
	// ARMResource is Azure Resource Manager, a resource that is neither (see Resources).
	ARMResource = "https://management.azure.com"
	ARMAppID    = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
)

// World is one emulated organisation (or several tenants of them).
type World struct {
	Tenants []*Tenant
	Apps    []*App
	Tokens  Lifetimes
	Faults  []Fault
	// GraphThrottling is Microsoft Graph's throttling of mail requests (the zero value: Graph's limits).
	GraphThrottling GraphThrottling
	// Accounts are written into the emulator's mailoauth.toml, pointing at this world's apps and users.
	Accounts []AccountSpec
}

// AccountSpec describes one account of the written config.
type AccountSpec struct {
	Name    string // account name in mailoauth.toml
	App     string // app name
	Flow    string // interactive, device, client_credentials, password, refresh_token, auth_code_web
	Email   string // the signed-in user (delegated flows)
	Mailbox string // the mailbox opened (client_credentials; or a shared mailbox for delegated flows)
	// Credential for confidential apps: "secret" (client_secret_file), "pfx" (certificate +
	// certificate_password_file) or "pem" (certificate with the key in the same file).
	Credential string
	Protocols  []string // default imap, pop, smtp, graph
}

// Tenant is an Entra ID directory with its Exchange Online organisation.
type Tenant struct {
	Name        string   // short name, e.g. "contoso"; <Name>.onmicrosoft.com is always one of its domains
	ID          string   // GUID
	DisplayName string   // shown on sign-in pages and in error texts
	Domains     []string // verified domains, e.g. contoso.test
	// SMTPAuthDisabled mirrors Set-TransportConfig -SmtpClientAuthenticationDisabled $true.
	SMTPAuthDisabled bool
	// SMTPBasicAuthRetired is Exchange Online after basic authentication for Client Submission was
	// retired (from December 2026): SMTP AUTH with a password gets 550 5.7.30 rather than 535 5.7.139.
	SMTPBasicAuthRetired bool
	Users                []*User
	SharedMailboxes      []*SharedMailbox
	// ServicePrincipals are apps registered in Exchange with New-ServicePrincipal, and their mailbox
	// permissions. An app that holds application permissions but is missing here gets tokens from Entra
	// and is refused by Exchange, as in Exchange Online.
	ServicePrincipals []*ServicePrincipal
	// ApplicationAccessPolicies are Exchange's application access policies: an app one names opens,
	// through Microsoft Graph with its application permissions, only the policy's mailboxes. IMAP, POP
	// and SMTP do not apply them (they go by ServicePrincipals' FullAccess).
	ApplicationAccessPolicies []*ApplicationAccessPolicy
	// ObjectIDs of apps' service principals (enterprise applications) in this tenant, by client id.
	// Filled by Resolve for every app that can be used in the tenant.
	EnterpriseApps map[string]string
}

// User is a member of a tenant with a mailbox.
type User struct {
	UPN         string
	Password    string
	DisplayName string
	ObjectID    string
	MFARequired bool // ROPC is then refused with AADSTS50076
	// RevokedBefore invalidates refresh tokens issued before it (Revoke-MgUserSignInSession, password
	// reset): they get AADSTS50173.
	RevokedBefore time.Time
	Mailbox       MailboxSettings
	Tenant        *Tenant `toml:"-"`
}

// MailboxSettings mirrors Set-CASMailbox for one mailbox (and, with RESTDisabled, its state in Exchange Online).
type MailboxSettings struct {
	IMAPDisabled bool
	POPDisabled  bool
	// SMTPAuth is "" (follow the tenant), "enabled" or "disabled" (SmtpClientAuthenticationDisabled on
	// the mailbox overrides the tenant's setting).
	SMTPAuth string
	// RESTDisabled is not a Set-CASMailbox setting: the mailbox is out of Microsoft Graph's reach, as
	// one that is inactive, soft-deleted, hosted on-premises or without an Exchange Online licence is.
	// Graph answers MailboxNotEnabledForRESTAPI for it; IMAP, POP and SMTP ignore it (what Exchange
	// Online answers there for such a mailbox is unconfirmed).
	RESTDisabled bool
}

// SharedMailbox is a mailbox without its own sign-in, opened by users with FullAccess.
type SharedMailbox struct {
	Address     string
	DisplayName string
	ObjectID    string
	FullAccess  []string // UPNs granted Add-MailboxPermission -AccessRights FullAccess
	// SendAs are UPNs granted Add-RecipientPermission -AccessRights SendAs: they may send mail with
	// this mailbox's address in From (FullAccess alone does not let them).
	SendAs  []string
	Mailbox MailboxSettings
}

// ServicePrincipal is an app's registration in Exchange Online (New-ServicePrincipal) and the mailboxes
// it was granted (Add-MailboxPermission -User <sp> -AccessRights FullAccess).
type ServicePrincipal struct {
	App        string   // the app's name in this world
	FullAccess []string // mailbox addresses
}

// ApplicationAccessPolicy is New-ApplicationAccessPolicy -AppId <app> -PolicyScopeGroupId <a group
// holding Mailboxes> -AccessRight RestrictAccess: the app's Graph application permissions reach only
// those mailboxes (Microsoft Graph, "Limiting application permissions to specific Exchange Online
// mailboxes", concepts/auth-limit-mailbox-access.md).
type ApplicationAccessPolicy struct {
	App       string   // the app's name in this world (or its client id)
	Mailboxes []string // the members of the policy's scope group
}

// App is an app registration.
type App struct {
	Name        string
	ClientID    string
	DisplayName string
	Tenant      string // home tenant's name
	MultiTenant bool   // signInAudience AzureADMultipleOrgs; single-tenant apps are refused on /common
	// Public is a public client (desktop/mobile platform); confidential apps hold secrets or certificates.
	Public bool
	// AllowPublicClientFlows lets a confidential registration use device code and ROPC without a secret
	// ("Allow public client flows" in the portal). Always true for public apps.
	AllowPublicClientFlows bool
	RedirectURIs           []string
	Secrets                []Secret
	Certificates           []*x509.Certificate
	// Delegated and Application permissions, each "resource/Name" with the resource's URI, e.g.
	// "https://outlook.office.com/IMAP.AccessAsUser.All", "https://graph.microsoft.com/Mail.Send".
	Delegated   []string
	Application []string
	// Consented: an admin granted the delegated permissions for all users. Without it each user consents
	// on the sign-in page; flows without a page fail with AADSTS65001.
	Consented bool
	// AdminConsented: application permissions granted. Without it client-credentials tokens carry no roles.
	AdminConsented bool
	// NoEnterpriseApp: the registration has no service principal (enterprise application) in Entra in
	// any tenant, as when it was deleted or the app was created through an API that does not add one.
	// Entra has refused such apps every token since 31 March 2026 (AADSTS7000229). Not to be confused
	// with Tenant.ServicePrincipals, Exchange's registrations.
	NoEnterpriseApp bool
}

// Secret is a client secret and its expiry (zero: never).
type Secret struct {
	Value   string
	Expires time.Time
}

// Lifetimes of what the identity platform issues.
type Lifetimes struct {
	AccessToken time.Duration
	// RefreshTokenInactivity is how long a refresh token stays valid unused (Entra: 90 days).
	RefreshTokenInactivity time.Duration
	AuthorizationCode      time.Duration
	DeviceCode             time.Duration
	// DevicePollInterval is the interval the devicecode endpoint announces; polls faster than
	// SlowDownBelow get slow_down (0: never).
	DevicePollInterval time.Duration
	SlowDownBelow      time.Duration
	// RevokeRotatedRefreshTokens makes a refresh token unusable once it has been redeemed. Entra keeps
	// redeemed refresh tokens valid; this strict mode lets tests prove a client keeps the newest one.
	RevokeRotatedRefreshTokens bool
}

// DefaultLifetimes are Entra's defaults (access tokens live 60-90 minutes; 1 hour here).
func DefaultLifetimes() Lifetimes {
	return Lifetimes{
		AccessToken:            time.Hour,
		RefreshTokenInactivity: 90 * 24 * time.Hour,
		AuthorizationCode:      10 * time.Minute,
		DeviceCode:             15 * time.Minute,
		DevicePollInterval:     5 * time.Second,
	}
}

// GraphThrottling is Microsoft Graph's throttling of Outlook resources, per app per mailbox
// (Microsoft Graph docs, throttling-limits.md, "Outlook service limits": 4 concurrent requests,
// 10,000 requests per 10 minutes). Zero fields mean Graph's numbers.
type GraphThrottling struct {
	// Off turns throttling off.
	Off bool
	// Concurrent is how many requests an app may have in flight on one mailbox (0: 4).
	Concurrent int
	// Requests is an app's budget of requests to one mailbox per Window (0: 10,000).
	Requests int
	// Window is the budget's period (0: 10 minutes).
	Window time.Duration
}

// Limits returns the limits with Graph's numbers for the zero fields.
func (g GraphThrottling) Limits() (concurrent, requests int, window time.Duration) {
	concurrent, requests, window = g.Concurrent, g.Requests, g.Window
	if concurrent <= 0 {
		concurrent = 4
	}
	if requests <= 0 {
		requests = 10000
	}
	if window <= 0 {
		window = 10 * time.Minute
	}
	return concurrent, requests, window
}

// Fault is an injected failure of one endpoint.
//
// The identity platform's endpoints and Graph count requests. The mail servers' ("imap", "pop",
// "smtp") count commands, except that a fault with DisconnectAfter counts connections.
type Fault struct {
	// ID names the fault so that its request count survives other changes of the World (Resolve gives
	// one to a fault that has none).
	ID string
	// Endpoint names what fails: "token", "devicecode", "authorize", "discovery", "keys", "graph", "*"
	// (every HTTP endpoint), or a mail server: "imap", "pop", "smtp".
	Endpoint string
	Latency  time.Duration // added before answering (or failing)
	Status   int           // answer with this HTTP status and an Entra-style error body (0: none)
	Drop     bool          // close the connection without an answer
	After    int           // let this many matching requests through first
	Times    int           // then fail this many (0: every one after After)
	// Reply answers a mail command with this line instead of the server's (e.g. "421 4.3.2 Service
	// not available", "-ERR ..."; on IMAP "NO ..." is sent with the command's tag, "* BYE ..." as is,
	// and the connection closes after a BYE or a 421).
	Reply string
	// DisconnectAfter closes a mail connection once the server has written this many bytes to it.
	DisconnectAfter int
	// Probability is the chance that a command or connection a mail fault counts, or a request a
	// graph fault counts, fails (0: every one). Seed makes the choices repeatable (0: random).
	Probability float64
	Seed        int64
}

// mailEndpoints are the Fault endpoints of the mail servers.
var mailEndpoints = []string{"imap", "pop", "smtp"}

// IsMail reports whether the fault is one of a mail server's.
func (f *Fault) IsMail() bool {
	for _, e := range mailEndpoints {
		if f.Endpoint == e {
			return true
		}
	}
	return false
}

// Tenant finds a tenant by name, GUID or any of its domains (case-insensitive).
func (w *World) Tenant(ref string) *Tenant {
	ref = strings.ToLower(ref)
	for _, t := range w.Tenants {
		if strings.ToLower(t.Name) == ref || strings.ToLower(t.ID) == ref || strings.ToLower(t.Name)+".onmicrosoft.com" == ref {
			return t
		}
		for _, d := range t.Domains {
			if strings.ToLower(d) == ref {
				return t
			}
		}
	}
	return nil
}

// TenantForUPN finds the tenant that owns the domain of an address.
func (w *World) TenantForUPN(upn string) *Tenant {
	at := strings.LastIndexByte(upn, '@')
	if at < 0 {
		return nil
	}
	return w.Tenant(upn[at+1:])
}

// App finds an app by client id (case-insensitive) or name.
func (w *World) App(ref string) *App {
	for _, a := range w.Apps {
		if strings.EqualFold(a.ClientID, ref) || a.Name == ref {
			return a
		}
	}
	return nil
}

// AppIn returns the app with this client id if it can be used in tenant t: it is registered there or is
// multi-tenant. Anything else is AADSTS700016 in Entra.
func (w *World) AppIn(t *Tenant, clientID string) *App {
	a := w.App(clientID)
	if a == nil || !strings.EqualFold(a.ClientID, clientID) {
		return nil
	}
	if a.Tenant == t.Name || a.MultiTenant {
		return a
	}
	return nil
}

// User finds a user of the tenant by UPN (case-insensitive).
func (t *Tenant) User(upn string) *User {
	for _, u := range t.Users {
		if strings.EqualFold(u.UPN, upn) {
			return u
		}
	}
	return nil
}

// ServicePrincipal returns the Exchange registration of an app in this tenant, if any.
func (t *Tenant) ServicePrincipal(app *App) *ServicePrincipal {
	for _, sp := range t.ServicePrincipals {
		if sp.App == app.Name || strings.EqualFold(sp.App, app.ClientID) {
			return sp
		}
	}
	return nil
}

// GraphAppAccess reports whether the tenant's application access policies let app open mailbox with
// an app-only Graph token: yes when no policy names the app, otherwise only for a mailbox one of its
// policies lists.
func (t *Tenant) GraphAppAccess(app *App, mailbox string) bool {
	restricted := false
	for _, p := range t.ApplicationAccessPolicies {
		if p.App != app.Name && !strings.EqualFold(p.App, app.ClientID) {
			continue
		}
		restricted = true
		for _, m := range p.Mailboxes {
			if strings.EqualFold(m, mailbox) {
				return true
			}
		}
	}
	return !restricted
}

// MailboxSettingsOf returns the settings of a user's or shared mailbox of the tenant, nil if it has none.
func (t *Tenant) MailboxSettingsOf(addr string) *MailboxSettings {
	if u := t.User(addr); u != nil {
		return &u.Mailbox
	}
	if m := t.SharedMailbox(addr); m != nil {
		return &m.Mailbox
	}
	return nil
}

// SharedMailbox finds a shared mailbox by address.
func (t *Tenant) SharedMailbox(addr string) *SharedMailbox {
	for _, m := range t.SharedMailboxes {
		if strings.EqualFold(m.Address, addr) {
			return m
		}
	}
	return nil
}

// HasPublicFlows says whether the app may use device code and ROPC without a client credential.
func (a *App) HasPublicFlows() bool { return a.Public || a.AllowPublicClientFlows }

// Resolve links users to tenants, assigns enterprise-application object ids, and checks the world for
// contradictions. Object ids come from newID so a caller can make them deterministic.
func (w *World) Resolve(newID func() string) error {
	names := map[string]bool{}
	for _, t := range w.Tenants {
		if t.Name == "" || names[t.Name] {
			return fmt.Errorf("tenant name %q is empty or used twice", t.Name)
		}
		names[t.Name] = true
		if t.ID == "" {
			t.ID = newID()
		}
		if t.DisplayName == "" {
			t.DisplayName = t.Name
		}
		if t.EnterpriseApps == nil {
			t.EnterpriseApps = map[string]string{}
		}
		for _, u := range t.Users {
			u.Tenant = t
			if u.ObjectID == "" {
				u.ObjectID = newID()
			}
			if u.DisplayName == "" {
				u.DisplayName = strings.SplitN(u.UPN, "@", 2)[0]
			}
		}
		for _, m := range t.SharedMailboxes {
			if m.ObjectID == "" {
				m.ObjectID = newID()
			}
		}
	}
	for _, a := range w.Apps {
		if a.ClientID == "" {
			a.ClientID = newID()
		}
		if a.DisplayName == "" {
			a.DisplayName = a.Name
		}
		if a.Public {
			a.AllowPublicClientFlows = true
		}
		if w.Tenant(a.Tenant) == nil {
			return fmt.Errorf("app %q names tenant %q, which does not exist", a.Name, a.Tenant)
		}
		a.Tenant = w.Tenant(a.Tenant).Name
		for _, t := range w.Tenants {
			if (t.Name == a.Tenant || a.MultiTenant) && t.EnterpriseApps[a.ClientID] == "" && !a.NoEnterpriseApp {
				t.EnterpriseApps[a.ClientID] = newID()
			}
		}
	}
	for i := range w.Faults {
		if w.Faults[i].ID == "" {
			w.Faults[i].ID = newID()
		}
	}
	// Unset lifetimes take Entra's defaults one by one, so a world that sets only some keeps the rest.
	d := DefaultLifetimes()
	for _, f := range []struct{ v, def *time.Duration }{
		{&w.Tokens.AccessToken, &d.AccessToken}, {&w.Tokens.RefreshTokenInactivity, &d.RefreshTokenInactivity},
		{&w.Tokens.AuthorizationCode, &d.AuthorizationCode}, {&w.Tokens.DeviceCode, &d.DeviceCode},
		{&w.Tokens.DevicePollInterval, &d.DevicePollInterval},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return nil
}

// NewID returns a random (version 4) GUID, the form of every Entra object id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

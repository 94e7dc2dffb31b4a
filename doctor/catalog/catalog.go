// Package catalog is mailoauth's one catalogue of findings: for every way getting mail through Entra
// ID and Exchange Online goes wrong, a stable code, the cause in one line and the fix — a portal step
// or the exact PowerShell with the account's values filled in. `mailoauth doctor`, `mailoauth check`,
// the mail commands (send, mail list, ...) and the proxy all explain failures with it, so the same
// refusal gets the same words everywhere.
//
// Why a package of its own: the doctor (package doctor) runs check's connection steps, so doctor
// imports check; check must explain its own results too, so the catalogue cannot live in doctor
// without an import cycle. Both import this package; it imports neither. Package doctor re-exports
// Finding and offers ExplainRefusal for the proxy.
//
// Inputs are the account's configuration (Subject), the server's words, typed errors from auth, imap,
// pop3, smtp and graph, and an access token's claims, which are read without verification (the
// server verifies; this only explains). Nothing here ever puts a token, a secret or a password in a
// finding: claims are names and ids, and secrets are named by where they are kept, never by value.
//
// Codes are "MO-" + an area + a specific name; they never change meaning once published. The list,
// with causes, fixes and the JSON shape, is docs/doctor.md.
package catalog

import (
	"net/url"
	"sort"
	"strings"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
)

// Finding is one diagnosis: what is wrong and what to do about it.
type Finding struct {
	Code  string `json:"code"`
	Step  string `json:"step,omitempty"` // the link of the chain that broke: config, discovery, token, claims, connect, tls, capabilities, authenticate, mailbox
	Cause string `json:"cause"`
	Fix   string `json:"fix"`
	Docs  string `json:"docs,omitempty"` // Microsoft's documentation of the fix
}

// String is the finding on one line, "cause: fix". It holds no secret.
func (f Finding) String() string { return oneLine(f.Cause + ": " + f.Fix) }

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Microsoft's documentation the findings rely on. Each fact a finding states about Microsoft's
// behaviour comes from one of these pages (or, for the servers' exact words, from transcripts of
// their answers).
const (
	// App registration, scopes (https://outlook.office.com/IMAP.AccessAsUser.All, ...), application
	// permissions (IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp), the scope
	// https://outlook.office365.com/.default for client credentials, New-ServicePrincipal with the
	// Enterprise Application's object id, Add-MailboxPermission for the service principal, the XOAUTH2
	// format, and shared mailboxes (user= the shared address, the delegate's token).
	DocOAuth = "https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth"
	// SMTP AUTH per organisation (Set-TransportConfig) and per mailbox (Set-CASMailbox
	// -SmtpClientAuthenticationDisabled), the mailbox setting winning; security defaults disable it.
	DocSMTPAuth = "https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission"
	// Set-CASMailbox -ImapEnabled / -PopEnabled.
	DocIMAPPOP = "https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/pop3-and-imap4/enable-or-disable-pop3-or-imap4-access"
	// Server names and ports: outlook.office365.com 993 (IMAP) and 995 (POP) with TLS,
	// smtp.office365.com 587 with STARTTLS.
	DocPorts = "https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/pop3-and-imap4/pop3-and-imap4"
	// SMTP submission for devices and applications: port 587 with STARTTLS (port 25 is for direct
	// send and relay without AUTH).
	DocSMTPSubmission = "https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/how-to-set-up-a-multifunction-device-or-application-to-send-email-using-microsoft-365-or-office-365"
	// Basic authentication (passwords) is turned off for IMAP, POP and SMTP AUTH in Exchange Online.
	DocBasicAuth = "https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/deprecation-of-basic-authentication-exchange-online"
	// AADSTS error codes.
	DocAADSTS = "https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes"
	// Tenant-wide admin consent: the portal's "Grant admin consent" and {authority}/{tenant}/adminconsent?client_id=.
	DocAdminConsent = "https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/grant-admin-consent"
	// Access token claims: aud, scp, roles, oid, tid, upn, iat, exp.
	DocClaims = "https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference"
	// Refresh tokens: 90 days of inactivity; revoked by a password change or an admin.
	DocRefreshTokens = "https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens"
	// Certificate credentials: the client assertion and its time window, the uploaded public key.
	DocCertCredentials = "https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials"
	// Client secrets: created under Certificates & secrets, the Value shown once.
	DocClientSecret = "https://learn.microsoft.com/en-us/entra/identity-platform/how-to-add-credentials"
	// Which flows suit which client types (device code and ROPC need a public client, or "Allow
	// public client flows").
	DocFlows = "https://learn.microsoft.com/en-us/entra/msal/msal-authentication-flows"
	// Redirect URIs of the "Mobile and desktop applications" platform (http://localhost for MSAL's
	// loopback listener).
	DocRedirect = "https://learn.microsoft.com/en-us/entra/identity-platform/reply-url"
	// Graph: application access policies limit an app to some mailboxes.
	DocGraphPolicy = "https://learn.microsoft.com/en-us/graph/auth-limit-mailbox-access"
	// Graph: error responses (ErrorAccessDenied, InvalidAuthenticationToken, MailboxNotEnabledForRESTAPI).
	DocGraphErrors = "https://learn.microsoft.com/en-us/graph/errors"
	// Graph mail permissions (Mail.Read, Mail.ReadWrite, Mail.Send, *.Shared).
	DocGraphPermissions = "https://learn.microsoft.com/en-us/graph/permissions-reference"
	// OpenID Connect discovery: {authority}/{tenant}/v2.0/.well-known/openid-configuration.
	DocDiscovery = "https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc"
)

// Subject is what a fix needs to know about an account: names, ids and where things are configured.
// It holds no secret, only where secrets are kept.
type Subject struct {
	Account   string // the name in the configuration (mailoauth login NAME)
	ClientID  string
	Tenant    string // as configured; "" is organizations
	Email     string
	Mailbox   string // the mailbox opened, and so the SASL user
	Flow      string
	AppOnly   bool
	Authority string // the identity platform's base URL, without a tenant
	Cloud     auth.Cloud
	// SecretSource names where the client secret is configured: "client_secret_file /path",
	// "client_secret_env NAME", "certificate /path", or "".
	SecretSource string
}

// For describes an account that could be built.
func For(a *auth.Account) Subject {
	s := ForConfig(a.Config())
	s.Cloud = a.Cloud()
	s.Authority = firstOf(strings.TrimRight(a.Config().Authority, "/"), s.Cloud.Authority)
	return s
}

// ForConfig describes an account from its configuration alone (the doctor's config step, before the
// account can be built).
func ForConfig(c *config.Account) Subject {
	cl, err := auth.LookupCloud(c.Cloud)
	if err != nil {
		cl, _ = auth.LookupCloud(config.CloudGlobal)
	}
	s := Subject{
		Account: c.Name, ClientID: c.ClientID, Tenant: c.Tenant, Email: c.Email,
		Mailbox: firstOf(c.Mailbox, c.Email), Flow: c.Flow, AppOnly: c.Flow == config.FlowClientCredentials,
		Authority: firstOf(strings.TrimRight(c.Authority, "/"), cl.Authority), Cloud: cl,
	}
	switch {
	case c.Certificate != "":
		s.SecretSource = "certificate " + c.Certificate
	case c.ClientSecretFile != "":
		s.SecretSource = "client_secret_file " + c.ClientSecretFile
	case c.ClientSecretEnv != "":
		s.SecretSource = "client_secret_env " + c.ClientSecretEnv
	case c.ClientSecret != "":
		s.SecretSource = "client_secret"
	}
	return s
}

// tenant is the tenant as the identity platform's URLs take it.
func (s Subject) tenant() string { return firstOf(s.Tenant, config.TenantOrganizations) }

// mailbox is the mailbox for a fix, or a placeholder.
func (s Subject) mailbox() string { return firstOf(s.Mailbox, "<mailbox address>") }

// AdminConsentURL is the tenant-wide admin consent link for the app (DocAdminConsent): an
// administrator opens it, signs in, and grants every permission the app registration lists.
func (s Subject) AdminConsentURL() string {
	t := s.Tenant
	if t == "" || t == config.TenantCommon || t == config.TenantConsumers {
		t = config.TenantOrganizations
	}
	return s.Authority + "/" + url.PathEscape(t) + "/adminconsent?client_id=" + url.QueryEscape(s.ClientID)
}

// PortalApp names the app registration for portal steps.
func (s Subject) PortalApp() string {
	return "Entra admin center > App registrations > the app with client id " + s.ClientID
}

// NewServicePrincipal is the Exchange Online PowerShell that registers the app's service principal
// (DocOAuth): -ObjectId is the Enterprise Application's object id — the oid of the app's own tokens —
// not the app registration's.
func (s Subject) NewServicePrincipal(oid string) string {
	return "New-ServicePrincipal -AppId " + s.ClientID + " -ObjectId " + firstOf(oid, "<Enterprise Application object id>")
}

// AddMailboxPermission grants FullAccess on the mailbox to user (a user's address or a service
// principal's object id).
func (s Subject) AddMailboxPermission(user string) string {
	return "Add-MailboxPermission -Identity " + s.mailbox() + " -User " + user + " -AccessRights FullAccess"
}

// exchangeScope is the delegated Exchange scope of a permission in the account's cloud.
func (s Subject) exchangeScope(perm string) string { return s.Cloud.ExchangeDelegated + "/" + perm }

// Protocol permissions (DocOAuth).
func neededPermission(protocol string, appOnly bool) string {
	switch protocol {
	case config.ProtocolIMAP:
		if appOnly {
			return "IMAP.AccessAsApp"
		}
		return "IMAP.AccessAsUser.All"
	case config.ProtocolPOP:
		if appOnly {
			return "POP.AccessAsApp"
		}
		return "POP.AccessAsUser.All"
	case config.ProtocolSMTP:
		if appOnly {
			return "SMTP.SendAsApp"
		}
		return "SMTP.Send"
	}
	return ""
}

// NeededPermission is the delegated scope or application role a protocol needs (Exchange Online's,
// or for graph the Microsoft Graph mail permission mailoauth uses).
func NeededPermission(protocol string, appOnly bool) string {
	if protocol == config.ProtocolGraph {
		return "Mail.ReadWrite"
	}
	return neededPermission(protocol, appOnly)
}

func protocolName(p string) string {
	switch p {
	case config.ProtocolIMAP:
		return "IMAP"
	case config.ProtocolPOP:
		return "POP"
	case config.ProtocolSMTP:
		return "SMTP"
	case config.ProtocolGraph:
		return "Microsoft Graph"
	}
	return p
}

// codes lists every finding code with its one-line meaning; docs/doctor.md documents each and a test
// keeps the two in step (AllCodes is the public list).
var codes = map[string]string{
	// Configuration (the doctor's first link).
	CodeConfigMissing:     "a key the account's flow needs is not set",
	CodeConfigSecret:      "the client secret (or another secret) cannot be read",
	CodeConfigSecretID:    "the client secret looks like the secret's ID, not its value",
	CodeConfigCert:        "the certificate cannot be read or does not load",
	CodeConfigCertExpired: "the certificate has expired or is not valid yet",
	CodeConfigPFXPassword: "the PFX password is wrong",
	CodeConfigAccount:     "the account cannot be set up from its configuration",
	CodeStoreKey:          "the passphrase or key does not open this token store",
	CodeStoreDamaged:      "the token store was damaged, or written by a newer mailoauth",
	CodeStoreUnreachable:  "the Redis token store cannot be reached, or refused the credentials",
	CodeSharedSyntax:      "a shared mailbox written in basic authentication's user\\shared syntax",
	// Identity platform.
	CodeIdPUnreachable: "the identity platform cannot be reached",
	CodeIdPTransient:   "the identity platform failed for now (5xx, 429, timeout)",
	CodeLoginRequired:  "no token is held for the account: sign in",
	CodeAADSTS:         "the identity platform refused with an AADSTS code mailoauth has no specific advice for",
	// Token claims.
	CodeNotJWT:         "the token is not a JWT (personal account): its claims cannot be checked",
	CodeAudGraph:       "a Microsoft Graph token was used for IMAP, POP or SMTP",
	CodeAudExchange:    "an Exchange Online token was used for Microsoft Graph",
	CodeAudOther:       "the token is for another resource",
	CodeScopeMissing:   "the delegated token lacks the protocol's scope",
	CodeRoleMissing:    "the app-only token lacks the protocol's application permission",
	CodeTenantMismatch: "the token's tenant is not the configured tenant",
	CodeTokenExpired:   "the token sent had expired",
	CodeClockSkew:      "this machine's clock is off",
	CodeNoteShared:     "a delegated token opens another mailbox: it needs FullAccess there (note)",
	// Connection.
	CodeResolve:       "the server's host name does not resolve",
	CodeConnect:       "nothing accepts connections at the server's address",
	CodeTimeout:       "the server did not answer in time",
	CodePortMismatch:  "the port and the TLS mode do not match (587 STARTTLS, 465/993/995 implicit TLS)",
	CodeTLS:           "the TLS handshake or the certificate check failed",
	CodeAuthNotOffer:  "the server does not offer the SASL mechanism (AUTH=XOAUTH2)",
	CodeBasicAuth:     "a password was sent: Exchange Online refuses basic authentication",
	CodeSMTPAuthOff:   "SMTP AUTH is disabled for the mailbox or the organisation",
	CodeNoSP:          "the app has no service principal in Exchange Online",
	CodeAppNoAccess:   "the app's service principal has no FullAccess on the mailbox",
	CodeAppExchange:   "Exchange refused an app-only token that has the right role",
	CodeUserNoAccess:  "the signed-in user has no FullAccess on the mailbox",
	CodeNotConnected:  "authenticated but not connected: the mailbox cannot be opened",
	CodeIMAPDisabled:  "IMAP is disabled on the mailbox",
	CodePOPDisabled:   "POP is disabled on the mailbox",
	CodeSendAs:        "the sender may not send as this address",
	CodeRefused:       "the token looks right and was still refused",
	CodeRefusedOpaque: "refused, and the token is not a JWT, so the cause cannot be read from it",
	CodeUnexplained:   "a step failed in a way the catalogue has no advice for",
	// Graph.
	CodeGraphToken:      "Graph refused the token itself",
	CodeGraphRole:       "the app-only Graph token has no Mail.Read or Mail.ReadWrite role",
	CodeGraphScope:      "the delegated Graph token lacks Mail.Read or Mail.ReadWrite",
	CodeGraphPolicy:     "an application access policy keeps the app out of the mailbox",
	CodeGraphDenied:     "Graph denied the signed-in user the mailbox",
	CodeGraphNotFound:   "Graph does not know the mailbox",
	CodeGraphNoREST:     "the mailbox is not in Exchange Online (inactive, soft-deleted or on-premises)",
	CodeGraphThrottled:  "Graph throttled the app (429)",
	CodeGraphSend:       "Graph refused to send: the token lacks Mail.Send (or an access policy)",
	CodeGraphUnexpected: "Graph refused the request",
}

// The codes.
const (
	CodeConfigMissing     = "MO-CFG-MISSING"
	CodeConfigSecret      = "MO-CFG-SECRET"
	CodeConfigSecretID    = "MO-CFG-SECRET-ID"
	CodeConfigCert        = "MO-CFG-CERT"
	CodeConfigCertExpired = "MO-CFG-CERT-EXPIRED"
	CodeConfigPFXPassword = "MO-CFG-PFX-PASSWORD"
	CodeConfigAccount     = "MO-CFG-ACCOUNT"
	CodeStoreKey          = "MO-STORE-KEY"
	CodeStoreDamaged      = "MO-STORE-DAMAGED"
	CodeStoreUnreachable  = "MO-STORE-UNREACHABLE"
	CodeSharedSyntax      = "MO-SHARED-SYNTAX"

	CodeTenantUnknown  = "MO-AADSTS90002"
	CodeIdPUnreachable = "MO-IDP-UNREACHABLE"
	CodeIdPTransient   = "MO-IDP-TRANSIENT"
	CodeLoginRequired  = "MO-LOGIN-REQUIRED"
	CodeAADSTS         = "MO-AADSTS" // + the number when the catalogue knows it (AADSTSCodes)

	CodeNotJWT         = "MO-TOKEN-NOT-JWT"
	CodeAudGraph       = "MO-AUD-GRAPH"
	CodeAudExchange    = "MO-AUD-EXCHANGE"
	CodeAudOther       = "MO-AUD-OTHER"
	CodeScopeMissing   = "MO-SCOPE-MISSING"
	CodeRoleMissing    = "MO-ROLE-MISSING"
	CodeTenantMismatch = "MO-TID-MISMATCH"
	CodeTokenExpired   = "MO-TOKEN-EXPIRED"
	CodeClockSkew      = "MO-CLOCK-SKEW"
	CodeNoteShared     = "MO-NOTE-SHARED-MAILBOX"

	CodeResolve       = "MO-NET-RESOLVE"
	CodeConnect       = "MO-NET-CONNECT"
	CodeTimeout       = "MO-NET-TIMEOUT"
	CodePortMismatch  = "MO-PORT-MISMATCH"
	CodeTLS           = "MO-TLS"
	CodeAuthNotOffer  = "MO-SASL-NOT-OFFERED"
	CodeBasicAuth     = "MO-BASIC-AUTH"
	CodeSMTPAuthOff   = "MO-SMTP-AUTH-DISABLED"
	CodeNoSP          = "MO-NO-SERVICE-PRINCIPAL"
	CodeAppNoAccess   = "MO-APP-NO-FULLACCESS"
	CodeAppExchange   = "MO-APP-EXCHANGE-REFUSED"
	CodeUserNoAccess  = "MO-USER-NO-FULLACCESS"
	CodeNotConnected  = "MO-NOT-CONNECTED"
	CodeIMAPDisabled  = "MO-IMAP-DISABLED"
	CodePOPDisabled   = "MO-POP-DISABLED"
	CodeSendAs        = "MO-SEND-AS-DENIED"
	CodeRefused       = "MO-REFUSED"
	CodeRefusedOpaque = "MO-REFUSED-OPAQUE"
	CodeUnexplained   = "MO-UNEXPLAINED"

	CodeGraphToken      = "MO-GRAPH-TOKEN"
	CodeGraphRole       = "MO-GRAPH-ROLE-MISSING"
	CodeGraphScope      = "MO-GRAPH-SCOPE-MISSING"
	CodeGraphPolicy     = "MO-GRAPH-ACCESS-POLICY"
	CodeGraphDenied     = "MO-GRAPH-DENIED"
	CodeGraphNotFound   = "MO-GRAPH-NOT-FOUND"
	CodeGraphNoREST     = "MO-GRAPH-NOT-EXCHANGE-ONLINE"
	CodeGraphThrottled  = "MO-GRAPH-THROTTLED"
	CodeGraphSend       = "MO-GRAPH-SEND-MISSING"
	CodeGraphUnexpected = "MO-GRAPH-REFUSED"
)

// AllCodes is every code, sorted: the Code constants and one MO-AADSTSn per AADSTS number with
// advice.
func AllCodes() []string {
	var out []string
	for c := range codes {
		out = append(out, c)
	}
	for n := range aadsts {
		out = append(out, aadstsCode(n))
	}
	sort.Strings(out)
	return out
}

package catalog

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/pop3"
)

// ClockSkewAllowed is the leeway on a token's times, as Microsoft.IdentityModel's default (the
// servers' own): within it, a difference of clocks does not matter.
const ClockSkewAllowed = 5 * time.Minute

// Exchange Online's and Microsoft Graph's audiences: resource URIs of every cloud (with or without a
// trailing slash, v1 resources keeping it) and their first-party app ids (DocClaims, DocOAuth).
var (
	exchangeAudience = []string{"outlook.office.com", "outlook.office365.com", "outlook.office365.us", "outlook-dod.office365.us", "partner.outlook.cn", "00000002-0000-0ff1-ce00-000000000000"}
	graphAudience    = []string{"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn", "00000003-0000-0000-c000-000000000000"}
)

func audIn(aud string, list []string) bool {
	a := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(aud, "https://"), "api://"), "/"))
	for _, v := range list {
		if a == v {
			return true
		}
	}
	return false
}

// CheckClaims compares a token's claims with what the protocol needs, in the order Exchange checks
// them: audience, then the delegated scope or application role, then the tenant (tid; "" skips it).
// It returns the first problem, and notes that are not problems (a token that is not a JWT, a
// delegated token opening another user's mailbox). Clock and expiry are ClockSkew's business.
func CheckClaims(s Subject, protocol string, c *Claims, tid string) (problem *Finding, notes []Finding) {
	if c == nil {
		return nil, []Finding{{Code: CodeNotJWT, Step: "claims", Cause: ErrNotJWT.Error(),
			Fix: "nothing to do if the account is a personal Microsoft account; the server will judge the token", Docs: DocClaims}}
	}
	if f := audience(s, protocol, c); f != nil {
		return f, nil
	}
	if f := permission(s, protocol, c); f != nil {
		return f, nil
	}
	if tid != "" && c.TenantID != "" && !strings.EqualFold(tid, c.TenantID) {
		return &Finding{Code: CodeTenantMismatch, Step: "claims",
			Cause: "the token was issued by tenant " + c.TenantID + ", and the account's tenant " + s.tenant() + " is " + tid,
			Fix:   "set tenant to the mailbox's own tenant (its Directory (tenant) ID or domain); a token from another tenant does not open it", Docs: DocClaims}, nil
	}
	if protocol != config.ProtocolGraph && !c.AppOnly && c.UPN != "" && s.Mailbox != "" && !strings.EqualFold(c.UPN, s.Mailbox) {
		notes = append(notes, Finding{Code: CodeNoteShared, Step: "claims",
			Cause: "the token is " + c.UPN + "'s and opens " + s.Mailbox + " (the SASL user is the mailbox address, as for a shared mailbox)",
			Fix:   "this works only if " + c.UPN + " holds FullAccess on it: " + s.AddMailboxPermission(c.UPN), Docs: DocOAuth})
	}
	return nil, notes
}

func audience(s Subject, protocol string, c *Claims) *Finding {
	if protocol == config.ProtocolGraph {
		switch {
		case audIn(c.Audience, graphAudience):
			return nil
		case audIn(c.Audience, exchangeAudience):
			return &Finding{Code: CodeAudExchange, Step: "claims", Cause: "the token's audience is " + c.Audience + " (Exchange Online), not Microsoft Graph",
				Fix: "Graph needs a token for " + s.Cloud.Graph + " (scopes under " + s.Cloud.Graph + "/, or " + s.Cloud.Graph + "/.default for an app)", Docs: DocClaims}
		}
		return &Finding{Code: CodeAudOther, Step: "claims", Cause: "the token's audience is " + firstOf(c.Audience, "missing") + ", not Microsoft Graph",
			Fix: "ask for scopes under " + s.Cloud.Graph + "/", Docs: DocClaims}
	}
	if audIn(c.Audience, exchangeAudience) {
		return nil
	}
	need := neededPermission(protocol, c.AppOnly)
	want := s.exchangeScope(need)
	if c.AppOnly {
		want = s.Cloud.ExchangeApp + "/.default"
	}
	if audIn(c.Audience, graphAudience) {
		// The most common mistake: the portal lists IMAP.AccessAsUser.All under Microsoft Graph too, and
		// an unprefixed scope is Graph's; Exchange accepts only its own audience (DocOAuth: "specify the
		// full scopes, including Outlook resource URLs").
		return &Finding{Code: CodeAudGraph, Step: "claims",
			Cause: "the token's audience is " + c.Audience + " (Microsoft Graph), not Exchange Online: " + protocolName(protocol) + " refuses it",
			Fix:   "ask for " + want + " — prefix the scope with the Exchange resource (an unprefixed " + need + " or a graph.microsoft.com scope is Graph's); in the config remove scopes or set scopes = [\"" + want + "\"]",
			Docs:  DocOAuth}
	}
	// Only the account's scopes can ask for another resource: mailoauth's own are Exchange's.
	return &Finding{Code: CodeAudOther, Step: "claims",
		Cause: "the token's audience is " + firstOf(c.Audience, "missing") + ", not Exchange Online: " + protocolName(protocol) + " refuses it",
		Fix:   "ask for " + want + ": in the config remove scopes or set scopes = [\"" + want + "\"]", Docs: DocOAuth}
}

func permission(s Subject, protocol string, c *Claims) *Finding {
	if protocol == config.ProtocolGraph {
		if c.AppOnly && !c.HasRole("Mail.ReadWrite") && !c.HasRole("Mail.Read") {
			return graphRole(s)
		}
		if !c.AppOnly && !graphMailScope(c) {
			return graphScope(s, c)
		}
		return nil
	}
	need := neededPermission(protocol, c.AppOnly)
	if c.AppOnly {
		if c.HasRole(need) {
			return nil
		}
		cause := "the app-only token's roles lack " + need
		if len(c.Roles) == 0 {
			cause = "the app-only token has no roles at all (no application permission is admin-consented)"
		}
		return &Finding{Code: CodeRoleMissing, Step: "claims", Cause: cause,
			Fix: s.PortalApp() + " > API permissions > Add a permission > APIs my organization uses > Office 365 Exchange Online > Application permissions > " + need +
				"; then Grant admin consent on the same page, or an administrator opens " + s.AdminConsentURL(), Docs: DocOAuth}
	}
	if c.HasScope(need) {
		return nil
	}
	return &Finding{Code: CodeScopeMissing, Step: "claims",
		Cause: "the delegated token's scp (" + strings.Join(c.Scopes, " ") + ") lacks " + need,
		Fix: s.PortalApp() + " > API permissions > Add a permission > APIs my organization uses > Office 365 Exchange Online > Delegated > " + need +
			"; add " + protocolNameConfig(protocol) + " to the account's protocols (or " + s.exchangeScope(need) + " to scopes), then mailoauth login " + s.Account, Docs: DocOAuth}
}

func protocolNameConfig(p string) string { return "\"" + p + "\"" }

func anyScope(c *Claims, scopes ...string) bool {
	for _, s := range scopes {
		if c.HasScope(s) {
			return true
		}
	}
	return false
}

// graphMailScope: a delegated Graph token can read mail.
func graphMailScope(c *Claims) bool {
	return anyScope(c, "Mail.ReadWrite", "Mail.Read", "Mail.ReadWrite.Shared", "Mail.Read.Shared")
}

func graphScope(s Subject, c *Claims) *Finding {
	return &Finding{Code: CodeGraphScope, Step: "claims", Cause: "the delegated Graph token's scp (" + strings.Join(c.Scopes, " ") + ") has no Mail.Read or Mail.ReadWrite",
		Fix: s.PortalApp() + " > API permissions > Add > Microsoft Graph > Delegated > Mail.ReadWrite and Mail.Send; then " + consent(s), Docs: DocGraphPermissions}
}

func graphRole(s Subject) *Finding {
	return &Finding{Code: CodeGraphRole, Step: "claims", Cause: "the app-only Graph token has no Mail.Read or Mail.ReadWrite role",
		Fix: s.PortalApp() + " > API permissions > Add > Microsoft Graph > Application permissions > Mail.ReadWrite (and Mail.Send); then grant admin consent: " + s.AdminConsentURL(), Docs: DocGraphPermissions}
}

// ClockSkew compares a freshly issued token's times with this machine's clock: a token issued in the
// future, or already expired when it arrives, means the clock is off by more than the servers allow.
// A wrong clock breaks certificate sign-in (the client assertion's time window, AADSTS700024) and
// TLS, and makes cached tokens look valid when they are not.
func ClockSkew(c *Claims, now time.Time) *Finding {
	if c == nil {
		return nil
	}
	var off time.Duration
	switch {
	case !c.IssuedAt.IsZero() && c.IssuedAt.Sub(now) > ClockSkewAllowed:
		off = c.IssuedAt.Sub(now) // the clock is behind
	case !c.NotAfter.IsZero() && now.Sub(c.NotAfter) > ClockSkewAllowed:
		off = -now.Sub(c.NotAfter) // ahead, by at least this much
	default:
		return nil
	}
	dir := "behind"
	if off < 0 {
		dir, off = "ahead of", -off
	}
	return &Finding{Code: CodeClockSkew, Step: "claims",
		Cause: "this machine's clock is " + off.Round(time.Minute).String() + " " + dir + " the identity platform's (more than the 5 minutes servers allow)",
		Fix:   "synchronise the clock (timedatectl set-ntp true; on Windows w32tm /resync)", Docs: DocCertCredentials}
}

// ClockFromTLS recognises a certificate refused for its validity period — with a certificate that is
// fine, the sign of this machine's clock being off — and says so; nil for any other error.
func ClockFromTLS(err error) *Finding {
	if err == nil || !strings.Contains(err.Error(), "certificate has expired or is not yet valid") {
		return nil
	}
	return &Finding{Code: CodeClockSkew, Cause: "a server's TLS certificate is outside its validity period by this machine's clock (" + strings.TrimSpace(lastPart(err.Error())) + "): the clock is probably off",
		Fix: "synchronise the clock (timedatectl set-ntp true; on Windows w32tm /resync); if the clock is right, the server's certificate has expired", Docs: DocCertCredentials}
}

func lastPart(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// Refusal explains a refusal by Exchange (or another mail server) of an authentication, or of the
// first command after it, from the server's words and the claims of the token that was sent (nil
// when it is not a JWT). It always returns a finding, the least certain being CodeRefused.
func Refusal(s Subject, protocol, said string, c *Claims, now time.Time) Finding {
	f := refusal(s, protocol, said, c, now)
	if f.Step == "" {
		f.Step = "authenticate"
	}
	return f
}

func refusal(s Subject, protocol, said string, c *Claims, now time.Time) Finding {
	low := strings.ToLower(said)
	switch {
	case strings.Contains(low, "smtpclientauthentication is disabled"):
		return smtpAuthDisabled(s, strings.Contains(low, "for the tenant"))
	case strings.Contains(low, "basic authentication is disabled"), strings.Contains(low, "login failed"), strings.Contains(low, "logon failure"):
		// Exchange Online: LOGIN gets "NO LOGIN failed.", AUTH LOGIN with a password "535 5.7.139
		// Authentication unsuccessful, basic authentication is disabled." (as observed).
		return Finding{Code: CodeBasicAuth, Cause: "a password was sent (basic authentication) and Exchange Online accepts only OAuth for " + protocolName(protocol),
			Fix: "have the program use XOAUTH2 with `mailoauth token " + s.Account + "` as its password command, or put it behind `mailoauth proxy`", Docs: DocBasicAuth}
	case strings.Contains(low, "authenticated but not connected"):
		return notConnected(s, protocol, c)
	case strings.Contains(low, "sendasdenied"), strings.Contains(low, "send as"), strings.Contains(low, "5.2.252"), strings.Contains(low, "5.7.60"):
		return sendAsDenied(s)
	}
	if c == nil {
		return Finding{Code: CodeRefusedOpaque, Cause: "the server refused the token, and the token is not a JWT (a personal Microsoft account?), so mailoauth cannot say which claim is wrong",
			Fix: "check that the account is a work or school account of an Exchange Online organisation, and sign in again: mailoauth login " + s.Account, Docs: DocOAuth}
	}
	if f, _ := CheckClaims(s, protocol, c, ""); f != nil {
		return *f
	}
	if !c.NotAfter.IsZero() && now.After(c.NotAfter) {
		return Finding{Code: CodeTokenExpired, Cause: "the token sent expired at " + c.NotAfter.UTC().Format(time.RFC3339),
			Fix: "get a fresh token before each login (mailoauth token " + s.Account + " refreshes silently); if this machine's clock is off, synchronise it", Docs: DocClaims}
	}
	if !c.AppOnly && c.UPN != "" && s.Mailbox != "" && !strings.EqualFold(c.UPN, s.Mailbox) {
		return userNoFullAccess(s, protocol, c)
	}
	need := neededPermission(protocol, c.AppOnly)
	if c.AppOnly {
		if protocol == config.ProtocolIMAP {
			// Exchange's IMAP refuses AUTHENTICATE itself for an app without a service principal, and
			// defers mailbox-level refusals (FullAccess, IMAP disabled) to the next command
			// (as observed, and reported in email-oauth2-proxy#77).
			return noServicePrincipal(s, c)
		}
		return Finding{Code: CodeAppExchange,
			Cause: "the token has " + need + " and Exchange refused it: the app's service principal is not registered in Exchange, or it has no FullAccess on " + s.mailbox() + extraDisabled(protocol),
			Fix:   "in Exchange Online PowerShell: " + s.NewServicePrincipal(c.ObjectID) + "; then " + s.AddMailboxPermission(firstOf(c.ObjectID, "<service principal id>")) + extraEnable(s, protocol),
			Docs:  DocOAuth}
	}
	if protocol == config.ProtocolPOP {
		// Exchange answers the same "-ERR Authentication failure" for a mailbox with POP disabled
		// (unconfirmed: the likeliest reading of what it answers).
		return protocolDisabled(s, protocol)
	}
	return Finding{Code: CodeRefused,
		Cause: "the token looks right for " + protocolName(protocol) + " (audience, " + need + ", user " + c.UPN + ") and was refused: it may have been revoked, or the account is disabled or blocked by policy",
		Fix:   "sign in again (mailoauth login " + s.Account + "); if that does not help, an administrator checks the user's sign-in logs and " + protocolEnable(s, protocol), Docs: DocOAuth}
}

func extraDisabled(protocol string) string {
	if protocol == config.ProtocolPOP {
		return ", or POP is disabled on it"
	}
	return ""
}

func extraEnable(s Subject, protocol string) string {
	if protocol == config.ProtocolPOP {
		return "; and Set-CASMailbox -Identity " + s.mailbox() + " -PopEnabled $true"
	}
	return ""
}

// EnableProtocol is the Exchange Online PowerShell that lets the mailbox use the protocol
// (DocIMAPPOP, DocSMTPAuth).
func (s Subject) EnableProtocol(protocol string) string { return protocolEnable(s, protocol) }

func protocolEnable(s Subject, protocol string) string {
	switch protocol {
	case config.ProtocolIMAP:
		return "Set-CASMailbox -Identity " + s.mailbox() + " -ImapEnabled $true"
	case config.ProtocolPOP:
		return "Set-CASMailbox -Identity " + s.mailbox() + " -PopEnabled $true"
	}
	return "Set-CASMailbox -Identity " + s.mailbox() + " -SmtpClientAuthenticationDisabled $false"
}

func smtpAuthDisabled(s Subject, tenantWide bool) Finding {
	where := "mailbox " + s.mailbox()
	fix := "in Exchange Online PowerShell: Set-CASMailbox -Identity " + s.mailbox() + " -SmtpClientAuthenticationDisabled $false (this mailbox only; the organisation-wide switch is Set-TransportConfig -SmtpClientAuthenticationDisabled $false)"
	if tenantWide {
		where = "the organisation (and " + s.mailbox() + " does not override it)"
	}
	// Security defaults turn SMTP AUTH off as well (DocSMTPAuth).
	return Finding{Code: CodeSMTPAuthOff, Cause: "SMTP AUTH is disabled for " + where,
		Fix: fix + "; with security defaults on, SMTP AUTH stays off until they are turned off", Docs: DocSMTPAuth}
}

func noServicePrincipal(s Subject, c *Claims) Finding {
	oid := ""
	if c != nil {
		oid = c.ObjectID
	}
	return Finding{Code: CodeNoSP,
		Cause: "the app-only token has the right role, and Exchange does not know the app: its service principal is not registered in Exchange Online",
		Fix: "in Exchange Online PowerShell: " + s.NewServicePrincipal(oid) + " (the object id is the Enterprise Application's, not the app registration's); then " +
			s.AddMailboxPermission(firstOf(oid, "<service principal id>")), Docs: DocOAuth}
}

func appNoFullAccess(s Subject, c *Claims) Finding {
	oid := ""
	if c != nil {
		oid = c.ObjectID
	}
	return Finding{Code: CodeAppNoAccess, Step: "mailbox",
		Cause: "the app's service principal has no FullAccess on " + s.mailbox(),
		Fix:   "in Exchange Online PowerShell: " + s.AddMailboxPermission(firstOf(oid, "<service principal id>")), Docs: DocOAuth}
}

func userNoFullAccess(s Subject, protocol string, c *Claims) Finding {
	return Finding{Code: CodeUserNoAccess, Step: "mailbox",
		Cause: "the token is " + c.UPN + "'s, and " + c.UPN + " holds no FullAccess on " + s.mailbox(),
		Fix:   "in Exchange Online PowerShell: " + s.AddMailboxPermission(c.UPN) + ", or sign in as " + s.mailbox() + " (if the permission is there, " + protocolEnable(s, protocol) + ")",
		Docs:  DocOAuth}
}

func protocolDisabled(s Subject, protocol string) Finding {
	code := CodeIMAPDisabled
	if protocol == config.ProtocolPOP {
		code = CodePOPDisabled
	}
	return Finding{Code: code, Step: "mailbox", Cause: protocolName(protocol) + " is disabled on mailbox " + s.mailbox(),
		Fix: "in Exchange Online PowerShell: " + protocolEnable(s, protocol) + " (it takes effect after replication, up to about 30 minutes)", Docs: DocIMAPPOP}
}

// notConnected: Exchange accepted AUTHENTICATE and refuses every command after it ("User is
// authenticated but not connected"): the token and the app are fine, the mailbox cannot be opened.
func notConnected(s Subject, protocol string, c *Claims) Finding {
	switch {
	case c != nil && !c.AppOnly && c.UPN != "" && !strings.EqualFold(c.UPN, s.Mailbox):
		return userNoFullAccess(s, protocol, c)
	case c != nil && !c.AppOnly:
		return protocolDisabled(s, protocol)
	}
	who, oid := "<user or service principal id>", ""
	if c != nil {
		oid = c.ObjectID
		who = firstOf(oid, "<service principal id>")
	}
	return Finding{Code: CodeNotConnected, Step: "mailbox",
		Cause: "Exchange accepted the token but cannot open mailbox " + s.mailbox() + ": the app has no FullAccess on it, or " + protocolName(protocol) + " is disabled on it",
		Fix:   "in Exchange Online PowerShell: " + s.AddMailboxPermission(who) + "; if the permission is there, " + protocolEnable(s, protocol),
		Docs:  DocOAuth}
}

// ProbeOutcome is what another protocol showed when the doctor tried it on the same mailbox with
// the same app-only token.
type ProbeOutcome int

const (
	ProbeInconclusive ProbeOutcome = iota // not tried, or failed for a reason of its own
	ProbeOpened                           // authenticated and opened the mailbox
	ProbeDeferred                         // authenticated, then refused the mailbox ("not connected")
	ProbeRefused                          // refused at authentication
)

// Probe is what trying another protocol on the same mailbox, with the same app-only token, showed:
// what Probed narrows an uncertain finding with.
type Probe struct {
	// Protocol is the protocol the uncertain finding is about ("imap", "pop" or "smtp").
	Protocol string
	// Other is the protocol tried instead.
	Other string
	// Outcome is what Other did.
	Outcome ProbeOutcome
	// Claims are the token's (nil when it is not a JWT); the narrowed finding's fix names its app.
	Claims *Claims
}

// Probed refines an uncertain app-only finding f about p.Protocol with what a probe over p.Other
// showed. Exchange checks the service principal at authentication on every protocol, FullAccess
// on every protocol (IMAP only after AUTHENTICATE), and the IMAP and POP switches only for their own
// protocol; so:
//   - IMAP "not connected" (FullAccess, or IMAP disabled): SMTP or POP opening the mailbox means IMAP
//     is disabled; SMTP refusing (not with 5.7.139) means no FullAccess.
//   - POP or SMTP refused (service principal, FullAccess, or POP disabled): IMAP refusing AUTHENTICATE
//     means no service principal; IMAP "not connected" after an SMTP refusal means no FullAccess; IMAP
//     opening the mailbox after a POP refusal means POP is disabled.
func Probed(s Subject, f Finding, p Probe) Finding {
	protocol, probeProtocol, c, o := p.Protocol, p.Other, p.Claims, p.Outcome
	switch {
	case f.Code == CodeNotConnected && o == ProbeOpened:
		return protocolDisabled(s, protocol)
	case f.Code == CodeNotConnected && o == ProbeRefused && probeProtocol == config.ProtocolSMTP:
		return appNoFullAccess(s, c)
	case f.Code == CodeAppExchange && o == ProbeRefused && probeProtocol == config.ProtocolIMAP:
		return noServicePrincipal(s, c)
	case f.Code == CodeAppExchange && o == ProbeDeferred && protocol == config.ProtocolSMTP:
		return appNoFullAccess(s, c)
	case f.Code == CodeAppExchange && o == ProbeOpened && protocol == config.ProtocolPOP:
		return protocolDisabled(s, protocol)
	}
	return f
}

// SharedMailboxSyntax recognises the basic-authentication way of naming a shared mailbox
// (alice@contoso.com\support, alice@contoso.com/support@contoso.com). With OAuth the SASL user is the
// shared mailbox's address alone and the token is the delegate's (DocOAuth), so such a user name is
// refused. The proxy can call it on the user name a legacy program sends.
func SharedMailboxSyntax(user string) (Finding, bool) {
	i := strings.IndexAny(user, `\/`)
	if i <= 0 || i == len(user)-1 {
		return Finding{}, false
	}
	delegate, shared := user[:i], user[i+1:]
	if !strings.Contains(shared, "@") {
		if at := strings.LastIndexByte(delegate, '@'); at > 0 {
			shared += delegate[at:]
		}
	}
	return Finding{Code: CodeSharedSyntax, Step: "config",
		Cause: "the user name " + user + " names a shared mailbox the way basic authentication did; with OAuth the user name is the shared mailbox's address alone",
		Fix:   "use " + shared + " as the user name (mailbox = \"" + shared + "\") with " + delegate + "'s token (email = \"" + delegate + "\"), and make sure " + delegate + " has FullAccess: Add-MailboxPermission -Identity " + shared + " -User " + delegate + " -AccessRights FullAccess",
		Docs:  DocOAuth}, true
}

// Connection explains a failure before authentication: DNS, TCP, TLS, STARTTLS, the greeting, the
// capabilities. addr is the server's host:port as configured.
func Connection(s Subject, protocol, addr string, err error) (Finding, bool) {
	msg := err.Error()
	var ne net.Error
	ports := "Exchange Online: IMAP " + s.Cloud.IMAP + " and POP " + s.Cloud.POP + " with implicit TLS, SMTP " + s.Cloud.SMTP + " with STARTTLS"
	mismatch := func(cause string) (Finding, bool) {
		return Finding{Code: CodePortMismatch, Step: "tls", Cause: cause,
			Fix: "use the port that matches the TLS mode — " + ports + "; 465 is implicit TLS, which Exchange Online does not offer for submission, and 25 is for server-to-server mail without AUTH — and set " + protocol + " = \"host:port\" accordingly", Docs: DocSMTPSubmission}, true
	}
	if f := ClockFromTLS(err); f != nil {
		f.Step = "tls"
		return *f, true
	}
	var ng *dial.NoGreetingError
	switch {
	// Before the timeout case: a silent server is a timeout too, but the cause is the TLS mode.
	case errors.As(err, &ng), strings.Contains(msg, "sent no greeting"):
		return mismatch("the server at " + addr + " accepted the connection but sent no greeting: it probably expects TLS from the first byte (implicit TLS), and " + protocolName(protocol) + " here starts in plain text for STARTTLS")
	case strings.Contains(msg, "cannot resolve"):
		return Finding{Code: CodeResolve, Step: "resolve", Cause: "the host of " + addr + " does not resolve",
			Fix: "check the host name (" + ports + ") and DNS", Docs: DocPorts}, true
	case errors.As(err, &ne) && ne.Timeout():
		return Finding{Code: CodeTimeout, Step: "connect", Cause: "the server at " + addr + " did not answer in time",
			Fix: "check a firewall or proxy on the way, and that the port speaks " + protocolName(protocol) + " (" + ports + ")", Docs: DocPorts}, true
	case strings.Contains(msg, "cannot connect"):
		return Finding{Code: CodeConnect, Step: "connect", Cause: "nothing accepts connections at " + addr,
			Fix: "check the host and port (" + ports + ") and that no firewall blocks outgoing connections to it", Docs: DocPorts}, true
	case strings.Contains(msg, "does not offer STARTTLS"), strings.Contains(msg, "doesn't support STARTTLS"), strings.Contains(msg, "STARTTLS not supported"):
		return mismatch("the server at " + addr + " offers no STARTTLS")
	case strings.Contains(msg, "first record does not look like a TLS handshake"), strings.Contains(msg, "record overflow"):
		return mismatch("the server at " + addr + " does not speak TLS from the first byte, as implicit TLS on this port expects")
	case strings.Contains(msg, "TLS handshake"), strings.Contains(msg, "certificate"):
		return Finding{Code: CodeTLS, Step: "tls", Cause: "TLS with " + addr + " failed: the certificate is not trusted for that name, or the connection is intercepted",
			Fix: "check the host name; behind a TLS-inspecting proxy, add its CA with ca_file (verification is never turned off)", Docs: DocPorts}, true
	case strings.Contains(msg, "does not offer AUTH"), strings.Contains(msg, "does not offer SASL"):
		return Finding{Code: CodeAuthNotOffer, Step: "capabilities", Cause: "the server at " + addr + " does not offer the SASL mechanism mailoauth uses",
			Fix: "check this is the account's Exchange Online server (" + ports + "; Exchange offers XOAUTH2, SMTP only after STARTTLS); for another server set mechanism = \"oauthbearer\" if it offers that", Docs: DocOAuth}, true
	}
	if greetingFailed(err) {
		return mismatch("the server at " + addr + " does not answer as a " + protocolName(protocol) + " server (a wrong port, or a TLS mode that does not match it)")
	}
	return Finding{}, false
}

// greetingFailed: the failure came before any authentication and without the server's words: the
// port speaks another protocol.
func greetingFailed(err error) bool {
	var me *mailerr.Error
	switch {
	case errors.Is(err, pop3.ErrProtocol):
		return true
	case errors.As(err, &me):
		return me.Server == "" && (me.Step == "greeting" || me.Step == "STARTTLS" || me.Step == "EHLO")
	}
	return false
}

// Graph explains Graph's refusals (codes per DocGraphErrors).
func Graph(s Subject, c *Claims, ge *graph.Error) Finding {
	aud := ""
	if c != nil {
		aud = c.Audience
	}
	f := func(code, cause, fix, docs string) Finding {
		return Finding{Code: code, Step: "mailbox", Cause: cause, Fix: fix, Docs: docs}
	}
	switch {
	case ge.Code == "InvalidAuthenticationToken" && c != nil && !audIn(aud, graphAudience):
		return *audience(s, config.ProtocolGraph, c)
	case ge.Code == "InvalidAuthenticationToken":
		// The client asked the identity platform for a fresh token and retried before giving up
		// (graph.Client, token.Refresher): a token fresh from the account's identity platform was
		// refused, so another sign-in alone rarely helps.
		return f(CodeGraphToken, "Graph refused the token itself (expired, revoked, not for this tenant, or issued by another cloud's identity platform)",
			"get a fresh token: mailoauth login "+s.Account+"; if Graph refuses a fresh one too (mailoauth already retried with one), check that the account's graph, cloud and authority name one cloud (this cloud's Graph is "+s.Cloud.Graph+"; another cloud's Graph refuses its tokens), and this machine's clock", DocGraphErrors)
	case ge.Code == "MailboxNotEnabledForRESTAPI":
		return f(CodeGraphNoREST, "the mailbox "+s.mailbox()+" is inactive, soft-deleted, on-premises or without an Exchange Online licence: Graph reaches only Exchange Online mailboxes",
			"check the address, and in Exchange Online PowerShell Get-Mailbox -Identity "+s.mailbox()+" (add -SoftDeletedMailbox or -InactiveMailboxOnly to find a deleted or inactive one): the user needs an Exchange Online licence and a mailbox in Exchange Online", DocGraphErrors)
	case ge.Status == 429:
		return f(CodeGraphThrottled, "Graph throttled the app ("+firstOf(ge.Code, "429")+")", "wait and retry less often; mailoauth already honours Retry-After", DocGraphErrors)
	case ge.Status == 403 && s.AppOnly && c != nil && !c.HasRole("Mail.ReadWrite") && !c.HasRole("Mail.Read"):
		return *graphRole(s)
	case ge.Status == 403 && !s.AppOnly && c != nil && !c.AppOnly && !graphMailScope(c):
		fs := graphScope(s, c)
		fs.Step = "mailbox"
		return *fs
	case ge.Status == 403 && s.AppOnly:
		return f(CodeGraphPolicy, "the app has the Graph role and is denied "+s.mailbox()+": an application access policy restricts it to other mailboxes",
			"in Exchange Online PowerShell: Test-ApplicationAccessPolicy -Identity "+s.mailbox()+" -AppId "+s.ClientID+"; add the mailbox to the policy's group, or New-ApplicationAccessPolicy -AppId "+s.ClientID+" -PolicyScopeGroupId <group with "+s.mailbox()+"> -AccessRight RestrictAccess", DocGraphPolicy)
	case ge.Status == 403:
		return f(CodeGraphDenied, "the signed-in user may not open "+s.mailbox(),
			"grant FullAccess ("+s.AddMailboxPermission(firstOf(s.Email, "<user>"))+") and the Mail.ReadWrite.Shared scope, or sign in as "+s.mailbox(), DocGraphPermissions)
	case ge.Status == 404:
		return f(CodeGraphNotFound, "Graph does not know the mailbox "+s.mailbox(), "check the address in the account's mailbox (or email): a user or shared mailbox of the tenant (Graph reads /users/"+s.mailbox()+")", DocGraphErrors)
	case ge.Status >= 500:
		return f(CodeGraphUnexpected, "Graph failed on its side: "+ge.Error(), "try again later (mailoauth already retried); if it lasts, look at Service health in the Microsoft 365 admin center", DocGraphErrors)
	}
	return f(CodeGraphUnexpected, "Graph refused the request: "+ge.Error(), "see Graph's error code in Microsoft's documentation", DocGraphErrors)
}

// GraphSend explains Graph's refusal to send a message from the mailbox (sendMail, or a draft's
// send): a 403 other than ErrorSendAsDenied is a token without Mail.Send (or an application access
// policy); the rest is Graph's.
func GraphSend(s Subject, ge *graph.Error) Finding {
	switch {
	case ge.Code == "ErrorSendAsDenied":
		return sendAsDenied(s)
	case ge.Status == 403:
		return Finding{Code: CodeGraphSend, Step: "mailbox", Cause: "Graph refused to send from " + s.mailbox() + " (" + firstOf(ge.Code, "403") + "): the token has no Mail.Send permission, or an application access policy keeps the app out of the mailbox",
			Fix:  s.PortalApp() + " > API permissions > Add > Microsoft Graph > Mail.Send (Application permissions for an app-only account, then grant admin consent: " + s.AdminConsentURL() + "; Delegated permissions for a signed-in user, then sign in again); if the app has it, in Exchange Online PowerShell: Test-ApplicationAccessPolicy -Identity " + s.mailbox() + " -AppId " + firstOf(s.ClientID, "<client id>"),
			Docs: DocGraphPermissions}
	}
	return Graph(s, nil, ge)
}

func sendAsDenied(s Subject) Finding {
	return Finding{Code: CodeSendAs, Step: "mailbox", Cause: "the sender may not send as the From address",
		Fix: "send From " + s.mailbox() + ", or grant the right: Add-RecipientPermission -Identity <From address> -Trustee " + firstOf(s.Email, s.mailbox()) + " -AccessRights SendAs", Docs: DocOAuth}
}

// ServerSaid is the server's own words inside an error from imap, pop3, smtp or graph, if any.
func ServerSaid(err error) string {
	var ge *graph.Error
	var me *mailerr.Error
	switch {
	case errors.As(err, &ge):
		return ge.Error()
	case errors.As(err, &me):
		return me.Server
	}
	return ""
}

// AuthRefused reports whether the failing step was the authentication itself.
func AuthRefused(err error) bool { return authRefused(err) }

// authRefused: IMAP's AUTHENTICATE, POP3's and SMTP's AUTH.
func authRefused(err error) bool {
	var me *mailerr.Error
	return errors.As(err, &me) && strings.HasPrefix(me.Step, "AUTH")
}

// Failure is a failed protocol operation for an account, as Explain takes it.
type Failure struct {
	// Protocol is the protocol that failed: "imap", "pop", "smtp" or "graph".
	Protocol string
	// Addr is the server's host:port as configured, which a connection finding names.
	Addr string
	// Claims are those of the token in use; nil when unknown or not a JWT.
	Claims *Claims
	// Err is the failure: getting the token, connecting, authenticating, the first mailbox command
	// or a Graph request.
	Err error
	// Now is this machine's clock, which a token's expiry is judged by; the zero value means
	// time.Now().
	Now time.Time
}

// Explain explains any failure of a protocol operation for an account — getting the token,
// connecting, authenticating, the first mailbox command, a Graph request — from the error and the
// claims of the token in use. ok is false when the catalogue knows nothing useful (the server's words
// are then the news), and when x.Err is nil.
func Explain(s Subject, x Failure) (Finding, bool) {
	protocol, addr, c, err, now := x.Protocol, x.Addr, x.Claims, x.Err, x.Now
	if err == nil {
		return Finding{}, false
	}
	if now.IsZero() {
		now = time.Now()
	}
	if f, ok := TokenError(s, err); ok {
		return f, true
	}
	var ge *graph.Error
	if errors.As(err, &ge) {
		return Graph(s, c, ge), true
	}
	if f, ok := Connection(s, protocol, addr, err); ok {
		return f, true
	}
	said := ServerSaid(err)
	low := strings.ToLower(said)
	if authRefused(err) || strings.Contains(low, "not connected") || strings.Contains(low, "smtpclientauthentication") || strings.Contains(low, "sendas") {
		return Refusal(s, protocol, said, c, now), true
	}
	return Finding{}, false
}

package check

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"strings"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/pop3"
	"github.com/mailoauth/mailoauth/smtp"
)

// Claims decodes a JWT's payload without verifying it (the server verifies; this only explains).
// Tokens that are not JWTs (personal Microsoft accounts issue opaque ones) give nil.
func Claims(token string) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

func stringList(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// Explain returns the likely cause of a failure of a protocol operation for an account (an IMAP,
// POP3, SMTP or Graph error from any command, not only from check), or "" when nothing is known. It
// reads the account's cached token's claims; it never prints the token.
func Explain(ctx context.Context, a *auth.Account, protocol string, err error) string {
	resource := auth.Exchange
	if protocol == config.ProtocolGraph {
		resource = auth.Graph
	}
	var claims map[string]any
	if tok, terr := a.Token(ctx, resource); terr == nil {
		claims = Claims(tok.AccessToken)
	}
	return likelyCause(a, protocol, claims, err, serverSaid(err))
}

// neededPermission is what a token must carry for a protocol: the delegated scope or the app role.
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

// likelyCause explains a failure from the token's claims and the server's words. Facts about
// Exchange's behaviour: Microsoft's "Authenticate an IMAP, POP or SMTP connection using OAuth"
// (service principal registration and mailbox permission for app-only access), "Enable or disable
// authenticated client SMTP submission" (SmtpClientAuthenticationDisabled), and the transcripts in
// research/exchange-wire.md.
func likelyCause(a *auth.Account, protocol string, claims map[string]any, err error, said string) string {
	var ae *auth.Error
	if errors.As(err, &ae) || errors.Is(err, auth.ErrLoginRequired) {
		if errors.Is(err, auth.ErrLoginRequired) {
			return "no usable token: run mailoauth login " + a.Name()
		}
		if ae.Unreachable != "" {
			return "the identity platform could not be reached: check the network and the account's authority"
		}
		return "the identity platform refused the token request; see the AADSTS code"
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "the server did not answer in time"
	case strings.Contains(err.Error(), "cannot connect"), strings.Contains(err.Error(), "cannot resolve"):
		return "nothing answers at " + a.Server(protocol) + ": check the host and port (Exchange Online: IMAP 993, POP 995, SMTP 587 with STARTTLS)"
	case strings.Contains(err.Error(), "does not offer STARTTLS"), strings.Contains(err.Error(), "doesn't support STARTTLS"):
		return "the server offers no STARTTLS on this port: use the submission port 587, or 465 for implicit TLS"
	case strings.Contains(err.Error(), "TLS handshake"), strings.Contains(err.Error(), "certificate"):
		return "TLS failed: the server's certificate is not trusted for its name, or the port does not speak TLS the way configured (587 is STARTTLS, 465 and 993/995 implicit TLS)"
	case strings.Contains(err.Error(), "does not offer AUTH"), strings.Contains(err.Error(), "does not offer SASL"):
		return "the server does not offer XOAUTH2 here: check that this is the account's mail server (Exchange Online offers it after TLS)"
	}
	var ge *graph.Error
	if errors.As(err, &ge) {
		return graphCause(a, claims, ge)
	}
	low := strings.ToLower(said)
	switch {
	case strings.Contains(low, "smtpclientauthentication is disabled"):
		return "SMTP AUTH is disabled for this mailbox or tenant: Set-CASMailbox -Identity " + a.Mailbox() + " -SmtpClientAuthenticationDisabled $false (tenant-wide: Set-TransportConfig -SmtpClientAuthenticationDisabled $false)"
	case strings.Contains(low, "authenticated but not connected"):
		return "Exchange accepted the token but cannot open the mailbox " + a.Mailbox() + ": " + protocolDisabled(protocol) + ", or the signed-in user or app has no FullAccess on it (Add-MailboxPermission -Identity " + a.Mailbox() + " -User <user or service principal> -AccessRights FullAccess)"
	case !authRefused(err):
		// Not an authentication refusal (a greeting, STARTTLS or mailbox command failed): the token's
		// claims do not explain it, the server's words are the news.
		return ""
	}
	if claims == nil {
		return "the server refused the token; it is not a JWT (a personal Microsoft account?), so mailoauth cannot say which claim is wrong"
	}
	aud, _ := claims["aud"].(string)
	if !strings.Contains(aud, "outlook.office") && !strings.Contains(aud, "outlook.office365") && !strings.Contains(aud, "partner.outlook.cn") && !strings.Contains(aud, "00000002-0000-0ff1-ce00-000000000000") {
		return "the token is for " + aud + ", not Exchange Online: request scopes prefixed with https://outlook.office.com/ (an unprefixed IMAP.AccessAsUser.All is a Microsoft Graph scope)"
	}
	appOnly := claims["upn"] == nil && claims["scp"] == nil
	need := neededPermission(protocol, appOnly)
	if appOnly {
		if !contains(stringList(claims["roles"]), need) {
			return "the app-only token lacks the application permission " + need + ": add it under Office 365 Exchange Online in the app registration and grant admin consent"
		}
		return "the token has " + need + " but Exchange refused it: the app's service principal is probably not registered in Exchange (New-ServicePrincipal -AppId " + a.Config().ClientID + " -ObjectId <Enterprise Application object id>) or has no FullAccess on " + a.Mailbox() + " (Add-MailboxPermission -Identity " + a.Mailbox() + " -User <service principal id> -AccessRights FullAccess)"
	}
	if scp, _ := claims["scp"].(string); !contains(strings.Fields(scp), need) {
		return "the token lacks the delegated scope " + need + ": add it (Office 365 Exchange Online or Microsoft Graph > " + need + ") and sign in again"
	}
	if upn, _ := claims["upn"].(string); upn != "" && !strings.EqualFold(upn, a.Mailbox()) {
		return "the token is " + upn + "'s and the mailbox is " + a.Mailbox() + ": " + upn + " needs FullAccess on it (Add-MailboxPermission -Identity " + a.Mailbox() + " -User " + upn + " -AccessRights FullAccess), or sign in as " + a.Mailbox()
	}
	return "the token looks right for " + protocol + " (audience, " + need + ", user): " + protocolDisabled(protocol) + ", or the token was revoked"
}

func protocolDisabled(protocol string) string {
	switch protocol {
	case config.ProtocolIMAP:
		return "IMAP may be disabled on the mailbox (Set-CASMailbox -ImapEnabled $true)"
	case config.ProtocolPOP:
		return "POP may be disabled on the mailbox (Set-CASMailbox -PopEnabled $true)"
	}
	return "SMTP AUTH may be disabled (Set-CASMailbox -SmtpClientAuthenticationDisabled $false)"
}

// graphCause explains Graph's refusals (its error codes are documented in Microsoft Graph's "Error
// responses"; ErrorAccessDenied and MailboxNotEnabledForRESTAPI bodies are in research/exchange-wire.md §4).
func graphCause(a *auth.Account, claims map[string]any, ge *graph.Error) string {
	aud, _ := claims["aud"].(string)
	switch {
	case ge.Code == "InvalidAuthenticationToken" && !strings.Contains(aud, "graph"):
		return "the token is for " + aud + ", not Microsoft Graph: Graph needs scopes under https://graph.microsoft.com/"
	case ge.Code == "InvalidAuthenticationToken":
		return "Graph refused the token itself (expired, or not for this tenant): sign in again"
	case ge.Code == "MailboxNotEnabledForRESTAPI":
		return "the mailbox " + a.Mailbox() + " is inactive, soft-deleted or on-premises: Graph reaches only Exchange Online mailboxes"
	case ge.Status == 403 && a.AppOnly() && !contains(stringList(claims["roles"]), "Mail.ReadWrite") && !contains(stringList(claims["roles"]), "Mail.Read"):
		return "the app-only token has no Mail.Read or Mail.ReadWrite role: add the Microsoft Graph application permission and grant admin consent"
	case ge.Status == 403 && a.AppOnly():
		return "the app has the Graph role but is denied " + a.Mailbox() + ": an application access policy (New-ApplicationAccessPolicy) may restrict it to other mailboxes"
	case ge.Status == 403:
		return "the signed-in user may not open " + a.Mailbox() + ": it needs FullAccess on it and the Mail.Read.Shared or Mail.ReadWrite.Shared scope, or sign in as " + a.Mailbox()
	case ge.Status == 404:
		return "Graph does not know the mailbox " + a.Mailbox() + ": check the address (app-only access uses /users/{mailbox})"
	}
	return ""
}

// authRefused reports whether the failing step was the authentication itself.
func authRefused(err error) bool {
	var ie *imap.Error
	var pe *pop3.Error
	var se *smtp.Error
	switch {
	case errors.As(err, &ie):
		return strings.HasPrefix(ie.Step, "AUTHENTICATE")
	case errors.As(err, &pe):
		return strings.HasPrefix(pe.Command, "AUTH")
	case errors.As(err, &se):
		return strings.HasPrefix(se.Step, "AUTH")
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

package catalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
)

// advice is what the catalogue says about one AADSTS code: the cause in mailoauth's words and the fix
// for the account. Meanings follow Microsoft's "Microsoft Entra authentication and authorization error
// codes" (DocAADSTS), checked against the texts Entra ID returns.
type advice struct {
	cause string
	fix   func(s Subject) string
	docs  string
}

func login(s Subject) string { return "sign in again: mailoauth login " + s.Account }

func newSecret(s Subject) string {
	where := firstOf(s.SecretSource, "client_secret_file")
	return s.PortalApp() + " > Certificates & secrets > New client secret; copy its Value (shown once; not the Secret ID) into " + where
}

func consent(s Subject) string {
	if s.AppOnly {
		return "an administrator grants admin consent: " + s.PortalApp() + " > API permissions > Grant admin consent, or open " + s.AdminConsentURL()
	}
	return "consent to the app: run mailoauth login " + s.Account + " and accept the permissions, or an administrator grants consent for everyone: " + s.AdminConsentURL()
}

var aadsts = map[int]advice{
	7000215: {"AADSTS7000215: the client secret is wrong (often the secret's ID was copied instead of its value)", newSecret, DocClientSecret},
	7000222: {"AADSTS7000222: the client secret has expired", newSecret, DocClientSecret},
	700016: {"AADSTS700016: the client id names no app in this tenant (wrong client_id or tenant, or the app was never consented in this tenant)",
		func(s Subject) string {
			return "check client_id (" + s.ClientID + ") against the app registration's Overview and tenant (" + s.tenant() + ") against the tenant it lives in; for an app of another organisation, an administrator of this tenant consents: " + s.AdminConsentURL()
		}, DocAADSTS},
	90002: {"AADSTS90002: the tenant does not exist in this cloud",
		func(s Subject) string {
			return "set tenant to the Directory (tenant) ID from Entra admin center > Overview, or a verified domain of it (now " + s.tenant() + "); for a national cloud set cloud ="
		}, DocDiscovery},
	65001: {"AADSTS65001: nobody consented to the app's permissions", consent, DocAdminConsent},
	70011: {"AADSTS70011: a requested scope is not valid",
		func(s Subject) string {
			return "remove scopes from the account to use the ones that follow from protocols, or prefix each with the resource, e.g. " + s.exchangeScope("IMAP.AccessAsUser.All")
		}, DocOAuth},
	1002012: {"AADSTS1002012: the client credentials flow takes only RESOURCE/.default scopes",
		func(s Subject) string {
			return "set scopes = [\"" + s.Cloud.ExchangeApp + "/.default\"] or remove scopes"
		}, DocOAuth},
	28000: {"AADSTS28000: the scopes name two resources (Exchange Online and Microsoft Graph) in one request",
		func(s Subject) string {
			return "keep only Exchange Online scopes in scopes (mailoauth asks for Graph separately), e.g. " + s.exchangeScope("IMAP.AccessAsUser.All")
		}, DocOAuth},
	500011: {"AADSTS500011: the resource (Exchange Online or Graph) does not exist in the tenant",
		func(s Subject) string {
			return "check the tenant (" + s.tenant() + ") has Exchange Online, and that the cloud matches it"
		}, DocAADSTS},
	700082: {"AADSTS700082: the refresh token expired after 90 days unused", login, DocRefreshTokens},
	50173:  {"AADSTS50173: the refresh token was revoked (a password change, or an administrator revoked the sessions)", login, DocRefreshTokens},
	70000:  {"AADSTS70000: the grant (refresh token or code) is no longer valid", login, DocRefreshTokens},
	70008:  {"AADSTS70008: the authorization code or refresh token has expired", login, DocRefreshTokens},
	54005:  {"AADSTS54005: the authorization code was already redeemed", login, DocAADSTS},
	9002313: {"AADSTS9002313: the request is malformed (typically an imported refresh token that is truncated or not Entra's)",
		func(s Subject) string {
			return "import the whole refresh token again (refresh_token_file), or sign in: mailoauth login " + s.Account
		}, DocAADSTS},
	50020: {"AADSTS50020: the user is not a member or guest of the tenant",
		func(s Subject) string {
			return "set tenant to the user's own tenant, or invite " + firstOf(s.Email, "the user") + " as a guest of " + s.tenant()
		}, DocAADSTS},
	50034: {"AADSTS50034: the user does not exist in the tenant",
		func(s Subject) string {
			return "check email (" + firstOf(s.Email, "unset") + ") and tenant (" + s.tenant() + ")"
		}, DocAADSTS},
	50126: {"AADSTS50126: the user name or password is wrong",
		func(s Subject) string {
			return "put the user's current password in password_file or password_env, and check email (" + firstOf(s.Email, "unset") + ")"
		}, DocAADSTS},
	50076: {"AADSTS50076: the user must use multi-factor authentication, which the password flow cannot do",
		func(s Subject) string {
			return "use flow = \"device\" or \"interactive\" for " + s.Account + ", then mailoauth login " + s.Account
		}, DocFlows},
	50079: {"AADSTS50079: the user must register for multi-factor authentication",
		func(s Subject) string {
			return "sign in once in a browser to register, then use flow = \"device\" or \"interactive\" (mailoauth login " + s.Account + ")"
		}, DocFlows},
	53003: {"AADSTS53003: a Conditional Access policy blocked the sign-in",
		func(s Subject) string {
			return "an administrator looks up the sign-in in Entra admin center > Sign-in logs (the correlation id is in the message) and adjusts or excludes the policy"
		}, DocAADSTS},
	50057: {"AADSTS50057: the user account is disabled",
		func(s Subject) string {
			return "an administrator enables " + firstOf(s.Email, "the user") + " in Entra admin center > Users"
		}, DocAADSTS},
	50055: {"AADSTS50055: the user's password has expired",
		func(s Subject) string {
			return "change the password in a browser, then update password_file or sign in with mailoauth login " + s.Account
		}, DocAADSTS},
	7000218: {"AADSTS7000218: the app is confidential and no client secret or certificate was sent",
		func(s Subject) string {
			return "turn on " + s.PortalApp() + " > Authentication > Advanced settings > Allow public client flows (for the device and password flows), or give the account a client credential"
		}, DocFlows},
	700025: {"AADSTS700025: the app is a public client, yet a client secret or certificate was sent",
		func(s Subject) string {
			return "remove client_secret_file, client_secret_env and certificate from account " + s.Account
		}, DocFlows},
	700027: {"AADSTS700027: the certificate is not registered on the app (or the assertion's signature does not verify)",
		func(s Subject) string {
			return s.PortalApp() + " > Certificates & secrets > Certificates > Upload certificate: the public certificate of " + firstOf(strings.TrimPrefix(s.SecretSource, "certificate "), "the account's certificate")
		}, DocCertCredentials},
	700024: {"AADSTS700024: the client assertion is outside its valid time window: this machine's clock is probably off",
		func(s Subject) string { return "synchronise the clock (timedatectl set-ntp true, or w32tm /resync)" }, DocCertCredentials},
	50011: {"AADSTS50011: the redirect URI is not registered on the app",
		func(s Subject) string {
			return s.PortalApp() + " > Authentication > Add a platform > Mobile and desktop applications > add http://localhost"
		}, DocRedirect},
	50194: {"AADSTS50194: the app is single-tenant and the account signs in through /organizations or /common",
		func(s Subject) string {
			return "set tenant to the app's own tenant id or domain (Entra admin center > Overview)"
		}, DocAADSTS},
	50059: {"AADSTS50059: no tenant was given",
		func(s Subject) string { return "set tenant to the Directory (tenant) ID or a verified domain" }, DocAADSTS},
}

func aadstsCode(n int) string { return CodeAADSTS + strconv.Itoa(n) }

// AADSTS explains an AADSTS number, with the identity platform's own description when the catalogue
// has no advice for it.
func AADSTS(s Subject, n int, description string) Finding {
	if a, ok := aadsts[n]; ok {
		return Finding{Code: aadstsCode(n), Step: "token", Cause: a.cause, Fix: a.fix(s), Docs: a.docs}
	}
	cause := firstOf(description, "the identity platform refused")
	if n != 0 && !strings.HasPrefix(cause, "AADSTS") {
		cause = fmt.Sprintf("AADSTS%d: %s", n, cause)
	}
	fix := "look the code up in Microsoft's error reference"
	if n != 0 {
		fix = fmt.Sprintf("look the code up at https://login.microsoftonline.com/error?code=%d", n)
	}
	return Finding{Code: CodeAADSTS, Step: "token", Cause: cause, Fix: fix, Docs: DocAADSTS}
}

// TokenError explains a failure to get a token (auth's errors). ok is false when err is not one.
func TokenError(s Subject, err error) (Finding, bool) {
	if errors.Is(err, token.ErrLoginRequired) {
		return Finding{Code: CodeLoginRequired, Step: "token", Cause: "no token is held for account " + s.Account + ", or none can be refreshed",
			Fix: "sign in: mailoauth login " + s.Account, Docs: DocRefreshTokens}, true
	}
	if f, ok := Store(err); ok {
		f.Step = "token"
		return f, true
	}
	var ae *auth.Error
	if !errors.As(err, &ae) {
		return Finding{}, false // a deadline that is not auth's comes from elsewhere: Connection's business
	}
	if f := ClockFromTLS(err); f != nil {
		f.Step = "token"
		return *f, true
	}
	switch {
	case ae.Transient && ae.Unreachable == "" && errors.Is(ae.Err, context.DeadlineExceeded):
		// The caller's deadline passed while the identity platform had not answered (auth's Token).
		return Finding{Code: CodeIdPTransient, Step: "token", Cause: "the identity platform did not answer in time",
			Fix: "try again; if it persists, check the network path to " + s.Authority}, true
	case ae.Transient && ae.Unreachable == "":
		return Finding{Code: CodeIdPTransient, Step: "token", Cause: "the identity platform failed for now (" + firstOf(statusText(ae.Status), "a network error") + ")",
			Fix: "try again later; mailoauth never drops a refresh token for this"}, true
	case ae.AADSTS != 0:
		return AADSTS(s, ae.AADSTS, ae.Description), true
	case ae.Unreachable != "":
		return Finding{Code: CodeIdPUnreachable, Step: "token", Cause: "the identity platform at " + ae.Unreachable + " cannot be reached",
			Fix: "check the network, a proxy or firewall, and the account's authority and cloud"}, true
	case ae.InvalidGrant():
		return Finding{Code: CodeLoginRequired, Step: "token", Cause: "the identity platform refused the refresh token (" + ae.Code + ")",
			Fix: "sign in: mailoauth login " + s.Account, Docs: DocRefreshTokens}, true
	}
	return AADSTS(s, 0, strings.TrimSpace(ae.Code+" "+ae.Description)), true
}

func statusText(status int) string {
	if status == 0 {
		return ""
	}
	return "HTTP " + strconv.Itoa(status)
}

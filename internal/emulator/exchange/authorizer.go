// Package exchange is the emulator's Exchange Online: IMAP (implicit TLS and STARTTLS), POP3
// (implicit TLS) and SMTP submission (STARTTLS) servers that check OAuth 2.0 tokens as Exchange
// Online does and answer with its texts, over the mailboxes of package mailstore.
//
// The token policy is one type, Authorizer, shared by the three protocols (and Graph later): it says
// whether a bearer token opens a mailbox for a protocol, and when not, why — a Reason with a stable
// code and a human sentence for tests, logs and `mailoauth doctor`. The wire answer stays Exchange's
// opaque text ("NO AUTHENTICATE failed.", "535 5.7.3 Authentication unsuccessful", ...).
//
// Nothing here logs or returns a token, a password or a SASL message.
package exchange

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/identity"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// Protocol is a way into a mailbox. Each has the delegated scope and the application role Exchange
// requires of a token.
type Protocol int

// The protocols.
const (
	IMAP Protocol = iota + 1
	POP
	SMTP
)

func (p Protocol) String() string {
	switch p {
	case IMAP:
		return "IMAP"
	case POP:
		return "POP"
	case SMTP:
		return "SMTP"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// Scope is the delegated permission (scp) the protocol requires.
func (p Protocol) Scope() string {
	switch p {
	case IMAP:
		return "IMAP.AccessAsUser.All"
	case POP:
		return "POP.AccessAsUser.All"
	case SMTP:
		return "SMTP.Send"
	}
	return ""
}

// Role is the application permission (roles) the protocol requires.
func (p Protocol) Role() string {
	switch p {
	case IMAP:
		return "IMAP.AccessAsApp"
	case POP:
		return "POP.AccessAsApp"
	case SMTP:
		return "SMTP.SendAsApp"
	}
	return ""
}

// Reason says why access was refused (or Allowed). Its String is a stable code.
type Reason int

// Reasons, in the order the Authorizer checks them.
const (
	Allowed Reason = iota
	// MalformedSASL: the SASL message is not XOAUTH2's user=...^Aauth=Bearer ...^A^A (or not base64).
	MalformedSASL
	// MechanismUnsupported: a SASL mechanism Exchange does not offer (OAUTHBEARER, ...).
	MechanismUnsupported
	// BasicAuthDisabled: a password (LOGIN, AUTHENTICATE PLAIN, USER/PASS, AUTH LOGIN): Exchange Online
	// refuses basic authentication.
	BasicAuthDisabled
	// TokenMalformed: the bearer token is not a JWT.
	TokenMalformed
	// TokenBadSignature: not RS256, an unknown kid, or a signature the tenant's key does not verify.
	TokenBadSignature
	// TokenExpired: exp is past (the emulator's clock, 5 minutes of skew allowed).
	TokenExpired
	// TokenNotYetValid: nbf is in the future.
	TokenNotYetValid
	// TokenUnknownTenant: tid names no tenant of the world, or iss is not that tenant's issuer.
	TokenUnknownTenant
	// TokenWrongAudience: aud is not Exchange Online (a Graph token, typically).
	TokenWrongAudience
	// MissingScope: a delegated token without the protocol's scope.
	MissingScope
	// MissingRole: an app-only token without the protocol's role.
	MissingRole
	// UnknownApp: appid names no app usable in the token's tenant.
	UnknownApp
	// UnknownUser: a delegated token whose upn is not a user of its tenant.
	UnknownUser
	// NoServicePrincipal: the app has no service principal in Exchange (New-ServicePrincipal).
	NoServicePrincipal
	// UnknownMailbox: the SASL user names no mailbox of the token's tenant.
	UnknownMailbox
	// NotMailboxOwner: a delegated token for another user's mailbox, or for a shared mailbox the user
	// has no FullAccess on.
	NotMailboxOwner
	// NoFullAccess: the app's service principal has no FullAccess on the mailbox.
	NoFullAccess
	// ProtocolDisabled: IMAP or POP disabled on the mailbox (Set-CASMailbox -ImapEnabled/-PopEnabled $false).
	ProtocolDisabled
	// SMTPAuthDisabledTenant: Set-TransportConfig -SmtpClientAuthenticationDisabled $true.
	SMTPAuthDisabledTenant
	// SMTPAuthDisabledMailbox: Set-CASMailbox -SmtpClientAuthenticationDisabled $true.
	SMTPAuthDisabledMailbox
)

var reasonCodes = [...]string{
	Allowed:                 "allowed",
	MalformedSASL:           "sasl_malformed",
	MechanismUnsupported:    "sasl_mechanism_unsupported",
	BasicAuthDisabled:       "basic_auth_disabled",
	TokenMalformed:          "token_malformed",
	TokenBadSignature:       "token_signature_invalid",
	TokenExpired:            "token_expired",
	TokenNotYetValid:        "token_not_yet_valid",
	TokenUnknownTenant:      "token_tenant_unknown",
	TokenWrongAudience:      "token_audience_wrong",
	MissingScope:            "token_scope_missing",
	MissingRole:             "token_role_missing",
	UnknownApp:              "app_unknown",
	UnknownUser:             "user_unknown",
	NoServicePrincipal:      "service_principal_missing",
	UnknownMailbox:          "mailbox_unknown",
	NotMailboxOwner:         "mailbox_permission_missing",
	NoFullAccess:            "service_principal_no_full_access",
	ProtocolDisabled:        "protocol_disabled_on_mailbox",
	SMTPAuthDisabledTenant:  "smtp_auth_disabled_tenant",
	SMTPAuthDisabledMailbox: "smtp_auth_disabled_mailbox",
}

// String is the reason's stable code, e.g. "token_expired".
func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonCodes) {
		return reasonCodes[r]
	}
	return fmt.Sprintf("reason_%d", int(r))
}

// Token is what the Authorizer learnt from a verified token. It holds no token text.
type Token struct {
	Tenant   *world.Tenant
	AppID    string
	App      *world.App // nil when appid names no app usable in the tenant
	AppOnly  bool       // client credentials: roles, no scp, no upn
	UPN      string     // delegated tokens
	User     *world.User
	Audience string
	Scopes   []string
	Roles    []string
	Expires  time.Time
}

// Decision is the Authorizer's answer for one authentication.
type Decision struct {
	Protocol Protocol
	Reason   Reason
	// Detail explains Reason in one sentence with the names involved (never a secret).
	Detail string
	// Deferred: Exchange accepts AUTHENTICATE and then fails every mailbox command ("User is
	// authenticated but not connected."), as it does for these refusals on IMAP.
	Deferred bool
	// Mailbox is the address of the mailbox the SASL user names (as the World spells it), when known.
	Mailbox string
	// Username is the SASL user as sent.
	Username string
	// Token is set once the token was verified.
	Token *Token
}

// OK says whether access is granted.
func (d Decision) OK() bool { return d.Reason == Allowed }

// Error makes a refused Decision usable as an error: "token_expired: the token expired at ...".
func (d Decision) Error() string { return d.Reason.String() + ": " + d.Detail }

// Keys is where the Authorizer finds the key that verifies tokens: the identity server.
type Keys interface {
	PublicKey() *rsa.PublicKey
	KeyID() string
}

// Authorizer decides, as Exchange Online does, whether a bearer token opens a mailbox.
type Authorizer struct {
	live   *world.Live
	events *events.Log
	keys   Keys
	now    func() time.Time
	log    *slog.Logger
}

// ClockSkew is the leeway on exp and nbf (Microsoft.IdentityModel's default).
const ClockSkew = 5 * time.Minute

// NewAuthorizer returns an Authorizer over a resolved World. now nil means time.Now; log nil
// discards.
func NewAuthorizer(w *world.Live, keys Keys, now func() time.Time, log *slog.Logger) *Authorizer {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Authorizer{live: w, keys: keys, now: now, log: log}
}

// exchangeAudiences are the audiences Exchange Online accepts: its resource URIs with or without a
// trailing slash (v2 scopes give none, ADAL v1 resources one) and its first-party app id.
var exchangeAudiences = []string{
	world.ExchangeResource, world.ExchangeResource + "/",
	world.ExchangeResourceAlias, world.ExchangeResourceAlias + "/",
	world.ExchangeAppID,
}

// Verify checks a token's signature, lifetime and tenant, and reads its claims. It does not check
// the audience or permissions (Authorize does, and Graph will with its own).
func (a *Authorizer) Verify(raw string) (*Token, Reason, string) {
	var claims jwt.MapClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid != a.keys.KeyID() {
			return nil, errUnknownKey
		}
		return a.keys.PublicKey(), nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(a.now), jwt.WithLeeway(ClockSkew),
		jwt.WithExpirationRequired())
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, TokenMalformed, "the bearer token is not a JWT"
	case errors.Is(err, errUnknownKey):
		return nil, TokenBadSignature, "the token's kid is not the key the tenant publishes in its JWKS (" + a.keys.KeyID() + ")"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, TokenBadSignature, "the token's signature does not verify with the identity platform's RS256 key"
	case errors.Is(err, jwt.ErrTokenExpired):
		exp, _ := claims.GetExpirationTime()
		return nil, TokenExpired, fmt.Sprintf("the token expired at %s (the emulator's clock says %s)",
			expString(exp), a.now().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, TokenNotYetValid, "the token is not valid yet (nbf or iat is in the future)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, TokenMalformed, "the token has no exp claim"
	default:
		return nil, TokenMalformed, "the token's claims cannot be read"
	}
	str := func(k string) string { s, _ := claims[k].(string); return s }
	tid := str("tid")
	var t *world.Tenant
	w := a.live.Load() // one World for the whole decision
	if tid != "" {
		for _, tt := range w.Tenants {
			if strings.EqualFold(tt.ID, tid) {
				t = tt
			}
		}
	}
	if t == nil {
		return nil, TokenUnknownTenant, fmt.Sprintf("the token's tid %q is not a tenant of this organisation", tid)
	}
	if iss := str("iss"); iss != identity.Issuer(t.ID) {
		return nil, TokenUnknownTenant, fmt.Sprintf("the token's issuer %q is not tenant %s's (%s)", iss, t.Name, identity.Issuer(t.ID))
	}
	tok := &Token{Tenant: t, AppID: str("appid"), UPN: str("upn")}
	if aud, err := claims.GetAudience(); err == nil && len(aud) > 0 {
		tok.Audience = aud[0]
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		tok.Expires = exp.Time
	}
	if scp := str("scp"); scp != "" {
		tok.Scopes = strings.Fields(scp)
	}
	if roles, ok := claims["roles"].([]any); ok {
		for _, r := range roles {
			if s, ok := r.(string); ok {
				tok.Roles = append(tok.Roles, s)
			}
		}
	}
	tok.AppOnly = len(tok.Scopes) == 0 && tok.UPN == ""
	if tok.AppID != "" {
		tok.App = w.AppIn(t, tok.AppID)
	}
	if !tok.AppOnly && tok.UPN != "" {
		tok.User = t.User(tok.UPN)
	}
	return tok, Allowed, ""
}

var errUnknownKey = errors.New("unknown signing key")

func expString(exp *jwt.NumericDate) string {
	if exp == nil {
		return "?"
	}
	return exp.UTC().Format(time.RFC3339)
}

// Authorize decides whether token (a bearer token) lets username (the SASL user: the mailbox
// address) into that mailbox over p, checking in Exchange's order: the token (signature, expiry,
// tenant, audience), its permissions (scp or roles), the service principal of an app, the mailbox
// and the SASL user's right to it, then the mailbox's settings for p. It logs the decision.
func (a *Authorizer) Authorize(p Protocol, username, token string) Decision {
	d := a.authorize(p, username, token)
	a.logDecision(d)
	return d
}

func (a *Authorizer) authorize(p Protocol, username, raw string) Decision {
	d := Decision{Protocol: p, Username: username}
	refuse := func(r Reason, format string, args ...any) Decision {
		d.Reason, d.Detail = r, fmt.Sprintf(format, args...)
		if p == IMAP {
			d.Deferred = deferredOnIMAP[r]
		}
		return d
	}
	tok, r, detail := a.Verify(raw)
	if r != Allowed {
		return refuse(r, "%s", detail)
	}
	d.Token = tok
	t := tok.Tenant
	if !slices.Contains(exchangeAudiences, tok.Audience) {
		return refuse(TokenWrongAudience, "the token's audience is %q, not Exchange Online (%s); ask for %s/%s (delegated) or %s/.default (app-only)",
			tok.Audience, world.ExchangeResource, world.ExchangeResource, p.Scope(), world.ExchangeResourceAlias)
	}
	if tok.AppOnly {
		if !hasFold(tok.Roles, p.Role()) {
			return refuse(MissingRole, "the app-only token's roles %v lack %s: grant the application permission and admin consent", tok.Roles, p.Role())
		}
		if tok.App == nil {
			return refuse(UnknownApp, "the token's appid %s names no app of tenant %s", tok.AppID, t.Name)
		}
	} else {
		if !hasFold(tok.Scopes, p.Scope()) {
			return refuse(MissingScope, "the delegated token's scp %q lacks %s", strings.Join(tok.Scopes, " "), p.Scope())
		}
		if tok.User == nil {
			return refuse(UnknownUser, "the token's upn %q is not a user of tenant %s", tok.UPN, t.Name)
		}
	}
	var sp *world.ServicePrincipal
	if tok.AppOnly {
		if sp = t.ServicePrincipal(tok.App); sp == nil {
			return refuse(NoServicePrincipal, "app %s (%s) has no service principal in tenant %s's Exchange: run New-ServicePrincipal with its enterprise application's object id",
				tok.App.Name, tok.App.ClientID, t.Name)
		}
	}
	// The mailbox the SASL user names, in the token's tenant.
	var settings world.MailboxSettings
	user, shared := t.User(username), t.SharedMailbox(username)
	switch {
	case user != nil:
		d.Mailbox, settings = user.UPN, user.Mailbox
	case shared != nil:
		d.Mailbox, settings = shared.Address, shared.Mailbox
	default:
		return refuse(UnknownMailbox, "the SASL user %q is not a mailbox of tenant %s", username, t.Name)
	}
	if tok.AppOnly {
		if !hasFold(sp.FullAccess, d.Mailbox) {
			return refuse(NoFullAccess, "app %s's service principal has no FullAccess on %s: Add-MailboxPermission -Identity %s -User <service principal id> -AccessRights FullAccess",
				tok.App.Name, d.Mailbox, d.Mailbox)
		}
	} else if !strings.EqualFold(d.Mailbox, tok.User.UPN) {
		if shared == nil || !hasFold(shared.FullAccess, tok.User.UPN) {
			return refuse(NotMailboxOwner, "the token is %s's, and %s holds no FullAccess on mailbox %s", tok.User.UPN, tok.User.UPN, d.Mailbox)
		}
	}
	switch p {
	case IMAP:
		if settings.IMAPDisabled {
			return refuse(ProtocolDisabled, "IMAP is disabled on mailbox %s (Set-CASMailbox -ImapEnabled $false)", d.Mailbox)
		}
	case POP:
		if settings.POPDisabled {
			return refuse(ProtocolDisabled, "POP is disabled on mailbox %s (Set-CASMailbox -PopEnabled $false)", d.Mailbox)
		}
	case SMTP:
		switch {
		case settings.SMTPAuth == "disabled":
			return refuse(SMTPAuthDisabledMailbox, "SMTP AUTH is disabled on mailbox %s (Set-CASMailbox -SmtpClientAuthenticationDisabled $true)", d.Mailbox)
		case settings.SMTPAuth == "" && t.SMTPAuthDisabled:
			return refuse(SMTPAuthDisabledTenant, "SMTP AUTH is disabled for tenant %s (Set-TransportConfig -SmtpClientAuthenticationDisabled $true) and mailbox %s does not override it", t.Name, d.Mailbox)
		}
	}
	d.Detail = "access granted"
	return d
}

// deferredOnIMAP are the refusals Exchange's IMAP reports after a successful AUTHENTICATE, as "User
// is authenticated but not connected.": the token and the app are fine, the mailbox cannot be opened.
// Everything else (a bad token, a missing permission, an app without service principal —
// email-oauth2-proxy#77) is "NO AUTHENTICATE failed.". See docs/emulator.md for the sources.
var deferredOnIMAP = map[Reason]bool{
	UnknownMailbox: true, NotMailboxOwner: true, NoFullAccess: true, ProtocolDisabled: true,
}

// Refuse records a refusal decided by a protocol server without a token (a password, a malformed
// SASL message, an unsupported mechanism), logs it, and returns it.
func (a *Authorizer) Refuse(p Protocol, username string, r Reason, detail string) Decision {
	d := Decision{Protocol: p, Username: username, Reason: r, Detail: detail}
	a.logDecision(d)
	return d
}

func (a *Authorizer) logDecision(d Decision) {
	attrs := []any{"protocol", d.Protocol.String(), "user", d.Username, "reason", d.Reason.String(), "detail", d.Detail}
	if d.Token != nil {
		attrs = append(attrs, "tenant", d.Token.Tenant.Name, "appid", d.Token.AppID, "app_only", d.Token.AppOnly)
	}
	ev := events.Event{Kind: events.AuthRefused, Protocol: strings.ToLower(d.Protocol.String()), User: d.Username, Mailbox: d.Mailbox,
		Code: d.Reason.String(), Reason: d.Detail}
	if d.Token != nil {
		ev.ClientID = d.Token.AppID
		if d.Token.App != nil {
			ev.App = d.Token.App.Name
		}
	}
	if d.OK() {
		ev.Kind, ev.Code = events.AuthAccepted, ""
		a.events.Add(ev)
		a.log.Debug("exchange: access granted", attrs...)
		return
	}
	a.events.Add(ev)
	if d.Deferred {
		attrs = append(attrs, "deferred", true)
	}
	a.log.Debug("exchange: access refused", attrs...) // the event is the Info line
}

func hasFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// Package token is the small interface everything in mailoauth composes around: a Source gives valid
// access tokens for one resource, and a Refresher can also throw its token away and fetch a fresh
// one. The mail clients (imap, pop3, smtp), the Graph client and the proxy consume it; package auth
// implements it over MSAL for Go with a shared encrypted store. Adapters go both ways with
// golang.org/x/oauth2, so a token from anywhere can be used on a mail server, and an account's tokens
// can be used by any x/oauth2 consumer.
//
// This package is a leaf: it must never import MSAL, a keyring, a TOML parser or anything heavier
// than the standard library and golang.org/x/oauth2, so that a program that only needs XOAUTH2 on
// go-imap or go-smtp stays small. It never logs and never puts a token in an error.
package token

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Resource is what a token is for: Exchange Online's mail protocols or Microsoft Graph. A token for one
// is refused by the other.
type Resource string

const (
	Exchange Resource = "exchange" // IMAP, POP3, SMTP
	Graph    Resource = "graph"    // Microsoft Graph
)

// ParseResource reads a resource name ("exchange" or "graph", any case).
func ParseResource(s string) (Resource, error) {
	switch Resource(strings.ToLower(s)) {
	case Exchange:
		return Exchange, nil
	case Graph:
		return Graph, nil
	}
	return "", fmt.Errorf("unknown resource %q; use exchange or graph", s)
}

// Token is an access token and when it expires.
//
// Printing or logging a Token never shows the access token: its String, GoString and Format (every
// fmt verb, %v, %+v and %#v included), its slog form (LogValue) and its JSON show the resource, the
// expiry and "[redacted]" in its place. Read AccessToken itself where the token is really needed;
// to keep a token, copy the field into a type of your own, as its JSON form cannot be read back.
type Token struct {
	AccessToken string
	ExpiresOn   time.Time
	Resource    Resource
	// RefreshErr is set on a token served inside its refresh margin because its refresh failed
	// transiently (the identity platform is down or slow). The token itself is valid until
	// ExpiresOn. Callers count or report it; nil is the normal case. A refused refresh never comes
	// back this way: the Source fails with an error wrapping ErrLoginRequired.
	RefreshErr error
}

// redacted stands in for an access token wherever a Token is printed.
const redacted = "[redacted]"

// shown is the access token as printing shows it: "[redacted]", or "" when there is none.
func (t Token) shown() string {
	if t.AccessToken == "" {
		return ""
	}
	return redacted
}

// String describes the token without its access token: "exchange token expiring 2026-01-02T15:04:05Z
// (access token [redacted])".
func (t Token) String() string {
	s := fmt.Sprintf("%s token expiring %s (access token %s)", cmp.Or(string(t.Resource), "unknown resource"), t.ExpiresOn.UTC().Format(time.RFC3339), cmp.Or(t.shown(), "empty"))
	if t.RefreshErr != nil {
		s += "; served stale: " + t.RefreshErr.Error()
	}
	return s
}

// GoString is the %#v form, with the access token redacted.
func (t Token) GoString() string {
	return fmt.Sprintf("token.Token{AccessToken:%q, ExpiresOn:%#v, Resource:%q, RefreshErr:%#v}", t.shown(), t.ExpiresOn, t.Resource, t.RefreshErr)
}

// Format makes every fmt verb use String (and %#v GoString), so that no verb — %d or %x included —
// prints the fields one by one and the access token with them.
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, t.GoString())
		return
	}
	if verb != 'q' && verb != 'x' && verb != 'X' {
		verb = 's'
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), t.String())
}

// LogValue is the token's slog form: its resource and expiry, the access token redacted.
func (t Token) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("resource", string(t.Resource)),
		slog.Time("expires_on", t.ExpiresOn),
		slog.String("access_token", t.shown()),
	}
	if t.RefreshErr != nil {
		attrs = append(attrs, slog.String("refresh_error", t.RefreshErr.Error()))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON writes the resource and expiry, and "[redacted]" for the access token: a Token in a
// JSON log or API answer does not give the token away. A program that must hand the token on (as
// `mailoauth token --json` does) writes AccessToken into its own structure.
func (t Token) MarshalJSON() ([]byte, error) {
	v := struct {
		AccessToken  string    `json:"access_token"`
		ExpiresOn    time.Time `json:"expires_on"`
		Resource     Resource  `json:"resource"`
		RefreshError string    `json:"refresh_error,omitempty"`
	}{AccessToken: t.shown(), ExpiresOn: t.ExpiresOn, Resource: t.Resource}
	if t.RefreshErr != nil {
		v.RefreshError = t.RefreshErr.Error()
	}
	return json.Marshal(v)
}

// OAuth2 converts the token for golang.org/x/oauth2 users.
func (t *Token) OAuth2() *oauth2.Token {
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: "Bearer", Expiry: t.ExpiresOn}
}

// ErrLoginRequired means a Source holds no token that can be used or refreshed without the user:
// someone must sign in again (the refresh token was revoked or has expired, or nobody ever signed
// in). Test for it with errors.Is.
var ErrLoginRequired = errors.New("login required")

// Source gives valid access tokens for one resource, refreshing silently. It never prompts: when
// nothing can be refreshed it returns an error wrapping ErrLoginRequired.
type Source interface {
	Token(ctx context.Context) (*Token, error)
}

// Refresher is a Source that can throw its token away and fetch a fresh one. Mail clients use it
// to retry once when a server refuses a token the cache thought valid.
type Refresher interface {
	Source
	Refresh(ctx context.Context) (*Token, error)
}

// Static always returns t: for a token obtained elsewhere. Its ExpiresOn is not checked.
func Static(t *Token) Source { return staticSource{t} }

type staticSource struct{ t *Token }

func (s staticSource) Token(context.Context) (*Token, error) { return s.t, nil }

// OAuth2 adapts a Source to golang.org/x/oauth2, whose Token takes no context: ctx is used for every
// call. The result can be wrapped in oauth2.ReuseTokenSource or given to oauth2.NewClient.
func OAuth2(ctx context.Context, s Source) oauth2.TokenSource { return oauth2Source{ctx, s} }

type oauth2Source struct {
	ctx context.Context
	s   Source
}

func (o oauth2Source) Token() (*oauth2.Token, error) {
	t, err := o.s.Token(o.ctx)
	if err != nil {
		return nil, err
	}
	return t.OAuth2(), nil
}

// FromOAuth2 adapts a golang.org/x/oauth2 TokenSource (any identity library's, or a
// clientcredentials.Config's) to a Source of tokens for r. x/oauth2 sources take no context; ctx of
// Token is not passed on.
func FromOAuth2(ts oauth2.TokenSource, r Resource) Source { return fromOAuth2{ts, r} }

type fromOAuth2 struct {
	ts oauth2.TokenSource
	r  Resource
}

func (f fromOAuth2) Token(ctx context.Context) (*Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := f.ts.Token()
	if err != nil {
		return nil, err
	}
	if t.AccessToken == "" {
		return nil, errors.New("the oauth2 token source returned a token with no access token")
	}
	return &Token{AccessToken: t.AccessToken, ExpiresOn: t.Expiry, Resource: f.r}, nil
}

// RetryRefused presents the source's token with attempt, and when the server refused it (refused(err))
// and the source can refresh, presents a fresh one once more: a token the cache thought valid may have
// been revoked, or issued before a permission was granted. retried says the second try happened (and
// succeeded, when err is nil). A refresh failure returns the server's refusal, which is the news.
func RetryRefused(ctx context.Context, s Source, attempt func(*Token) error, refused func(error) bool) (retried bool, err error) {
	if s == nil {
		return false, errors.New("the token source is nil: give a token.Source, such as token.Static or an account's TokenSource")
	}
	tok, err := s.Token(ctx)
	if err != nil {
		return false, err
	}
	if err := usable(tok); err != nil {
		return false, err
	}
	err = attempt(tok)
	if err == nil || !refused(err) {
		return false, err
	}
	r, ok := s.(Refresher)
	if !ok {
		return false, err
	}
	fresh, rerr := r.Refresh(ctx)
	if rerr != nil {
		return false, err
	}
	if uerr := usable(fresh); uerr != nil {
		return false, uerr
	}
	return true, attempt(fresh)
}

// usable refuses what a Source must never return without an error: no token, or one with no access
// token (a server would only refuse it, and say less about why).
func usable(t *Token) error {
	switch {
	case t == nil:
		return errors.New("the token source returned neither a token nor an error: a Source must return one of them")
	case t.AccessToken == "":
		return errors.New("the token source returned a token with an empty AccessToken: a Source must return a token or an error")
	}
	return nil
}

// Protocol names an account's servers take (Account.Server).
const (
	IMAP     = "imap"
	POP      = "pop"
	SMTP     = "smtp"
	GraphAPI = "graph"
)

// Account is what the mail clients' ForAccount functions need to know about an account: where its
// servers are, which mailbox it opens and with which SASL mechanism, which CAs it trusts, and its
// tokens. Package auth's *Account implements it; so can any type of the caller's.
type Account interface {
	// Server is the host:port of protocol IMAP, POP or SMTP, or the API root URL of GraphAPI.
	Server(protocol string) string
	// Mailbox is the mailbox to open, which is also the SASL user name.
	Mailbox() string
	// Mechanism is "XOAUTH2" or "OAUTHBEARER".
	Mechanism() string
	// TLSConfig holds the CAs to trust (nil RootCAs: the system's); verification is never off.
	TLSConfig() *tls.Config
	// TokenSource gives the account's tokens for r.
	TokenSource(r Resource) Source
	// AppOnly reports whether the tokens are the application's own (no signed-in user).
	AppOnly() bool
	// OtherMailbox reports whether a delegated account opens a mailbox other than its user's own
	// (a shared mailbox): Graph then addresses it by name.
	OtherMailbox() bool
}

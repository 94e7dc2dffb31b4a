// Package imap opens authenticated IMAP connections with OAuth 2.0 access tokens: dial, TLS (implicit
// or STARTTLS), capabilities, AUTHENTICATE over XOAUTH2 or OAUTHBEARER, and one retry with a fresh
// token when the server refuses one that looked valid. What Dial returns is emersion/go-imap/v2's
// *imapclient.Client, authenticated: everything after login is go-imap's.
//
// Options take any token.Source (one of package auth's accounts, or an x/oauth2 token source through
// token.FromOAuth2); ForAccount fills them from a token.Account. A failure is a *mailerr.Error naming
// the step and carrying the server's words.
//
// It must never send a token before TLS is up, never let a server that drops STARTTLS downgrade the
// connection to plain text, and never put a token in an error or a trace.
package imap

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/token"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/trace"
)

// Options describe one connection.
type Options struct {
	// Addr is the server's host:port, e.g. "outlook.office365.com:993".
	Addr string
	// TLS is how TLS starts; the zero value, dial.Auto, follows the port (STARTTLS on 143, implicit TLS otherwise).
	TLS dial.Mode
	// TLSConfig adds CAs or a client certificate; nil means the system's roots. Verification is
	// always on.
	TLSConfig *tls.Config
	// Username is the SASL user: the address of the mailbox to open.
	Username string
	// Mechanism is sasl.XOAuth2 (the default, what Exchange Online takes) or sasl.OAuthBearer.
	Mechanism string
	// Tokens (required) gives the access tokens, for Exchange's resource (token.Exchange) when the server is
	// Exchange Online. If it is also a token.Refresher, a token the server refuses is replaced once.
	Tokens token.Source
	// Trace, if set, is told each step of the connection as it ends.
	Trace trace.Func
	// Timeout bounds dialling and authenticating together; zero means dial.DefaultTimeout.
	Timeout time.Duration
}

// ForAccount returns the options for an account's IMAP server (*auth.Account is a
// token.Account; so can be a type of the caller's): its address and CAs, its mailbox as the SASL user,
// its mechanism and its Exchange tokens. TLS is left at dial.Auto, which follows the port.
func ForAccount(a token.Account) Options {
	return Options{Addr: a.Server(token.IMAP), TLSConfig: a.TLSConfig(), Username: a.Mailbox(), Tokens: a.TokenSource(token.Exchange), Mechanism: a.Mechanism()}
}

// NewError describes the failure of a step of an IMAP session (a command such as "SELECT INBOX") as
// a *mailerr.Error, with the server's own words ("NO ...") when err is go-imap's error for its reply.
func NewError(step string, err error) *mailerr.Error {
	return &mailerr.Error{Protocol: "IMAP", Step: step, Server: serverText(err), Err: err}
}

// Dial connects, secures and authenticates. The returned client is authenticated; close it with
// Logout (or Close).
func Dial(ctx context.Context, o Options) (*imapclient.Client, error) {
	if o.Tokens == nil {
		return nil, errors.New("imap.Options.Tokens is nil: set it to a token.Source, such as token.Static(tok) or an account's TokenSource(token.Exchange)")
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(o.Timeout, dial.DefaultTimeout))
	defer cancel()
	mode := o.TLS.For(token.IMAP, o.Addr)
	conn, tlsCfg, err := dial.Open(ctx, o.Addr, dial.Options{Mode: mode, TLSConfig: o.TLSConfig, Trace: o.Trace})
	if err != nil {
		return nil, err
	}
	opts := &imapclient.Options{TLSConfig: tlsCfg}
	var c *imapclient.Client
	if mode == dial.StartTLS {
		if err := o.Trace.Do("starttls", func() (string, error) {
			c, err = imapclient.NewStartTLS(conn, opts)
			if err != nil {
				return "", NewError("STARTTLS", err)
			}
			return "upgraded to TLS", nil
		}); err != nil {
			return nil, err
		}
	} else {
		c = imapclient.New(conn, opts)
	}
	fail := func(err error) (*imapclient.Client, error) {
		c.Close()
		return nil, err
	}
	if err := o.Trace.Do("greeting", func() (string, error) {
		if err := c.WaitGreeting(); err != nil {
			return "", NewError("greeting", err)
		}
		return "OK", nil
	}); err != nil {
		return fail(err)
	}
	mech := o.Mechanism
	if mech == "" {
		mech = sasl.XOAuth2
	}
	if err := o.Trace.Do("capabilities", func() (string, error) {
		caps, err := c.Capability().Wait()
		if err != nil {
			return "", NewError("CAPABILITY", err)
		}
		names := capNames(caps)
		if !caps.Has(goimap.Cap("AUTH=" + mech)) {
			return "", NewError("capabilities", fmt.Errorf("the server does not offer AUTH=%s (it offers: %s)", mech, names))
		}
		return names, nil
	}); err != nil {
		return fail(err)
	}
	if err := authenticate(ctx, c, o, mech); err != nil {
		return fail(err)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// authenticate runs AUTHENTICATE, and once more with a fresh token if the first is refused and the
// token source can refresh: a token the cache thought valid may have been revoked, or issued before a
// permission was granted.
func authenticate(ctx context.Context, c *imapclient.Client, o Options, mech string) error {
	attempt := func(tok *token.Token) error {
		cl := sasl.NewClient(mech, o.Username, tok.AccessToken, o.Addr)
		if err := c.Authenticate(cl); err != nil {
			e := NewError("AUTHENTICATE "+mech, err)
			e.Challenge = cl.ServerError()
			return e
		}
		return nil
	}
	return o.Trace.Do("authenticate", func() (string, error) {
		retried, err := token.RetryRefused(ctx, o.Tokens, attempt, func(err error) bool {
			var ie *mailerr.Error
			return errors.As(err, &ie) && ie.Server != ""
		})
		return trace.AuthDetail(mech, o.Username, retried), err
	})
}

// serverText is the server's own words from a go-imap error: "NO AUTHENTICATE failed.".
func serverText(err error) string {
	var ie *goimap.Error
	if errors.As(err, &ie) {
		return strings.TrimSpace(string(ie.Type) + " " + ie.Text)
	}
	return ""
}

func capNames(caps goimap.CapSet) string {
	var names []string
	for c := range caps {
		names = append(names, string(c))
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

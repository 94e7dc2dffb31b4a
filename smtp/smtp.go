// Package smtp opens authenticated SMTP submission connections with OAuth 2.0 access tokens: STARTTLS
// (587) or implicit TLS (465), the server's EHLO capabilities, AUTH over XOAUTH2 or OAUTHBEARER, and
// one retry with a fresh token when the server refuses one that looked valid. What Dial returns is
// emersion/go-smtp's *smtp.Client, authenticated, ready for Mail, Rcpt and Data (or package mail's
// SMTPSender).
//
// Options take any token.Source (one of package auth's accounts, or an x/oauth2 token source through
// token.FromOAuth2); ForAccount fills them from a token.Account. A failure is a *mailerr.Error naming
// the step and carrying the server's reply.
//
// It must never send a token before TLS is up, never let a server that drops STARTTLS downgrade the
// connection to plain text, and never put a token in an error or a trace.
package smtp

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/token"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/trace"
)

// Options describe one connection.
type Options struct {
	// Addr is the server's host:port, e.g. "smtp.office365.com:587".
	Addr string
	// TLS is how TLS starts; the zero value, dial.Auto, follows the port (implicit TLS on 465, STARTTLS otherwise).
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
	// LocalName is sent in EHLO; empty means "localhost".
	LocalName string
}

// ForAccount returns the options for an account's submission server (*auth.Account is a
// token.Account; so can be a type of the caller's): its address and CAs, its mailbox as the SASL user,
// its mechanism and its Exchange tokens. TLS is left at dial.Auto, which follows the port.
func ForAccount(a token.Account) Options {
	return Options{Addr: a.Server(token.SMTP), TLSConfig: a.TLSConfig(), Username: a.Mailbox(), Tokens: a.TokenSource(token.Exchange), Mechanism: a.Mechanism()}
}

// NewError is the SMTP server's refusal of step, with its reply when err carries it (ServerText).
func NewError(step string, err error) *mailerr.Error {
	return &mailerr.Error{Protocol: "SMTP", Step: step, Server: ServerText(err), Err: err}
}

// ServerText renders a go-smtp error as the server's reply line.
func ServerText(err error) string {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		s := strconv.Itoa(se.Code)
		if se.EnhancedCode != (gosmtp.EnhancedCode{}) && se.EnhancedCode != gosmtp.NoEnhancedCode {
			s += fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		return s + " " + se.Message
	}
	return ""
}

// Dial connects, secures and authenticates.
func Dial(ctx context.Context, o Options) (*gosmtp.Client, error) {
	if o.Tokens == nil {
		return nil, errors.New("smtp.Options.Tokens is nil: set it to a token.Source, such as token.Static(tok) or an account's TokenSource(token.Exchange)")
	}
	o.Timeout = cmp.Or(o.Timeout, dial.DefaultTimeout)
	o.LocalName = cmp.Or(o.LocalName, "localhost")
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	mode := o.TLS.For(token.SMTP, o.Addr)
	conn, tlsCfg, err := dial.Open(ctx, o.Addr, dial.Options{Mode: mode, TLSConfig: o.TLSConfig, Trace: o.Trace})
	if err != nil {
		return nil, err
	}
	var c *gosmtp.Client
	if mode == dial.StartTLS {
		// go-smtp reads the greeting, says EHLO, refuses a server without STARTTLS, and upgrades.
		if err := o.Trace.Do("starttls", func() (string, error) {
			var err error
			c, err = gosmtp.NewClientStartTLS(conn, tlsCfg)
			if err != nil {
				return "", NewError("STARTTLS", err)
			}
			return "STARTTLS accepted", nil
		}); err != nil {
			conn.Close()
			return nil, err
		}
	} else {
		c = gosmtp.NewClient(conn)
	}
	// go-smtp sets each command's deadline itself (5 minutes by default): make it ours.
	c.CommandTimeout = o.Timeout
	fail := func(err error) (*gosmtp.Client, error) {
		c.Close()
		return nil, err
	}
	if err := o.Trace.Do("ehlo", func() (string, error) {
		if err := c.Hello(o.LocalName); err != nil && !strings.Contains(err.Error(), "Hello called after other methods") {
			return "", NewError("EHLO", err)
		}
		// The TLS handshake after STARTTLS happens with this first command, so it is reported here.
		if st, ok := c.TLSConnectionState(); ok && st.HandshakeComplete {
			return "EHLO " + o.LocalName + " over " + tls.VersionName(st.Version) + ", certificate for " + tlsCfg.ServerName + " verified", nil
		}
		return "EHLO " + o.LocalName, nil
	}); err != nil {
		return fail(err)
	}
	mech := o.Mechanism
	if mech == "" {
		mech = sasl.XOAuth2
	}
	if err := o.Trace.Do("capabilities", func() (string, error) {
		ok, params := c.Extension("AUTH")
		if !ok || !c.SupportsAuth(mech) {
			return "", NewError("capabilities", fmt.Errorf("the server does not offer AUTH %s (it offers AUTH %q)", mech, params))
		}
		return "AUTH " + params, nil
	}); err != nil {
		return fail(err)
	}
	if err := o.Trace.Do("authenticate", func() (string, error) {
		retried, err := token.RetryRefused(ctx, o.Tokens, func(t *token.Token) error { return authOnce(c, o, mech, t) },
			func(err error) bool {
				var se *mailerr.Error
				return errors.As(err, &se) && strings.HasPrefix(se.Server, "535")
			})
		return trace.AuthDetail(mech, o.Username, retried), err
	}); err != nil {
		return fail(err)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func authOnce(c *gosmtp.Client, o Options, mech string, tok *token.Token) error {
	cl := sasl.NewClient(mech, o.Username, tok.AccessToken, o.Addr)
	// Two steps (AUTH XOAUTH2, 334, credentials), as Microsoft documents it: a token does not fit on
	// the AUTH line of every server (Postfix cuts lines at 2,048 bytes).
	cl.TwoStep()
	if err := c.Auth(cl); err != nil {
		e := NewError("AUTH "+mech, err)
		e.Challenge = cl.ServerError()
		return e
	}
	return nil
}

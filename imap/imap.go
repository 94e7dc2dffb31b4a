// Package imap opens authenticated IMAP connections for an account: dial, TLS (implicit or STARTTLS,
// verification on, a server that will not STARTTLS is an error, never a downgrade), capabilities,
// AUTHENTICATE with the account's token over XOAUTH2 or OAUTHBEARER, and a retry with a fresh token
// when the server refuses one the cache thought valid. It is built on emersion/go-imap/v2's imapclient;
// what the caller gets is that client, authenticated.
//
// It must never send a token before TLS is up, nor put one in an error or a trace.
package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/dial"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/trace"
)

// Options describe one connection.
type Options struct {
	Addr      string // host:port
	TLS       dial.Mode
	TLSConfig *tls.Config // CAs; nil: the system's
	Username  string      // the SASL user: the mailbox to open
	Mechanism string      // sasl.XOAuth2 (default) or sasl.OAuthBearer
	Tokens    auth.TokenSource
	Trace     trace.Func
	Timeout   time.Duration // whole dial + authenticate; default 60 s
}

// ForAccount returns the options for an account's IMAP server: implicit TLS unless the port is 143.
func ForAccount(a *auth.Account) Options {
	addr := a.Server(config.ProtocolIMAP)
	mode := dial.Implicit
	if _, port, _ := net.SplitHostPort(addr); port == "143" {
		mode = dial.StartTLS
	}
	return Options{Addr: addr, TLS: mode, TLSConfig: a.TLSConfig(), Username: a.Mailbox(), Tokens: a.TokenSource(auth.Exchange), Mechanism: a.Mechanism()}
}

// Error is a refusal by the server, with its exact words.
type Error struct {
	Step   string // "starttls", "capabilities", "authenticate", ...
	Server string // the server's response text, as sent
	// Challenge is the server's SASL error challenge, if it sent one (Dovecot does, Exchange does not).
	Challenge *sasl.ServerError
	Err       error
}

func (e *Error) Error() string {
	s := "IMAP " + e.Step + " refused"
	if e.Server != "" {
		s += ": server said " + e.Server
	} else if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Challenge != nil {
		s += " (" + e.Challenge.Error() + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Dial connects, secures and authenticates. The returned client is authenticated; close it with
// Logout (or Close).
func Dial(ctx context.Context, o Options) (*imapclient.Client, error) {
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tlsCfg := dial.TLSConfig(o.TLSConfig, o.Addr)
	conn, err := dial.Dial(ctx, o.Addr, o.TLS, tlsCfg, o.Trace)
	if err != nil {
		return nil, err
	}
	// The deadline covers the handshake and authentication; commands after that are the caller's.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	opts := &imapclient.Options{TLSConfig: tlsCfg}
	var c *imapclient.Client
	if o.TLS == dial.StartTLS {
		if err := o.Trace.Do("starttls", func() (string, error) {
			c, err = imapclient.NewStartTLS(conn, opts)
			if err != nil {
				return "", &Error{Step: "STARTTLS", Err: err, Server: ServerText(err)}
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
			return "", &Error{Step: "greeting", Err: err, Server: ServerText(err)}
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
			return "", &Error{Step: "CAPABILITY", Err: err, Server: ServerText(err)}
		}
		names := capNames(caps)
		if !caps.Has(goimap.Cap("AUTH=" + mech)) {
			return "", &Error{Step: "capabilities", Err: fmt.Errorf("the server does not offer AUTH=%s (it offers: %s)", mech, names)}
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
	attempt := func(tok *auth.Token) error {
		cl := sasl.NewClient(mech, o.Username, tok.AccessToken, o.Addr)
		if err := c.Authenticate(cl); err != nil {
			return &Error{Step: "AUTHENTICATE " + mech, Err: err, Server: ServerText(err), Challenge: cl.ServerError()}
		}
		return nil
	}
	return o.Trace.Do("authenticate", func() (string, error) {
		retried, err := auth.RetryRefused(ctx, o.Tokens, attempt, func(err error) bool {
			var ie *Error
			return errors.As(err, &ie) && ie.Server != ""
		})
		return trace.AuthDetail(mech, o.Username, retried), err
	})
}

// ServerText is the server's own words from a go-imap error: "NO AUTHENTICATE failed.".
func ServerText(err error) string {
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

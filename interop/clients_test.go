//go:build unix

package interop

// The clients the tests drive the servers with: mailoauth's own SASL mechanisms (package sasl) inside
// go-imap v2's imapclient and go-smtp's client, and mailoauth's own POP3 client (package pop3), which
// runs XOAUTH2 and OAUTHBEARER with the same sasl package.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/token"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/pop3"
	"github.com/mailoauth/mailoauth/sasl"
)

// login is one authentication attempt: its error, and the server's error challenge the client kept.
type login struct {
	err       error
	challenge *sasl.ServerError
	// use proves the session is a real one (SELECT INBOX / STAT / MAIL FROM) and ends it; nil after
	// a refusal.
	use func(user string) error
}

// transport is a way in: a server port, how mailoauth's client logs in there, and what a clean
// refusal looks like.
type transport struct {
	name    string
	postfix bool
	port    func(*lab) int
	login   func(l *lab, mech, user, token string) login
	// refusal returns nil if err is the protocol's ordinary "authentication failed" answer.
	refusal func(err error) error
}

const ioTimeout = 15 * time.Second

var transports = []transport{
	{
		name: "IMAPS", port: func(l *lab) int { return l.ports.IMAPS },
		login: func(l *lab, mech, user, token string) login {
			c, err := imapclient.DialTLS(addr(l.ports.IMAPS), l.imapOptions())
			return imapLogin(c, err, newSASL(mech, user, token, l.ports.IMAPS))
		},
		refusal: imapRefusal,
	},
	{
		name: "IMAP-STARTTLS", port: func(l *lab) int { return l.ports.IMAP },
		login: func(l *lab, mech, user, token string) login {
			c, err := imapclient.DialStartTLS(addr(l.ports.IMAP), l.imapOptions())
			return imapLogin(c, err, newSASL(mech, user, token, l.ports.IMAP))
		},
		refusal: imapRefusal,
	},
	{
		name: "POP3S", port: func(l *lab) int { return l.ports.POP3S },
		login: func(l *lab, mech, user, token string) login {
			c, err := dialPOP3(l, mech, user, token)
			if err != nil {
				var pe *mailerr.Error
				if errors.As(err, &pe) {
					return login{err: err, challenge: pe.Challenge}
				}
				return login{err: err}
			}
			return login{use: func(string) error {
				defer c.Close()
				if _, _, err := c.Stat(); err != nil {
					return fmt.Errorf("STAT: %w", err)
				}
				return c.Quit()
			}}
		},
		refusal: func(err error) error {
			var pe *mailerr.Error
			if errors.As(err, &pe) && strings.HasPrefix(pe.Step, "AUTH ") && strings.HasPrefix(pe.Server, "-ERR [AUTH] ") {
				return nil
			}
			return fmt.Errorf("not a clean POP3 refusal (-ERR [AUTH]): %v", err)
		},
	},
	{
		name: "SMTP-submission-STARTTLS", postfix: true, port: func(l *lab) int { return l.ports.Submission },
		login: func(l *lab, mech, user, token string) login {
			c, err := smtp.DialStartTLS(addr(l.ports.Submission), l.tlsConfig())
			if err != nil {
				return login{err: fmt.Errorf("connect: %w", err)}
			}
			c.CommandTimeout, c.SubmissionTimeout = ioTimeout, ioTimeout
			sc := newSASL(mech, user, token, l.ports.Submission)
			if err := c.Auth(sc); err != nil {
				c.Close()
				return login{err: err, challenge: sc.ServerError()}
			}
			return login{challenge: sc.ServerError(), use: func(user string) error {
				defer c.Close()
				if err := c.Mail(user, nil); err != nil {
					return fmt.Errorf("MAIL FROM: %w", err)
				}
				if err := c.Reset(); err != nil {
					return err
				}
				return c.Quit()
			}}
		},
		refusal: func(err error) error {
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Code == 535 {
				return nil
			}
			return fmt.Errorf("not a clean SMTP refusal (535): %v", err)
		},
	},
}

func imapLogin(c *imapclient.Client, err error, sc *sasl.Client) login {
	if err != nil {
		return login{err: fmt.Errorf("connect: %w", err)}
	}
	if err := c.Authenticate(sc); err != nil {
		c.Close()
		return login{err: err, challenge: sc.ServerError()}
	}
	return login{challenge: sc.ServerError(), use: func(string) error {
		defer c.Close()
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			return fmt.Errorf("SELECT INBOX: %w", err)
		}
		return c.Logout().Wait()
	}}
}

// dialPOP3 is mailoauth's POP3 client over implicit TLS, with a fixed token.
func dialPOP3(l *lab, mech, user, tok string) (*pop3.Client, error) {
	return pop3.Dial(context.Background(), pop3.Options{
		Addr: addr(l.ports.POP3S), TLS: dial.Implicit, TLSConfig: l.tlsConfig(),
		Username: user, Mechanism: mech, Timeout: ioTimeout,
		Tokens: token.Static(&token.Token{AccessToken: tok, ExpiresOn: time.Now().Add(time.Hour)}),
	})
}

func (l *lab) imapOptions() *imapclient.Options {
	return &imapclient.Options{TLSConfig: l.tlsConfig(), Dialer: &net.Dialer{Timeout: ioTimeout}}
}

// newSASL is mailoauth's client for a mechanism.
func newSASL(mech, user, token string, port int) *sasl.Client {
	if mech == sasl.XOAuth2 {
		return sasl.NewXOAuth2Client(user, token)
	}
	return sasl.NewOAuthBearerClient(user, token, "localhost", port)
}

func imapRefusal(err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo && ie.Code == imap.ResponseCodeAuthenticationFailed {
		return nil
	}
	return fmt.Errorf("not a clean IMAP refusal (NO [AUTHENTICATIONFAILED]): %v", err)
}

// fetchByMessageID returns the whole message (BODY.PEEK[]) whose Message-ID is id, or nil.
func fetchByMessageID(c *imapclient.Client, id string) ([]byte, error) {
	return fetchByHeader(c, "Message-ID", id)
}

// fetchByHeader returns the whole message (BODY.PEEK[]) of the INBOX whose header field key holds
// value, or nil.
func fetchByHeader(c *imapclient.Client, key, value string) ([]byte, error) {
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return nil, err
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: key, Value: value}}}, nil).Wait()
	if err != nil {
		return nil, err
	}
	uids := found.AllUIDs()
	if len(uids) == 0 {
		return nil, nil
	}
	if len(uids) > 1 {
		return nil, fmt.Errorf("%d messages with %s %s", len(uids), key, value)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(uids[0]), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("FETCH returned %d messages", len(msgs))
	}
	return msgs[0].FindBodySection(section), nil
}

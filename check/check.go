// Package check does what a real mail client does, for each protocol of an account — token, resolve,
// connect, TLS, capabilities, authenticate, and the first command that needs the mailbox (SELECT INBOX,
// STAT, MAIL FROM + RSET) — and reports every step with its time and outcome, the server's exact words
// on failure, and the likely cause where it is known. Exchange can accept AUTHENTICATE and fail the
// next command ("User is authenticated but not connected"), which is why the mailbox command is part of
// the check. The doctor builds on it (Connect). Failures are explained by the one catalogue of
// findings, package doctor/catalog, from the error, the server's words and the token's claims. It
// never prints a token: it reads the token's claims to explain.
package check

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/pop3"
	"github.com/mailoauth/mailoauth/smtp"
	"github.com/mailoauth/mailoauth/trace"
)

// Result is one protocol's check.
type Result struct {
	Protocol string       `json:"protocol"`
	Server   string       `json:"server"` // host:port checked
	OK       bool         `json:"ok"`
	Steps    []trace.Step `json:"steps"`
	// On failure: the server's exact words (when it said something), and what probably causes it:
	// the catalogue's finding, and the same on one line ("cause: fix").
	Said    string           `json:"server_said,omitempty"`
	Cause   string           `json:"likely_cause,omitempty"`
	Finding *catalog.Finding `json:"finding,omitempty"`
	// Err is the failure itself, for callers that tell a configuration problem from a refusal.
	Err error `json:"-"`
}

// Report is a whole check.
type Report struct {
	Account string   `json:"account"`
	OK      bool     `json:"ok"`
	Results []Result `json:"protocols"`
}

// Protocols is what "all" means: every protocol a check can walk, in the order Run reports them. Each
// call returns a new slice, which the caller may change.
func Protocols() []string {
	return []string{config.ProtocolIMAP, config.ProtocolPOP, config.ProtocolSMTP, config.ProtocolGraph}
}

// Run checks the protocols in order; each runs even if another failed.
func Run(ctx context.Context, a *auth.Account, protocols []string) Report {
	rep := Report{Account: a.Name(), OK: true}
	for _, p := range protocols {
		r := one(ctx, a, p)
		rep.OK = rep.OK && r.OK
		rep.Results = append(rep.Results, r)
	}
	return rep
}

// stepTimeout bounds a whole protocol's check: the clients' own deadlines cover dialing and
// authenticating, this covers the mailbox command after them.
const stepTimeout = 2 * time.Minute

func one(ctx context.Context, a *auth.Account, protocol string) Result {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var rec trace.Recorder
	t := rec.Func()
	r := Result{Protocol: protocol, Server: a.Server(protocol)}
	var claims *catalog.Claims
	err := t.Do("token", func() (string, error) {
		tok, err := a.Token(ctx, resourceOf(protocol))
		if err != nil {
			return "", err
		}
		claims, _ = catalog.ParseClaims(tok.AccessToken)
		return Summary(claims, tok.ExpiresOn), nil
	})
	if err == nil {
		err = Connect(ctx, a, protocol, t)
	}
	r.Steps, r.OK, r.Err = rec.Steps, err == nil, err
	if err != nil {
		r.Said = catalog.ServerSaid(err)
		if f, ok := catalog.Explain(catalog.For(a), catalog.Failure{Protocol: protocol, Addr: r.Server, Claims: claims, Err: err}); ok {
			r.Finding, r.Cause = &f, f.String()
		}
	}
	return r
}

// Connect does, for one protocol of an account, what a real client does after getting its token:
// resolve, connect, TLS, capabilities, authenticate, and the first command that needs the mailbox,
// each step reported to t. The doctor runs its connection links with it.
func Connect(ctx context.Context, a *auth.Account, protocol string, t trace.Func) error {
	switch protocol {
	case config.ProtocolIMAP:
		o := imap.ForAccount(a)
		o.Trace = t
		c, err := imap.Dial(ctx, o)
		if err != nil {
			return err
		}
		defer c.Close()
		defer context.AfterFunc(ctx, func() { c.Close() })() // Ctrl-C ends a stuck command
		err = t.Do("select INBOX", func() (string, error) {
			d, err := c.Select("INBOX", nil).Wait()
			if err != nil {
				return "", imap.NewError("SELECT INBOX", err)
			}
			return fmt.Sprintf("%d messages", d.NumMessages), nil
		})
		if err == nil {
			_ = c.Logout().Wait()
		}
		return err
	case config.ProtocolPOP:
		o := pop3.ForAccount(a)
		o.Trace = t
		c, err := pop3.Dial(ctx, o)
		if err != nil {
			return err
		}
		defer c.Close()
		defer context.AfterFunc(ctx, func() { c.Close() })()
		err = t.Do("stat", func() (string, error) {
			n, size, err := c.Stat()
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d messages, %d bytes", n, size), nil
		})
		if err == nil {
			_ = c.Quit()
		}
		return err
	case config.ProtocolSMTP:
		o := smtp.ForAccount(a)
		o.Trace = t
		c, err := smtp.Dial(ctx, o)
		if err != nil {
			return err
		}
		defer c.Close()
		defer context.AfterFunc(ctx, func() { c.Close() })()
		err = t.Do("mail from", func() (string, error) {
			if err := c.Mail(a.Mailbox(), nil); err != nil {
				return "", smtp.NewError("MAIL FROM", err)
			}
			if err := c.Reset(); err != nil {
				return "", smtp.NewError("RSET", err)
			}
			return "MAIL FROM:<" + a.Mailbox() + "> accepted, then RSET", nil
		})
		if err == nil {
			_ = c.Quit()
		}
		return err
	case config.ProtocolGraph:
		// Graph is HTTPS: resolve, connect and TLS happen inside the request; the mailbox step is the
		// folder list, which needs the token, the permission and the mailbox all to be right.
		c := graph.ForAccount(a)
		return t.Do("list folders", func() (string, error) {
			folders, err := c.Folders(ctx)
			if err != nil {
				return "", err
			}
			for _, f := range folders {
				if strings.EqualFold(f.DisplayName, "Inbox") {
					return fmt.Sprintf("%d folders; Inbox has %d messages (%d unread)", len(folders), f.TotalItemCount, f.UnreadItemCount), nil
				}
			}
			return fmt.Sprintf("%d folders", len(folders)), nil
		})
	}
	return fmt.Errorf("checking %s is not supported", protocol)
}

// Summary describes a token for a trace step: its claims (or that it is opaque) and its expiry.
func Summary(c *catalog.Claims, exp time.Time) string {
	if c == nil {
		return "opaque token (not a JWT), expires in " + time.Until(exp).Round(time.Second).String()
	}
	s := c.Summary(time.Now())
	if c.NotAfter.IsZero() {
		s += ", expires in " + time.Until(exp).Round(time.Second).String()
	}
	return s
}

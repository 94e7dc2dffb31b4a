package smtpgw

import (
	"context"
	"errors"
	"io"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/graph"
)

// loginTimeout bounds the proxy's check of a password and the opening of the mailbox.
const loginTimeout = 2 * time.Minute

// session is one SMTP session (go-smtp starts another after STARTTLS, without the login).
type session struct {
	s     *Server
	c     *conn
	mb    *gateway.Mailbox
	rcpts []string
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	wc := connOf(c)
	if wc == nil {
		return nil, errors.New("smtpgw: the connection was not handed over by the proxy")
	}
	return &session{s: s, c: wc}, nil
}

var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: log in with AUTH first (this server sends mail only for its users; it is not a relay)"}
	errAuthTwice = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Already authenticated"}
	errIdentity  = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "AUTH PLAIN with an authorization identity other than the user name is not supported: leave it empty"}
)

// AuthMechanisms are PLAIN and LOGIN: the program's password is the proxy's, checked by it.
func (se *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

// Auth starts a mechanism.
func (se *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, password string) error {
			if identity != "" && !strings.EqualFold(identity, user) {
				return errIdentity
			}
			return se.login(user, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: se.login}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// login has the proxy check the password and open the mailbox.
func (se *session) login(user, password string) error {
	if se.mb != nil {
		return errAuthTwice
	}
	ctx, cancel := context.WithTimeout(se.c.ctx, loginTimeout)
	defer cancel()
	mb, err := se.c.h.Login(ctx, user, password)
	if err != nil || mb == nil {
		le := gateway.AsLoginError(err)
		se.s.o.Log.Info("smtp gateway: login refused", "user", user, "remote", se.c.RemoteAddr().String(), "temporary", le.Temporary)
		if le.Temporary {
			return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: le.Msg}
		}
		return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: le.Msg}
	}
	se.mb = mb
	se.c.mu.Lock()
	se.c.mb = mb
	se.c.mu.Unlock()
	se.s.o.Log.Info("smtp gateway: logged in", "user", user, "mailbox", mb.Address, "remote", se.c.RemoteAddr().String())
	return nil
}

// Mail starts a message.
func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	if se.mb == nil {
		return errAuthRequired
	}
	if opts != nil && opts.Size > se.s.o.Gateway.MaxMessage {
		return smtp.ErrDataTooLarge
	}
	se.rcpts = nil
	return nil
}

// Rcpt adds a recipient.
func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if se.mb == nil {
		return errAuthRequired
	}
	if !validRecipient(to) {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	}
	se.rcpts = append(se.rcpts, to)
	return nil
}

// validRecipient says whether RCPT TO gave an address (local@domain).
func validRecipient(to string) bool {
	a, err := netmail.ParseAddress("<" + to + ">")
	return err == nil && a.Address == to
}

// Data spools the message, makes the envelope's recipients its recipients, and sends it through
// Graph.
func (se *session) Data(r io.Reader) error {
	if se.mb == nil {
		return errAuthRequired
	}
	sp, err := spool(r, se.s.o.SpoolDir)
	if err != nil {
		var se2 *smtp.SMTPError
		if errors.As(err, &se2) {
			return se2
		}
		se.s.o.Log.Warn("smtp gateway: the message could not be spooled", "mailbox", se.mb.Address, "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "The message could not be stored for sending; try again later"}
	}
	defer sp.Close()
	msg, size, err := envelopeHeaders(sp, se.rcpts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(se.c.ctx, se.s.o.SubmitTimeout)
	defer cancel()
	o := graph.MIMEOptions{DontSaveToSentItems: se.s.o.Gateway.DontSaveToSentItems || se.mb.Options.DontSaveToSentItems}
	start := time.Now()
	if err := se.mb.Graph.SendMIMEFrom(ctx, msg, size, o); err != nil {
		return se.refusal(err)
	}
	se.s.o.Log.Info("smtp gateway: message sent", "mailbox", se.mb.Address, "recipients", len(se.rcpts), "size", size,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Reset forgets the message being given.
func (se *session) Reset() { se.rcpts = nil }

// Logout ends the session; the connection's end is told by conn.Close.
func (se *session) Logout() error { return nil }

// loginServer is SASL LOGIN's server side (draft-murchison-sasl-login): "Username:" and "Password:"
// challenges, or the user name as the initial response.
type loginServer struct {
	auth func(user, password string) error
	step int
	user string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.user, string(response))
	}
	return nil, false, errors.New("smtpgw: unexpected LOGIN response")
}

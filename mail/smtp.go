package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/smtp"
)

// SMTPSender sends over an authenticated go-smtp client (smtp.Dial). Every recipient must be accepted
// before DATA: one refusal sends the message to nobody (RSET), and the error names the recipient.
type SMTPSender struct {
	C        *gosmtp.Client
	Progress Progress // for DATA; nil: none
}

// RecipientError is a recipient the server refused; nothing was sent.
type RecipientError struct {
	Recipient string
	Server    string // the server's reply: "550 5.1.10 RESOLVER.ADR.RecipientNotFound; ..."
	Err       error
}

func (e *RecipientError) Error() string {
	s := "the server refused recipient " + e.Recipient
	if e.Server != "" {
		s += ": server said " + e.Server
	} else if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s + "; nothing was sent"
}
func (e *RecipientError) Unwrap() error { return e.Err }

// Send submits raw to env.To from env.From.
func (s *SMTPSender) Send(ctx context.Context, env Envelope, raw []byte) error {
	if len(env.To) == 0 {
		return errors.New("no recipients")
	}
	opts := &gosmtp.MailOptions{Size: int64(len(raw))}
	if !isASCII(raw) {
		opts.Body = gosmtp.Body8BitMIME
	}
	if !isASCII([]byte(env.From)) || !isASCII([]byte(fmt.Sprint(env.To))) {
		opts.UTF8 = true
	}
	if err := s.C.Mail(env.From, opts); err != nil {
		return smtp.NewError("MAIL FROM:<"+env.From+">", err)
	}
	for _, rcpt := range env.To {
		if err := s.C.Rcpt(rcpt, nil); err != nil {
			_ = s.C.Reset()
			return &RecipientError{Recipient: rcpt, Server: smtp.ServerText(err), Err: err}
		}
	}
	w, err := s.C.Data()
	if err != nil {
		return smtp.NewError("DATA", err)
	}
	pw := &progressWriter{w: w, total: int64(len(raw)), fn: s.Progress}
	// Write in chunks so that progress moves; go-smtp's dot-writer normalises line ends to CRLF.
	for rest := raw; len(rest) > 0; {
		n := min(len(rest), 64<<10)
		if _, err := pw.Write(rest[:n]); err != nil {
			w.Close()
			return fmt.Errorf("SMTP DATA: %w", err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		return smtp.NewError("message (end of DATA)", err)
	}
	return nil
}

func isASCII(b []byte) bool {
	return !bytes.ContainsFunc(b, func(r rune) bool { return r >= 0x80 })
}

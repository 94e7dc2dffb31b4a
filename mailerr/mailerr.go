// Package mailerr holds the one error type of the mail protocol clients (imap, pop3, smtp, and what
// mail and check do over them): a step of a connection that failed, with the server's words as sent.
// It is its own package so that the clients and their consumers (doctor/catalog, check, mail) share
// it without importing each other; it knows nothing of any protocol's wire format.
package mailerr

import "github.com/mailoauth/mailoauth/sasl"

// Error is a refusal by a mail server, with its exact words ("IMAP AUTHENTICATE XOAUTH2 refused:
// server said NO AUTHENTICATE failed.", "POP3 AUTH XOAUTH2 refused: server said -ERR ...", "SMTP
// STARTTLS refused: ..."), or a step that failed before the server said anything. The imap, pop3 and
// smtp clients all return it (errors.As finds it); Protocol tells them apart.
type Error struct {
	Protocol string // "IMAP", "POP3", "SMTP"
	Step     string // the command or step: "STARTTLS", "greeting", "AUTHENTICATE XOAUTH2", "AUTH XOAUTH2", "MAIL FROM", ...
	Server   string // the server's response, as sent: "NO AUTHENTICATE failed.", "-ERR ...", "535 5.7.3 ..."; "" if it gave none
	// Challenge is the server's SASL error challenge, if it sent one (Dovecot does, Exchange does not).
	Challenge *sasl.ServerError
	Err       error // what the client library reported; nil when Server says it all
}

func (e *Error) Error() string {
	s := e.Protocol + " " + e.Step + " refused"
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

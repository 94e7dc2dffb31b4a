package mailerr

import (
	"errors"
	"testing"

	"github.com/mailoauth/mailoauth/sasl"
)

// The texts are what users and tests see: they must not change with the type's home.
func TestErrorTexts(t *testing.T) {
	cause := errors.New("EOF")
	for _, c := range []struct {
		e    *Error
		want string
	}{
		{&Error{Protocol: "IMAP", Step: "AUTHENTICATE XOAUTH2", Server: "NO AUTHENTICATE failed.", Err: cause},
			"IMAP AUTHENTICATE XOAUTH2 refused: server said NO AUTHENTICATE failed."},
		{&Error{Protocol: "IMAP", Step: "greeting", Err: cause}, "IMAP greeting refused: EOF"},
		{&Error{Protocol: "POP3", Step: "AUTH XOAUTH2", Server: "-ERR Authentication failure.", Challenge: &sasl.ServerError{Status: "401"}},
			"POP3 AUTH XOAUTH2 refused: server said -ERR Authentication failure. (the server refused the token (status 401))"},
		{&Error{Protocol: "SMTP", Step: "EHLO"}, "SMTP EHLO refused"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	e := &Error{Protocol: "SMTP", Step: "DATA", Err: cause}
	if !errors.Is(e, cause) {
		t.Error("Unwrap does not reach Err")
	}
}

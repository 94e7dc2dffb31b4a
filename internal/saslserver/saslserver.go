// Package saslserver is the server side of XOAUTH2 and OAUTHBEARER, behind emersion/go-sasl's
// Server interface: it parses what a client presents and hands the credentials to a check. The
// in-process emulator authenticates with it, and the tests of package sasl check the encoders
// against it. It is this module's business, not a library of its own: a mail client needs package
// sasl only.
//
// It must never put a token in an error message or a log line.
package saslserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	gosasl "github.com/emersion/go-sasl"

	"github.com/mailoauth/mailoauth/sasl"
)

// Credentials are what a client presented.
type Credentials struct {
	Mechanism string
	Username  string // XOAUTH2 user=, OAUTHBEARER authzid (a=)
	Token     string
	Host      string // OAUTHBEARER only
	Port      int    // OAUTHBEARER only
}

// ErrMalformed is what the parsers and servers return for a client message that is not the
// mechanism's. Errors wrapping it never quote the message (it holds a token).
var ErrMalformed = errors.New("malformed SASL message")

// maxMessage bounds what the parsers accept: an Entra token is a few KB (the encoders of package
// sasl have the same bound).
const maxMessage = 64 << 10

// ParseXOAuth2 parses an XOAUTH2 initial response.
func ParseXOAuth2(msg []byte) (Credentials, error) {
	c := Credentials{Mechanism: sasl.XOAuth2}
	if len(msg) > maxMessage || !bytes.HasSuffix(msg, []byte("\x01\x01")) {
		return c, fmt.Errorf("%w: XOAUTH2 must end with two ^A", ErrMalformed)
	}
	for _, kv := range bytes.Split(msg[:len(msg)-2], []byte{0x01}) {
		k, v, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			return c, fmt.Errorf("%w: XOAUTH2 field without =", ErrMalformed)
		}
		switch string(k) {
		case "user":
			c.Username = string(v)
		case "auth":
			tok, ok := cutBearer(v)
			if !ok {
				return c, fmt.Errorf("%w: XOAUTH2 auth is not \"Bearer <token>\"", ErrMalformed)
			}
			c.Token = tok
		}
	}
	if c.Username == "" || c.Token == "" {
		return c, fmt.Errorf("%w: XOAUTH2 needs user= and auth=", ErrMalformed)
	}
	return c, nil
}

// ParseOAuthBearer parses an RFC 7628 OAUTHBEARER initial response.
func ParseOAuthBearer(msg []byte) (Credentials, error) {
	c := Credentials{Mechanism: sasl.OAuthBearer}
	if len(msg) > maxMessage {
		return c, fmt.Errorf("%w: too long", ErrMalformed)
	}
	gs2, rest, ok := bytes.Cut(msg, []byte{0x01})
	if !ok || !bytes.HasSuffix(rest, []byte("\x01")) {
		return c, fmt.Errorf("%w: OAUTHBEARER needs a gs2 header and ^A-separated fields", ErrMalformed)
	}
	parts := strings.Split(string(gs2), ",")
	if len(parts) != 3 || (parts[0] != "n" && parts[0] != "y") || parts[2] != "" {
		return c, fmt.Errorf("%w: OAUTHBEARER gs2 header must be n,[a=authzid],", ErrMalformed)
	}
	if parts[1] != "" {
		if !strings.HasPrefix(parts[1], "a=") {
			return c, fmt.Errorf("%w: OAUTHBEARER gs2 header field is not a=", ErrMalformed)
		}
		c.Username = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(parts[1][2:])
	}
	for _, kv := range bytes.Split(bytes.TrimSuffix(rest, []byte{0x01}), []byte{0x01}) {
		if len(kv) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			return c, fmt.Errorf("%w: OAUTHBEARER field without =", ErrMalformed)
		}
		switch string(k) {
		case "auth":
			tok, ok := cutBearer(v)
			if !ok {
				return c, fmt.Errorf("%w: OAUTHBEARER auth is not \"Bearer <token>\"", ErrMalformed)
			}
			c.Token = tok
		case "host":
			c.Host = string(v)
		case "port":
			p, err := strconv.Atoi(string(v))
			if err != nil || p < 0 || p > 65535 {
				return c, fmt.Errorf("%w: OAUTHBEARER port is not a number", ErrMalformed)
			}
			c.Port = p
		}
	}
	if c.Token == "" {
		return c, fmt.Errorf("%w: OAUTHBEARER needs auth=", ErrMalformed)
	}
	return c, nil
}

// cutBearer takes "Bearer <token>" (scheme case-insensitive, RFC 6750).
func cutBearer(v []byte) (string, bool) {
	scheme, tok, ok := bytes.Cut(v, []byte(" "))
	if !ok || !strings.EqualFold(string(scheme), "bearer") || len(tok) == 0 || bytes.ContainsAny(tok, " \x00") {
		return "", false
	}
	return string(tok), true
}

// Check decides whether presented credentials are accepted. A *sasl.ServerError return makes servers that
// send error challenges (ServerOptions.ErrorChallenge) send it before failing.
type Check func(Credentials) error

// ServerOptions tune a server.
type ServerOptions struct {
	// ErrorChallenge sends the JSON error challenge before failing, as Dovecot and RFC 7628 do.
	// Exchange Online sends none for XOAUTH2: it answers the command with NO at once.
	ErrorChallenge bool
}

type server struct {
	mech  string
	check Check
	opts  ServerOptions
	state int // 0 start, 1 waiting for the client's reply to an error challenge, 2 done
	fail  error
}

// NewXOAuth2Server returns an XOAUTH2 server that checks credentials with check.
func NewXOAuth2Server(check Check, opts ServerOptions) gosasl.Server {
	return &server{mech: sasl.XOAuth2, check: check, opts: opts}
}

// NewOAuthBearerServer returns an RFC 7628 OAUTHBEARER server that checks credentials with check.
func NewOAuthBearerServer(check Check, opts ServerOptions) gosasl.Server {
	return &server{mech: sasl.OAuthBearer, check: check, opts: opts}
}

// ErrAuthFailed is what a server returns when the credentials were refused (the protocol layer
// answers with its own failure text).
var ErrAuthFailed = errors.New("authentication failed")

// Next implements gosasl.Server.
func (s *server) Next(response []byte) ([]byte, bool, error) {
	switch s.state {
	case 0:
		if response == nil {
			return []byte{}, false, nil // ask for the initial response with an empty challenge
		}
		parse := ParseXOAuth2
		if s.mech == sasl.OAuthBearer {
			parse = ParseOAuthBearer
		}
		creds, err := parse(response)
		if err != nil {
			s.state = 2
			return nil, true, err
		}
		err = s.check(creds)
		if err == nil {
			s.state = 2
			return nil, true, nil
		}
		var se *sasl.ServerError
		if s.opts.ErrorChallenge {
			if !errors.As(err, &se) {
				se = &sasl.ServerError{Status: "invalid_token", Schemes: "bearer"}
			}
			b, _ := json.Marshal(se)
			s.state, s.fail = 1, err
			return b, false, nil
		}
		s.state = 2
		return nil, true, err
	case 1:
		// RFC 7628 §3.2.3: the client answers the error challenge with %x01; the exchange fails.
		s.state = 2
		return nil, true, s.fail
	}
	return nil, true, ErrAuthFailed
}

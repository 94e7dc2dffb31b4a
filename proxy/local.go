package proxy

import (
	"encoding/base64"
	"errors"
	"strings"

	gosasl "github.com/emersion/go-sasl"
)

// maxFailures is how many failed logins a connection may make before it is closed: enough for a
// typo, too few to make a connection a cheap password-guessing loop.
const maxFailures = 3

var (
	errCancelled  = errors.New("authentication cancelled")
	errMalformed  = errors.New("malformed SASL response")
	errAuthzidSet = errors.New("an authorization identity other than the user name is not supported")
)

// plainCredentials decodes a SASL PLAIN message (RFC 4616) with go-sasl's server.
func plainCredentials(msg []byte) (user, password string, err error) {
	srv := gosasl.NewPlainServer(func(identity, username, pw string) error {
		if identity != "" && identity != username {
			return errAuthzidSet
		}
		user, password = username, pw
		return nil
	})
	if _, _, err := srv.Next(msg); err != nil {
		if errors.Is(err, errAuthzidSet) {
			return "", "", err
		}
		return "", "", errMalformed
	}
	return user, password, nil
}

// saslResponse writes a challenge with prompt (IMAP/POP3 "+ ", SMTP "334 ") and reads the base64
// answer; "*" cancels (RFC 4954, RFC 3501, RFC 5034).
func (s *session) saslResponse(prompt string, challenge []byte) ([]byte, error) {
	if err := s.writeLine(prompt + base64.StdEncoding.EncodeToString(challenge)); err != nil {
		return nil, err
	}
	l, err := s.readLine()
	if err != nil {
		return nil, err
	}
	return decodeResponse(l)
}

func decodeResponse(l string) ([]byte, error) {
	l = strings.TrimSpace(l)
	if l == "*" {
		return nil, errCancelled
	}
	if l == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(l)
	if err != nil {
		return nil, errMalformed
	}
	return b, nil
}

// plain runs AUTH[ENTICATE] PLAIN with an optional initial response ("" = none, "=" = empty).
func (s *session) plain(prompt, ir string) (user, password string, err error) {
	var msg []byte
	if ir != "" {
		msg, err = decodeResponse(ir)
	} else {
		msg, err = s.saslResponse(prompt, nil)
	}
	if err != nil {
		return "", "", err
	}
	return plainCredentials(msg)
}

// login runs SMTP's AUTH LOGIN: the user name (possibly given as an initial response), then the
// password, each base64 after a prompt. go-sasl has no LOGIN server; it is obsolete but is what many
// old programs send.
func (s *session) loginMechanism(ir string) (user, password string, err error) {
	var u []byte
	if ir != "" {
		u, err = decodeResponse(ir)
	} else {
		u, err = s.saslResponse("334 ", []byte("Username:"))
	}
	if err != nil {
		return "", "", err
	}
	p, err := s.saslResponse("334 ", []byte("Password:"))
	if err != nil {
		return "", "", err
	}
	return string(u), string(p), nil
}

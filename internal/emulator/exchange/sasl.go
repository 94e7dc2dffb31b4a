package exchange

import (
	"encoding/base64"

	"github.com/mailoauth/mailoauth/internal/saslserver"
)

// decodeSASL decodes a base64 SASL response line ("=" is an empty response, RFC 4959).
func decodeSASL(line []byte) ([]byte, bool) {
	if string(line) == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(string(line))
	return b, err == nil
}

// xoauth2 checks an XOAUTH2 initial response (decoded) for protocol p with the Authorizer, through
// package saslserver: a message that does not parse is MalformedSASL.
func (s *Servers) xoauth2(p Protocol, msg []byte) Decision {
	var d Decision
	decided := false
	srv := saslserver.NewXOAuth2Server(func(c saslserver.Credentials) error {
		d, decided = s.Authorizer.Authorize(p, c.Username, c.Token), true
		if d.OK() || d.Deferred {
			return nil
		}
		return d
	}, saslserver.ServerOptions{})
	if msg == nil {
		msg = []byte{}
	}
	_, _, _ = srv.Next(msg)
	if !decided {
		return s.Authorizer.Refuse(p, "", MalformedSASL, "the XOAUTH2 message is not base64 of user=<mailbox>^Aauth=Bearer <token>^A^A")
	}
	return d
}

// malformedSASL refuses a response that is not base64.
func (s *Servers) malformedSASL(p Protocol) Decision {
	return s.Authorizer.Refuse(p, "", MalformedSASL, "the SASL response is not base64")
}

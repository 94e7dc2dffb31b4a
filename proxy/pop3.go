package proxy

import (
	"errors"
	"strings"

	"github.com/mailoauth/mailoauth/config"
)

// pop3Capabilities is the CAPA list before login (RFC 2449). TOP and UIDL are listed because every
// server this proxy targets has them and programs (fetchmail) decide from this list whether to keep
// track of seen messages.
func (s *session) pop3Capabilities() []string {
	if !s.mayLogin() {
		return []string{"STLS", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE"}
	}
	return []string{"USER", "SASL PLAIN", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE"}
}

// pop3 answers the program in the AUTHORIZATION state, then splices.
func (s *session) pop3() error {
	if err := s.writeLine("+OK mailoauth proxy ready."); err != nil {
		return err
	}
	failures := 0
	var user string // from USER, for PASS
	for {
		s.in.startCommand()
		line, err := s.readLine()
		if err != nil {
			return err
		}
		cmd, arg, _ := strings.Cut(line, " ")
		var password string
		attempt := false
		switch strings.ToUpper(cmd) {
		case "CAPA":
			err = s.writeLine("+OK Capability list follows\r\n" + strings.Join(s.pop3Capabilities(), "\r\n") + "\r\n.")
		case "QUIT":
			_ = s.writeLine("+OK mailoauth proxy signing off.")
			return nil
		case "NOOP":
			err = s.writeLine("+OK")
		case "STLS":
			if s.tls || localTLSMode(s.cfg) != config.LocalTLSStartTLS {
				err = s.writeLine("-ERR STLS is not available here.")
				break
			}
			if err = s.writeLine("+OK Begin TLS negotiation."); err == nil {
				err = s.starttls()
			}
		case "USER":
			if !s.mayLogin() {
				err = s.writeLine("-ERR [AUTH] Use STLS first.")
				break
			}
			user = arg
			err = s.writeLine("+OK")
		case "PASS":
			if user == "" {
				err = s.writeLine("-ERR USER first.")
				break
			}
			password, attempt = arg, true
		case "AUTH":
			if arg == "" {
				// RFC 1734's form without a mechanism lists them; old programs still ask.
				err = s.writeLine("+OK\r\nPLAIN\r\n.")
				break
			}
			if !s.mayLogin() {
				err = s.writeLine("-ERR [AUTH] Use STLS first.")
				break
			}
			mech, ir, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				err = s.writeLine("-ERR Unsupported mechanism; use PLAIN or USER/PASS.")
				break
			}
			user, password, err = s.plain("+ ", ir)
			attempt = err == nil
			switch {
			case errors.Is(err, errCancelled):
				err = s.writeLine("-ERR AUTH cancelled.")
			case errors.Is(err, errMalformed), errors.Is(err, errAuthzidSet):
				err = s.writeLine("-ERR " + err.Error() + ".")
			}
		default:
			err = s.writeLine("-ERR Command not valid before login (the proxy takes CAPA, STLS, USER/PASS and AUTH PLAIN).")
		}
		if err != nil {
			return err
		}
		if !attempt {
			continue
		}
		r := reply{
			success: func(ok string) string { return ok },
			refuse: func(le *loginError) string {
				if le.temporary {
					return "-ERR [SYS/TEMP] " + le.msg
				}
				return "-ERR [AUTH] " + le.msg
			},
		}
		var done bool
		if s.cfg.Via == config.ViaGraph {
			done, err = s.answerGatewayPOP3(user, password, &failures, r)
		} else {
			done, err = s.answerLogin(user, password, popUp{}, &failures, r)
		}
		user = ""
		if done {
			return err
		}
	}
}

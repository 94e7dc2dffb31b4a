package proxy

import (
	"errors"
	"strings"

	"github.com/mailoauth/mailoauth/config"
)

// smtpExtensions is the EHLO list before login: what Exchange Online and Postfix both support, so
// that what the program relies on still holds when its commands reach the real server after AUTH.
func (s *session) smtpExtensions() []string {
	ext := []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"}
	if s.mayLogin() {
		ext = append(ext, "AUTH PLAIN LOGIN")
	} else {
		ext = append(ext, "STARTTLS")
	}
	return ext
}

// smtp answers the program until AUTH succeeds upstream, then splices. Mail is refused before AUTH:
// the proxy is not a relay.
func (s *session) smtp() error {
	host := s.srv.opts.Hostname
	if err := s.writeLine("220 " + host + " mailoauth proxy ESMTP ready"); err != nil {
		return err
	}
	failures := 0
	hello := ""
	for {
		s.in.startCommand()
		line, err := s.readLine()
		if err != nil {
			return err
		}
		cmd, arg, _ := strings.Cut(line, " ")
		var user, password string
		attempt := false
		switch strings.ToUpper(cmd) {
		case "EHLO":
			hello = strings.TrimSpace(arg)
			lines := append([]string{host + " Hello"}, s.smtpExtensions()...)
			for i := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				lines[i] = "250" + sep + lines[i]
			}
			err = s.writeLine(strings.Join(lines, "\r\n"))
		case "HELO":
			hello = strings.TrimSpace(arg)
			err = s.writeLine("250 " + host)
		case "NOOP", "RSET":
			err = s.writeLine("250 2.0.0 OK")
		case "QUIT":
			_ = s.writeLine("221 2.0.0 Bye")
			return nil
		case "STARTTLS":
			if s.tls || localTLSMode(s.cfg) != config.LocalTLSStartTLS {
				err = s.writeLine("502 5.5.1 STARTTLS is not available here")
				break
			}
			if err = s.writeLine("220 2.0.0 Ready to start TLS"); err == nil {
				err = s.starttls()
				hello = "" // RFC 3207 §4.2: the client starts over with EHLO
			}
		case "AUTH":
			if !s.mayLogin() {
				err = s.writeLine("530 5.7.0 Must issue a STARTTLS command first")
				break
			}
			mech, ir, _ := strings.Cut(strings.TrimSpace(arg), " ")
			switch strings.ToUpper(mech) {
			case "PLAIN":
				user, password, err = s.plain("334 ", ir)
			case "LOGIN":
				user, password, err = s.loginMechanism(ir)
			default:
				err = s.writeLine("504 5.5.4 Unsupported mechanism; use PLAIN or LOGIN")
			}
			attempt = err == nil && (strings.EqualFold(mech, "PLAIN") || strings.EqualFold(mech, "LOGIN"))
			switch {
			case errors.Is(err, errCancelled):
				err = s.writeLine("501 5.7.0 Authentication cancelled")
			case errors.Is(err, errMalformed), errors.Is(err, errAuthzidSet):
				err = s.writeLine("501 5.5.2 " + err.Error())
			}
		case "MAIL", "RCPT", "DATA", "BDAT", "VRFY", "EXPN":
			err = s.writeLine("530 5.7.0 Authentication required")
		default:
			err = s.writeLine("502 5.5.2 Command not recognized before authentication")
		}
		if err != nil {
			return err
		}
		if !attempt {
			continue
		}
		s.hello = hello
		done, err := s.answerLogin(user, password, smtpUp{}, &failures, reply{
			success: func(ok string) string { return ok },
			refuse: func(le *loginError) string {
				if le.temporary {
					return "454 4.7.0 " + le.msg
				}
				return "535 5.7.8 " + le.msg
			},
			bye: "421 4.7.0 Too many failed logins, closing",
		})
		if done {
			return err
		}
	}
}

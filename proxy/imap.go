package proxy

import (
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/mailoauth/mailoauth/config"
)

// imapCapabilities is what the program is told before login. After login it must ask again (RFC
// 3501 §6.2.2) and then gets the server's own list, through the splice.
func (s *session) imapCapabilities() string {
	if !s.mayLogin() {
		return "IMAP4rev1 STARTTLS LOGINDISABLED LITERAL+ ID"
	}
	return "IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN"
}

// imap answers the program until it logs in, then splices.
func (s *session) imap() error {
	caps := s.imapCapabilities
	if err := s.writeLine("* OK [CAPABILITY " + caps() + "] mailoauth proxy ready."); err != nil {
		return err
	}
	failures := 0
	for {
		s.in.startCommand()
		line, err := s.readLine()
		if err != nil {
			return err
		}
		tag, cmd, rest := imapSplit(line)
		if tag == "" {
			// Never echoed: what is not a valid tag may hold a NUL or CR that would corrupt the answer.
			if err := s.writeLine("* BAD Command line missing a valid tag (printable ASCII, no spaces, none of (){%*\"\\+)."); err != nil {
				return err
			}
			continue
		}
		var user, password string
		attempt := false
		switch strings.ToUpper(cmd) {
		case "CAPABILITY":
			err = s.writeLine("* CAPABILITY " + caps() + "\r\n" + tag + " OK CAPABILITY completed.")
		case "NOOP":
			err = s.writeLine(tag + " OK NOOP completed.")
		case "LOGOUT":
			_ = s.writeLine("* BYE mailoauth proxy logging out.\r\n" + tag + " OK LOGOUT completed.")
			return nil
		case "ID":
			if _, err = s.imapArgs(rest); err == nil {
				err = s.writeLine("* ID (\"name\" \"mailoauth-proxy\")\r\n" + tag + " OK ID completed.")
			}
		case "STARTTLS":
			if s.tls || localTLSMode(s.cfg) != config.LocalTLSStartTLS {
				err = s.writeLine(tag + " BAD STARTTLS is not available here.")
				break
			}
			if err = s.writeLine(tag + " OK Begin TLS negotiation now."); err == nil {
				err = s.starttls()
			}
		case "LOGIN":
			if !s.mayLogin() {
				err = s.writeLine(tag + " NO [PRIVACYREQUIRED] LOGIN is disabled until STARTTLS.")
				break
			}
			var args []string
			args, err = s.imapArgs(rest)
			if err != nil {
				break
			}
			if len(args) != 2 {
				err = s.writeLine(tag + " BAD LOGIN takes a user name and a password.")
				break
			}
			user, password, attempt = args[0], args[1], true
		case "AUTHENTICATE":
			if !s.mayLogin() {
				err = s.writeLine(tag + " NO [PRIVACYREQUIRED] AUTHENTICATE is disabled until STARTTLS.")
				break
			}
			mech, ir, _ := strings.Cut(strings.TrimSpace(rest), " ")
			if !strings.EqualFold(mech, "PLAIN") {
				err = s.writeLine(tag + " NO Unsupported authentication mechanism; use PLAIN or LOGIN.")
				break
			}
			user, password, err = s.plain("+ ", ir)
			attempt = err == nil
			switch {
			case errors.Is(err, errCancelled):
				err = s.writeLine(tag + " BAD AUTHENTICATE cancelled.")
			case errors.Is(err, errMalformed), errors.Is(err, errAuthzidSet):
				err = s.writeLine(tag + " BAD " + err.Error() + ".")
			}
		default:
			err = s.writeLine(tag + " BAD Command not valid before login (the proxy takes CAPABILITY, STARTTLS, LOGIN and AUTHENTICATE PLAIN).")
		}
		var se *errSyntax
		if errors.As(err, &se) {
			err = s.writeLine(tag + " BAD " + se.msg + ".")
		}
		if err != nil {
			return err
		}
		if !attempt {
			continue
		}
		done, err := s.answerLogin(user, password, imapUp{}, &failures, reply{
			success: func(ok string) string { return tag + " " + ok },
			refuse: func(le *loginError) string {
				if le.temporary {
					return tag + " NO [UNAVAILABLE] " + le.msg
				}
				return tag + " NO [AUTHENTICATIONFAILED] " + le.msg
			},
			bye: "* BYE Too many failed logins.",
		})
		if done {
			return err
		}
	}
}

// imapSplit splits "tag COMMAND rest"; tag is "" when the line has no valid one.
func imapSplit(line string) (tag, cmd, rest string) {
	tag, after, _ := strings.Cut(line, " ")
	if !imapTag(tag) {
		return "", "", ""
	}
	cmd, rest, _ = strings.Cut(after, " ")
	return tag, cmd, rest
}

// imapTag reports whether tag is one (RFC 3501 §9: ASTRING-CHARs but "+"): printable ASCII without
// atom-specials, "]" allowed. No control byte, so no NUL or CR, and nothing beyond ASCII is ever
// echoed back in a tagged answer.
func imapTag(tag string) bool {
	if tag == "" {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("(){%*\"\\+", c) >= 0 {
			return false
		}
	}
	return true
}

// imapArgs parses a command's arguments: atoms, quoted strings and literals ({n} synchronizing,
// {n+} LITERAL+), reading the continuation line after each literal. Parentheses are skipped (ID's
// list); NIL is the empty string. The command's literals, arguments and size are bounded
// (prelogin.go); a literal over the bound is refused before any of it is read.
func (s *session) imapArgs(rest string) ([]string, error) {
	var args []string
	for {
		rest = strings.TrimLeft(rest, " ()")
		if rest == "" {
			return args, nil
		}
		if len(args) == s.in.args {
			return nil, &limitError{kind: limitArgs, max: s.in.args}
		}
		switch rest[0] {
		case '"':
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return nil, s.imapSyntax("unterminated quoted string")
			}
			args = append(args, b.String())
			rest = rest[i+1:]
		case '{':
			n, plus, ok := literalSize(rest)
			if !ok {
				return nil, s.imapSyntax("malformed literal")
			}
			if err := s.in.literal(n); err != nil {
				return nil, err
			}
			if !plus {
				if err := s.writeLine("+ Ready for literal data"); err != nil {
					return nil, err
				}
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(s.r, buf); err != nil {
				return nil, err
			}
			if err := s.in.took(n); err != nil {
				return nil, err
			}
			args = append(args, string(buf))
			var err error
			if rest, err = s.readLine(); err != nil {
				return nil, err
			}
		default:
			end := strings.IndexAny(rest, " ()")
			if end < 0 {
				end = len(rest)
			}
			a := rest[:end]
			if strings.EqualFold(a, "NIL") {
				a = ""
			}
			args = append(args, a)
			rest = rest[end:]
		}
	}
}

// literalSize parses "{n}" or "{n+}", which must end the line.
func literalSize(s string) (n int, plus, ok bool) {
	if !strings.HasSuffix(s, "}") {
		return 0, false, false
	}
	body := s[1 : len(s)-1]
	if strings.HasSuffix(body, "+") {
		plus, body = true, body[:len(body)-1]
	}
	n, err := strconv.Atoi(body)
	if err != nil || n < 0 || len(body) > 9 {
		return 0, false, false
	}
	return n, plus, true
}

// errSyntax is a command the proxy answers with BAD and goes on.
type errSyntax struct{ msg string }

func (e *errSyntax) Error() string { return e.msg }

func (s *session) imapSyntax(msg string) error { return &errSyntax{msg} }

package proxy

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxUserName bounds a local user name: an address is at most 254 bytes (RFC 5321 §4.5.3.1.3), and
// the bound keeps a name that only fills the log out of it.
const maxUserName = 256

// badUserName says why a user name is refused on sight, before any password check, or "" when its
// syntax is fine. The name goes upstream as the SASL user (XOAUTH2's user=NAME^A...), where a control
// character — XOAUTH2's ^A separator above all — would let it carry fields of its own.
func badUserName(user string) string {
	if len(user) > maxUserName {
		return "the user name is longer than " + strconv.Itoa(maxUserName) + " bytes"
	}
	if !utf8.ValidString(user) {
		return "the user name is not valid UTF-8"
	}
	for i := 0; i < len(user); i++ {
		if c := user[i]; c < 0x20 || c == 0x7f {
			return "the user name contains a control character (" + strconv.QuoteRune(rune(c)) + ")"
		}
	}
	return ""
}

// msgBadUserName is what a program is told of a malformed user name: what a wrong password gets, so
// that the refusal says nothing a program could probe with.
const msgBadUserName = "Authentication failed: wrong user name or password."

// quotedUserName is a refused name as it may be logged: escaped (no control byte reaches the log,
// whatever the log handler) and bounded.
func quotedUserName(user string) string {
	const shown = 128
	if len(user) > shown {
		return strconv.Quote(user[:shown]) + "... (" + strconv.Itoa(len(user)) + " bytes)"
	}
	return strconv.Quote(user)
}

// lookup maps a user name to its account and password hash: [proxy.users] first (exactly, then
// ignoring case), then the [proxy.domains] catch-all. mailbox is the SASL user to send upstream.
func (set *settings) lookup(user string) (account, hash, mailbox string, ok bool) {
	if u := set.users[user]; u != nil {
		return u.Account, u.PasswordHash, "", true
	}
	for name, u := range set.users {
		if strings.EqualFold(name, user) {
			return u.Account, u.PasswordHash, "", true
		}
	}
	if domain, ok := addressDomain(user); ok {
		for name, d := range set.domains {
			if strings.EqualFold(name, domain) {
				return d.Account, d.PasswordHash, user, true
			}
		}
	}
	return "", "", "", false
}

// addressDomain returns the domain of user when the whole name is one address: an RFC 5321 local
// part (a dot-string, or a quoted string), one "@", and a domain. A catch-all hands the name to the
// server as the mailbox, so anything else — a second "@", basic authentication's
// alice@contoso.com\support — is no address of that domain and must not match it.
func addressDomain(user string) (string, bool) {
	n := localPartLen(user)
	if n == 0 || n > 64 || n >= len(user) || user[n] != '@' {
		return "", false
	}
	domain := user[n+1:]
	if domain == "" || strings.Contains(domain, "@") {
		return "", false
	}
	return domain, true
}

// localPartLen returns the length of the RFC 5321 local part at the start of s (Dot-string or
// Quoted-string, with RFC 6531's non-ASCII letters), or 0 when s does not start with one.
func localPartLen(s string) int {
	if strings.HasPrefix(s, `"`) {
		return quotedStringLen(s)
	}
	// Dot-string = Atom *("." Atom): no leading, trailing or doubled dot.
	i, atom := 0, 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '.':
			if atom == 0 {
				return 0
			}
			atom = 0
		case isAtext(r):
			atom++
		default:
			if atom == 0 {
				return 0
			}
			return i
		}
		i += size
	}
	if atom == 0 {
		return 0
	}
	return i
}

// quotedStringLen returns the length of the Quoted-string at the start of s (its quotes included),
// or 0: qtextSMTP is printable ASCII but '"' and '\', quoted-pairSMTP is '\' and printable ASCII.
func quotedStringLen(s string) int {
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			if i == 1 {
				return 0 // RFC 5321 allows "", but no mailbox is named so
			}
			return i + 1
		case c == '\\':
			if i+1 >= len(s) || s[i+1] < 0x20 || s[i+1] > 0x7e {
				return 0
			}
			i++
		case c < 0x20 || c > 0x7e:
			return 0
		}
	}
	return 0
}

// isAtext reports whether r may appear in an atom (RFC 5322 atext; RFC 6531 adds non-ASCII letters).
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r < utf8.RuneSelf:
		return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
	default:
		return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r)
	}
}

package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// What a program may send before login is bounded, so that a connection that has not logged in —
// on a starttls listener possibly anyone on the network — costs a small, fixed amount of memory
// and reading whatever it sends (at most 64 KiB per unauthenticated connection). All bounds
// follow from Options.MaxLine (8 KiB by default):
//
//   - a line: MaxLine bytes (a command line, a SASL response, an IMAP line between literals);
//   - a literal: MaxLine bytes, announced size checked before a byte of it is read;
//   - a command, from its first line to its last (literals, continuation lines, SASL responses and
//     AUTH LOGIN's two lines included): 2 × MaxLine, 16 KiB. LOGIN with a long user name and a
//     long password as literals fits; a chain of literals does not;
//   - literals in one command: 8, and IMAP arguments: 64 (ID's 30 field-value pairs, RFC 2971): one
//     string header each, so that tiny literals or atoms cannot multiply what a command holds;
//   - a session, everything read before login: 8 × MaxLine, 64 KiB, in at most 1 line per 64 bytes
//     of that, 1,024 lines. Three failed logins of the largest size and the usual CAPABILITY, ID,
//     STARTTLS and EHLO fit; a program sending NOOPs, empty lines or junk for the whole login timeout
//     does not. Real programs send well under 1 KiB in under 20 lines. The count of lines bounds
//     what the smallest commands cost (each answer, each parse) as the bytes bound the largest.
//
// A program over a bound gets one line in its protocol saying which bound, and the connection is
// closed (closeOverLimit) without reading the rest of what it sends.
type limits struct {
	line, command, literals, args, session, lines int
}

func limitsFor(maxLine int) limits {
	return limits{line: maxLine, command: 2 * maxLine, literals: 8, args: 64, session: 8 * maxLine, lines: 8 * maxLine / 64}
}

// intake counts what the program sent before login.
type intake struct {
	limits
	sessionBytes    int // read since the connection began
	sessionLines    int
	commandBytes    int // of the command being read
	commandLiterals int
}

// startCommand is called before the first line of each command.
func (in *intake) startCommand() { in.commandBytes, in.commandLiterals = 0, 0 }

// took counts n bytes read; it says which bound they broke, if any.
func (in *intake) took(n int) error {
	in.sessionBytes += n
	in.commandBytes += n
	switch {
	case in.sessionBytes > in.session:
		return &limitError{kind: limitSession, max: in.session}
	case in.commandBytes > in.command:
		return &limitError{kind: limitCommand, max: in.command}
	}
	return nil
}

// endLine counts a line read whole.
func (in *intake) endLine() error {
	if in.sessionLines++; in.sessionLines > in.lines {
		return &limitError{kind: limitLines, max: in.lines}
	}
	return nil
}

// literal checks an announced literal of n bytes before any of it is read.
func (in *intake) literal(n int) error {
	in.commandLiterals++
	switch {
	case n > in.line:
		return &limitError{kind: limitLiteral, max: in.line}
	case in.commandLiterals > in.literals:
		return &limitError{kind: limitLiterals, max: in.literals}
	case in.commandBytes+n > in.command:
		return &limitError{kind: limitCommand, max: in.command}
	case in.sessionBytes+n > in.session:
		return &limitError{kind: limitSession, max: in.session}
	}
	return nil
}

type limitKind int

const (
	limitLine limitKind = iota
	limitLiteral
	limitCommand
	limitLiterals
	limitArgs
	limitSession
	limitLines
)

// limitError is a bound broken before login: the session answers it and closes.
type limitError struct {
	kind limitKind
	max  int
}

func (e *limitError) Error() string { return e.what() + " before login" }

// what names the broken bound; the log says "session closed: " + what + " before login".
func (e *limitError) what() string {
	return [...]string{
		limitLine:     "command line too long",
		limitLiteral:  "literal too large",
		limitCommand:  "command too long",
		limitLiterals: "too many literals in one command",
		limitArgs:     "too many arguments in one command",
		limitSession:  "too much sent",
		limitLines:    "too many lines sent",
	}[e.kind]
}

// message is what the program is told, without its protocol's prefix.
func (e *limitError) message() string {
	format := [...]string{
		limitLine:     "Command line too long before login (at most %d bytes); closing the connection.",
		limitLiteral:  "Literal too large before login (at most %d bytes); closing the connection.",
		limitCommand:  "Command too long before login (at most %d bytes, literals and continuation lines included); closing the connection.",
		limitLiterals: "Too many literals in one command before login (at most %d); closing the connection.",
		limitArgs:     "Too many arguments in one command before login (at most %d); closing the connection.",
		limitSession:  "Too much sent before login (at most %d bytes until a successful login); closing the connection.",
		limitLines:    "Too many commands before login (at most %d lines until a successful login); closing the connection.",
	}[e.kind]
	return fmt.Sprintf(format, e.max)
}

// overLimitLine is the one line a program over a bound gets, in its protocol. SMTP says 500 5.5.6
// (RFC 4954's "line too long") for what one command broke, and 421 (closing) for the session's totals.
func overLimitLine(protocol string, e *limitError) string {
	switch protocol {
	case config.ProtocolIMAP:
		return "* BAD " + e.message()
	case config.ProtocolPOP:
		return "-ERR " + e.message()
	default:
		if e.kind == limitSession || e.kind == limitLines {
			return "421 4.7.0 " + e.message()
		}
		return "500 5.5.6 " + e.message()
	}
}

// After its error line, a program over a bound may still have bytes in flight. Closing a socket with
// unread data makes the kernel send a reset instead of a FIN, which discards whatever of the proxy's
// output the program has not yet acknowledged — the error line, when the program is slow to read —
// and on some systems (Windows) also what it received but has not read. So the proxy ends its side
// (FIN, or TLS close_notify) after the line, then reads and discards what comes until the program
// closes, at most as much as the session's bound; a program still sending past that is no longer read (TCP's window
// stops it, at no cost to the proxy) while it has the rest of drainTime to read the line. Then the
// connection is closed, whatever the program does: bounded in bytes and time. (net/http does the
// same after a request body it did not read.)
//
// drainTime is a variable only so that the fuzz targets, whose programs never read, need not wait.
var drainTime = 2 * time.Second

// closeOverLimit answers a bound broken before login with its one error line, logs it, and lets the
// line reach the program before the connection is closed.
func (s *session) closeOverLimit(e *limitError) {
	s.log.Warn("session closed: "+e.what()+" before login", "max", e.max)
	deadline := time.Now().Add(drainTime)
	_ = s.conn.SetDeadline(deadline)
	if err := s.writeLine(overLimitLine(s.cfg.Protocol, e)); err != nil {
		return
	}
	if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if _, err := io.CopyN(io.Discard, s.r, int64(s.in.session)); err == nil {
		// Still sending: stop reading, leave time to read the line — but not past the session's
		// close (a shutdown past its drain deadline, the login deadline).
		_ = wait(context.Background(), s.closed, time.Until(deadline))
	}
}

// asLimit reports whether err is a bound broken before login.
func asLimit(err error) (*limitError, bool) {
	var le *limitError
	ok := errors.As(err, &le)
	return le, ok
}

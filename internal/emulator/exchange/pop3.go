package exchange

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// POP3, as outlook.office365.com:995 (implicit TLS only).
//
// Written by hand on net/textproto: there is no maintained POP3 server module for Go (the few that
// exist are unmaintained and cannot be made to speak Exchange's texts), and the protocol is small
// (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH).

// Exchange's POP3 texts (research/exchange-wire.md §2 and the sources named there).
const (
	popGreeting      = "+OK The Microsoft Exchange POP3 service is ready. ["
	popAuthOK        = "+OK User successfully authenticated."
	popAuthFailed    = "-ERR Authentication failure: unknown user name or bad password."
	popLogonFailed   = "-ERR Logon failure: unknown user name or bad password."
	popIRClosed      = "-ERR Protocol error. Connection is closed. 10"
	popProtocolError = "-ERR Protocol error. 19"                     // an unknown command (freescout#2810)
	popInvalidState  = "-ERR Command is not valid in this state."    // email-oauth2-proxy#162
	popOutOfRange    = "-ERR The specified message is out of range." // unconfirmed
	popBye           = "+OK Microsoft Exchange Server POP3 server signing off."
)

// popCapa is Exchange's CAPA answer (kisli/vmime#267); the answer after authentication is unconfirmed
// and taken to be the same.
var popCapa = []string{"TOP", "UIDL", "SASL PLAIN XOAUTH2", "USER"}

// Bounds: RFC 2449 allows 255 octets per command line; an XOAUTH2 response line (a base64 token) is
// a few KB, so SASL lines get more room.
const (
	maxPOPCommand  = 255
	maxPOPSASLLine = 64 << 10
)

// popCommand is one parsed POP3 command line.
type popCommand struct {
	Verb string   // upper case
	Args []string // at most 2
}

// errPOPSyntax is a line that is not a POP3 command.
var errPOPSyntax = errors.New("not a POP3 command")

// parsePOPCommand parses a command line (without CRLF): a keyword of 3 or 4 letters, then up to two
// arguments of at most 40 printable characters each, separated by single spaces (RFC 1939 §3). AUTH
// may carry a longer initial response (RFC 5034), which the caller refuses anyway.
func parsePOPCommand(line []byte) (popCommand, error) {
	var c popCommand
	if len(line) == 0 {
		return c, errPOPSyntax
	}
	verb, rest, hasRest := strings.Cut(string(line), " ")
	if len(verb) < 3 || len(verb) > 4 {
		return c, errPOPSyntax
	}
	for i := 0; i < len(verb); i++ {
		b := verb[i]
		if (b < 'A' || b > 'Z') && (b < 'a' || b > 'z') {
			return c, errPOPSyntax
		}
	}
	c.Verb = strings.ToUpper(verb)
	var args []string
	switch {
	case !hasRest:
	case c.Verb == "PASS":
		args = []string{rest} // the password is the rest of the line, spaces included (RFC 1939)
	default:
		args = strings.Split(rest, " ")
	}
	if len(args) > 2 {
		return c, errPOPSyntax
	}
	for i, a := range args {
		if a == "" {
			return c, errPOPSyntax
		}
		limit := 40
		if c.Verb == "AUTH" && i == 1 || c.Verb == "PASS" {
			limit = maxPOPSASLLine
		}
		if len(a) > limit {
			return c, errPOPSyntax
		}
		for j := 0; j < len(a); j++ {
			if (a[j] < 0x21 && !(a[j] == ' ' && c.Verb == "PASS")) || a[j] > 0x7e {
				return c, errPOPSyntax
			}
		}
	}
	c.Args = args
	return c, nil
}

type popConn struct {
	s    *Servers
	conn net.Conn
	br   *bufio.Reader
	tw   *textproto.Writer

	user    string // from USER
	mailbox string // set once authenticated
	msgs    []mailstore.Message
	deleted []bool
}

func (s *Servers) servePOP(c net.Conn) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return
	}
	if err := handshake(tc); err != nil {
		s.log.Debug("exchange: POP3 TLS handshake failed", "err", err)
		return
	}
	pc := &popConn{s: s, conn: c, br: bufio.NewReader(c), tw: textproto.NewWriter(bufio.NewWriter(c))}
	pc.reply(popGreeting + s.front.GreetingTag() + "]")
	pc.serve()
}

func (pc *popConn) reply(lines ...string) bool {
	pc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, l := range lines {
		if _, err := pc.tw.W.WriteString(l + "\r\n"); err != nil {
			return false
		}
	}
	return pc.tw.W.Flush() == nil
}

// multi sends +OK with a text, the lines (dot-stuffed), and the terminating dot.
func (pc *popConn) multi(status string, lines []string) bool {
	pc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	pc.tw.W.WriteString(status + "\r\n")
	dw := pc.tw.DotWriter()
	for _, l := range lines {
		dw.Write([]byte(l + "\r\n"))
	}
	return dw.Close() == nil
}

func (pc *popConn) serve() {
	for {
		pc.conn.SetReadDeadline(time.Now().Add(commandTimeout))
		line, err := readLine(pc.br, maxPOPSASLLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				pc.reply(popIRClosed)
			}
			return
		}
		if f := pc.s.commandFault(POP); f != nil {
			if f.Drop || !pc.reply(f.Reply) || closesAfter(f.Reply) {
				return
			}
			continue
		}
		cmd, err := parsePOPCommand(line)
		if err != nil {
			if bytes.HasPrefix(bytes.ToUpper(line), []byte("AUTH ")) && bytes.Count(line, []byte(" ")) >= 2 {
				// An initial response on the AUTH line, malformed or too long to parse: the same refusal.
				pc.reply(popIRClosed)
				return
			}
			pc.reply(popProtocolError)
			continue
		}
		if !pc.handle(cmd) {
			return
		}
	}
}

// handle runs one command; false ends the connection.
func (pc *popConn) handle(cmd popCommand) bool {
	authed := pc.mailbox != ""
	switch cmd.Verb {
	case "CAPA":
		return pc.multi("+OK", popCapa)
	case "QUIT":
		if authed {
			pc.commit()
		}
		pc.reply(popBye)
		return false
	case "NOOP":
		if !authed {
			return pc.reply(popInvalidState)
		}
		return pc.reply("+OK")
	case "USER":
		if authed || len(cmd.Args) != 1 {
			return pc.reply(popInvalidState)
		}
		pc.user = cmd.Args[0]
		return pc.reply("+OK")
	case "PASS":
		if authed || pc.user == "" {
			return pc.reply(popInvalidState)
		}
		pc.s.Authorizer.Refuse(POP, pc.user, BasicAuthDisabled, "POP3 USER/PASS with a password: Exchange Online accepts only OAuth 2.0 (AUTH XOAUTH2)")
		pc.user = ""
		return pc.reply(popLogonFailed)
	case "AUTH":
		if authed {
			return pc.reply(popInvalidState)
		}
		return pc.auth(cmd)
	case "STLS":
		return pc.reply(popInvalidState)
	case "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET":
		if !authed {
			return pc.reply(popInvalidState)
		}
		return pc.transaction(cmd)
	}
	return pc.reply(popProtocolError)
}

// auth runs AUTH. Exchange wants the two-step form: "AUTH XOAUTH2", "+ ", the base64 line; an
// initial response on the command line closes the connection (getmail6#256).
func (pc *popConn) auth(cmd popCommand) bool {
	if len(cmd.Args) == 0 {
		return pc.reply(popProtocolError)
	}
	mech := strings.ToUpper(cmd.Args[0])
	if len(cmd.Args) == 2 {
		pc.s.Authorizer.Refuse(POP, "", MalformedSASL, "AUTH "+mech+" with an initial response on the command line: Exchange's POP3 wants the response on its own line after \"+ \"")
		pc.reply(popIRClosed)
		return false
	}
	if mech != "XOAUTH2" && mech != "PLAIN" {
		pc.s.Authorizer.Refuse(POP, "", MechanismUnsupported, "AUTH "+mech+": Exchange's POP3 offers XOAUTH2 (and PLAIN, refused as basic authentication)")
		return pc.reply(popAuthFailed)
	}
	if !pc.reply("+ ") {
		return false
	}
	pc.conn.SetReadDeadline(time.Now().Add(commandTimeout))
	line, err := readLine(pc.br, maxPOPSASLLine)
	if err != nil {
		return false
	}
	if string(line) == "*" {
		return pc.reply(popAuthFailed)
	}
	msg, ok := decodeSASL(line)
	if !ok {
		pc.s.malformedSASL(POP)
		return pc.reply(popAuthFailed)
	}
	if mech == "PLAIN" {
		user := ""
		if parts := bytes.Split(msg, []byte{0}); len(parts) == 3 {
			user = string(parts[1])
		}
		pc.s.Authorizer.Refuse(POP, user, BasicAuthDisabled, "AUTH PLAIN with a password: Exchange Online accepts only OAuth 2.0")
		return pc.reply(popAuthFailed)
	}
	d := pc.s.xoauth2(POP, msg)
	if !d.OK() {
		// POP3 has no "authenticated but not connected": every refusal is this line (for POP
		// disabled on the mailbox, email-oauth2-proxy#160's maintainer's reading; unconfirmed).
		return pc.reply(popAuthFailed)
	}
	pc.mailbox = d.Mailbox
	msgs, err := pc.s.Store.List(d.Mailbox, mailstore.Inbox)
	if err != nil {
		pc.s.Store.Ensure(d.Mailbox)
	}
	pc.msgs, pc.deleted = msgs, make([]bool, len(msgs))
	return pc.reply(popAuthOK)
}

// msg returns message n (1-based) unless it is out of range or deleted.
func (pc *popConn) msg(arg string) (int, bool) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || n > len(pc.msgs) || pc.deleted[n-1] {
		return 0, false
	}
	return n - 1, true
}

func (pc *popConn) transaction(cmd popCommand) bool {
	switch cmd.Verb {
	case "STAT":
		n, size := 0, 0
		for i, m := range pc.msgs {
			if !pc.deleted[i] {
				n, size = n+1, size+m.Size()
			}
		}
		return pc.reply(fmt.Sprintf("+OK %d %d", n, size))
	case "LIST", "UIDL":
		val := func(i int) string {
			if cmd.Verb == "LIST" {
				return strconv.Itoa(pc.msgs[i].Size())
			}
			return pc.msgs[i].ID
		}
		if len(cmd.Args) == 1 {
			i, ok := pc.msg(cmd.Args[0])
			if !ok {
				return pc.reply(popOutOfRange)
			}
			return pc.reply(fmt.Sprintf("+OK %d %s", i+1, val(i)))
		}
		var lines []string
		for i := range pc.msgs {
			if !pc.deleted[i] {
				lines = append(lines, fmt.Sprintf("%d %s", i+1, val(i)))
			}
		}
		return pc.multi("+OK", lines)
	case "RETR", "TOP":
		if len(cmd.Args) != map[string]int{"RETR": 1, "TOP": 2}[cmd.Verb] {
			return pc.reply(popProtocolError)
		}
		i, ok := pc.msg(cmd.Args[0])
		if !ok {
			return pc.reply(popOutOfRange)
		}
		data := pc.msgs[i].Data
		if cmd.Verb == "TOP" {
			n, err := strconv.Atoi(cmd.Args[1])
			if err != nil || n < 0 {
				return pc.reply(popProtocolError)
			}
			data = topLines(data, n)
		}
		return pc.sendMessage(data)
	case "DELE":
		if len(cmd.Args) != 1 {
			return pc.reply(popProtocolError)
		}
		i, ok := pc.msg(cmd.Args[0])
		if !ok {
			return pc.reply(popOutOfRange)
		}
		pc.deleted[i] = true
		return pc.reply("+OK")
	case "RSET":
		clear(pc.deleted)
		return pc.reply("+OK")
	}
	return pc.reply(popProtocolError)
}

// sendMessage sends a message byte for byte, dot-stuffed, then the terminating dot. A message that
// does not end with CRLF gets one before the dot (not part of the message).
func (pc *popConn) sendMessage(data []byte) bool {
	pc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	w := pc.tw.W
	w.WriteString("+OK\r\n")
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		line := data
		if i >= 0 {
			line = data[:i+1]
		}
		if line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		data = data[len(line):]
		if i < 0 {
			w.WriteString("\r\n")
		}
	}
	w.WriteString(".\r\n")
	return w.Flush() == nil
}

// topLines is the header, the blank line and the first n lines of the body.
func topLines(data []byte, n int) []byte {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	sep := 4
	if end < 0 {
		if end = bytes.Index(data, []byte("\n\n")); end < 0 {
			return data
		}
		sep = 2
	}
	pos := end + sep
	for ; n > 0 && pos < len(data); n-- {
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			return data
		}
		pos += i + 1
	}
	return data[:pos]
}

// commit deletes the messages marked with DELE (the UPDATE state).
func (pc *popConn) commit() {
	var ids []string
	for i, d := range pc.deleted {
		if d {
			ids = append(ids, pc.msgs[i].ID)
		}
	}
	if len(ids) > 0 {
		pc.s.Store.Delete(pc.mailbox, mailstore.Inbox, ids...)
	}
}

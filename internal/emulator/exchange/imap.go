package exchange

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// IMAP, as outlook.office365.com:993 (implicit TLS) and :143 (STARTTLS).
//
// The not-authenticated state is served here, by hand, because go-imap v2's imapserver writes its own
// greeting ("* OK [CAPABILITY ...] IMAP server ready"), its own CAPABILITY list and its own AUTHENTICATE
// answers, none of which is Exchange's, and it has no state for "authenticated but not connected".
// Once a token opens the mailbox, the connection is handed to imapserver (imapBackend) as
// pre-authenticated, through a shim that rewrites its texts into Exchange's (imapshim.go).

// Exchange Online's capability lists (research/exchange-wire.md §1; MailKit#1494, #1496).
const (
	imapCapsPreAuth  = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
	imapCapsPostAuth = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+"
	// On :143 before STARTTLS, Exchange advertises LOGINDISABLED STARTTLS in the AUTH= mechanisms' place
	// (mscdex/node-imap#685 shows the pair in that position; the rest mirrors :993's list).
	imapCapsPlain = "IMAP4 IMAP4rev1 LOGINDISABLED STARTTLS SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
)

// Exchange's IMAP texts.
const (
	imapGreeting       = "* OK The Microsoft Exchange IMAP4 service is ready. ["
	imapBye            = "* BYE Microsoft Exchange Server IMAP4 server signing off."
	imapNotConnected   = "BAD User is authenticated but not connected."
	imapNotConnBye     = "* BYE Connection closed. 14"
	imapInvalidState   = "BAD Command received in Invalid state."
	imapCommandError   = "BAD Command Error. 10"
	imapArgumentError  = "BAD Command Argument Error. 11"
	imapLiteralCont    = "+ Ready for additional command text."
	imapAuthFailed     = "NO AUTHENTICATE failed."
	imapLoginFailed    = "NO LOGIN failed."
	imapAuthCompleted  = "OK AUTHENTICATE completed."
	imapStartTLSOK     = "OK Begin TLS negotiation now."
	maxIMAPCommandSize = 64 << 10
)

// imapCommands are the commands Exchange knows in some state: outside their state they get
// "Command received in Invalid state." (lefcha/imapfilter#275); anything else "Command Error. 10".
var imapCommands = map[string]bool{
	"CAPABILITY": true, "NOOP": true, "LOGOUT": true, "ID": true, "STARTTLS": true, "AUTHENTICATE": true,
	"LOGIN": true, "SELECT": true, "EXAMINE": true, "CREATE": true, "DELETE": true, "RENAME": true,
	"SUBSCRIBE": true, "UNSUBSCRIBE": true, "LIST": true, "LSUB": true, "STATUS": true, "APPEND": true,
	"CHECK": true, "CLOSE": true, "UNSELECT": true, "EXPUNGE": true, "SEARCH": true, "FETCH": true,
	"STORE": true, "COPY": true, "MOVE": true, "UID": true, "NAMESPACE": true, "IDLE": true, "ENABLE": true,
}

// imapConn is one IMAP connection before the mailbox is open.
type imapConn struct {
	s             *Servers
	conn          net.Conn
	br            *bufio.Reader
	bw            *bufio.Writer
	tls           bool
	offerStartTLS bool // the STARTTLS listener, before STARTTLS
}

func (s *Servers) serveIMAP(c net.Conn, startTLS bool) {
	ic := &imapConn{s: s, conn: c, offerStartTLS: startTLS}
	if tc, ok := c.(*tls.Conn); ok {
		if err := handshake(tc); err != nil {
			s.log.Debug("exchange: IMAP TLS handshake failed", "err", err)
			return
		}
		ic.tls = true
	}
	ic.br, ic.bw = bufio.NewReader(c), bufio.NewWriter(c)
	ic.writeLine(imapGreeting + s.front.GreetingTag() + "]")
	ic.serve()
}

func (ic *imapConn) writeLine(lines ...string) bool {
	ic.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, l := range lines {
		ic.bw.WriteString(l)
		ic.bw.WriteString("\r\n")
	}
	return ic.bw.Flush() == nil
}

func (ic *imapConn) serve() {
	for {
		tag, name, args, err := ic.readCommand()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				ic.writeLine(imapNotConnBye)
			}
			return
		}
		if tag == "" {
			ic.writeLine("* " + imapCommandError)
			continue
		}
		if f := ic.s.commandFault(IMAP); f != nil {
			if !ic.injected(tag, f) {
				return
			}
			continue
		}
		switch name {
		case "CAPABILITY":
			caps := imapCapsPreAuth
			if !ic.tls {
				caps = imapCapsPlain
			}
			ic.writeLine("* CAPABILITY "+caps, tag+" OK CAPABILITY completed.")
		case "NOOP":
			ic.writeLine(tag + " OK NOOP completed.")
		case "LOGOUT":
			ic.writeLine(imapBye, tag+" OK LOGOUT completed.")
			return
		case "ID":
			// Exchange's ID answer was not found; this is RFC 2971's minimal one.
			ic.writeLine("* ID NIL", tag+" OK ID completed.")
		case "STARTTLS":
			if !ic.offerStartTLS || ic.tls {
				ic.writeLine(tag + " " + imapInvalidState)
				continue
			}
			if !ic.startTLS(tag) {
				return
			}
		case "LOGIN":
			user, _ := astring(args)
			ic.s.Authorizer.Refuse(IMAP, user, BasicAuthDisabled, "IMAP LOGIN with a password: Exchange Online accepts only OAuth 2.0 (AUTHENTICATE XOAUTH2)")
			ic.writeLine(tag + " " + imapLoginFailed)
		case "AUTHENTICATE":
			d, ok := ic.authenticate(tag, args)
			if !ok {
				return
			}
			if d == nil {
				continue
			}
			ic.writeLine(tag + " " + imapAuthCompleted)
			if d.OK() {
				ic.handoff(ic.s.Store.Ensure(d.Mailbox))
			} else {
				ic.notConnected()
			}
			return
		default:
			if imapCommands[name] {
				ic.writeLine(tag + " " + imapInvalidState)
			} else {
				ic.writeLine(tag + " " + imapCommandError)
			}
		}
	}
}

// readCommand reads one command with its literals (a synchronising literal is answered with
// Exchange's continuation; LITERAL+ ones are not) and splits it. Literals become quoted strings in
// args, which is all the not-authenticated state needs of them.
func (ic *imapConn) readCommand() (tag, name, args string, err error) {
	var cmd strings.Builder
	for {
		ic.conn.SetReadDeadline(time.Now().Add(commandTimeout))
		line, err := readLine(ic.br, maxIMAPCommandSize-cmd.Len())
		if err != nil {
			return "", "", "", err
		}
		n, plus, start, ok := literalSuffix(line)
		if !ok {
			cmd.Write(line)
			break
		}
		if n > int64(maxIMAPCommandSize-cmd.Len()-len(line)) {
			return "", "", "", errLineTooLong
		}
		cmd.Write(line[:start])
		if !plus {
			ic.writeLine(imapLiteralCont)
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(ic.br, lit); err != nil {
			return "", "", "", err
		}
		cmd.WriteString(strconv.Quote(string(lit)))
	}
	tag, rest, _ := strings.Cut(cmd.String(), " ")
	if !validTag(tag) || rest == "" {
		return "", "", "", nil
	}
	name, args, _ = strings.Cut(rest, " ")
	return tag, strings.ToUpper(name), args, nil
}

func validTag(tag string) bool {
	if tag == "" || tag == "*" {
		return false
	}
	return !strings.ContainsAny(tag, "(){%*\"\\+ \x7f") && strings.IndexFunc(tag, func(r rune) bool { return r < 0x21 || r > 0x7e }) < 0
}

// literalSuffix finds a literal announcement "{N}" or "{N+}" (or "~{N}") at the end of a line.
func literalSuffix(line []byte) (n int64, plus bool, start int, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, 0, false
	}
	digits := line[i+1 : len(line)-1]
	if len(digits) > 0 && digits[len(digits)-1] == '+' {
		plus, digits = true, digits[:len(digits)-1]
	}
	if len(digits) == 0 || len(digits) > 10 {
		return 0, false, 0, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false, 0, false
		}
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, false, 0, false
	}
	if i > 0 && line[i-1] == '~' {
		i--
	}
	return n, plus, i, true
}

// astring reads an atom or a quoted string at the start of s.
func astring(s string) (string, string) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				return b.String(), strings.TrimPrefix(s[i+1:], " ")
			default:
				b.WriteByte(s[i])
			}
		}
		return b.String(), ""
	}
	a, rest, _ := strings.Cut(s, " ")
	return a, rest
}

func (ic *imapConn) startTLS(tag string) bool {
	if !ic.writeLine(tag + " " + imapStartTLSOK) {
		return false
	}
	// Bytes the client sent after STARTTLS in the clear are dropped (a command injection otherwise).
	ic.br.Discard(ic.br.Buffered())
	tc := tls.Server(ic.conn, ic.s.tls)
	if err := handshake(tc); err != nil {
		ic.s.log.Debug("exchange: IMAP STARTTLS handshake failed", "err", err)
		return false
	}
	ic.conn, ic.tls, ic.offerStartTLS = tc, true, false
	ic.br, ic.bw = bufio.NewReader(tc), bufio.NewWriter(tc)
	return true
}

// authenticate runs AUTHENTICATE. It returns the decision when the command succeeded (the
// connection then leaves the not-authenticated state), nil when it failed and the state stays, and
// ok false when the connection is gone.
func (ic *imapConn) authenticate(tag, args string) (*Decision, bool) {
	mech, ir, hasIR := strings.Cut(args, " ")
	mech = strings.ToUpper(mech)
	fail := func() (*Decision, bool) { return nil, ic.writeLine(tag + " " + imapAuthFailed) }
	if !ic.tls {
		ic.s.Authorizer.Refuse(IMAP, "", MechanismUnsupported, "AUTHENTICATE before STARTTLS: Exchange offers no mechanism on a plain connection (LOGINDISABLED)")
		return fail()
	}
	if mech != "XOAUTH2" && mech != "PLAIN" {
		ic.s.Authorizer.Refuse(IMAP, "", MechanismUnsupported, "AUTHENTICATE "+mech+": Exchange Online offers only XOAUTH2 (and PLAIN, which basic-auth refusal fails)")
		return fail()
	}
	resp := []byte(ir)
	if !hasIR {
		// The two-step form: an empty continuation, then the response on its own line.
		if !ic.writeLine("+ ") {
			return nil, false
		}
		ic.conn.SetReadDeadline(time.Now().Add(commandTimeout))
		line, err := readLine(ic.br, maxIMAPCommandSize)
		if err != nil {
			return nil, false
		}
		if string(line) == "*" {
			return nil, ic.writeLine(tag + " BAD AUTHENTICATE cancelled.")
		}
		resp = line
	}
	msg, ok := decodeSASL(resp)
	if !ok {
		ic.s.malformedSASL(IMAP)
		return fail()
	}
	if mech == "PLAIN" {
		user := ""
		if parts := bytes.Split(msg, []byte{0}); len(parts) == 3 {
			user = string(parts[1])
		}
		ic.s.Authorizer.Refuse(IMAP, user, BasicAuthDisabled, "AUTHENTICATE PLAIN with a password: Exchange Online accepts only OAuth 2.0")
		return fail()
	}
	d := ic.s.xoauth2(IMAP, msg)
	if !d.OK() && !d.Deferred {
		return fail()
	}
	return &d, true
}

// injected answers a command with a fault's reply (tagged, unless it is untagged such as "* BYE
// ...") and reports whether the connection goes on.
func (ic *imapConn) injected(tag string, f *world.Fault) bool {
	if f.Drop {
		return false
	}
	line := f.Reply
	if !strings.HasPrefix(line, "*") {
		line = tag + " " + line
	}
	return ic.writeLine(line) && !closesAfter(f.Reply)
}

// notConnected is Exchange's "authenticated but not connected" state: CAPABILITY and LOGOUT are
// answered, every other command gets "BAD User is authenticated but not connected.", and the second
// such answer is followed by "* BYE Connection closed. 14" and the end of the connection (MailKit#1496).
func (ic *imapConn) notConnected() {
	bad := 0
	for {
		tag, name, _, err := ic.readCommand()
		if err != nil {
			return
		}
		if tag == "" {
			tag = "*"
		}
		if f := ic.s.commandFault(IMAP); f != nil {
			if !ic.injected(tag, f) {
				return
			}
			continue
		}
		switch name {
		case "CAPABILITY":
			ic.writeLine("* CAPABILITY "+imapCapsPostAuth, tag+" OK CAPABILITY completed.")
			continue
		case "LOGOUT":
			ic.writeLine(imapBye, tag+" OK LOGOUT completed.")
			return
		}
		bad++
		if bad < 2 {
			ic.writeLine(tag + " " + imapNotConnected)
			continue
		}
		ic.writeLine(tag+" "+imapNotConnected, imapNotConnBye)
		return
	}
}

// handoff gives the connection, with what the client already sent, to imapserver and waits until
// that is done with it.
func (ic *imapConn) handoff(mb *mailstore.Mailbox) {
	pre, _ := ic.br.Peek(ic.br.Buffered())
	sh := newShim(ic.conn, append([]byte(nil), pre...), mb.NewSession(), func() *world.Fault { return ic.s.commandFault(IMAP) })
	ic.conn.SetDeadline(time.Time{})
	if !ic.s.imap.ln.push(sh) {
		return
	}
	<-sh.done
}

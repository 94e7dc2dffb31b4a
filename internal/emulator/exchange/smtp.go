package exchange

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// SMTP submission, as smtp.office365.com:587 (STARTTLS).
//
// Written by hand rather than on emersion/go-smtp's server: go-smtp fixes the texts this emulator
// exists to reproduce and offers no hook to change them — its banner ("220 <domain> ESMTP Service
// Ready"), its EHLO answer ("250-Hello <domain>", its own extension order, AUTH placement),
// "220 2.0.0 Ready to start TLS", "235 2.0.0 Authentication succeeded", "354 Go ahead", "250 2.0.0
// Roger, accepting mail", "221 2.0.0 Bye". Submission is a small protocol (RFC 5321, 3207, 4954,
// 3030); go-smtp's client is used by the tests as an independent implementation.

// Exchange's SMTP texts (research/exchange-wire.md §3 and the sources there).
const (
	smtpAuthOK          = "235 2.7.0 Authentication successful"
	smtpAuthBad         = "535 5.7.3 Authentication unsuccessful "
	smtpAuthDisabledTen = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
	smtpAuthDisabledMbx = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. " // unconfirmed
	smtpBasicAuth       = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
	// smtpBasicAuthRetired is the answer once Microsoft retires basic authentication for Client
	// Submission (disabled by default for existing tenants from late December 2026): Exchange Team
	// Blog, "Exchange Online to retire Basic auth for Client Submission (SMTP AUTH)", timeline revised
	// January 2026, as quoted in https://www.captaindns.com/en/blog/microsoft-exchange-basic-auth-smtp-end.
	smtpBasicAuthRetired = "550 5.7.30 Basic authentication is not supported for Client Submission. "
	smtpUnrecognizedAuth = "504 5.7.4 Unrecognized authentication type"
	smtpNotAuthed        = "530 5.7.57 Client not authenticated to send mail"
	smtpStartTLS         = "220 2.0.0 SMTP server ready"
	smtpRecipientNF      = "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
	smtpNotImplemented   = "502 5.3.3 Command not implemented"
	// The rest are Exchange's usual texts, unconfirmed for Exchange Online (no transcript found).
	smtpHelloFirst     = "503 5.5.2 Send hello first"
	smtpNeedMail       = "503 5.5.2 Need mail command"
	smtpNeedRcpt       = "503 5.5.2 Need rcpt command"
	smtpSenderAlready  = "503 5.5.2 Sender already specified"
	smtpAlreadyAuthed  = "503 5.5.2 Already authenticated"
	smtpBadSequence    = "503 5.5.1 Bad sequence of commands"
	smtpBadArgs        = "501 5.5.4 Invalid arguments"
	smtpCannotDecode   = "501 5.5.2 Cannot Decode response"
	smtpAuthCancelled  = "501 5.0.0 Authentication cancelled"
	smtpTooBig         = "552 5.3.4 Message size exceeds fixed maximum message size"
	smtpTooManyRcpts   = "452 4.5.3 Too many recipients"
	smtpLineTooLong    = "500 5.5.2 Line too long"
	smtpSenderOK       = "250 2.1.0 Sender OK"
	smtpRecipientOK    = "250 2.1.5 Recipient OK"
	smtpStartInput     = "354 Start mail input; end with <CRLF>.<CRLF>"
	smtpReset          = "250 2.0.0 Resetting"
	smtpNoop           = "250 2.0.0 OK"
	smtpQuit           = "221 2.0.0 Service closing transmission channel"
	smtpVrfy           = "252 2.1.5 Cannot VRFY user"
	smtpMaxSize        = 157286400 // SIZE in Exchange Online's EHLO answer
	smtpMaxRecipients  = 500
	smtpMaxCommandLine = 64 << 10 // AUTH XOAUTH2 with an initial response carries a token
	smtpMaxDataLine    = 1 << 20
)

type smtpConn struct {
	s    *Servers
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	tls  bool

	helo   string
	auth   *Decision // set by a successful AUTH
	from   *string   // reverse-path of the current transaction
	rcpts  []string
	binary bool // BODY=BINARYMIME: only BDAT
	chunks bytes.Buffer
}

func (s *Servers) serveSMTP(c net.Conn) {
	sc := &smtpConn{s: s, conn: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}
	now := s.now().UTC()
	sc.reply(fmt.Sprintf("220 %s Microsoft ESMTP MAIL Service ready at %s [%s]",
		s.front.SMTPHost(), now.Format("Mon, 2 Jan 2006 15:04:05 -0700"), sessionHex()))
	sc.serve()
}

func (sc *smtpConn) reply(lines ...string) bool {
	sc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, l := range lines {
		sc.bw.WriteString(l)
		sc.bw.WriteString("\r\n")
	}
	return sc.bw.Flush() == nil
}

// bracket is the server suffix of Exchange's error replies.
func (sc *smtpConn) bracket() string { return sc.s.front.Bracket(sc.s.now()) }

func (sc *smtpConn) reset() {
	sc.from, sc.rcpts, sc.binary = nil, nil, false
	sc.chunks.Reset()
}

func (sc *smtpConn) serve() {
	for {
		sc.conn.SetReadDeadline(time.Now().Add(commandTimeout))
		line, err := readLine(sc.br, smtpMaxCommandLine)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				sc.reply(smtpLineTooLong)
			}
			return
		}
		if f := sc.s.commandFault(SMTP); f != nil {
			if f.Drop || !sc.reply(f.Reply) || closesAfter(f.Reply) {
				return
			}
			continue
		}
		verb, arg, _ := strings.Cut(string(line), " ")
		if !sc.handle(strings.ToUpper(verb), strings.TrimSpace(arg), string(line)) {
			return
		}
	}
}

// handle runs one command; false ends the connection.
func (sc *smtpConn) handle(verb, arg, line string) bool {
	switch verb {
	case "EHLO", "HELO":
		if arg == "" {
			return sc.reply(smtpBadArgs)
		}
		sc.helo = arg
		sc.reset()
		host := sc.s.front.SMTPHost()
		ip := "127.0.0.1"
		if a, ok := sc.conn.RemoteAddr().(*net.TCPAddr); ok {
			ip = a.IP.String()
		}
		if verb == "HELO" {
			return sc.reply("250 " + host + " Hello [" + ip + "]")
		}
		// Exchange Online's list (email-oauth2-proxy#416, go-mail#130); after STARTTLS, AUTH takes
		// STARTTLS's place (email-oauth2-proxy#142).
		tlsLine := "250-STARTTLS"
		if sc.tls {
			tlsLine = "250-AUTH LOGIN XOAUTH2"
		}
		return sc.reply("250-"+host+" Hello ["+ip+"]", "250-SIZE "+strconv.Itoa(smtpMaxSize), "250-PIPELINING",
			"250-DSN", "250-ENHANCEDSTATUSCODES", tlsLine, "250-8BITMIME", "250-BINARYMIME", "250-CHUNKING", "250 SMTPUTF8")
	case "STARTTLS":
		if sc.tls {
			return sc.reply(smtpBadSequence)
		}
		return sc.startTLS()
	case "AUTH":
		return sc.authenticate(arg)
	case "MAIL":
		return sc.mail(arg)
	case "RCPT":
		return sc.rcpt(arg)
	case "DATA":
		return sc.data(arg)
	case "BDAT":
		return sc.bdat(arg)
	case "RSET":
		sc.reset()
		return sc.reply(smtpReset)
	case "NOOP":
		return sc.reply(smtpNoop)
	case "QUIT":
		sc.reply(smtpQuit)
		return false
	case "VRFY":
		return sc.reply(smtpVrfy)
	case "EXPN", "HELP", "TURN", "ETRN", "SEND", "SOML", "SAML":
		return sc.reply(smtpNotImplemented)
	}
	shown := line
	if len(shown) > 64 {
		shown = shown[:64]
	}
	return sc.reply("500 5.3.3 Unrecognized command '" + shown + "' " + sc.bracket())
}

func (sc *smtpConn) startTLS() bool {
	if !sc.reply(smtpStartTLS) {
		return false
	}
	sc.br.Discard(sc.br.Buffered()) // plaintext pipelined after STARTTLS is dropped (RFC 3207 §6)
	tc := tls.Server(sc.conn, sc.s.tls)
	if err := handshake(tc); err != nil {
		sc.s.log.Debug("exchange: SMTP STARTTLS handshake failed", "err", err)
		return false
	}
	sc.conn, sc.tls = tc, true
	sc.br, sc.bw = bufio.NewReader(tc), bufio.NewWriter(tc)
	sc.helo, sc.auth = "", nil
	sc.reset()
	return true
}

// readSASL reads a client's response line to a 334 continuation; ok false ends the exchange (the
// reply is sent), and the connection when alive is false.
func (sc *smtpConn) readSASL(challenge string) (msg []byte, ok, alive bool) {
	if !sc.reply("334 " + challenge) {
		return nil, false, false
	}
	sc.conn.SetReadDeadline(time.Now().Add(commandTimeout))
	line, err := readLine(sc.br, smtpMaxCommandLine)
	if err != nil {
		return nil, false, false
	}
	if string(line) == "*" {
		return nil, false, sc.reply(smtpAuthCancelled)
	}
	msg, good := decodeSASL(line)
	if !good {
		return nil, false, sc.reply(smtpCannotDecode)
	}
	return msg, true, true
}

// basicAuthRetired reports whether the tenant of the login's address (or, for an address of no
// tenant, the World's first) has retired basic authentication for Client Submission.
func (sc *smtpConn) basicAuthRetired(user string) bool {
	w := sc.s.live.Load()
	t := w.TenantForUPN(user)
	if t == nil && len(w.Tenants) > 0 {
		t = w.Tenants[0]
	}
	return t != nil && t.SMTPBasicAuthRetired
}

func (sc *smtpConn) authenticate(arg string) bool {
	mech, ir, hasIR := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	switch {
	case sc.helo == "":
		return sc.reply(smtpHelloFirst)
	case sc.auth != nil:
		return sc.reply(smtpAlreadyAuthed)
	case sc.from != nil:
		return sc.reply(smtpBadSequence)
	case !sc.tls || (mech != "XOAUTH2" && mech != "LOGIN"):
		// Before STARTTLS Exchange offers no mechanism; after it, LOGIN and XOAUTH2 only (AUTH PLAIN:
		// mattermost/mattermost#954).
		sc.s.Authorizer.Refuse(SMTP, "", MechanismUnsupported, "AUTH "+mech+" (TLS "+strconv.FormatBool(sc.tls)+"): Exchange offers AUTH LOGIN XOAUTH2, after STARTTLS only")
		return sc.reply(smtpUnrecognizedAuth)
	}
	if mech == "LOGIN" {
		user := ""
		if hasIR {
			if b, ok := decodeSASL([]byte(ir)); ok {
				user = string(b)
			}
		} else {
			b, ok, alive := sc.readSASL("VXNlcm5hbWU6") // "Username:"
			if !ok {
				return alive
			}
			user = string(b)
		}
		if _, ok, alive := sc.readSASL("UGFzc3dvcmQ6"); !ok { // "Password:"
			return alive
		}
		if sc.basicAuthRetired(user) {
			sc.s.Authorizer.Refuse(SMTP, user, BasicAuthDisabled, "SMTP AUTH LOGIN with a password: the tenant's basic authentication for Client Submission is retired (smtp_basic_auth); use AUTH XOAUTH2")
			return sc.reply(smtpBasicAuthRetired + sc.bracket())
		}
		sc.s.Authorizer.Refuse(SMTP, user, BasicAuthDisabled, "SMTP AUTH LOGIN with a password: Exchange Online accepts only OAuth 2.0 (AUTH XOAUTH2)")
		return sc.reply(smtpBasicAuth + sc.bracket())
	}
	var msg []byte
	if hasIR {
		// Exchange's documentation describes the two-step form; the one-line form is what most
		// clients (smtplib, go-smtp, msmtp) send, and is accepted.
		b, ok := decodeSASL([]byte(ir))
		if !ok {
			return sc.reply(smtpCannotDecode)
		}
		msg = b
	} else {
		b, ok, alive := sc.readSASL("")
		if !ok {
			return alive
		}
		msg = b
	}
	d := sc.s.xoauth2(SMTP, msg)
	switch {
	case d.OK():
		sc.auth = &d
		return sc.reply(smtpAuthOK)
	case d.Reason == SMTPAuthDisabledTenant:
		return sc.reply(smtpAuthDisabledTen + sc.bracket())
	case d.Reason == SMTPAuthDisabledMailbox:
		return sc.reply(smtpAuthDisabledMbx + sc.bracket())
	}
	return sc.reply(smtpAuthBad + sc.bracket())
}

// path parses "FROM:<addr> params" / "TO:<addr> params"; the address may be empty (<>) for FROM.
func parsePath(arg, prefix string) (addr string, params []string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		// Some clients omit the brackets; take the first word.
		a, p, _ := strings.Cut(rest, " ")
		return a, strings.Fields(p), a != "" && !strings.ContainsAny(a, "<>")
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, false
	}
	addr = rest[1:end]
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && strings.HasPrefix(addr, "@") {
		addr = addr[i+1:] // a source route
	}
	if strings.ContainsAny(addr, " <>") {
		return "", nil, false
	}
	return addr, strings.Fields(rest[end+1:]), true
}

func (sc *smtpConn) mail(arg string) bool {
	switch {
	case sc.helo == "":
		return sc.reply(smtpHelloFirst)
	case sc.auth == nil:
		return sc.reply(smtpNotAuthed)
	case sc.from != nil:
		return sc.reply(smtpSenderAlready)
	}
	addr, params, ok := parsePath(arg, "FROM:")
	if !ok {
		return sc.reply(smtpBadArgs)
	}
	binary := false
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return sc.reply(smtpBadArgs)
			}
			if n > smtpMaxSize {
				return sc.reply(smtpTooBig)
			}
		case "BODY":
			switch strings.ToUpper(v) {
			case "7BIT", "8BITMIME":
			case "BINARYMIME":
				binary = true
			default:
				return sc.reply(smtpBadArgs)
			}
		case "SMTPUTF8", "RET", "ENVID", "AUTH":
		default:
			return sc.reply(smtpBadArgs)
		}
	}
	sc.from, sc.binary = &addr, binary
	return sc.reply(smtpSenderOK)
}

func (sc *smtpConn) rcpt(arg string) bool {
	if sc.from == nil {
		return sc.reply(smtpNeedMail)
	}
	addr, params, ok := parsePath(arg, "TO:")
	if !ok || addr == "" || !strings.Contains(addr, "@") {
		return sc.reply(smtpBadArgs)
	}
	for _, p := range params {
		k, _, _ := strings.Cut(p, "=")
		if k = strings.ToUpper(k); k != "NOTIFY" && k != "ORCPT" {
			return sc.reply(smtpBadArgs)
		}
	}
	if len(sc.rcpts) >= smtpMaxRecipients {
		return sc.reply(smtpTooManyRcpts)
	}
	if kind, _ := ResolveRecipient(sc.s.live.Load(), addr); kind == NotFound {
		return sc.reply(smtpRecipientNF)
	}
	sc.rcpts = append(sc.rcpts, addr)
	return sc.reply(smtpRecipientOK)
}

func (sc *smtpConn) data(arg string) bool {
	switch {
	case arg != "":
		return sc.reply(smtpBadArgs)
	case sc.from == nil:
		return sc.reply(smtpNeedMail)
	case len(sc.rcpts) == 0:
		return sc.reply(smtpNeedRcpt)
	case sc.binary || sc.chunks.Len() > 0:
		return sc.reply(smtpBadSequence)
	}
	if !sc.reply(smtpStartInput) {
		return false
	}
	// The message up to CRLF.CRLF, dot-unstuffed, byte for byte otherwise.
	var msg bytes.Buffer
	tooBig := false
	for {
		sc.conn.SetReadDeadline(time.Now().Add(commandTimeout))
		line, err := readRawLine(sc.br, smtpMaxDataLine)
		if err != nil {
			return false
		}
		if bytes.Equal(line, []byte(".\r\n")) || bytes.Equal(line, []byte(".\n")) {
			break
		}
		if line[0] == '.' {
			line = line[1:]
		}
		if msg.Len()+len(line) > smtpMaxSize {
			tooBig = true
			continue
		}
		msg.Write(line)
	}
	if tooBig {
		sc.reset()
		return sc.reply(smtpTooBig)
	}
	return sc.submit(msg.Bytes())
}

// readRawLine reads a line with its terminator, bounded.
func readRawLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, errLineTooLong
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

func (sc *smtpConn) bdat(arg string) bool {
	f := strings.Fields(arg)
	n := int64(-1)
	if len(f) >= 1 {
		if v, err := strconv.ParseInt(f[0], 10, 64); err == nil && v >= 0 {
			n = v
		}
	}
	last := len(f) == 2 && strings.EqualFold(f[1], "LAST")
	if n < 0 || len(f) > 2 || (len(f) == 2 && !last) {
		return sc.reply(smtpBadArgs)
	}
	// The chunk follows the command whatever the answer.
	sc.conn.SetReadDeadline(time.Now().Add(commandTimeout))
	if sc.from == nil || len(sc.rcpts) == 0 || int64(sc.chunks.Len())+n > smtpMaxSize {
		if _, err := io.CopyN(io.Discard, sc.br, n); err != nil {
			return false
		}
		switch {
		case sc.from == nil:
			return sc.reply(smtpNeedMail)
		case len(sc.rcpts) == 0:
			return sc.reply(smtpNeedRcpt)
		}
		sc.reset()
		return sc.reply(smtpTooBig)
	}
	if _, err := io.CopyN(&sc.chunks, sc.br, n); err != nil {
		return false
	}
	if !last {
		return sc.reply(fmt.Sprintf("250 2.0.0 BDAT %d bytes received", n))
	}
	msg := append([]byte(nil), sc.chunks.Bytes()...)
	return sc.submit(msg)
}

// submit checks the senders and delivers, answering the end of DATA (or BDAT LAST).
func (sc *smtpConn) submit(msg []byte) bool {
	defer sc.reset()
	d := *sc.auth
	senders := headerSenders(msg)
	if *sc.from != "" {
		senders = append(senders, *sc.from)
	}
	for _, addr := range senders {
		if !CanSendAs(d.Token, d.Mailbox, addr) {
			sc.s.log.Info("exchange: send-as denied", "protocol", "SMTP", "principal", d.Principal(), "from", addr)
			return sc.reply(fmt.Sprintf("554 5.2.252 SendAsDenied; %s not allowed to send as %s; "+
				"STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "+
				"Failed to process message due to a permanent exception with message [BeginDiagnosticData]"+
				"Cannot submit message. 0.35250:1F009983, 1.36674:0A000000, 1.61250:00000000, 1.45378:02000000, "+
				"1.44866:00000000[EndDiagnosticData] [Hostname=%s]", d.Principal(), addr, strings.ToUpper(sc.s.front.FQDN())))
		}
	}
	delivered := Deliver(sc.s.live.Load(), sc.s.Store, sc.s.Authorizer.events, d.Mailbox, sc.rcpts, msg)
	sc.s.log.Debug("exchange: message submitted", "protocol", "SMTP", "from", d.Mailbox, "recipients", len(sc.rcpts),
		"delivered", len(delivered), "size", len(msg))
	id := messageID(msg)
	if id == "" {
		id = "<" + sessionHex() + sessionHex() + "@" + strings.ToLower(sc.s.front.FQDN()) + ">"
	}
	return sc.reply(fmt.Sprintf("250 2.0.0 OK %s [Hostname=%s]", id, strings.ToUpper(sc.s.front.FQDN())))
}

// messageID is the Message-ID header of a message, with its angle brackets.
func messageID(data []byte) string {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(data)
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(append([]byte(nil), data[:end]...), "\r\n\r\n"...)))
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(m.Header.Get("Message-ID"))
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") || strings.ContainsAny(id, "\r\n") {
		return ""
	}
	return id
}

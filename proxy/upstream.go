package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/trace"
)

// upstreamConn is the connection to the real server until the splice.
type upstreamConn struct {
	conn    net.Conn
	r       *bufio.Reader // reads conn, counting into read (newReader)
	addr    string
	tlsCfg  *tls.Config
	ctx     context.Context
	hello   string // the name SMTP's EHLO gives
	lastCap []string

	// What the server has sent before the splice, against the bounds below: in all, in the reply
	// being read (since the last command), and SASL challenges.
	read       int
	replyBytes int
	replyLines int
	challenges int
}

// upstreamProtocol is the client side of one protocol, up to a successful authentication.
type upstreamProtocol interface {
	name() string
	// protocol is its name in the configuration (config.ProtocolIMAP, ...).
	protocol() string
	// open reads the greeting and, for STARTTLS, upgrades (a server that does not offer it is an
	// error, never a downgrade).
	open(u *upstreamConn, mode dial.Mode) error
	// authenticate presents the token; a *refusal when the server says no, with its words.
	authenticate(u *upstreamConn, mech, user, token string) (ok string, err error)
}

// refusal is the server's "no" to a token.
type refusal struct {
	said      string
	challenge *sasl.ServerError
}

func (r *refusal) Error() string { return "the server refused the token: " + r.said }

// Bounds on what the server sends before the splice. A real login reads a few KiB (Exchange's EHLO
// is 9 lines, a CAPABILITY list < 1 KiB, an error challenge ~100 bytes); a server that sends more is
// broken, or someone on the path streaming at the proxy before STARTTLS (SMTP on 587 and 25, IMAP on
// 143 and POP3 on 110 begin in clear text). Each bound refuses that session only, and keeps its
// memory to a few hundred KiB.
const (
	maxUpstreamLine  = 64 << 10  // one line
	maxReplyBytes    = 64 << 10  // one reply: SMTP's multi-line reply, or IMAP's untagged lines before the tagged one
	maxReplyLines    = 256       // lines in one reply
	maxChallenge     = 8 << 10   // one SASL challenge, as sent (base64)
	maxChallenges    = 4         // per login (a real exchange has two at most: the prompt and the error)
	maxUpstreamTotal = 128 << 10 // everything the server sends before the splice
)

// tooMuchError is a server that broke one of the bounds above.
type tooMuchError struct{ what string }

func (e *tooMuchError) Error() string {
	return "the server sent " + e.what + ", more than any mail server does (a broken server, or one tampered with before TLS): check the upstream address"
}

// failureMsg is what the program is told when the server failed its login with err: otherwise,
// unless the server broke a bound.
func failureMsg(err error, otherwise string) string {
	var tm *tooMuchError
	if errors.As(err, &tm) {
		return "The mail server sent more than the proxy accepts before login; see the proxy log."
	}
	return otherwise
}

// countedReader is what the upstream reader reads through before the splice: it fails once the
// server has sent maxUpstreamTotal bytes. The splice reads the connection directly.
type countedReader struct{ u *upstreamConn }

func (c countedReader) Read(p []byte) (int, error) {
	left := maxUpstreamTotal - c.u.read
	if left <= 0 {
		return 0, &tooMuchError{fmt.Sprintf("more than %d KiB before the login completed", maxUpstreamTotal>>10)}
	}
	n, err := c.u.conn.Read(p[:min(len(p), left)])
	c.u.read += n
	return n, err
}

// newReader (re)starts the buffered reader on u.conn, counting on from what was read before.
func (u *upstreamConn) newReader() { u.r = bufio.NewReaderSize(countedReader{u}, 4096) }

// dialUpstream connects to addr with verified TLS (the account's CAs) and runs the protocol's
// opening, all within ctx's deadline.
func dialUpstream(ctx context.Context, p upstreamProtocol, addr string, tlsCfg *tls.Config, hello string) (*upstreamConn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("upstream %q is not host:port", addr)
	}
	mode := dial.ModeFor(p.protocol(), port)
	conn, cfg, err := dial.Open(ctx, addr, dial.Options{Mode: mode, TLSConfig: tlsCfg})
	if err != nil {
		return nil, err
	}
	u := &upstreamConn{conn: conn, addr: addr, tlsCfg: cfg, ctx: ctx, hello: hello}
	u.newReader()
	if err := p.open(u, mode); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s server %s: %w", p.name(), addr, err)
	}
	return u, nil
}

// line reads one line of the server's reply, within the bounds of a line, of the reply so far, and
// of everything before the splice.
func (u *upstreamConn) line() (string, error) {
	if u.replyLines >= maxReplyLines {
		return "", &tooMuchError{fmt.Sprintf("a reply of more than %d lines", maxReplyLines)}
	}
	limit := min(maxUpstreamLine, maxReplyBytes-u.replyBytes)
	var buf []byte
	for {
		chunk, err := u.r.ReadSlice('\n')
		if len(buf)+len(chunk) > limit {
			if len(buf)+len(chunk) > maxUpstreamLine {
				return "", &tooMuchError{fmt.Sprintf("a line longer than %d KiB", maxUpstreamLine>>10)}
			}
			return "", &tooMuchError{fmt.Sprintf("a reply longer than %d KiB", maxReplyBytes>>10)}
		}
		buf = append(buf, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		var tm *tooMuchError
		if errors.As(err, &tm) {
			return "", err
		}
		if err == io.EOF && len(buf) > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return "", fmt.Errorf("connection lost: %w", err)
		}
		u.replyLines++
		u.replyBytes += len(buf)
		return strings.TrimRight(string(buf), "\r\n"), nil
	}
}

// send sends one command line; what the server says next is a new reply.
func (u *upstreamConn) send(line string) error {
	u.replyBytes, u.replyLines = 0, 0
	_, err := io.WriteString(u.conn, line+"\r\n")
	return err
}

// answer answers a SASL challenge (base64 text), within the bounds of its size and number.
func (u *upstreamConn) answer(c *sasl.Client, text string) error {
	if u.challenges++; u.challenges > maxChallenges {
		return &tooMuchError{fmt.Sprintf("more than %d SASL challenges", maxChallenges)}
	}
	text = strings.TrimSpace(text)
	if len(text) > maxChallenge {
		return &tooMuchError{fmt.Sprintf("a SASL challenge longer than %d KiB", maxChallenge>>10)}
	}
	ch, _ := base64.StdEncoding.DecodeString(text)
	resp, err := c.Next(ch)
	if err != nil {
		return err // a credential sasl cannot encode unambiguously: never sent
	}
	return u.send(b64(resp))
}

// upgrade starts TLS after the protocol's STARTTLS was accepted.
func (u *upstreamConn) upgrade() error {
	if u.r.Buffered() > 0 {
		return errors.New("the server sent data after accepting STARTTLS (a man-in-the-middle injection?)")
	}
	tc, err := dial.Upgrade(u.ctx, u.conn, u.tlsCfg, trace.Func(nil))
	if err != nil {
		return err
	}
	u.conn = tc
	u.newReader()
	return nil
}

// greetAndStartTLS reads an IMAP or POP3 greeting (which must start with greeting) and, for
// STARTTLS, sends cmd and upgrades when the reply (the first line starting with replyPrefix; untagged
// lines before it are skipped) starts with ok. A refusal is an error: never a downgrade to clear text.
func (u *upstreamConn) greetAndStartTLS(mode dial.Mode, greeting, cmd, replyPrefix, ok string) error {
	g, err := u.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(g, greeting) {
		return fmt.Errorf("unexpected greeting %q", oneLine(g))
	}
	if mode != dial.StartTLS {
		return nil
	}
	if err := u.send(cmd); err != nil {
		return err
	}
	for {
		l, err := u.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, replyPrefix) {
			continue
		}
		if !strings.HasPrefix(l, ok) {
			return fmt.Errorf("%s refused (%q): the server does not offer it; refusing to continue without TLS", strings.Fields(cmd)[len(strings.Fields(cmd))-1], oneLine(l))
		}
		return u.upgrade()
	}
}

// ready clears the handshake deadline before the splice, which sets its own.
func (u *upstreamConn) ready() { _ = u.conn.SetDeadline(time.Time{}) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// --- IMAP ---

type imapUp struct{}

func (imapUp) name() string { return "IMAP" }

func (imapUp) protocol() string { return config.ProtocolIMAP }

func (imapUp) open(u *upstreamConn, mode dial.Mode) error {
	return u.greetAndStartTLS(mode, "* OK", "m0 STARTTLS", "m0 ", "m0 OK")
}

func (imapUp) authenticate(u *upstreamConn, mech, user, token string) (string, error) {
	c := sasl.NewClient(mech, user, token, u.addr)
	_, ir, err := c.Start()
	if err != nil {
		return "", err // a credential sasl cannot encode unambiguously: never sent
	}
	tag := "m1"
	if err := u.send(tag + " AUTHENTICATE " + mech + " " + b64(ir)); err != nil {
		return "", err
	}
	for {
		l, err := u.line()
		if err != nil {
			return "", err
		}
		switch {
		case strings.HasPrefix(l, "+"):
			if err := u.answer(c, strings.TrimPrefix(l, "+")); err != nil {
				return "", err
			}
		case strings.HasPrefix(l, tag+" OK"):
			return strings.TrimPrefix(l, tag+" "), nil
		case strings.HasPrefix(l, tag+" "):
			return "", &refusal{said: strings.TrimPrefix(l, tag+" "), challenge: c.ServerError()}
		}
	}
}

// --- POP3 ---

type popUp struct{}

func (popUp) name() string { return "POP3" }

func (popUp) protocol() string { return config.ProtocolPOP }

func (popUp) open(u *upstreamConn, mode dial.Mode) error {
	return u.greetAndStartTLS(mode, "+OK", "STLS", "", "+OK")
}

// authenticate uses the two-step AUTH, which Exchange Online's POP3 requires (it does not take an
// initial response).
func (popUp) authenticate(u *upstreamConn, mech, user, token string) (string, error) {
	c := sasl.NewClient(mech, user, token, u.addr).TwoStep()
	_, _, _ = c.Start()
	if err := u.send("AUTH " + mech); err != nil {
		return "", err
	}
	for {
		l, err := u.line()
		if err != nil {
			return "", err
		}
		switch {
		case strings.HasPrefix(l, "+OK"):
			return l, nil
		case strings.HasPrefix(l, "+"):
			if err := u.answer(c, strings.TrimPrefix(l, "+")); err != nil {
				return "", err
			}
		default:
			return "", &refusal{said: l, challenge: c.ServerError()}
		}
	}
}

// --- SMTP ---

type smtpUp struct{}

func (smtpUp) name() string { return "SMTP" }

func (smtpUp) protocol() string { return config.ProtocolSMTP }

// reply reads a possibly multi-line SMTP reply: its code and its lines' texts.
func (u *upstreamConn) reply() (int, []string, error) {
	var texts []string
	for {
		l, err := u.line()
		if err != nil {
			return 0, nil, err
		}
		if len(l) < 3 {
			return 0, nil, fmt.Errorf("malformed reply %q", oneLine(l))
		}
		var code int
		if _, err := fmt.Sscanf(l[:3], "%d", &code); err != nil {
			return 0, nil, fmt.Errorf("malformed reply %q", oneLine(l))
		}
		text := ""
		if len(l) > 4 {
			text = l[4:]
		}
		texts = append(texts, text)
		if len(l) == 3 || l[3] == ' ' {
			return code, texts, nil
		}
	}
}

func (u *upstreamConn) ehlo() ([]string, error) {
	if err := u.send("EHLO " + u.hello); err != nil {
		return nil, err
	}
	code, texts, err := u.reply()
	if err != nil {
		return nil, err
	}
	if code != 250 {
		return nil, fmt.Errorf("EHLO refused: %d %s", code, oneLine(strings.Join(texts, " ")))
	}
	return texts[1:], nil
}

func (smtpUp) open(u *upstreamConn, mode dial.Mode) error {
	code, texts, err := u.reply()
	if err != nil {
		return err
	}
	if code != 220 {
		return fmt.Errorf("unexpected greeting %d %s", code, oneLine(strings.Join(texts, " ")))
	}
	ext, err := u.ehlo()
	if err != nil {
		return err
	}
	if mode == dial.StartTLS {
		if !hasExtension(ext, "STARTTLS") {
			return errors.New("the server does not offer STARTTLS: refusing to send a token without TLS (use port 587, or 465 for implicit TLS)")
		}
		if err := u.send("STARTTLS"); err != nil {
			return err
		}
		code, texts, err := u.reply()
		if err != nil {
			return err
		}
		if code != 220 {
			return fmt.Errorf("STARTTLS refused: %d %s", code, oneLine(strings.Join(texts, " ")))
		}
		if err := u.upgrade(); err != nil {
			return err
		}
		if ext, err = u.ehlo(); err != nil {
			return err
		}
	}
	u.lastCap = ext
	return nil
}

func hasExtension(ext []string, name string) bool {
	for _, e := range ext {
		if f := strings.Fields(e); len(f) > 0 && strings.EqualFold(f[0], name) {
			return true
		}
	}
	return false
}

// authenticate uses the two-step AUTH: Postfix cuts lines at 2,048 bytes and an Entra token can be
// longer; Microsoft documents XOAUTH2 for SMTP this way.
func (smtpUp) authenticate(u *upstreamConn, mech, user, token string) (string, error) {
	c := sasl.NewClient(mech, user, token, u.addr).TwoStep()
	_, _, _ = c.Start()
	if err := u.send("AUTH " + mech); err != nil {
		return "", err
	}
	for {
		code, texts, err := u.reply()
		if err != nil {
			return "", err
		}
		text := strings.Join(texts, " ")
		switch {
		case code == 235:
			return fmt.Sprintf("%d %s", code, text), nil
		case code == 334:
			if err := u.answer(c, text); err != nil {
				return "", err
			}
		default:
			return "", &refusal{said: fmt.Sprintf("%d %s", code, text), challenge: c.ServerError()}
		}
	}
}

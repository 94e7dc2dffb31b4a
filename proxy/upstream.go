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
	"github.com/mailoauth/mailoauth/internal/dial"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/trace"
)

// upstreamConn is the connection to the real server until the splice.
type upstreamConn struct {
	conn    net.Conn
	r       *bufio.Reader
	addr    string
	tlsCfg  *tls.Config
	ctx     context.Context
	hello   string // the name SMTP's EHLO gives
	lastCap []string
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

// maxUpstreamLine bounds a line from the server before the splice (a CAPABILITY list is < 1 KiB).
const maxUpstreamLine = 64 << 10

// dialUpstream connects to addr with verified TLS (the account's CAs) and runs the protocol's
// opening, all within ctx's deadline.
func dialUpstream(ctx context.Context, p upstreamProtocol, addr string, tlsCfg *tls.Config, hello string) (*upstreamConn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("upstream %q is not host:port", addr)
	}
	mode := dial.ModeFor(p.protocol(), port)
	conn, cfg, err := dial.Open(ctx, addr, mode, tlsCfg, trace.Func(nil))
	if err != nil {
		return nil, err
	}
	u := &upstreamConn{conn: conn, r: bufio.NewReaderSize(conn, 4096), addr: addr, tlsCfg: cfg, ctx: ctx, hello: hello}
	if err := p.open(u, mode); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s server %s: %w", p.name(), addr, err)
	}
	return u, nil
}

func (u *upstreamConn) line() (string, error) {
	var buf []byte
	for {
		chunk, err := u.r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxUpstreamLine {
			return "", errors.New("the server sent a line longer than 64 KiB")
		}
		buf = append(buf, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(buf) > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return "", fmt.Errorf("connection lost: %w", err)
		}
		return strings.TrimRight(string(buf), "\r\n"), nil
	}
}

func (u *upstreamConn) send(line string) error {
	_, err := io.WriteString(u.conn, line+"\r\n")
	return err
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
	u.conn, u.r = tc, bufio.NewReaderSize(tc, 4096)
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
	_, ir, _ := c.Start()
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
			ch, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(l, "+")))
			resp, _ := c.Next(ch)
			if err := u.send(b64(resp)); err != nil {
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
// initial response: research/exchange-wire.md §2).
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
			ch, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(l, "+")))
			resp, _ := c.Next(ch)
			if err := u.send(b64(resp)); err != nil {
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
			ch, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
			resp, _ := c.Next(ch)
			if err := u.send(b64(resp)); err != nil {
				return "", err
			}
		default:
			return "", &refusal{said: fmt.Sprintf("%d %s", code, text), challenge: c.ServerError()}
		}
	}
}

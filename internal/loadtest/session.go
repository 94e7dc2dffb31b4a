package loadtest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The protocols a session speaks, as the proxy's configuration names them.
const (
	IMAP = "imap"
	POP  = "pop"
	SMTP = "smtp"
)

// Failure kinds: where in its life a session failed.
const (
	KindDial     = "dial"     // TCP connect or TLS handshake
	KindGreeting = "greeting" // the server's first line
	KindLogin    = "login"    // the password was refused or the exchange broke
	KindCommand  = "command"  // a periodic command after login
	KindLogout   = "logout"   // LOGOUT / QUIT
)

// Conn is one program's connection, as a password-only program speaks it: line by line, in clear
// text or implicit TLS, with a deadline on every exchange. It reads no more than it needs and keeps
// nothing, so that thousands of them cost the harness little next to what they cost the proxy.
type Conn struct {
	Protocol string
	c        net.Conn
	r        *bufio.Reader
	timeout  time.Duration
	tag      int
	n        int // periodic commands sent, to alternate between them
}

// SessionError is a failure of one session, with its kind.
type SessionError struct {
	Protocol, Kind string
	Err            error
}

func (e *SessionError) Error() string { return e.Protocol + " " + e.Kind + ": " + e.Err.Error() }
func (e *SessionError) Unwrap() error { return e.Err }

func fail(protocol, kind string, err error) error {
	return &SessionError{Protocol: protocol, Kind: kind, Err: err}
}

// Dial connects to addr (implicit TLS with tlsConf when it is not nil), reads the greeting and logs
// in with user and password: IMAP LOGIN, POP3 USER/PASS, SMTP EHLO + AUTH PLAIN. Every exchange must
// finish within timeout. The error is a *SessionError.
func Dial(protocol, addr string, tlsConf *tls.Config, user, password string, timeout time.Duration) (*Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	var nc net.Conn
	var err error
	if tlsConf != nil {
		nc, err = tls.DialWithDialer(d, "tcp", addr, tlsConf)
	} else {
		nc, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, fail(protocol, KindDial, err)
	}
	c := &Conn{Protocol: protocol, c: nc, r: bufio.NewReaderSize(nc, 1024), timeout: timeout}
	if err := c.greeting(); err != nil {
		nc.Close()
		return nil, fail(protocol, KindGreeting, err)
	}
	if err := c.login(user, password); err != nil {
		nc.Close()
		return nil, fail(protocol, KindLogin, err)
	}
	return c, nil
}

func (c *Conn) deadline() { _ = c.c.SetDeadline(time.Now().Add(c.timeout)) }

func (c *Conn) send(line string) error {
	c.deadline()
	_, err := io.WriteString(c.c, line+"\r\n")
	return err
}

// line reads one line without its CRLF; lines are short (the server's answers to small commands).
func (c *Conn) line() (string, error) {
	c.deadline()
	s, err := c.r.ReadString('\n')
	if err != nil {
		if s != "" {
			err = fmt.Errorf("%w after %q", err, clip(s))
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

func (c *Conn) greeting() error {
	switch c.Protocol {
	case IMAP:
		return c.expect("* OK")
	case POP:
		return c.expect("+OK")
	case SMTP:
		_, err := c.smtpReply("220")
		return err
	}
	return fmt.Errorf("unknown protocol %q", c.Protocol)
}

// expect reads a line that must start with prefix.
func (c *Conn) expect(prefix string) error {
	l, err := c.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(l, prefix) {
		return fmt.Errorf("want %q, got %q", prefix, clip(l))
	}
	return nil
}

// smtpReply reads a (multi-line) SMTP reply whose code must be code; it returns the last line.
func (c *Conn) smtpReply(code string) (string, error) {
	for {
		l, err := c.line()
		if err != nil {
			return "", err
		}
		if len(l) < 4 || l[:3] != code || (l[3] != ' ' && l[3] != '-') {
			return "", fmt.Errorf("want %s, got %q", code, clip(l))
		}
		if l[3] == ' ' {
			return l, nil
		}
	}
}

// imap sends a tagged command and reads to its tagged answer, which must be OK; untagged lines (and
// literals they announce) are skipped.
func (c *Conn) imap(cmd string) error {
	c.tag++
	tag := "a" + strconv.Itoa(c.tag)
	if err := c.send(tag + " " + cmd); err != nil {
		return err
	}
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l[len(tag)+1:], "OK") {
				return fmt.Errorf("%s: %q", strings.Fields(cmd)[0], clip(l))
			}
			return nil
		}
		if n, ok := literal(l); ok {
			c.deadline()
			if _, err := c.r.Discard(n); err != nil {
				return err
			}
		}
	}
}

// literal is the size of the literal a line announces at its end ({n} or {n+}).
func literal(l string) (int, bool) {
	if !strings.HasSuffix(l, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+"))
	return n, err == nil && n >= 0
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (c *Conn) pop(cmd string) error {
	if err := c.send(cmd); err != nil {
		return err
	}
	l, err := c.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(l, "+OK") {
		return fmt.Errorf("%s: %q", strings.Fields(cmd)[0], clip(l))
	}
	return nil
}

func (c *Conn) login(user, password string) error {
	switch c.Protocol {
	case IMAP:
		return c.imap("LOGIN " + quote(user) + " " + quote(password))
	case POP:
		if err := c.pop("USER " + user); err != nil {
			return err
		}
		return c.pop("PASS " + password)
	default:
		if err := c.send("EHLO loadtest.invalid"); err != nil {
			return err
		}
		if _, err := c.smtpReply("250"); err != nil {
			return err
		}
		if err := c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password))); err != nil {
			return err
		}
		_, err := c.smtpReply("235")
		return err
	}
}

// Work sends the protocol's periodic command and reads its answer: IMAP NOOP and SELECT INBOX in
// turn, POP3 STAT and NOOP in turn, SMTP NOOP and RSET in turn.
func (c *Conn) Work() error {
	c.n++
	even := c.n%2 == 0
	switch c.Protocol {
	case IMAP:
		if even {
			return c.imap("SELECT INBOX")
		}
		return c.imap("NOOP")
	case POP:
		if even {
			return c.pop("NOOP")
		}
		return c.pop("STAT")
	default:
		cmd := "NOOP"
		if even {
			cmd = "RSET"
		}
		if err := c.send(cmd); err != nil {
			return err
		}
		_, err := c.smtpReply("250")
		return err
	}
}

// Logout ends the session politely (LOGOUT, QUIT) and closes the connection.
func (c *Conn) Logout() error {
	defer c.c.Close()
	switch c.Protocol {
	case IMAP:
		return c.imap("LOGOUT")
	case POP:
		return c.pop("QUIT")
	default:
		if err := c.send("QUIT"); err != nil {
			return err
		}
		_, err := c.smtpReply("221")
		return err
	}
}

// Close closes the connection without logging out.
func (c *Conn) Close() error { return c.c.Close() }

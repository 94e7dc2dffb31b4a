// Package pop3 is a POP3 client (RFC 1939; CAPA and STLS from RFC 2449 and 2595; AUTH from RFC 5034)
// that authenticates with an OAuth 2.0 access token over XOAUTH2 or OAUTHBEARER, as Exchange Online
// requires it: the two-step AUTH (command, "+ ", then the credentials; Exchange refuses an initial
// response on the command line). Dial connects, secures and authenticates; the Client lists,
// retrieves and deletes messages. It is written on net/textproto, as no maintained Go POP3 client
// exists to build on.
//
// Options take any token.Source; ForAccount fills them from a token.Account. A refusal is a
// *mailerr.Error with the server's -ERR line. Replies are bounded (512 octets for status lines per
// RFC 1939, 1 MiB for message lines), so a hostile server cannot make it grow without limit. It must
// never send a token before TLS is up, nor put one in an error or a trace.
package pop3

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/trace"
)

// Limits on what the server may send.
const (
	maxStatusLine  = 512 + 2   // RFC 1939 §3: responses up to 512 octets including CRLF; some slack
	maxDataLine    = 1 << 20   // a line inside a message
	maxMessageSize = 256 << 20 // one RETR
)

// Options describe one connection.
type Options struct {
	// Addr is the server's host:port, e.g. "outlook.office365.com:995".
	Addr string
	// TLS is how TLS starts; the zero value, dial.Auto, follows the port (STARTTLS on 110, implicit TLS otherwise).
	TLS dial.Mode
	// TLSConfig adds CAs or a client certificate; nil means the system's roots. Verification is
	// always on.
	TLSConfig *tls.Config
	// Username is the SASL user: the address of the mailbox to open.
	Username string
	// Mechanism is sasl.XOAuth2 (the default, what Exchange Online takes) or sasl.OAuthBearer.
	Mechanism string
	// Tokens (required) gives the access tokens, for Exchange's resource (token.Exchange) when the server is
	// Exchange Online. If it is also a token.Refresher, a token the server refuses is replaced once.
	Tokens token.Source
	// Trace, if set, is told each step of the connection as it ends.
	Trace trace.Func
	// Timeout bounds dialling and authenticating together; zero means dial.DefaultTimeout.
	Timeout time.Duration
}

// ForAccount returns the options for an account's POP3 server (*auth.Account is a
// token.Account; so can be a type of the caller's): its address and CAs, its mailbox as the SASL user,
// its mechanism and its Exchange tokens. TLS is left at dial.Auto, which follows the port.
func ForAccount(a token.Account) Options {
	return Options{Addr: a.Server(token.POP), TLSConfig: a.TLSConfig(), Username: a.Mailbox(), Tokens: a.TokenSource(token.Exchange), Mechanism: a.Mechanism()}
}

// refused is the server's -ERR line to command.
func refused(command, line string) *mailerr.Error {
	return &mailerr.Error{Protocol: "POP3", Step: command, Server: line}
}

// ErrProtocol is a reply that is not POP3.
var ErrProtocol = errors.New("pop3: malformed reply")

// Client is an authenticated (after Dial) POP3 session.
type Client struct {
	conn net.Conn
	tp   *textproto.Conn
	r    *bufio.Reader
	caps map[string]string
}

// Dial connects, secures and authenticates.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.Tokens == nil {
		return nil, errors.New("pop3.Options.Tokens is nil: set it to a token.Source, such as token.Static(tok) or an account's TokenSource(token.Exchange)")
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(o.Timeout, dial.DefaultTimeout))
	defer cancel()
	mode := o.TLS.For(token.POP, o.Addr)
	conn, tlsCfg, err := dial.Open(ctx, o.Addr, dial.Options{Mode: mode, TLSConfig: o.TLSConfig, Trace: o.Trace})
	if err != nil {
		return nil, err
	}
	c := newClient(conn)
	fail := func(err error) (*Client, error) {
		conn.Close()
		return nil, err
	}
	if err := o.Trace.Do("greeting", func() (string, error) {
		line, err := c.status("greeting")
		return line, err
	}); err != nil {
		return fail(err)
	}
	if mode == dial.StartTLS {
		if err := o.Trace.Do("starttls", func() (string, error) {
			if _, err := c.cmd("STLS"); err != nil {
				return "", err // a server that will not STLS is an error, never a downgrade
			}
			return "", nil
		}); err != nil {
			return fail(err)
		}
		tc, err := dial.Upgrade(ctx, conn, tlsCfg, o.Trace)
		if err != nil {
			return fail(err)
		}
		c = newClient(tc)
		conn = tc
	}
	mech := o.Mechanism
	if mech == "" {
		mech = sasl.XOAuth2
	}
	if err := o.Trace.Do("capabilities", func() (string, error) {
		if err := c.capa(); err != nil {
			return "", err
		}
		if !c.HasSASL(mech) {
			return "", fmt.Errorf("the server does not offer SASL %s (CAPA SASL: %q)", mech, c.caps["SASL"])
		}
		return "SASL " + c.caps["SASL"], nil
	}); err != nil {
		return fail(err)
	}
	if err := o.Trace.Do("authenticate", func() (string, error) {
		retried, err := token.RetryRefused(ctx, o.Tokens, func(t *token.Token) error { return c.auth(mech, o, t) },
			func(err error) bool { var pe *mailerr.Error; return errors.As(err, &pe) })
		return trace.AuthDetail(mech, o.Username, retried), err
	}); err != nil {
		return fail(err)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func newClient(conn net.Conn) *Client {
	tp := textproto.NewConn(conn)
	return &Client{conn: conn, tp: tp, r: tp.R}
}

// readLine reads one CRLF- (or LF-) terminated line of at most max bytes, without the terminator.
func (c *Client) readLine(max int) (string, error) {
	var line []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > max {
			return "", fmt.Errorf("%w: a line longer than %d bytes", ErrProtocol, max)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// parseReply splits a status line into its verdict and text: "+OK text" → true, "text"; "-ERR text" →
// false, "text"; "+ data" (a SASL continuation) → true with cont set.
func parseReply(line string) (ok, cont bool, text string, err error) {
	switch {
	case line == "+OK" || strings.HasPrefix(line, "+OK "):
		return true, false, strings.TrimPrefix(strings.TrimPrefix(line, "+OK"), " "), nil
	case line == "-ERR" || strings.HasPrefix(line, "-ERR "):
		return false, false, strings.TrimPrefix(strings.TrimPrefix(line, "-ERR"), " "), nil
	case line == "+" || strings.HasPrefix(line, "+ "):
		return true, true, strings.TrimPrefix(strings.TrimPrefix(line, "+"), " "), nil
	}
	return false, false, "", fmt.Errorf("%w: %.40q", ErrProtocol, line)
}

// status reads one status line; -ERR becomes *mailerr.Error naming command.
func (c *Client) status(command string) (string, error) {
	line, err := c.readLine(maxStatusLine)
	if err != nil {
		return "", err
	}
	ok, _, text, err := parseReply(line)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", refused(command, line)
	}
	return text, nil
}

func (c *Client) cmd(format string, args ...any) (string, error) {
	if err := c.tp.PrintfLine(format, args...); err != nil {
		return "", err
	}
	return c.status(strings.Fields(format)[0])
}

// dotLines reads a multi-line body up to ".", removing dot-stuffing and keeping CRLF line ends.
func (c *Client) dotLines(limit int) ([]byte, error) {
	var b bytes.Buffer
	for {
		line, err := c.readLine(maxDataLine)
		if err != nil {
			return nil, err
		}
		if line == "." {
			return b.Bytes(), nil
		}
		line = strings.TrimPrefix(line, ".")
		if b.Len()+len(line)+2 > limit {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrProtocol, limit)
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
}

func (c *Client) capa() error {
	if _, err := c.cmd("CAPA"); err != nil {
		return err
	}
	body, err := c.dotLines(64 << 10)
	if err != nil {
		return err
	}
	c.caps = map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\r\n") {
		name, args, _ := strings.Cut(l, " ")
		c.caps[strings.ToUpper(name)] = args
	}
	return nil
}

// HasSASL reports whether CAPA listed a SASL mechanism.
func (c *Client) HasSASL(mech string) bool {
	for _, m := range strings.Fields(c.caps["SASL"]) {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// auth runs AUTH in two steps, as Exchange requires: "AUTH XOAUTH2", "+ ", then the credentials. An
// error challenge ("+ <base64 JSON>") is decoded and answered with %x01 (RFC 7628), after which the
// server's -ERR says why.
func (c *Client) auth(mech string, o Options, tok *token.Token) error {
	cl := sasl.NewClient(mech, o.Username, tok.AccessToken, o.Addr)
	_, ir, err := cl.Start()
	if err != nil {
		return err // a user name or token no SASL message can carry
	}
	if err := c.tp.PrintfLine("AUTH %s", mech); err != nil {
		return err
	}
	pending := ir
	for {
		line, err := c.readLine(maxStatusLine + 8192) // a challenge line carries base64 JSON
		if err != nil {
			return err
		}
		ok, cont, text, err := parseReply(line)
		switch {
		case err != nil:
			return err
		case !ok:
			e := refused("AUTH "+mech, line)
			e.Challenge = cl.ServerError()
			return e
		case !cont:
			return nil
		}
		var resp []byte
		if pending != nil {
			resp, pending = pending, nil
		} else {
			challenge, err := base64.StdEncoding.DecodeString(text)
			if err != nil {
				return fmt.Errorf("%w: a SASL challenge that is not base64", ErrProtocol)
			}
			resp, _ = cl.Next(challenge)
		}
		if err := c.tp.PrintfLine("%s", base64.StdEncoding.EncodeToString(resp)); err != nil {
			return err
		}
	}
}

// Stat returns the number of messages and their total size.
func (c *Client) Stat() (count int, size int64, err error) {
	text, err := c.cmd("STAT")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("%w: STAT answered %.40q", ErrProtocol, text)
	}
	count, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || count < 0 || size < 0 {
		return 0, 0, fmt.Errorf("%w: STAT answered %.40q", ErrProtocol, text)
	}
	return count, size, nil
}

// Message is one line of LIST or UIDL.
type Message struct {
	Number int
	Size   int64  // from LIST
	UID    string // from UIDL
}

// List returns every message's number and size, with its UID from UIDL when the server has it.
func (c *Client) List() ([]Message, error) {
	if _, err := c.cmd("LIST"); err != nil {
		return nil, err
	}
	body, err := c.dotLines(16 << 20)
	if err != nil {
		return nil, err
	}
	var msgs []Message
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\r\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue // a blank line in a listing: nothing to read (and nothing to index)
		}
		n, err1 := strconv.Atoi(f[0])
		var s int64
		var err2 error
		if len(f) > 1 {
			s, err2 = strconv.ParseInt(f[1], 10, 64)
		}
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: LIST line %.40q", ErrProtocol, l)
		}
		msgs = append(msgs, Message{Number: n, Size: s})
	}
	if _, err := c.cmd("UIDL"); err == nil {
		body, err := c.dotLines(16 << 20)
		if err != nil {
			return nil, err
		}
		uids := map[int]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\r\n") {
			if n, uid, ok := strings.Cut(l, " "); ok {
				if k, err := strconv.Atoi(n); err == nil {
					uids[k] = uid
				}
			}
		}
		for i := range msgs {
			msgs[i].UID = uids[msgs[i].Number]
		}
	}
	return msgs, nil
}

// Retr returns message n as sent (CRLF line ends, dot-stuffing removed).
func (c *Client) Retr(n int) ([]byte, error) {
	if _, err := c.cmd("RETR %d", n); err != nil {
		return nil, err
	}
	return c.dotLines(maxMessageSize)
}

// HasCapability reports whether CAPA listed a capability (TOP, UIDL, ...).
func (c *Client) HasCapability(name string) bool {
	_, ok := c.caps[strings.ToUpper(name)]
	return ok
}

// Top returns message n's header and its first lines of body (RFC 1939 TOP): with lines 0, the
// header alone, which is what a listing needs.
func (c *Client) Top(n, lines int) ([]byte, error) {
	if _, err := c.cmd("TOP %d %d", n, lines); err != nil {
		return nil, err
	}
	return c.dotLines(maxMessageSize)
}

// Dele marks message n for deletion at QUIT.
func (c *Client) Dele(n int) error {
	_, err := c.cmd("DELE %d", n)
	return err
}

// Quit ends the session (committing deletions) and closes the connection.
func (c *Client) Quit() error {
	_, err := c.cmd("QUIT")
	c.conn.Close()
	return err
}

// Close closes the connection without QUIT (deletions are not committed).
func (c *Client) Close() error { return c.conn.Close() }

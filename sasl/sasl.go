// Package sasl implements the client side of the SASL mechanisms that carry OAuth 2.0 bearer tokens
// to mail servers: XOAUTH2 (Google's and Microsoft's, which no maintained Go library provides) and
// OAUTHBEARER (RFC 7628), behind emersion/go-sasl's Client interface, so any go-imap v2 or go-smtp
// program can plug them in: NewXOAuth2Client(user, accessToken) is all an Authenticate call needs.
// EncodeXOAuth2 and EncodeOAuthBearer build the raw messages for other libraries.
//
// The client decodes a server's error challenge (RFC 7628 §3.2.2), keeps it for the caller (status,
// scope: the reason the server gives) and answers it with the single %x01 byte RFC 7628 prescribes —
// also for XOAUTH2, where go-imap v2 would otherwise send an empty response as "=", which Dovecot
// rejects as invalid base64, hiding the real refusal.
//
// The encoders refuse what would make a message ambiguous — a control character in a user name (XOAUTH2
// and OAUTHBEARER separate fields with %x01), a token or host that is not printable ASCII — so that no
// field can carry another.
//
// It must never put a token in an error message or a log line.
package sasl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	gosasl "github.com/emersion/go-sasl"
)

// Mechanism names.
const (
	XOAuth2     = "XOAUTH2"
	OAuthBearer = "OAUTHBEARER"
)

// ServerError is a server's error challenge: JSON with status, scope and schemes (RFC 7628 §3.2.2;
// XOAUTH2 servers send the same shape, e.g. Dovecot's {"status":"401","schemes":"bearer","scope":"mail"}).
type ServerError struct {
	Status              string `json:"status"`
	Scope               string `json:"scope,omitempty"`
	Schemes             string `json:"schemes,omitempty"`
	OpenIDConfiguration string `json:"openid-configuration,omitempty"`
}

func (e *ServerError) Error() string {
	s := "the server refused the token (status " + e.Status
	if e.Scope != "" {
		s += ", scope " + e.Scope
	}
	return s + ")"
}

// Client is an XOAUTH2 or OAUTHBEARER client. After a failed exchange, ServerError holds the server's
// error challenge, if it sent one.
type Client struct {
	mech     string
	username string
	token    string
	host     string
	port     int

	serverErr *ServerError
	sentIR    bool
	twoStep   bool
}

var _ gosasl.Client = (*Client)(nil)

// NewXOAuth2Client returns an XOAUTH2 client: user=<username>^Aauth=Bearer <token>^A^A.
func NewXOAuth2Client(username, token string) *Client {
	return &Client{mech: XOAuth2, username: username, token: token}
}

// NewOAuthBearerClient returns an RFC 7628 OAUTHBEARER client. host and port are sent as the RFC
// suggests (port 0 leaves it out); username becomes the authzid (a=).
func NewOAuthBearerClient(username, token, host string, port int) *Client {
	return &Client{mech: OAuthBearer, username: username, token: token, host: host, port: port}
}

// TwoStep makes the client send its credentials only when the server asks (an empty challenge), not
// as an initial response on the command line. Microsoft documents XOAUTH2 for SMTP this way, and it
// keeps a long token off the AUTH line, which servers limit (Postfix: 2,048 bytes; an Entra token
// with many claims is longer). It returns c.
func (c *Client) TwoStep() *Client {
	c.twoStep = true
	return c
}

func (c *Client) credentials() ([]byte, error) {
	if c.mech == XOAuth2 {
		return EncodeXOAuth2(c.username, c.token)
	}
	return EncodeOAuthBearer(c.username, c.token, c.host, c.port)
}

// NewClient returns a client for mech (XOAUTH2 when empty) presenting token as username to the server
// at addr (host:port), which OAUTHBEARER names in its message.
func NewClient(mech, username, token, addr string) *Client {
	if mech == OAuthBearer {
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		return NewOAuthBearerClient(username, token, host, p)
	}
	return NewXOAuth2Client(username, token)
}

// Start implements gosasl.Client: the whole credential goes in the initial response, unless TwoStep.
// It fails with ErrInvalid when the user name, token, host or port cannot be encoded (a TwoStep
// client, when the server asks for them in Next).
func (c *Client) Start() (string, []byte, error) {
	if c.twoStep {
		return c.mech, nil, nil
	}
	c.sentIR = true
	ir, err := c.credentials()
	if err != nil {
		return "", nil, err
	}
	return c.mech, ir, nil
}

// Next implements gosasl.Client. The only challenge after the initial response is an error: it is
// decoded and answered with %x01, after which the server fails the exchange with its own words.
func (c *Client) Next(challenge []byte) ([]byte, error) {
	if !c.sentIR {
		// The server asks for the credentials with an empty challenge (SMTP "334 ", POP3 "+ ").
		c.sentIR = true
		return c.credentials()
	}
	se := &ServerError{}
	if err := json.Unmarshal(challenge, se); err != nil || se.Status == "" {
		se = &ServerError{Status: "unparsed challenge"}
	}
	c.serverErr = se
	return []byte{0x01}, nil
}

// ServerError returns the server's error challenge, or nil.
func (c *Client) ServerError() *ServerError { return c.serverErr }

// EncodeXOAuth2 builds the XOAUTH2 initial response. It fails with ErrInvalid for an empty user name
// or token, or one that could end its field early (see ErrInvalid).
func EncodeXOAuth2(username, token string) ([]byte, error) {
	if username == "" {
		return nil, fmt.Errorf("%w: XOAUTH2 needs a user name (the mailbox's address)", ErrInvalid)
	}
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	if err := checkToken(token); err != nil {
		return nil, err
	}
	msg := []byte("user=" + username + "\x01auth=Bearer " + token + "\x01\x01")
	if len(msg) > maxMessage {
		return nil, errTooLong
	}
	return msg, nil
}

// EncodeOAuthBearer builds the RFC 7628 initial response: gs2 header, then host, port and auth. An
// empty username leaves the authzid out, an empty host and port 0 their fields. It fails with
// ErrInvalid for an empty token, or a field that could end early (see ErrInvalid).
func EncodeOAuthBearer(username, token, host string, port int) ([]byte, error) {
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	if err := checkToken(token); err != nil {
		return nil, err
	}
	if !printable(host) {
		return nil, fmt.Errorf("%w: the host must be printable ASCII without spaces (a DNS name or an IP address)", ErrInvalid)
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: the port must be between 1 and 65535 (0 leaves it out)", ErrInvalid)
	}
	var b bytes.Buffer
	b.WriteString("n,")
	if username != "" {
		b.WriteString("a=" + gs2Escape(username))
	}
	b.WriteString(",\x01")
	if host != "" {
		b.WriteString("host=" + host + "\x01")
	}
	if port != 0 {
		b.WriteString("port=" + strconv.Itoa(port) + "\x01")
	}
	b.WriteString("auth=Bearer " + token + "\x01\x01")
	if b.Len() > maxMessage {
		return nil, errTooLong
	}
	return b.Bytes(), nil
}

// ErrInvalid is what the encoders (and a Client's Start and Next) return for input that would make an
// ambiguous message: a user name that is not UTF-8 or holds a control character (%x01 ends a field,
// so "x^Auser=bob" would name bob), a token or host that is not printable ASCII, a port out of range,
// or a message over 64 KiB. Its messages never quote the token.
var ErrInvalid = errors.New("cannot encode the SASL message")

var errTooLong = fmt.Errorf("%w: the message is longer than 64 KiB, which servers refuse; check the token", ErrInvalid)

// checkUsername refuses a user name that is not valid UTF-8 or holds a control character (C0 or DEL).
func checkUsername(u string) error {
	if !utf8.ValidString(u) {
		return fmt.Errorf("%w: the user name is not valid UTF-8", ErrInvalid)
	}
	for i := 0; i < len(u); i++ {
		if u[i] < 0x20 || u[i] == 0x7f {
			return fmt.Errorf("%w: the user name contains a control character (%q); use the mailbox's address", ErrInvalid, u[i])
		}
	}
	return nil
}

// checkToken refuses an empty token or one that is not printable ASCII without spaces (a bearer token
// is RFC 6750's b64token, which is narrower still).
func checkToken(t string) error {
	if t == "" {
		return fmt.Errorf("%w: the token is empty", ErrInvalid)
	}
	if !printable(t) {
		return fmt.Errorf("%w: the token holds a byte that is not printable ASCII or a space; it is not a bearer token", ErrInvalid)
	}
	return nil
}

// printable reports whether every byte of s is printable ASCII other than the space (VCHAR).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// gs2Escape escapes an authzid as RFC 5801 requires: "," and "=" become "=2C" and "=3D".
func gs2Escape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// maxMessage bounds a message: an Entra token is a few KB, and servers refuse more than 64 KiB.
const maxMessage = 64 << 10

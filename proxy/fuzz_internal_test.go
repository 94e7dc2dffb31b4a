package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/dial"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
)

type noAccounts struct{}

func (noAccounts) Account(string) (*auth.Account, error) { return nil, errors.New("no accounts here") }

// FuzzPreAuth feeds arbitrary bytes, as a program would send them, to each protocol's front end before
// login (IMAP commands and literals, POP3 and SMTP commands, SASL responses): the session must end
// without a panic or a hang, having read from the connection no more than the pre-login bounds allow
// (prelogin.go), however much the program sends. Logins reach the password check and fail there.
func FuzzPreAuth(f *testing.F) {
	for _, seed := range append(floodSeeds(), []string{
		// Captured from real programs (Thunderbird, fetchmail, Python's imaplib/poplib/smtplib, swaks).
		"1 CAPABILITY\r\n2 ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\n3 LOGIN \"a@b\" \"pw\"\r\n",
		"a1 LOGIN {3}\r\nabc {2+}\r\npw\r\na2 LOGOUT\r\n",
		"A0001 AUTHENTICATE PLAIN AGFAYgBwdw==\r\n",
		"A0001 AUTHENTICATE PLAIN\r\nAGFAYgBwdw==\r\nA2 AUTHENTICATE PLAIN\r\n*\r\n",
		"x STARTTLS\r\ny NOOP\r\n\r\n* LOGIN\r\nz LOGIN \"unterminated\r\n",
		"CAPA\r\nUSER a@b\r\nPASS pw\r\nAUTH\r\nAUTH PLAIN AGFAYgBwdw==\r\nQUIT\r\n",
		"AUTH PLAIN\r\n=\r\nSTLS\r\nTOP 1 0\r\n",
		"EHLO [127.0.0.1]\r\nAUTH LOGIN YUBi\r\ncHc=\r\nMAIL FROM:<a@b>\r\nQUIT\r\n",
		"HELO x\r\nAUTH PLAIN\r\nnot base64!\r\nAUTH CRAM-MD5\r\nSTARTTLS\r\nRSET\r\n",
		"a LOGIN {99999999999}\r\n",
		"a LOGIN {-1}\r\n",
	}...) {
		f.Add(seed)
	}
	s, err := New(&config.Proxy{
		Listeners: []config.Listener{
			{Protocol: "imap", Listen: "127.0.0.1:0"}, {Protocol: "pop", Listen: "127.0.0.1:0"}, {Protocol: "smtp", Listen: "127.0.0.1:0"},
		},
		// No users: every login fails at the password check (an argon2id derivation, as for real).
	}, noAccounts{}, Options{MaxLine: 512, LoginTimeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	// The program never stops sending to read its error line: a session over a bound need not wait
	// for it to.
	defer func(d time.Duration) { drainTime = d }(drainTime)
	drainTime = 50 * time.Millisecond
	// What a session may read: its bound before login, what its reader buffers beyond that, and the
	// drain after an error line (as much again).
	maxRead := int64(2*fuzzSessionBound + 4096)
	f.Fuzz(func(t *testing.T, input string) {
		for _, l := range s.listeners {
			client, pipe := net.Pipe()
			server := &countingConn{Conn: pipe}
			sess := newSession(s, l, server)
			done := make(chan struct{})
			go func() { sess.run(); close(done) }()
			go func() { _, _ = io.Copy(io.Discard, client) }()
			go func() { _, _ = io.WriteString(client, input); _ = client.Close() }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s session did not end", l.cfg.Load().Protocol)
			}
			client.Close()
			if n := server.read.Load(); n > maxRead {
				t.Fatalf("%s session read %d bytes before login (bound %d)", l.cfg.Load().Protocol, n, maxRead)
			}
		}
	})
}

// countingConn counts the bytes read through it.
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// fuzzSessionBound is what a session may read before login with MaxLine 512, as the fuzz targets
// configure it: 8 × MaxLine (prelogin.go), written out so that a change of the bounds fails them.
const fuzzSessionBound = 4096

// floodSeeds are inputs far over the bounds of a proxy with MaxLine 512 (1 KiB commands, 4 KiB
// before login): chained literals, an endless line, endless commands, an endless SASL exchange.
func floodSeeds() []string {
	return []string{
		"a LOGIN {500+}\r\n" + strings.Repeat(strings.Repeat("x", 500)+" {500+}\r\n", 200),
		"a ID (" + strings.Repeat("{1+}\r\nx ", 100) + ")\r\n",
		"a ID (" + strings.Repeat("x ", 2000) + ")\r\n",
		"a LOGIN " + strings.Repeat("x", 100_000),
		strings.Repeat("a NOOP\r\n", 10_000),
		strings.Repeat("NOOP\r\nCAPA\r\nEHLO x\r\n", 5_000),
		"AUTH LOGIN\r\n" + strings.Repeat("QUFB", 100) + "\r\n" + strings.Repeat("QUFB", 20_000) + "\r\n",
		"a AUTHENTICATE PLAIN\r\n" + strings.Repeat("QUFB", 20_000) + "\r\n",
		strings.Repeat("a ID ("+strings.Repeat("x ", 63)+")\r\n", 1000),
		strings.Repeat("\n", 100_000),
		strings.Repeat("a\r\n", 30_000),
	}
}

// FuzzPreLoginReaders feeds arbitrary bytes to the readers a program's input meets before login —
// lines, IMAP tags, arguments and literals, SASL responses — with nothing to log in to, and measures
// what they read and allocate: at most the session's bound before login (plus the reader's buffer),
// and at most a fixed multiple of it in memory, however long the input. Allocation is the least of
// three runs of each input, so that another goroutine's allocation cannot fail it.
func FuzzPreLoginReaders(f *testing.F) {
	for _, seed := range append(floodSeeds(),
		"a LOGIN {3}\r\nabc {2+}\r\npw\r\n",
		"a ID (\"name\" \"Thunderbird\")\r\nAGFAYgBwdw==\r\n*\r\n",
		"\x00 NOOP\r\n\r\n",
	) {
		f.Add(seed)
	}
	s, err := New(&config.Proxy{Listeners: []config.Listener{{Protocol: "imap", Listen: "127.0.0.1:0"}}},
		noAccounts{}, Options{MaxLine: 512})
	if err != nil {
		f.Fatal(err)
	}
	var l *listener
	for _, any := range s.listeners {
		l = any
	}
	maxRead := int64(fuzzSessionBound + 4096)
	// Each byte read is copied a few times at most (a line, its string, a quoted string's or a
	// literal's copy, growing buffers), and each command costs a few small allocations — 24 bytes
	// per byte read at worst, for commands of 64 one-letter arguments; the session itself (its
	// reader's buffer, its logger) is a fixed cost.
	maxAlloc := uint64(24*fuzzSessionBound + 32<<10)
	f.Fuzz(func(t *testing.T, input string) {
		var read int64
		alloc := uint64(math.MaxUint64)
		for range 3 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			in := &feed{Reader: strings.NewReader(input)}
			readCommands(newSession(s, l, in))
			runtime.ReadMemStats(&after)
			alloc, read = min(alloc, after.TotalAlloc-before.TotalAlloc), in.read
		}
		if read > maxRead {
			t.Fatalf("the readers read %d bytes of %d (bound %d)", read, len(input), maxRead)
		}
		if alloc > maxAlloc {
			t.Fatalf("the readers allocated %d bytes for %d bytes of input (bound %d)", alloc, len(input), maxAlloc)
		}
	})
}

// readCommands reads what a program sends, command by command, until a reader fails: each line as
// an IMAP command with arguments and as a SASL response.
func readCommands(s *session) {
	for {
		s.in.startCommand()
		line, err := s.readLine()
		if err != nil {
			return
		}
		if tag, _, rest := imapSplit(line); tag != "" {
			var se *errSyntax
			if _, err := s.imapArgs(rest); err != nil && !errors.As(err, &se) {
				return
			}
		}
		if msg, err := decodeResponse(line); err == nil {
			_, _, _ = plainCredentials(msg)
		}
	}
}

// feed is a program's connection that sends input and reads nothing back.
type feed struct {
	*strings.Reader
	discardConn
	read int64
}

func (c *feed) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.read += int64(n)
	return n, err
}

// discardConn is the rest of a net.Conn for a fake connection that supplies its own Read: what is
// written vanishes, and addresses and deadlines are nothing.
type discardConn struct{}

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzUpstream feeds arbitrary bytes, as a server would send them, to each protocol's upstream side
// (greeting, STARTTLS answer, EHLO and multi-line replies, SASL challenges, the final answer): it must
// end with a result or an error, without a panic or a hang, whatever the server says.
func FuzzUpstream(f *testing.F) {
	for _, seed := range []string{
		// Captured from Exchange Online and Dovecot.
		"* OK The Microsoft Exchange IMAP4 service is ready. [TQBXADIA]\r\nm1 OK AUTHENTICATE completed.\r\n",
		"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Dovecot ready.\r\n+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0=\r\nm1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
		"+OK The Microsoft Exchange POP3 service is ready.\r\n+ \r\n+OK User successfully authenticated.\r\n",
		"+OK Dovecot ready.\r\n+ \r\n-ERR [AUTH] Authentication failed.\r\n",
		"220 BN9PR03CA0123.outlook.office365.com Microsoft ESMTP MAIL Service ready\r\n250-BN9PR03CA0123.outlook.office365.com Hello\r\n250-SIZE 157286400\r\n250-AUTH LOGIN XOAUTH2\r\n250 SMTPUTF8\r\n334 \r\n535 5.7.3 Authentication unsuccessful [BN9PR03CA0123.namprd03.prod.outlook.com]\r\n",
		"220 x\r\n250-x\r\n250-STARTTLS\r\n250 AUTH XOAUTH2\r\n454 TLS not available\r\n",
		"220-multi\r\n220 line\r\n250 x\r\n334 eyJzdGF0dXMiOiI0MDEifQ==\r\n535 5.7.8 no\r\n",
		"* BYE shutting down\r\n",
		"2",
	} {
		f.Add(seed)
	}
	ups := []upstreamProtocol{imapUp{}, popUp{}, smtpUp{}}
	f.Fuzz(func(t *testing.T, input string) {
		for _, p := range ups {
			for _, mode := range []dial.Mode{dial.Implicit, dial.StartTLS} {
				client, server := net.Pipe()
				go func() { _, _ = io.Copy(io.Discard, server) }()
				go func() { _, _ = io.WriteString(server, input); _ = server.Close() }()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = client.SetDeadline(time.Now().Add(5 * time.Second))
				u := &upstreamConn{conn: client, r: bufio.NewReader(client), addr: "mail.example:993",
					tlsCfg: &tls.Config{ServerName: "mail.example"}, ctx: ctx, hello: "proxy.example"}
				if err := p.open(u, mode); err == nil {
					_, _ = p.authenticate(u, "XOAUTH2", "user@example.com", "not-a-real-token")
				}
				cancel()
				client.Close()
			}
		}
	})
}

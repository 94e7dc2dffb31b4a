package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/dial"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
)

type noAccounts struct{}

func (noAccounts) Account(string) (*auth.Account, error) { return nil, errors.New("no accounts here") }

// FuzzPreAuth feeds arbitrary bytes, as a program would send them, to each protocol's front end before
// login (IMAP commands and literals, POP3 and SMTP commands, SASL responses): the session must end
// without a panic, a hang or an unbounded read. Logins reach the password check and fail there.
func FuzzPreAuth(f *testing.F) {
	for _, seed := range []string{
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
	} {
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
	f.Fuzz(func(t *testing.T, input string) {
		for _, l := range s.listeners {
			client, server := net.Pipe()
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
		}
	})
}

// FuzzUpstream feeds arbitrary bytes, as a server would send them, to each protocol's upstream side
// (greeting, STARTTLS answer, EHLO and multi-line replies, SASL challenges, the final answer): it must
// end with a result or an error, without a panic or a hang, whatever the server says.
func FuzzUpstream(f *testing.F) {
	for _, seed := range []string{
		// Captured from Exchange Online (research/exchange-wire.md) and Dovecot.
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

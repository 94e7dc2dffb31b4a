package proxy

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

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

package proxy_test

// Real password-only programs through the proxy to the emulator (issue 6): fetchmail (POP3 and IMAP),
// mbsync (IMAP), swaks (SMTP), curl (IMAP, POP3, SMTP) and Python's imaplib, poplib and smtplib, each
// in every local TLS mode the program has (none, implicit, STARTTLS). Each program logs in with a
// password and does what its user would notice: a message put in alice's INBOX arrives in fetchmail's
// MDA, in mbsync's Maildir, in curl's and Python's output; a message sent by swaks, curl or smtplib
// lands in bob's INBOX. Every program verifies the proxy's certificate against the lab's CA. The same
// run with a wrong password fails and the proxy logs bad_password.

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/mailprograms"
)

// clientCase is a program and one protocol it speaks, run with every local TLS mode. SMTP programs
// send r.Subject from alice to bob; the others fetch alice's INBOX, in which the test put a message
// with r.Subject, and print it (or what they delivered it to). The programs are configured and run by
// internal/mailprograms, which the interop tests share.
type clientCase struct {
	program  string
	protocol string
	run      func(l *lab, r *mailprograms.Run) (string, error)
}

var clientCases = []clientCase{
	{program: "fetchmail", protocol: config.ProtocolPOP, run: labless(mailprograms.Fetchmail)},
	{program: "fetchmail", protocol: config.ProtocolIMAP, run: labless(mailprograms.Fetchmail)},
	{program: "mbsync", protocol: config.ProtocolIMAP, run: labless(mailprograms.Mbsync)},
	{program: "swaks", protocol: config.ProtocolSMTP, run: labless(mailprograms.Swaks)},
	{program: "curl", protocol: config.ProtocolIMAP, run: curl},
	{program: "curl", protocol: config.ProtocolPOP, run: curl},
	{program: "curl", protocol: config.ProtocolSMTP, run: curl},
	{program: "python3", protocol: config.ProtocolIMAP, run: labless(mailprograms.Python)},
	{program: "python3", protocol: config.ProtocolPOP, run: labless(mailprograms.Python)},
	{program: "python3", protocol: config.ProtocolSMTP, run: labless(mailprograms.Python)},
}

// labless is a runner that needs nothing from the lab.
func labless(run func(r *mailprograms.Run) (string, error)) func(*lab, *mailprograms.Run) (string, error) {
	return func(_ *lab, r *mailprograms.Run) (string, error) { return run(r) }
}

// TestClients runs every program × protocol × local TLS mode through one lab, in parallel: with
// alice's password it works, with a wrong one it is refused.
func TestClients(t *testing.T) {
	runClients(t, newLab(t, labOptions{}), clientCases)
}

// runClients runs each case in every local TLS mode through l's listeners, in parallel.
func runClients(t *testing.T, l *lab, cases []clientCase) {
	ca := filepath.Join(l.dir, "local-ca.pem")
	chain, err := os.ReadFile(l.certFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, mailprograms.CA(t, chain), 0o600); err != nil {
		t.Fatal(err)
	}
	untrusted := filepath.Join(l.dir, "emulator-ca.pem") // a CA, not the one of the proxy's certificate
	if err := os.WriteFile(untrusted, l.emu.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		for _, mode := range tlsModes {
			name := c.program + "/" + c.protocol + "/" + mode
			id := strings.ReplaceAll(name, "/", "-") // its users' local part
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				mailprograms.Program(t, c.program)
				host, port, _ := net.SplitHostPort(l.addr(c.protocol, mode))
				r := &mailprograms.Run{T: t, Protocol: c.protocol, Mode: mode, Host: host, Port: port,
					User: aliceUser, Password: alicePassword, Dir: t.TempDir(), CA: ca,
					Subject: id + "-" + strconv.FormatInt(time.Now().UnixNano(), 36), From: world.Alice, To: world.Bob}
				if c.protocol != config.ProtocolSMTP {
					if _, err := l.emu.Store.Append(world.Alice, mailstore.Inbox, mailprograms.Message(world.Bob, world.Alice, r.Subject), nil, time.Time{}); err != nil {
						t.Fatal(err)
					}
				}
				out, err := c.run(l, r)
				if err != nil {
					t.Fatalf("%s with the right password: %v\n%s\nproxy log:\n%s", name, err, out, l.logs.String())
				}
				if c.protocol == config.ProtocolSMTP {
					waitDelivered(t, l, world.Bob, r.Subject, out)
				} else if !strings.Contains(out, "Subject: "+r.Subject) {
					t.Fatalf("%s did not get the message %q:\n%s", name, r.Subject, out)
				}

				// A wrong password: the program fails, and the proxy says why.
				r.User, r.Password, r.Dir = id+"@contoso.test", "wrong-password", t.TempDir()
				if out, err := c.run(l, r); err == nil {
					t.Fatalf("%s with a wrong password succeeded:\n%s", name, out)
				}
				l.waitLog("outcome=bad_password", "user="+r.User)

				// The program checks the proxy's certificate: trusting another CA, it never logs in.
				if mode == config.LocalTLSNone {
					return
				}
				r.User, r.Password, r.Dir, r.CA = id+"-untrusted@contoso.test", domainPassword, t.TempDir(), untrusted
				if out, err := c.run(l, r); err == nil || strings.Contains(l.logs.String(), "user="+r.User+" ") {
					t.Fatalf("%s trusting another CA than the proxy's: %v\n%s", name, err, out)
				}
			})
		}
	}
}

// waitDelivered waits until mailbox's INBOX has a message with subject.
func waitDelivered(t *testing.T, l *lab, mailbox, subject, out string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		msgs, err := l.emu.Store.List(mailbox, mailstore.Inbox)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(msgs, func(m mailstore.Message) bool {
			return bytes.Contains(m.Data, []byte("Subject: "+subject+"\r\n"))
		}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no message %q; the program said:\n%s", mailbox, subject, out)
		}
	}
}

// curl fetches alice's message by its UID (IMAP) or number (POP3), or sends from alice to bob (SMTP).
func curl(l *lab, r *mailprograms.Run) (string, error) {
	switch r.Protocol {
	case config.ProtocolIMAP:
		_, m := message(l, r)
		return mailprograms.Curl(r, "/INBOX;UID="+strconv.FormatUint(uint64(m.UID), 10), nil)
	case config.ProtocolPOP:
		n, _ := message(l, r)
		return mailprograms.Curl(r, "/"+strconv.Itoa(n), nil)
	}
	return mailprograms.CurlSend(r, mailprograms.Message(r.From, r.To, r.Subject))
}

// message is the message with r.Subject in alice's INBOX and its POP3 number (messages are only
// added while the tests run, so the number holds).
func message(l *lab, r *mailprograms.Run) (int, mailstore.Message) {
	msgs, err := l.emu.Store.List(world.Alice, mailstore.Inbox)
	if err != nil {
		r.T.Fatal(err)
	}
	for i, m := range msgs {
		if bytes.Contains(m.Data, []byte("Subject: "+r.Subject+"\r\n")) {
			return i + 1, m
		}
	}
	r.T.Fatalf("alice's INBOX has no message %q", r.Subject)
	return 0, mailstore.Message{}
}

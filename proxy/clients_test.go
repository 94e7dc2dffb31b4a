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
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/emulator/world"
)

// requireEnv makes a missing program a failure instead of a skip (scripts/test sets it, as for the
// interop tests).
const requireEnv = "MAILOAUTH_REQUIRE_INTEROP"

// program returns the path of a real client, or skips the test when it is not installed (fails under
// MAILOAUTH_REQUIRE_INTEROP).
func program(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(requireEnv) != "" {
		t.Fatalf("%s is not installed (%s is set): ./scripts/test installs it", name, requireEnv)
	}
	t.Skipf("%s is not installed (./scripts/test installs it)", name)
	return ""
}

// clientRun is one run of a real program against one listener of the lab.
type clientRun struct {
	t              *testing.T
	l              *lab
	protocol, mode string
	host, port     string
	user, password string
	dir            string // the program's own scratch directory
	ca             string // PEM file with the lab's CA: the only certificate the program trusts
	subject        string // a unique subject (no spaces): what the user notices
}

// exec runs the program with a timeout in r.dir (HOME too), with stdin and env added to the
// environment, and returns what it printed.
func (r *clientRun) exec(stdin string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, program(r.t, name), args...)
	cmd.Dir = r.dir
	cmd.Env = append(append(os.Environ(), "HOME="+r.dir), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out)", err)
	}
	return out.String(), err
}

// write writes a file in r.dir, private (fetchmail refuses an rc file others may read).
func (r *clientRun) write(name, content string) string {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// clientCase is a program and one protocol it speaks, run with every local TLS mode. SMTP programs send r.subject from alice to bob;
// the others fetch alice's INBOX, in which the test put a message with r.subject, and print it (or
// what they delivered it to).
type clientCase struct {
	program  string
	protocol string
	run      func(r *clientRun) (string, error)
}

var clientCases = []clientCase{
	{program: "fetchmail", protocol: config.ProtocolPOP, run: fetchmail},
	{program: "fetchmail", protocol: config.ProtocolIMAP, run: fetchmail},
	{program: "mbsync", protocol: config.ProtocolIMAP, run: mbsync},
	{program: "swaks", protocol: config.ProtocolSMTP, run: swaks},
	{program: "curl", protocol: config.ProtocolIMAP, run: curl},
	{program: "curl", protocol: config.ProtocolPOP, run: curl},
	{program: "curl", protocol: config.ProtocolSMTP, run: curl},
	{program: "python3", protocol: config.ProtocolIMAP, run: python},
	{program: "python3", protocol: config.ProtocolPOP, run: python},
	{program: "python3", protocol: config.ProtocolSMTP, run: python},
}

// TestClients runs every program × protocol × local TLS mode through one lab, in parallel: with
// alice's password it works, with a wrong one it is refused.
func TestClients(t *testing.T) {
	l := newLab(t, labOptions{})
	ca := filepath.Join(l.dir, "local-ca.pem")
	if err := os.WriteFile(ca, lastPEM(t, l.certFile), 0o600); err != nil {
		t.Fatal(err)
	}
	untrusted := filepath.Join(l.dir, "emulator-ca.pem") // a CA, not the one of the proxy's certificate
	if err := os.WriteFile(untrusted, l.emu.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range clientCases {
		for _, mode := range tlsModes {
			name := c.program + "/" + c.protocol + "/" + mode
			id := strings.ReplaceAll(name, "/", "-") // its users' local part
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				program(t, c.program)
				host, port, _ := net.SplitHostPort(l.addr(c.protocol, mode))
				r := &clientRun{t: t, l: l, protocol: c.protocol, mode: mode, host: host, port: port,
					user: aliceUser, password: alicePassword, dir: t.TempDir(), ca: ca,
					subject: id + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
				if c.protocol != config.ProtocolSMTP {
					if _, err := l.emu.Store.Append(world.Alice, mailstore.Inbox, testMessage(world.Bob, world.Alice, r.subject), nil, time.Time{}); err != nil {
						t.Fatal(err)
					}
				}
				out, err := c.run(r)
				if err != nil {
					t.Fatalf("%s with the right password: %v\n%s\nproxy log:\n%s", name, err, out, l.logs.String())
				}
				if c.protocol == config.ProtocolSMTP {
					waitDelivered(t, l, world.Bob, r.subject, out)
				} else if !strings.Contains(out, "Subject: "+r.subject) {
					t.Fatalf("%s did not get the message %q:\n%s", name, r.subject, out)
				}

				// A wrong password: the program fails, and the proxy says why.
				r.user, r.password, r.dir = id+"@contoso.test", "wrong-password", t.TempDir()
				if out, err := c.run(r); err == nil {
					t.Fatalf("%s with a wrong password succeeded:\n%s", name, out)
				}
				l.waitLog("outcome=bad_password", "user="+r.user)

				// The program checks the proxy's certificate: trusting another CA, it never logs in.
				if mode == config.LocalTLSNone {
					return
				}
				r.user, r.password, r.dir, r.ca = id+"-untrusted@contoso.test", domainPassword, t.TempDir(), untrusted
				if out, err := c.run(r); err == nil || strings.Contains(l.logs.String(), "user="+r.user+" ") {
					t.Fatalf("%s trusting another CA than the proxy's: %v\n%s", name, err, out)
				}
			})
		}
	}
}

// lastPEM is the last certificate of a PEM chain file: the CA.
func lastPEM(t *testing.T, file string) []byte {
	t.Helper()
	rest, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var last *pem.Block
	for b, r := pem.Decode(rest); b != nil; b, r = pem.Decode(r) {
		last = b
	}
	if last == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	return pem.EncodeToMemory(last)
}

func testMessage(from, to, subject string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: " +
		time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <" + subject + "@proxy.test>\r\n\r\nA message for a real client.\r\n")
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

// fetchmail fetches alice's INBOX (keep, fetchall) into a file through its MDA: POP3 USER/PASS or
// IMAP LOGIN; ssl for implicit TLS, sslproto without ssl for STARTTLS (which sslcertck makes
// mandatory), no TLS at all for none.
func fetchmail(r *clientRun) (string, error) {
	proto := map[string]string{config.ProtocolPOP: "POP3", config.ProtocolIMAP: "IMAP"}[r.protocol]
	mbox := filepath.Join(r.dir, "delivered")
	tls := "sslproto ''"
	switch r.mode {
	case config.LocalTLSImplicit:
		tls = fmt.Sprintf("ssl sslproto tls1.2+ sslcertck sslcertfile %q", r.ca)
	case config.LocalTLSStartTLS:
		tls = fmt.Sprintf("sslproto tls1.2+ sslcertck sslcertfile %q", r.ca)
	}
	rc := r.write("fetchmailrc", fmt.Sprintf(`set no syslog
poll localhost service %s protocol %s auth password timeout 20
  user %q there with password %q is root here
  %s
  keep fetchall
  mda "cat >> %s"
`, r.port, proto, r.user, r.password, tls, mbox))
	out, err := r.exec("", nil, "fetchmail", "--nodetach", "-v", "-f", rc, "--pidfile", filepath.Join(r.dir, "pid"),
		"--idfile", filepath.Join(r.dir, "ids"))
	got, _ := os.ReadFile(mbox)
	return out + "\n--- delivered:\n" + string(got), err
}

// mbsync pulls alice's INBOX into a local Maildir; what it printed is followed by the messages that
// appeared there. Host localhost: isync 1.4 checks the certificate's DNS names only, not its IP
// addresses.
func mbsync(r *clientRun) (string, error) {
	tls := map[string]string{config.LocalTLSNone: "None", config.LocalTLSImplicit: "IMAPS", config.LocalTLSStartTLS: "STARTTLS"}[r.mode]
	maildir := filepath.Join(r.dir, "Mail")
	if err := os.Mkdir(maildir, 0o700); err != nil {
		r.t.Fatal(err)
	}
	rc := r.write("mbsyncrc", fmt.Sprintf(`IMAPAccount proxy
Host localhost
Port %s
User %s
Pass %s
SSLType %s
CertificateFile %s
Timeout 20

IMAPStore remote
Account proxy

MaildirStore local
Path %s/
Inbox %s/INBOX

Channel inbox
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
Expunge None
SyncState *
`, r.port, r.user, r.password, tls, r.ca, maildir, maildir))
	out, err := r.exec("", nil, "mbsync", "-V", "-c", rc, "inbox")
	files, _ := filepath.Glob(filepath.Join(maildir, "INBOX", "*", "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		out += "\n--- " + f + ":\n" + string(b)
	}
	return out, err
}

// swaks sends from alice to bob with AUTH LOGIN (the obsolete mechanism old programs use); --tlsc is
// implicit TLS, --tls STARTTLS; --tls-verify with the lab's CA.
func swaks(r *clientRun) (string, error) {
	args := []string{"--server", r.host + ":" + r.port, "--auth", "LOGIN", "--auth-user", r.user, "--auth-password", r.password,
		"--from", world.Alice, "--to", world.Bob, "--header", "Subject: " + r.subject, "--timeout", "20",
		"--body", "Sent by swaks through the proxy."}
	switch r.mode {
	case config.LocalTLSImplicit:
		args = append(args, "--tlsc", "--tls-verify", "--tls-ca-path", r.ca)
	case config.LocalTLSStartTLS:
		args = append(args, "--tls", "--tls-verify", "--tls-ca-path", r.ca)
	}
	return r.exec("", nil, "swaks", args...)
}

// curl fetches alice's message by its UID (IMAP) or number (POP3), or sends from alice to bob
// (SMTP): imaps:// pop3s:// smtps:// for implicit TLS, --ssl-reqd on the plain scheme for STARTTLS.
func curl(r *clientRun) (string, error) {
	scheme := map[string]string{config.ProtocolIMAP: "imap", config.ProtocolPOP: "pop3", config.ProtocolSMTP: "smtp"}[r.protocol]
	args := []string{"-sS", "--max-time", "20", "--cacert", r.ca, "-u", r.user + ":" + r.password}
	switch r.mode {
	case config.LocalTLSImplicit:
		scheme += "s"
	case config.LocalTLSStartTLS:
		args = append(args, "--ssl-reqd")
	}
	url := scheme + "://" + net.JoinHostPort(r.host, r.port)
	stdin := ""
	switch r.protocol {
	case config.ProtocolIMAP:
		_, m := r.message()
		args = append(args, url+"/INBOX;UID="+strconv.FormatUint(uint64(m.UID), 10))
	case config.ProtocolPOP:
		n, _ := r.message()
		args = append(args, url+"/"+strconv.Itoa(n))
	case config.ProtocolSMTP:
		args = append(args, url, "--mail-from", world.Alice, "--mail-rcpt", world.Bob, "-T", "-")
		stdin = string(testMessage(world.Alice, world.Bob, r.subject))
	}
	return r.exec(stdin, nil, "curl", args...)
}

// message is the message with r.subject in alice's INBOX and its POP3 number (messages are only
// added while the tests run, so the number holds).
func (r *clientRun) message() (int, mailstore.Message) {
	msgs, err := r.l.emu.Store.List(world.Alice, mailstore.Inbox)
	if err != nil {
		r.t.Fatal(err)
	}
	for i, m := range msgs {
		if bytes.Contains(m.Data, []byte("Subject: "+r.subject+"\r\n")) {
			return i + 1, m
		}
	}
	r.t.Fatalf("alice's INBOX has no message %q", r.subject)
	return 0, mailstore.Message{}
}

// pyClient is Python's standard library as a password-only program: imaplib LOGIN, SELECT INBOX and
// the message found by SEARCH; poplib USER/PASS, STAT and the message by TOP; smtplib login and a
// message from alice to bob. ssl.create_default_context with the lab's CA (verification and host name
// checking on). Arguments come in the environment.
const pyClient = `
import imaplib, os, poplib, smtplib, ssl, sys
from email.message import EmailMessage
e = os.environ
proto, mode, host, port = e["PROTO"], e["MODE"], e["HOST"], int(e["PORT"])
ctx = ssl.create_default_context(cafile=e["CAFILE"])
if proto == "imap":
    c = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=20) if mode == "implicit" else imaplib.IMAP4(host, port, timeout=20)
    if mode == "starttls":
        c.starttls(ssl_context=ctx)
    c.login(e["USER"], e["PASSWORD"])
    typ, data = c.select("INBOX", readonly=True)
    print("SELECT", typ, data)
    typ, data = c.search(None, "SUBJECT", e["SUBJECT"])
    typ, data = c.fetch(data[0].split()[-1], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    print(data[0][1].decode())
    c.logout()
elif proto == "pop":
    c = poplib.POP3_SSL(host, port, context=ctx, timeout=20) if mode == "implicit" else poplib.POP3(host, port, timeout=20)
    if mode == "starttls":
        c.stls(context=ctx)
    c.user(e["USER"])
    c.pass_(e["PASSWORD"])
    count, size = c.stat()
    print("STAT", count, size)
    for i in range(count, 0, -1):
        head = b"\r\n".join(c.top(i, 0)[1]).decode()
        if e["SUBJECT"] in head:
            print(head)
            break
    c.quit()
else:
    c = smtplib.SMTP_SSL(host, port, context=ctx, timeout=20) if mode == "implicit" else smtplib.SMTP(host, port, timeout=20)
    if mode == "starttls":
        c.starttls(context=ctx)
    c.login(e["USER"], e["PASSWORD"])
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = e["FROM"], e["TO"], e["SUBJECT"]
    m.set_content("Sent by smtplib through the proxy.")
    c.send_message(m)
    c.quit()
print("OK")
`

func python(r *clientRun) (string, error) {
	return r.exec("", []string{"PROTO=" + r.protocol, "MODE=" + r.mode, "HOST=" + r.host, "PORT=" + r.port, "CAFILE=" + r.ca,
		"USER=" + r.user, "PASSWORD=" + r.password, "SUBJECT=" + r.subject, "FROM=" + world.Alice, "TO=" + world.Bob},
		"python3", "-c", pyClient)
}

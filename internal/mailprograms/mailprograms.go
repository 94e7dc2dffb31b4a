// Package mailprograms runs real password-only mail programs — fetchmail, mbsync (isync), swaks,
// curl and Python's imaplib, poplib and smtplib — against one IMAP, POP3 or SMTP listener, configured
// the way their users configure them (rc files, flags, environment), each in the local TLS mode asked
// (none, implicit, STARTTLS) and trusting one CA only, and returns what they printed and what they
// delivered. The proxy's tests (proxy/clients_test.go, against the emulator) and the interop tests
// (interop/proxy_test.go, against real Dovecot and Postfix) share it. It is for tests only and must
// never be used by the product.
package mailprograms

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// RequireEnv makes a missing program a test failure instead of a skip (scripts/test sets it, as it
// does for the interop servers).
const RequireEnv = "MAILOAUTH_REQUIRE_INTEROP"

// Program returns the path of a real program, or skips the test when it is not installed (fails
// under MAILOAUTH_REQUIRE_INTEROP).
func Program(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is not installed (%s is set): ./scripts/test installs it", name, RequireEnv)
	}
	t.Skipf("%s is not installed (./scripts/test installs it)", name)
	return ""
}

// Run is one run of a program against one listener.
type Run struct {
	T        testing.TB
	Protocol string // config.ProtocolIMAP, ProtocolPOP or ProtocolSMTP
	Mode     string // the listener's local TLS: config.LocalTLSNone, LocalTLSImplicit or LocalTLSStartTLS
	Host     string // fetchmail and mbsync connect to localhost instead, the name they check
	Port     string
	User     string
	Password string
	Dir      string // the program's own scratch directory (and HOME)
	CA       string // PEM file: the only certificate the program trusts
	Subject  string // a unique subject, an IMAP atom (no spaces): what the user notices
	From, To string // SMTP: the sender and the recipient, in the envelope and the header
	// Wait is how long Python's imaplib looks for the message with Subject before it gives up (mail
	// submitted to a real server arrives a moment later).
	Wait time.Duration
}

// Exec runs a program with a timeout in r.Dir (HOME too), with stdin and env added to the
// environment, and returns what it printed (stdout and stderr).
func (r *Run) Exec(stdin []byte, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Program(r.T, name), args...)
	cmd.Dir = r.Dir
	cmd.Env = append(append(os.Environ(), "HOME="+r.Dir), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out)", err)
	}
	return out.String(), err
}

// write writes a file in r.Dir, private (fetchmail refuses an rc file others may read).
func (r *Run) write(name, content string) string {
	r.T.Helper()
	p := filepath.Join(r.Dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		r.T.Fatal(err)
	}
	return p
}

// Message is a small message from, to, with subject and a Message-ID made of it.
func Message(from, to, subject string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: " +
		time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <" + subject + "@mailprograms.test>\r\n\r\nA message for a real client.\r\n")
}

// Fetchmail fetches the INBOX (keep, fetchall) into a file through its MDA: POP3 USER/PASS or IMAP
// LOGIN; ssl for implicit TLS, sslproto without ssl for STARTTLS (which sslcertck makes mandatory),
// no TLS at all for none. What it printed is followed by what it delivered.
func Fetchmail(r *Run) (string, error) {
	proto := map[string]string{config.ProtocolPOP: "POP3", config.ProtocolIMAP: "IMAP"}[r.Protocol]
	mbox := filepath.Join(r.Dir, "delivered")
	tls := "sslproto ''"
	switch r.Mode {
	case config.LocalTLSImplicit:
		tls = fmt.Sprintf("ssl sslproto tls1.2+ sslcertck sslcertfile %q", r.CA)
	case config.LocalTLSStartTLS:
		tls = fmt.Sprintf("sslproto tls1.2+ sslcertck sslcertfile %q", r.CA)
	}
	rc := r.write("fetchmailrc", fmt.Sprintf(`set no syslog
poll localhost service %s protocol %s auth password timeout 20
  user %q there with password %q is root here
  %s
  keep fetchall
  mda "cat >> %s"
`, r.Port, proto, r.User, r.Password, tls, mbox))
	out, err := r.Exec(nil, nil, "fetchmail", "--nodetach", "-v", "-f", rc, "--pidfile", filepath.Join(r.Dir, "pid"),
		"--idfile", filepath.Join(r.Dir, "ids"))
	got, _ := os.ReadFile(mbox)
	return out + "\n--- delivered:\n" + string(got), err
}

// Mbsync pulls the INBOX into a local Maildir; what it printed is followed by the messages that
// appeared there. Host localhost: isync 1.4 checks the certificate's DNS names only, not its IP
// addresses.
func Mbsync(r *Run) (string, error) {
	tls := map[string]string{config.LocalTLSNone: "None", config.LocalTLSImplicit: "IMAPS", config.LocalTLSStartTLS: "STARTTLS"}[r.Mode]
	maildir := filepath.Join(r.Dir, "Mail")
	if err := os.Mkdir(maildir, 0o700); err != nil {
		r.T.Fatal(err)
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
`, r.Port, r.User, r.Password, tls, r.CA, maildir, maildir))
	out, err := r.Exec(nil, nil, "mbsync", "-V", "-c", rc, "inbox")
	files, _ := filepath.Glob(filepath.Join(maildir, "INBOX", "*", "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		out += "\n--- " + f + ":\n" + string(b)
	}
	return out, err
}

// Swaks sends r.Subject from r.From to r.To with AUTH LOGIN (the obsolete mechanism old programs
// use); --tlsc is implicit TLS, --tls STARTTLS; --tls-verify with r.CA.
func Swaks(r *Run) (string, error) {
	args := []string{"--server", net.JoinHostPort(r.Host, r.Port), "--auth", "LOGIN", "--auth-user", r.User, "--auth-password", r.Password,
		"--from", r.From, "--to", r.To, "--header", "Subject: " + r.Subject, "--timeout", "20",
		"--body", "Sent by swaks through the proxy."}
	switch r.Mode {
	case config.LocalTLSImplicit:
		args = append(args, "--tlsc", "--tls-verify", "--tls-ca-path", r.CA)
	case config.LocalTLSStartTLS:
		args = append(args, "--tls", "--tls-verify", "--tls-ca-path", r.CA)
	}
	return r.Exec(nil, nil, "swaks", args...)
}

// Curl runs curl with r's password on r's listener, the URL being the scheme and the listener
// followed by path: imaps:// pop3s:// smtps:// for implicit TLS, --ssl-reqd on the plain scheme for
// STARTTLS; r.CA only.
func Curl(r *Run, path string, stdin []byte, args ...string) (string, error) {
	scheme := map[string]string{config.ProtocolIMAP: "imap", config.ProtocolPOP: "pop3", config.ProtocolSMTP: "smtp"}[r.Protocol]
	args = append([]string{"-sS", "--max-time", "20", "--cacert", r.CA, "-u", r.User + ":" + r.Password}, args...)
	switch r.Mode {
	case config.LocalTLSImplicit:
		scheme += "s"
	case config.LocalTLSStartTLS:
		args = append(args, "--ssl-reqd")
	}
	return r.Exec(stdin, nil, "curl", append(args, scheme+"://"+net.JoinHostPort(r.Host, r.Port)+path)...)
}

// CurlSend sends msg from r.From to r.To with curl's SMTP.
func CurlSend(r *Run, msg []byte) (string, error) {
	return Curl(r, "", msg, "--mail-from", r.From, "--mail-rcpt", r.To, "-T", "-")
}

// pyClient is Python's standard library as a password-only program: imaplib LOGIN, SELECT INBOX and
// the message SEARCH finds by subject (retried for WAIT seconds), fetched whole with BODY.PEEK[];
// poplib USER/PASS, STAT, the message by TOP, fetched whole with RETR; smtplib login and a message
// from FROM to TO. The message found is printed as its header and a line "MESSAGE <octets> <sha256>"
// of all its bytes. ssl.create_default_context with the CA (verification and host name checking on).
// Arguments come in the environment.
const pyClient = `
import hashlib, imaplib, os, poplib, smtplib, ssl, sys, time
from email.message import EmailMessage
e = os.environ
proto, mode, host, port, subject = e["PROTO"], e["MODE"], e["HOST"], int(e["PORT"]), e["SUBJECT"]
ctx = ssl.create_default_context(cafile=e["CAFILE"])
deadline = time.monotonic() + float(e["WAIT"])

def show(msg):
    print(msg.split(b"\r\n\r\n", 1)[0].decode(errors="replace"))
    print("MESSAGE", len(msg), hashlib.sha256(msg).hexdigest())

if proto == "imap":
    c = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=20) if mode == "implicit" else imaplib.IMAP4(host, port, timeout=20)
    if mode == "starttls":
        c.starttls(ssl_context=ctx)
    c.login(e["USER"], e["PASSWORD"])
    while True:
        typ, data = c.select("INBOX", readonly=True)
        found = c.search(None, "SUBJECT", subject)[1][0].split()
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print("SELECT", typ, data)
    if not found:
        sys.exit("imaplib: no message " + subject)
    show(c.fetch(found[-1], "(BODY.PEEK[])")[1][0][1])
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
        if subject.encode() in b"\r\n".join(c.top(i, 0)[1]):
            show(b"\r\n".join(c.retr(i)[1]) + b"\r\n")
            break
    else:
        sys.exit("poplib: no message " + subject)
    c.quit()
else:
    c = smtplib.SMTP_SSL(host, port, context=ctx, timeout=20) if mode == "implicit" else smtplib.SMTP(host, port, timeout=20)
    if mode == "starttls":
        c.starttls(context=ctx)
    c.login(e["USER"], e["PASSWORD"])
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = e["FROM"], e["TO"], subject
    m.set_content("Sent by smtplib through the proxy.")
    c.send_message(m)
    c.quit()
print("OK")
`

// Python runs pyClient for r.Protocol: it sends r.Subject (SMTP), or finds the message with
// r.Subject (IMAP: waiting up to r.Wait for it to arrive) and prints it.
func Python(r *Run) (string, error) {
	out, err := r.Exec(nil, []string{"PROTO=" + r.Protocol, "MODE=" + r.Mode, "HOST=" + r.Host, "PORT=" + r.Port, "CAFILE=" + r.CA,
		"USER=" + r.User, "PASSWORD=" + r.Password, "SUBJECT=" + r.Subject, "FROM=" + r.From, "TO=" + r.To,
		fmt.Sprintf("WAIT=%g", r.Wait.Seconds())},
		"python3", "-c", pyClient)
	if err == nil && !strings.HasSuffix(out, "OK\n") {
		err = fmt.Errorf("python3 did not finish")
	}
	return out, err
}

var pyMessage = regexp.MustCompile(`(?m)^MESSAGE \d+ [0-9a-f]{64}$`)

// PythonMessage is the line by which Python's output names the message it read: its size and its
// SHA-256, equal for equal bytes; "" when it read none.
func PythonMessage(out string) string { return pyMessage.FindString(out) }

// CA is the last PEM block of a certificate chain: its CA, what a program is to trust.
func CA(t testing.TB, chain []byte) []byte {
	t.Helper()
	var last *pem.Block
	for b, rest := pem.Decode(chain); b != nil; b, rest = pem.Decode(rest) {
		last = b
	}
	if last == nil {
		t.Fatal("no PEM block in the certificate chain")
	}
	return pem.EncodeToMemory(last)
}

// MbsyncTwoWay syncs INBOX and Archive both ways (new mail, flags, deletions, both sides' expunges)
// with a Maildir in r.Dir/Mail, which it keeps: call it again for the next sync. It returns what
// mbsync printed.
func MbsyncTwoWay(r *Run) (string, error) {
	tls := map[string]string{config.LocalTLSNone: "None", config.LocalTLSImplicit: "IMAPS", config.LocalTLSStartTLS: "STARTTLS"}[r.Mode]
	maildir := filepath.Join(r.Dir, "Mail")
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		r.T.Fatal(err)
	}
	ca := "# no CertificateFile: no TLS" // a line: an empty one would end the section
	if r.CA != "" {
		ca = "CertificateFile " + r.CA
	}
	rc := r.write("mbsyncrc", fmt.Sprintf(`IMAPAccount proxy
Host localhost
Port %s
User %s
Pass %s
SSLType %s
%s
Timeout 20

IMAPStore remote
Account proxy

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel mail
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Sync All
Expunge Both
SyncState *
`, r.Port, r.User, r.Password, tls, ca, maildir, maildir))
	return r.Exec(nil, nil, "mbsync", "-V", "-c", rc, "mail")
}

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
	rc, maildir := r.mbsyncrc("", `Channel inbox
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
Expunge None
SyncState *
`)
	out, err := r.Exec(nil, nil, "mbsync", "-V", "-c", rc, "inbox")
	files, _ := filepath.Glob(filepath.Join(maildir, "INBOX", "*", "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		out += "\n--- " + f + ":\n" + string(b)
	}
	return out, err
}

// mbsyncrc writes an mbsync configuration for r's server and a Maildir in r.Dir/Mail (made if
// missing): the account and the two stores, the store's extra lines, then channel; it returns the
// file's path and the Maildir.
func (r *Run) mbsyncrc(localExtra, channel string) (rc, maildir string) {
	tls := map[string]string{config.LocalTLSNone: "None", config.LocalTLSImplicit: "IMAPS", config.LocalTLSStartTLS: "STARTTLS"}[r.Mode]
	maildir = filepath.Join(r.Dir, "Mail")
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		r.T.Fatal(err)
	}
	rc = r.write("mbsyncrc", fmt.Sprintf(`IMAPAccount proxy
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
%s
%s`, r.Port, r.User, r.Password, tls, r.certificateFile(), maildir, maildir, localExtra, channel))
	return rc, maildir
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

// certificateFile is mbsync's line trusting r.CA; a comment without one (no TLS), since an empty
// line would end the section.
func (r *Run) certificateFile() string {
	if r.CA == "" {
		return "# no CertificateFile: no TLS"
	}
	return "CertificateFile " + r.CA
}

// MbsyncTwoWay syncs INBOX and Archive both ways (new mail, flags, deletions, both sides' expunges)
// with a Maildir in r.Dir/Mail, which it keeps: call it again for the next sync. It returns what
// mbsync printed.
func MbsyncTwoWay(r *Run) (string, error) {
	rc, _ := r.mbsyncrc("SubFolders Verbatim\n", `Channel mail
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Sync All
Expunge Both
SyncState *
`)
	return r.Exec(nil, nil, "mbsync", "-V", "-c", rc, "mail")
}

// imapTour is Python's imaplib going through the IMAP commands a gateway must serve, checking each
// answer as a program would rely on it; it prints "ok <step>" per step and "TOUR DONE" at the end,
// and exits with the failed step's name and the server's answer otherwise. The message with
// SUBJECT must be in the INBOX, from FROM to TO. A second connection appends while the first IDLEs.
const imapTour = `
import datetime, imaplib, os, re, ssl, sys, time
e = os.environ
mode, host, port, subject, stamp = e["MODE"], e["HOST"], int(e["PORT"]), e["SUBJECT"], e["STAMP"]
ctx = ssl.create_default_context(cafile=e["CAFILE"]) if e["CAFILE"] else None

def connect():
    c = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=30) if mode == "implicit" else imaplib.IMAP4(host, port, timeout=30)
    if mode == "starttls":
        c.starttls(ssl_context=ctx)
    return c

def check(step, cond, answer=None):
    if not cond:
        sys.exit("FAILED " + step + ": " + repr(answer))
    print("ok", step)

def ok(step, res):
    check(step, res[0] == "OK", res)
    return res[1]

c = connect()
ok("LOGIN", c.login(e["USER"], e["PASSWORD"]))
caps = ok("CAPABILITY", c.capability())[0].decode().upper().split()
for cap in ("IMAP4REV1", "UIDPLUS", "MOVE", "IDLE", "SPECIAL-USE", "NAMESPACE", "LITERAL+", "ENABLE"):
    check("CAPABILITY " + cap, cap in caps, caps)
ok("NAMESPACE", c.namespace())
lst = b"\n".join(ok("LIST", c.list('""', "*")))
for attr, name in ((b"\\Sent", b"Sent Items"), (b"\\Drafts", b"Drafts"), (b"\\Trash", b"Deleted Items"), (b"\\Junk", b"Junk Email"), (b"\\Archive", b"Archive")):
    check("LIST " + attr.decode(), re.search(re.escape(attr) + rb'[^)]*\) "/" "?' + re.escape(name), lst), lst)
check("LIST INBOX", re.search(rb'"/" "?INBOX"?$', lst, re.M), lst)
ok("LSUB", c.lsub('""', "*"))

top, child, kid = "Tour-" + stamp, "Tour-" + stamp + "/Child", "Tour-" + stamp + "/Kid"
ok("CREATE", c.create(top))
ok("CREATE child", c.create(child))
lst = b"\n".join(ok("LIST children", c.list('""', top + "*")))
check("LIST \\HasChildren", re.search(rb"\\HasChildren[^)]*\) \"/\" \"?" + re.escape(top.encode()) + rb'"?$', lst, re.M), lst)
ok("RENAME", c.rename(child, kid))
st = ok("STATUS", c.status(kid, "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"))[0]
check("STATUS MESSAGES 0", b"MESSAGES 0" in st, st)

ok("EXAMINE", c.select("INBOX", readonly=True))
check("EXAMINE read-only", c.store("1", "+FLAGS", "(\\Flagged)")[0] != "OK")
ok("SELECT", c.select("INBOX"))
uids = ok("UID SEARCH SUBJECT", c.uid("SEARCH", None, "SUBJECT", subject))[0].split()
check("UID SEARCH found", len(uids) == 1, uids)
uid = uids[0].decode()
f = ok("FETCH attributes", c.uid("FETCH", uid, "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"))
meta = b" ".join(x if isinstance(x, bytes) else b" ".join(x) for x in f)
for part in (b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE", subject.encode(), b"BODYSTRUCTURE", b'"TEXT" "PLAIN"'):
    check("FETCH " + part.decode(), part.upper() in meta.upper(), meta)
check("FETCH unseen", b"\\Seen" not in meta, meta)
f = ok("FETCH header fields", c.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
check("FETCH header field", f[0][1].strip() == ("Subject: " + subject).encode(), f)
f = ok("FETCH section", c.uid("FETCH", uid, "(BODY.PEEK[1])"))
check("FETCH BODY[1]", b"A message for a real client." in f[0][1], f)
f = ok("FETCH BODY[]", c.uid("FETCH", uid, "(BODY[])"))
check("FETCH BODY[] whole", f[0][1].startswith(b"From: ") and b"Subject: " + subject.encode() in f[0][1], f)
f = ok("FETCH FLAGS", c.uid("FETCH", uid, "(FLAGS)"))
check("BODY[] sets \\Seen", b"\\Seen" in f[0], f)

ok("STORE -\\Seen", c.uid("STORE", uid, "-FLAGS", "(\\Seen)"))
ok("STORE +\\Flagged", c.uid("STORE", uid, "+FLAGS", "(\\Flagged)"))
check("SEARCH UNSEEN", uid.encode() in ok("SEARCH UNSEEN", c.uid("SEARCH", None, "UNSEEN"))[0].split())
check("SEARCH SEEN", uid.encode() not in ok("SEARCH SEEN", c.uid("SEARCH", None, "SEEN"))[0].split())
check("SEARCH FLAGGED", uid.encode() in ok("SEARCH FLAGGED", c.uid("SEARCH", None, "FLAGGED"))[0].split())
today = datetime.date.today()
since = (today - datetime.timedelta(days=1)).strftime("%d-%b-%Y")
before = (today - datetime.timedelta(days=1)).strftime("%d-%b-%Y")
check("SEARCH SINCE", uid.encode() in ok("SEARCH SINCE", c.uid("SEARCH", None, "SINCE", since))[0].split())
check("SEARCH BEFORE", uid.encode() not in ok("SEARCH BEFORE", c.uid("SEARCH", None, "BEFORE", before))[0].split())
check("SEARCH FROM", uid.encode() in ok("SEARCH FROM", c.uid("SEARCH", None, "FROM", e["FROM"]))[0].split())
check("SEARCH TO", uid.encode() in ok("SEARCH TO", c.uid("SEARCH", None, "TO", e["TO"]))[0].split())
check("SEARCH UID range", uid.encode() in ok("SEARCH UID", c.uid("SEARCH", None, "UID", uid + ":*"))[0].split())

msg = ("From: " + e["FROM"] + "\r\nTo: " + e["TO"] + "\r\nSubject: appended-" + stamp + "\r\n\r\nAppended by imaplib.\r\n").encode()
res = c.append(kid, "(\\Seen)", None, msg)
check("APPEND APPENDUID", res[0] == "OK" and b"APPENDUID" in res[1][0], res)
res = c.uid("COPY", uid, kid)
code = c.response("COPYUID")  # the tagged OK's response code, which imaplib keeps aside
check("COPY COPYUID", res[0] == "OK" and code[1][0] is not None, (res, code))
res = c.uid("MOVE", uid, top)
code = c.response("COPYUID")
check("MOVE COPYUID", res[0] == "OK" and code[1][0] is not None, (res, code))
check("MOVE gone", uid.encode() not in ok("SEARCH after MOVE", c.uid("SEARCH", None, "ALL"))[0].split())
st = ok("STATUS after COPY", c.status(kid, "(MESSAGES)"))[0]
check("STATUS MESSAGES 2", b"MESSAGES 2" in st, st)

ok("SELECT child", c.select(kid))
ok("STORE \\Deleted", c.store("1:*", "+FLAGS", "(\\Deleted)"))
ok("EXPUNGE", c.expunge())
n = ok("SELECT after EXPUNGE", c.select(kid))[0]
check("EXPUNGE emptied", n == b"0", n)

ok("SELECT INBOX for IDLE", c.select("INBOX"))
tag = c._new_tag()
c.send(tag + b" IDLE\r\n")
check("IDLE continuation", c.readline().startswith(b"+"))
s = connect()
s.login(e["USER"], e["PASSWORD"])
ok("ENABLE", s._simple_command("ENABLE", "UTF8=ACCEPT"))
ok("APPEND while idling", s.append("INBOX", None, None, ("Subject: idle-" + stamp + "\r\n\r\nWake up.\r\n").encode()))
s.logout()
line = c.readline()
while line and not line.endswith(b"EXISTS\r\n"):
    line = c.readline()
check("IDLE EXISTS", line.endswith(b"EXISTS\r\n"), line)
c.send(b"DONE\r\n")
line = c.readline()
while line.startswith(b"*"):
    line = c.readline()
check("IDLE done", line.startswith(tag + b" OK"), line)
ok("CLOSE", c.close())
ok("DELETE child", c.delete(kid))
ok("DELETE", c.delete(top))
ok("NOOP", c.noop())
check("LOGOUT", c.logout()[0] == "BYE")
print("TOUR DONE")
`

// ImapTour runs Python's imaplib through every IMAP command a program relies on (see imapTour)
// against r's listener; r.Subject names a message in the INBOX from r.From to r.To, stamp makes the
// folders it creates (and deletes again) unique.
func ImapTour(r *Run, stamp string) (string, error) {
	out, err := r.Exec(nil, []string{"MODE=" + r.Mode, "HOST=" + r.Host, "PORT=" + r.Port, "CAFILE=" + r.CA,
		"USER=" + r.User, "PASSWORD=" + r.Password, "SUBJECT=" + r.Subject, "FROM=" + r.From, "TO=" + r.To, "STAMP=" + stamp},
		"python3", "-c", imapTour)
	if err == nil && !strings.HasSuffix(out, "TOUR DONE\n") {
		err = fmt.Errorf("python3 did not finish the tour")
	}
	return out, err
}

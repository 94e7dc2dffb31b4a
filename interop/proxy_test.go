package interop

// The proxy (package proxy) in front of real Dovecot and Postfix: password-only programs log in to
// it with a local password, and it logs in upstream with XOAUTH2 and the daemon app's app-only token
// (which Dovecot's app passdb accepts for alice; Postfix asks Dovecot).

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/emulator"
	"github.com/mailoauth/mailoauth/emulator/world"
	"github.com/mailoauth/mailoauth/internal/testpki"
	"github.com/mailoauth/mailoauth/proxy"
)

var proxyModes = []string{config.LocalTLSNone, config.LocalTLSImplicit, config.LocalTLSStartTLS}

// proxyLab is a proxy with a listener per protocol and local TLS mode, upstream Dovecot's IMAPS and
// POP3S and Postfix's submission port.
type proxyLab struct {
	srv *proxy.Server
	ca  string // the CA of the proxy's local certificate, for the programs
	log string // the proxy's log file
}

func startProxy(t *testing.T, l *lab) *proxyLab {
	t.Helper()
	dir := t.TempDir()
	if err := l.emu.WriteData(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, emulator.ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	// The account trusts the emulator (its tokens) and this run's CA (Dovecot's and Postfix's TLS).
	serverCA := lastCert(t, readFile(t, l.dovecotDir("ssl", "cert.pem")))
	caFile := writeFile(t, dir, "account-ca.pem", append(l.emu.CAPEM(), serverCA...))
	cfg.Accounts[emulator.ProxyAccount].CAFile = caFile

	certPEM, keyPEM, _, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	p := &proxyLab{ca: writeFile(t, dir, "local-ca.pem", lastCert(t, certPEM)), log: filepath.Join(dir, "proxy.log")}
	cert, key := writeFile(t, dir, "local.pem", certPEM), writeFile(t, dir, "local-key.pem", keyPEM)
	upstream := map[string]int{config.ProtocolIMAP: l.ports.IMAPS, config.ProtocolPOP: l.ports.POP3S, config.ProtocolSMTP: l.ports.Submission}
	cfg.Proxy.Listeners = nil
	for proto, port := range upstream {
		for _, mode := range proxyModes {
			ln := config.Listener{Protocol: proto, Listen: "127.0.0.1:0", Upstream: addr(port), LocalTLS: mode}
			if mode != config.LocalTLSNone {
				ln.TLSCert, ln.TLSKey = cert, key
			}
			cfg.Proxy.Listeners = append(cfg.Proxy.Listeners, ln)
		}
	}
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logFile, nil))
	if p.srv, err = proxy.New(cfg.Proxy, auth.New(cfg, auth.Options{}), proxy.Options{Log: log}); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.srv.Shutdown(ctx)
		logFile.Close()
		if t.Failed() {
			t.Logf("the proxy's log:\n%s", readFile(t, p.log))
		}
	})
	return p
}

// port is the proxy's port for protocol with local TLS mode (Addrs is keyed "protocol mode listen").
func (p *proxyLab) port(t *testing.T, protocol, mode string) string {
	a, ok := p.srv.Addrs()[protocol+" "+mode+" 127.0.0.1:0"]
	if !ok {
		t.Fatalf("no %s listener with local TLS %s", protocol, mode)
	}
	return a[strings.LastIndexByte(a, ':')+1:]
}

// TestProxyWithPasswordOnlyPrograms: Python's smtplib and curl submit a message through the proxy to
// Postfix, which delivers it to Dovecot; imaplib and curl find it there through the proxy, poplib and
// curl list and read it over POP3. Three runs per program rotate the local TLS modes, so that every
// protocol is used with local TLS none, implicit and STARTTLS; every login is alice's local password.
func TestProxyWithPasswordOnlyPrograms(t *testing.T) {
	l := need(t, true)
	p := startProxy(t, l)
	for _, prog := range []struct {
		name string
		run  func(t *testing.T, p *proxyLab, modes map[string]string, id string) (string, error)
	}{{"python3", pythonThroughProxy}, {"curl", curlThroughProxy}} {
		for i := range proxyModes {
			modes := map[string]string{config.ProtocolSMTP: proxyModes[i], config.ProtocolIMAP: proxyModes[(i+1)%3], config.ProtocolPOP: proxyModes[(i+2)%3]}
			t.Run(fmt.Sprintf("%s/smtp-%s/imap-%s/pop-%s", prog.name, modes["smtp"], modes["imap"], modes["pop"]), func(t *testing.T) {
				t.Parallel()
				if _, err := exec.LookPath(prog.name); err != nil {
					if os.Getenv(requireEnv) != "" {
						t.Fatalf("%s is not installed (%s is set)", prog.name, requireEnv)
					}
					t.Skipf("%s is not installed (./scripts/test installs it)", prog.name)
				}
				id := fmt.Sprintf("%s.%d.%s@proxy.interop.test", prog.name, i, randomHex(6))
				out, err := prog.run(t, p, modes, id)
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				t.Logf("%s", out)
			})
		}
	}
}

// runProgram runs a program with a timeout and returns what it printed.
func runProgram(env []string, stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pyThroughProxy sends a message to alice with smtplib, waits for it with imaplib (SEARCH by
// Message-ID, then BODY.PEEK[]), and finds the same bytes with poplib (STAT, RETR); each protocol
// in the local TLS mode the environment names, the proxy's CA only.
const pyThroughProxy = `
import imaplib, os, poplib, smtplib, ssl, sys, time
e = os.environ
ctx = ssl.create_default_context(cafile=e["CAFILE"])
user, password, mid = e["USER"], e["PASSWORD"], e["MSGID"]

def connect(proto, plain, implicit, upgrade):
    mode, port = e[proto + "_MODE"], int(e[proto + "_PORT"])
    if mode == "implicit":
        return implicit("127.0.0.1", port, ctx)
    c = plain("127.0.0.1", port, timeout=20)
    if mode == "starttls":
        upgrade(c)
    return c

s = connect("SMTP", smtplib.SMTP, lambda h, p, x: smtplib.SMTP_SSL(h, p, context=x, timeout=20), lambda c: c.starttls(context=ctx))
s.login(user, password)
s.sendmail(user, [user], ("From: %s\r\nTo: %s\r\nSubject: smtplib through the proxy\r\nMessage-ID: <%s>\r\n\r\nSent by smtplib.\r\n" % (user, user, mid)).encode())
s.quit()

i = connect("IMAP", imaplib.IMAP4, lambda h, p, x: imaplib.IMAP4_SSL(h, p, ssl_context=x, timeout=20), lambda c: c.starttls(ssl_context=ctx))
i.login(user, password)
for _ in range(150):
    i.select("INBOX", readonly=True)
    found = i.search(None, "HEADER", "Message-ID", "<%s>" % mid)[1][0].split()
    if found:
        break
    time.sleep(0.1)
else:
    sys.exit("imaplib: the message never arrived in Dovecot")
body = i.fetch(found[-1], "(BODY.PEEK[])")[1][0][1]
i.logout()
print("IMAP", len(body), "octets")

p = connect("POP", poplib.POP3, lambda h, p, x: poplib.POP3_SSL(h, p, context=x, timeout=20), lambda c: c.stls(context=ctx))
p.user(user)
p.pass_(password)
count, size = p.stat()
print("STAT", count, size)
if not any(b"\r\n".join(p.retr(n)[1]) + b"\r\n" == body for n in range(count, 0, -1)):
    sys.exit("poplib: no message with the bytes imaplib read")
p.quit()
print("OK")
`

func pythonThroughProxy(t *testing.T, p *proxyLab, modes map[string]string, id string) (string, error) {
	env := []string{"CAFILE=" + p.ca, "USER=" + world.Alice, "PASSWORD=" + emulator.ProxyPassword, "MSGID=" + id}
	for proto, mode := range modes {
		up := strings.ToUpper(proto)
		env = append(env, up+"_MODE="+mode, up+"_PORT="+p.port(t, proto, mode))
	}
	out, err := runProgram(env, nil, "python3", "-c", pyThroughProxy)
	if err == nil && !strings.HasSuffix(out, "OK\n") {
		err = fmt.Errorf("python3 did not finish")
	}
	return out, err
}

var (
	searchResult = regexp.MustCompile(`\* SEARCH( \d+)+`)
	popListing   = regexp.MustCompile(`(?m)^1 \d+\r?$`) // curl's LIST: "number size" lines
)

// curlThroughProxy sends with curl's SMTP, waits for the message with a UID SEARCH over IMAP and
// fetches it by UID, then lists the POP3 maildrop. imaps:// pop3s:// smtps:// for implicit TLS,
// --ssl-reqd for STARTTLS, the proxy's CA only.
func curlThroughProxy(t *testing.T, p *proxyLab, modes map[string]string, id string) (string, error) {
	var log strings.Builder
	// curl runs curl on protocol's listener: the URL is the scheme and the listener followed by path.
	curl := func(stdin []byte, proto, path string, args ...string) (string, error) {
		scheme := map[string]string{config.ProtocolIMAP: "imap", config.ProtocolPOP: "pop3", config.ProtocolSMTP: "smtp"}[proto]
		switch modes[proto] {
		case config.LocalTLSImplicit:
			scheme += "s"
		case config.LocalTLSStartTLS:
			args = append(args, "--ssl-reqd")
		}
		args = append(args, scheme+"://127.0.0.1:"+p.port(t, proto, modes[proto])+path)
		fmt.Fprintf(&log, "$ curl %s\n", strings.Join(args, " "))
		out, err := runProgram(nil, stdin, "curl", append([]string{"-sS", "--max-time", "20", "--cacert", p.ca,
			"-u", world.Alice + ":" + emulator.ProxyPassword}, args...)...)
		log.WriteString(out)
		return out, err
	}
	msg := "From: " + world.Alice + "\r\nTo: " + world.Alice + "\r\nSubject: curl through the proxy\r\nMessage-ID: <" + id + ">\r\n\r\nSent by curl.\r\n"
	if _, err := curl([]byte(msg), config.ProtocolSMTP, "", "--mail-from", world.Alice, "--mail-rcpt", world.Alice, "-T", "-"); err != nil {
		return log.String(), err
	}
	var uid string
	for deadline := time.Now().Add(15 * time.Second); uid == ""; time.Sleep(100 * time.Millisecond) {
		out, err := curl(nil, config.ProtocolIMAP, "/INBOX", "-X", "UID SEARCH HEADER Message-ID <"+id+">")
		if err != nil {
			return log.String(), err
		}
		if m := searchResult.FindStringSubmatch(out); m != nil {
			uid = strings.TrimSpace(m[1])
		} else if time.Now().After(deadline) {
			return log.String(), fmt.Errorf("the message never arrived in Dovecot")
		}
	}
	if out, err := curl(nil, config.ProtocolIMAP, "/INBOX;UID="+uid); err != nil || !strings.Contains(out, "Message-ID: <"+id+">") {
		return log.String(), fmt.Errorf("IMAP fetch of UID %s: %v", uid, err)
	}
	if out, err := curl(nil, config.ProtocolPOP, "/"); err != nil || !popListing.MatchString(out) {
		return log.String(), fmt.Errorf("POP3 LIST: %v", err)
	}
	return log.String(), nil
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lastCert is the last PEM block of a chain: its CA.
func lastCert(t *testing.T, chain []byte) []byte {
	t.Helper()
	var last *pem.Block
	for b, rest := pem.Decode(chain); b != nil; b, rest = pem.Decode(rest) {
		last = b
	}
	if last == nil {
		t.Fatal("no PEM certificate")
	}
	return pem.EncodeToMemory(last)
}

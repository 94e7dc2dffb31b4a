//go:build unix

package interop

// The proxy (package proxy) in front of real Dovecot and Postfix: password-only programs log in to
// it with a local password, and it logs in upstream with XOAUTH2 and the daemon app's app-only token
// (which Dovecot's app passdb accepts for alice; Postfix asks Dovecot).

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/mailprograms"
	"github.com/mailoauth/mailoauth/internal/testpki"
	"github.com/mailoauth/mailoauth/proxy"
	"github.com/mailoauth/mailoauth/sasl"
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
	serverCA := mailprograms.CA(t, readFile(t, l.dovecotDir("ssl", "cert.pem")))
	caFile := writeFile(t, dir, "account-ca.pem", append(l.emu.CAPEM(), serverCA...))
	cfg.Accounts[emulator.ProxyAccount].CAFile = caFile

	certPEM, keyPEM, _, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	p := &proxyLab{ca: writeFile(t, dir, "local-ca.pem", mailprograms.CA(t, certPEM)), log: filepath.Join(dir, "proxy.log")}
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

// run is one run of a program on the proxy's listener for proto in local TLS mode, as alice with her
// local password, trusting the proxy's CA only; an SMTP program sends subject to alice herself.
func (p *proxyLab) run(t *testing.T, proto, mode, subject string) *mailprograms.Run {
	return &mailprograms.Run{T: t, Protocol: proto, Mode: mode, Host: "127.0.0.1", Port: p.port(t, proto, mode),
		User: world.Alice, Password: emulator.ProxyPassword, Dir: t.TempDir(), CA: p.ca, Subject: subject,
		From: world.Alice, To: world.Alice}
}

// flow is a program that sends one message through the proxy to Postfix and programs that must then
// find it in Dovecot through the proxy, each protocol on the proxy's listener with the local TLS mode
// modes gives it. It returns what the programs printed.
type flow func(t *testing.T, l *lab, p *proxyLab, modes map[string]string, subject string) (string, error)

// TestProxyWithPasswordOnlyPrograms: real password-only programs (internal/mailprograms) through the
// proxy to Postfix and Dovecot. In each flow a program submits a message with a unique subject
// through the proxy to Postfix, which delivers it to Dovecot, and programs find it there through the
// proxy: smtplib sends, imaplib finds it and poplib reads the same bytes; curl sends, finds it with
// UID SEARCH, fetches it and lists the POP3 maildrop; swaks sends (AUTH LOGIN), and once Dovecot has
// it fetchmail over POP3 and over IMAP delivers it to its MDA and mbsync syncs it into a Maildir.
// Three runs per flow rotate the local TLS modes, so that every program uses every protocol it
// speaks here with local TLS none, implicit and STARTTLS; every login is alice's local password.
func TestProxyWithPasswordOnlyPrograms(t *testing.T) {
	l := need(t, true)
	p := startProxy(t, l)
	for _, f := range []struct {
		programs []string
		run      flow
	}{
		{[]string{"python3"}, pythonThroughProxy},
		{[]string{"curl"}, curlThroughProxy},
		{[]string{"swaks", "fetchmail", "mbsync"}, swaksFetchmailMbsyncThroughProxy},
	} {
		for i := range proxyModes {
			modes := map[string]string{config.ProtocolSMTP: proxyModes[i], config.ProtocolIMAP: proxyModes[(i+1)%3], config.ProtocolPOP: proxyModes[(i+2)%3]}
			name := strings.Join(f.programs, "+")
			t.Run(fmt.Sprintf("%s/smtp-%s/imap-%s/pop-%s", name, modes["smtp"], modes["imap"], modes["pop"]), func(t *testing.T) {
				t.Parallel()
				for _, prog := range f.programs {
					mailprograms.Program(t, prog)
				}
				subject := fmt.Sprintf("%s-%d-%s", strings.ReplaceAll(name, "+", "-"), i, randomHex(6))
				out, err := f.run(t, l, p, modes, subject)
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				t.Logf("%s", out)
			})
		}
	}
}

// pythonThroughProxy sends a message to alice with smtplib, waits for it with imaplib (SEARCH by
// subject, then BODY.PEEK[]), and finds the same bytes with poplib (TOP, then RETR).
func pythonThroughProxy(t *testing.T, _ *lab, p *proxyLab, modes map[string]string, subject string) (string, error) {
	var log strings.Builder
	python := func(proto string) (string, error) {
		r := p.run(t, proto, modes[proto], subject)
		r.Wait = 15 * time.Second
		out, err := mailprograms.Python(r)
		fmt.Fprintf(&log, "$ python3 (%s, local TLS %s)\n%s", proto, modes[proto], out)
		return out, err
	}
	if _, err := python(config.ProtocolSMTP); err != nil {
		return log.String(), fmt.Errorf("smtplib: %w", err)
	}
	viaIMAP, err := python(config.ProtocolIMAP)
	if err != nil {
		return log.String(), fmt.Errorf("imaplib: %w", err)
	}
	viaPOP, err := python(config.ProtocolPOP)
	if err != nil {
		return log.String(), fmt.Errorf("poplib: %w", err)
	}
	if m := mailprograms.PythonMessage(viaIMAP); m == "" || m != mailprograms.PythonMessage(viaPOP) {
		return log.String(), fmt.Errorf("poplib did not read the bytes imaplib read")
	}
	return log.String(), nil
}

var (
	searchResult = regexp.MustCompile(`\* SEARCH( \d+)+`)
	popListing   = regexp.MustCompile(`(?m)^1 \d+\r?$`) // curl's LIST: "number size" lines
	subjectLine  = regexp.MustCompile(`(?m)^Subject: [^\r\n]*`)
)

// curlThroughProxy sends with curl's SMTP, waits for the message with a UID SEARCH over IMAP and
// fetches it by UID, then lists the POP3 maildrop.
func curlThroughProxy(t *testing.T, _ *lab, p *proxyLab, modes map[string]string, subject string) (string, error) {
	var log strings.Builder
	curl := func(proto, path string, args ...string) (string, error) {
		r := p.run(t, proto, modes[proto], subject)
		var out string
		var err error
		if proto == config.ProtocolSMTP {
			out, err = mailprograms.CurlSend(r, mailprograms.Message(world.Alice, world.Alice, subject))
		} else {
			out, err = mailprograms.Curl(r, path, nil, args...)
		}
		fmt.Fprintf(&log, "$ curl %s (local TLS %s)\n%s\n", strings.Join(append([]string{proto + path}, args...), " "), modes[proto], out)
		return out, err
	}
	if _, err := curl(config.ProtocolSMTP, ""); err != nil {
		return log.String(), err
	}
	var uid string
	for deadline := time.Now().Add(15 * time.Second); uid == ""; time.Sleep(100 * time.Millisecond) {
		out, err := curl(config.ProtocolIMAP, "/INBOX", "-X", "UID SEARCH SUBJECT "+subject)
		if err != nil {
			return log.String(), err
		}
		if m := searchResult.FindStringSubmatch(out); m != nil {
			uid = strings.TrimSpace(m[1])
		} else if time.Now().After(deadline) {
			return log.String(), fmt.Errorf("the message never arrived in Dovecot")
		}
	}
	if out, err := curl(config.ProtocolIMAP, "/INBOX;UID="+uid); err != nil || !strings.Contains(out, "Subject: "+subject+"\r\n") {
		return log.String(), fmt.Errorf("IMAP fetch of UID %s: %v", uid, err)
	}
	if out, err := curl(config.ProtocolPOP, "/"); err != nil || !popListing.MatchString(out) {
		return log.String(), fmt.Errorf("POP3 LIST: %v", err)
	}
	return log.String(), nil
}

// swaksFetchmailMbsyncThroughProxy sends with swaks (AUTH LOGIN), waits until Dovecot has the message
// (looked for directly, with alice's token), then fetches alice's INBOX with fetchmail over POP3 and
// over IMAP and syncs it with mbsync: the message must be in what fetchmail's MDA received and in
// mbsync's Maildir.
func swaksFetchmailMbsyncThroughProxy(t *testing.T, l *lab, p *proxyLab, modes map[string]string, subject string) (string, error) {
	var log strings.Builder
	run := func(name, proto string, program func(*mailprograms.Run) (string, error)) (string, error) {
		out, err := program(p.run(t, proto, modes[proto], subject))
		// What the program printed, and of what it delivered (the whole INBOX) the subjects only.
		printed, delivered, _ := strings.Cut(out, "\n--- ")
		fmt.Fprintf(&log, "$ %s (%s, local TLS %s)\n%s\n", name, proto, modes[proto], printed)
		if delivered != "" {
			fmt.Fprintf(&log, "delivered: %q\n", subjectLine.FindAllString(delivered, -1))
		}
		if err != nil {
			err = fmt.Errorf("%s over %s with local TLS %s: %w", name, proto, modes[proto], err)
		}
		return out, err
	}
	if _, err := run("swaks", config.ProtocolSMTP, mailprograms.Swaks); err != nil {
		return log.String(), err
	}
	if err := waitDelivered(l, subject); err != nil {
		return log.String(), err
	}
	for _, reader := range []struct {
		name, proto string
		program     func(*mailprograms.Run) (string, error)
	}{
		{"fetchmail", config.ProtocolPOP, mailprograms.Fetchmail},
		{"fetchmail", config.ProtocolIMAP, mailprograms.Fetchmail},
		{"mbsync", config.ProtocolIMAP, mailprograms.Mbsync},
	} {
		out, err := run(reader.name, reader.proto, reader.program)
		if err != nil {
			return log.String(), err
		}
		if _, delivered, _ := strings.Cut(out, "\n--- "); !slices.Contains(subjectLine.FindAllString(delivered, -1), "Subject: "+subject) {
			return log.String(), fmt.Errorf("%s over %s with local TLS %s did not deliver the message %q", reader.name, reader.proto, modes[reader.proto], subject)
		}
	}
	return log.String(), nil
}

// waitDelivered waits until alice's INBOX in Dovecot has a message with subject, looking directly
// (IMAPS, alice's token).
func waitDelivered(l *lab, subject string) error {
	c, err := imapclient.DialTLS(addr(l.ports.IMAPS), l.imapOptions())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewXOAuth2Client(world.Alice, l.tok.good)); err != nil {
		return fmt.Errorf("IMAP AUTHENTICATE XOAUTH2: %w", err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		msg, err := fetchByHeader(c, "Subject", subject)
		if err != nil || msg != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("message %q not delivered to Dovecot after 15 s (see Postfix's maillog below)", subject)
		}
	}
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

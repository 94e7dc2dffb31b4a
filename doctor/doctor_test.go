package doctor_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor"
	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// lab is one emulator and the configuration it wrote, loaded.
type lab struct {
	e   *emulator.Emulator
	cfg *config.File
	dir string
}

func start(t *testing.T, w *world.World, now func() time.Time) *lab {
	t.Helper()
	l := emulatortest.Start(t, emulator.Options{World: w, AutoApprove: world.Alice, Now: now})
	return &lab{e: l.E, cfg: l.Config, dir: l.Dir}
}

// account adds a copy of base named name, changed by change (after loading: paths are absolute).
func (l *lab) account(name, base string, change func(*config.Account)) {
	c := *l.cfg.Accounts[base]
	c.Name = name
	if change != nil {
		change(&c)
	}
	l.cfg.Accounts[name] = &c
}

func (l *lab) file(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (l *lab) run(t *testing.T, account string, protocols ...string) doctor.Report {
	t.Helper()
	return l.runCtx(t, context.Background(), account, protocols...)
}

func (l *lab) runCtx(t *testing.T, ctx context.Context, account string, protocols ...string) doctor.Report {
	t.Helper()
	rep, err := doctor.Run(ctx, l.cfg, auth.New(l.cfg, auth.Options{}), account, doctor.Options{Protocols: protocols})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// password makes a delegated password-flow account for alice (no browser needed).
func password(mailbox string, protocols ...string) func(*config.Account) {
	return func(a *config.Account) {
		a.Flow, a.Email, a.Mailbox, a.PasswordEnv, a.Protocols = config.FlowPassword, world.Alice, mailbox, "DOCTOR_TEST_PW", protocols
	}
}

// TestFindings reproduces each finding the emulator can produce and checks the doctor names it with
// its code, at the right link, with a fix that names the right command or setting. The one doctor.Run
// cannot reach, MO-GRAPH-SCOPE-MISSING, is TestGraphScopeMissing's.
func TestFindings(t *testing.T) {
	t.Setenv("DOCTOR_TEST_PW", "alice-password")
	scenario := func(name string) func(t *testing.T) *world.World {
		return func(t *testing.T) *world.World {
			w, err := world.LoadScenario(filepath.Join("..", "internal", "emulator", "world", "testdata", name+".toml"))
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
	}
	modified := func(change func(w *world.World)) func(t *testing.T) *world.World {
		return func(*testing.T) *world.World { w := world.Default(); change(w); return w }
	}
	closed := func() string { // a loopback port nothing listens on
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}()
	for _, tc := range []struct {
		name     string
		world    func(t *testing.T) *world.World
		now      func() time.Time
		account  string
		base     string
		change   func(t *testing.T, l *lab, a *config.Account)
		protocol string
		code     string
		step     string // the link that broke
		fix      string // the fix names this
		cause    string // the cause names this
		note     string // a note with this code
		// deadline bounds the run (the doctor's caller's context), for a wait the doctor would
		// otherwise sit out for a minute.
		deadline time.Duration
	}{
		// Configuration.
		{name: "unreadable secret", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.ClientSecretFile = filepath.Join(l.dir, "nope.txt") },
			code: "MO-CFG-SECRET", step: "config", fix: "chmod 600"},
		{name: "unset secret variable", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) {
			a.ClientSecretFile, a.ClientSecretEnv = "", "DOCTOR_TEST_UNSET"
		},
			code: "MO-CFG-SECRET", step: "config", fix: "export DOCTOR_TEST_UNSET"},
		{name: "no specific tenant for client credentials", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.Tenant = "organizations" },
			code: "MO-CFG-MISSING", step: "config", fix: "Directory (tenant) ID"},
		{name: "wrong PFX password", base: "daemon-cert", change: func(t *testing.T, l *lab, a *config.Account) {
			a.CertificatePasswordFile = l.file(t, "wrong-pfx-password.txt", "wrong\n")
		}, code: "MO-CFG-PFX-PASSWORD", step: "config", fix: "certificate_password_file"},
		{name: "certificate is not one", base: "daemon-cert", change: func(t *testing.T, l *lab, a *config.Account) {
			a.Certificate, a.CertificatePasswordFile = l.file(t, "garbage.pfx", "not a certificate"), ""
		}, code: "MO-CFG-CERT", step: "config", fix: "pfx"},
		{name: "expired certificate", base: "daemon-cert", change: func(t *testing.T, l *lab, a *config.Account) {
			a.Certificate, a.CertificatePasswordFile = l.file(t, "expired.pem", expiredPEM(t)), ""
		}, code: "MO-CFG-CERT-EXPIRED", step: "config", fix: "Certificates & secrets > Certificates"},
		// config.Load checks ca_file's form only and the config link reads secrets, not CAs: auth
		// cannot build the account, and its message is the cause.
		{name: "ca_file unreadable", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.CAFile = filepath.Join(l.dir, "no-such-ca.pem") },
			code: "MO-CFG-ACCOUNT", step: "config", cause: "ca_file", fix: "correct the account's configuration"},
		{name: "secret ID instead of its value", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) {
			a.ClientSecretFile = l.file(t, "secret-id.txt", "0d6a3f4e-1b2c-4d5e-8f90-a1b2c3d4e5f6\n")
		}, code: "MO-AADSTS7000215", step: "token", fix: "not the Secret ID", note: "MO-CFG-SECRET-ID"},

		// Identity platform.
		{name: "identity platform unreachable", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.Authority = "https://" + closed },
			code: "MO-IDP-UNREACHABLE", step: "discovery", fix: "authority"},
		{name: "discovery failing", world: modified(func(w *world.World) { w.Faults = []world.Fault{{Endpoint: "discovery", Status: 503}} }), base: "daemon",
			code: "MO-IDP-TRANSIENT", step: "discovery", fix: "try again"},
		{name: "unknown tenant", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.Tenant = "fabrikam.test" },
			code: "MO-AADSTS90002", step: "discovery", fix: "Directory (tenant) ID"},
		{name: "unknown client id", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.ClientID = "11111111-2222-4333-8444-555555555555" },
			code: "MO-AADSTS700016", step: "token", fix: "adminconsent?client_id=11111111-2222-4333-8444-555555555555"},
		{name: "expired client secret", world: scenario("expired-secret"), account: "daemon", protocol: "imap",
			code: "MO-AADSTS7000222", step: "token", fix: "New client secret"},
		{name: "no consent", world: scenario("unconsented"), account: "alice-password", protocol: "imap",
			code: "MO-AADSTS65001", step: "token", fix: "/adminconsent?client_id="},
		{name: "MFA with the password flow", world: scenario("mfa"), account: "carol-password", protocol: "imap",
			code: "MO-AADSTS50076", step: "token", fix: `flow = "device"`},
		{name: "never signed in", base: "alice", protocol: "imap",
			code: "MO-LOGIN-REQUIRED", step: "token", fix: "mailoauth login x"},

		// The token's claims.
		{name: "Graph audience on IMAP", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) {
			a.Scopes = []string{"https://graph.microsoft.com/.default"}
		},
			protocol: "imap", code: "MO-AUD-GRAPH", step: "claims", fix: "https://outlook.office365.com/.default"},
		{name: "unprefixed delegated scope", base: "alice", change: func(t *testing.T, l *lab, a *config.Account) {
			password("", "imap")(a)
			a.Scopes = []string{"Mail.ReadWrite"}
		}, protocol: "imap", code: "MO-AUD-GRAPH", step: "claims", fix: "https://outlook.office.com/IMAP.AccessAsUser.All"},
		// Entra issues a token for whatever resource the scopes name (here Azure Resource Manager).
		{name: "another resource's audience", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) {
			a.Scopes = []string{"https://management.azure.com/.default"}
		},
			protocol: "imap", code: "MO-AUD-OTHER", step: "claims", cause: "https://management.azure.com", fix: `set scopes = ["https://outlook.office365.com/.default"]`},
		{name: "application permission not consented", world: scenario("unconsented"), account: "daemon", protocol: "imap",
			code: "MO-ROLE-MISSING", step: "claims", fix: "Grant admin consent"},
		{name: "delegated scope missing", base: "alice", change: func(t *testing.T, l *lab, a *config.Account) {
			password("", "imap")(a)
			a.Scopes = []string{"https://outlook.office.com/SMTP.Send"}
		}, protocol: "imap", code: "MO-SCOPE-MISSING", step: "claims", fix: "Delegated > IMAP.AccessAsUser.All"},
		{name: "Graph role missing", world: modified(func(w *world.World) { w.Apps[1].Application = world.ExchangeApplication }), base: "daemon",
			protocol: "graph", code: "MO-GRAPH-ROLE-MISSING", step: "claims", fix: "Application permissions > Mail.ReadWrite"},
		{name: "clock two hours ahead", now: func() time.Time { return time.Now().Add(-2 * time.Hour) }, base: "daemon", protocol: "imap",
			code: "MO-CLOCK-SKEW", step: "claims", fix: "timedatectl set-ntp true"},
		{name: "clock two hours behind", now: func() time.Time { return time.Now().Add(2 * time.Hour) }, base: "daemon", protocol: "imap",
			code: "MO-CLOCK-SKEW", step: "discovery", fix: "timedatectl set-ntp true"},

		// Connection.
		{name: "nothing listening", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.IMAP = closed },
			protocol: "imap", code: "MO-NET-CONNECT", step: "connect", fix: "outlook.office365.com:993"},
		{name: "host does not resolve", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.IMAP = "imap.doctor-test.invalid:993" },
			protocol: "imap", code: "MO-NET-RESOLVE", step: "resolve", fix: "DNS"},
		{name: "implicit TLS on a STARTTLS port", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.IMAP = l.e.MailAddrs["imap-starttls"] },
			protocol: "imap", code: "MO-PORT-MISMATCH", step: "tls", fix: "smtp.office365.com:587 with STARTTLS"},
		{name: "SMTP pointed at an IMAP port", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.SMTP = l.e.MailAddrs["imap-starttls"] },
			protocol: "smtp", code: "MO-PORT-MISMATCH", fix: "465 is implicit TLS"},
		// The server waits for a TLS handshake, the client for a greeting: 15 s (the greeting timeout).
		{name: "STARTTLS on an implicit-TLS port", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.SMTP = l.e.MailAddrs["imap"] },
			protocol: "smtp", code: "MO-PORT-MISMATCH", cause: "sent no greeting", fix: "465 is implicit TLS"},
		// A server that accepts the connection and never answers: with implicit TLS the handshake waits
		// for the imap client's own deadline (60 s); the doctor's caller bounds it here instead.
		{name: "server that never answers", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.IMAP = silentServer(t) },
			protocol: "imap", deadline: 8 * time.Second, code: "MO-NET-TIMEOUT", step: "tls", fix: "check a firewall or proxy"},
		// MO-UNEXPLAINED is, by construction, a failure the catalogue knows nothing about, and the
		// emulator answers only what it knows Exchange answers. A tiny IMAP server stands in for a
		// server of another kind: it takes the token and refuses SELECT with Dovecot's internal error.
		{name: "a refusal the catalogue does not know", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) {
			cert, certPEM := selfSigned(t)
			a.IMAP = fakeIMAP(t, cert, "NO [SERVERBUG] Internal error occurred. Refer to server log for more information.")
			a.CAFile = l.file(t, "ca-and-fake.pem", string(l.e.CAPEM())+certPEM)
		}, protocol: "imap", code: "MO-UNEXPLAINED", step: "select INBOX", cause: "Internal error occurred", fix: "the catalogue has no advice"},
		{name: "untrusted certificate", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) {
			srv := httptest.NewTLSServer(nil)
			t.Cleanup(srv.Close)
			a.IMAP = strings.TrimPrefix(srv.URL, "https://")
		}, protocol: "imap", code: "MO-TLS", step: "tls", fix: "ca_file"},
		{name: "mechanism not offered", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.Mechanism = "oauthbearer" },
			protocol: "imap", code: "MO-SASL-NOT-OFFERED", step: "capabilities", fix: "XOAUTH2"},

		// Exchange Online.
		{name: "no service principal (IMAP)", world: scenario("no-service-principal"), account: "daemon", protocol: "imap",
			code: "MO-NO-SERVICE-PRINCIPAL", step: "authenticate", fix: "New-ServicePrincipal -AppId "},
		{name: "no service principal (SMTP, probed over IMAP)", world: scenario("no-service-principal"), account: "daemon", protocol: "smtp",
			code: "MO-NO-SERVICE-PRINCIPAL", fix: "New-ServicePrincipal -AppId "},
		{name: "app without FullAccess (SMTP, probed over IMAP)", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.Mailbox = world.Support },
			protocol: "smtp", code: "MO-APP-NO-FULLACCESS", fix: "Add-MailboxPermission -Identity support@contoso.test -User "},
		{name: "app without FullAccess, nothing to probe with", world: scenario("no-fullaccess"), account: "daemon-bob", protocol: "imap",
			code: "MO-NOT-CONNECTED", step: "mailbox", fix: "Add-MailboxPermission -Identity bob@contoso.test"},
		{name: "IMAP disabled (probed over SMTP)", world: modified(func(w *world.World) { w.Tenants[0].Users[0].Mailbox.IMAPDisabled = true }), base: "daemon",
			protocol: "imap", code: "MO-IMAP-DISABLED", step: "mailbox", fix: "Set-CASMailbox -Identity alice@contoso.test -ImapEnabled $true"},
		{name: "POP disabled (probed over IMAP)", world: modified(func(w *world.World) { w.Tenants[0].Users[0].Mailbox.POPDisabled = true }), base: "daemon",
			protocol: "pop", code: "MO-POP-DISABLED", step: "mailbox", fix: "Set-CASMailbox -Identity alice@contoso.test -PopEnabled $true"},
		{name: "IMAP disabled for a user", world: modified(func(w *world.World) { w.Tenants[0].Users[0].Mailbox.IMAPDisabled = true }), base: "alice",
			change: func(t *testing.T, l *lab, a *config.Account) { password("", "imap")(a) }, protocol: "imap",
			code: "MO-IMAP-DISABLED", step: "mailbox", fix: "-ImapEnabled $true"},
		{name: "SMTP AUTH disabled for the tenant", world: modified(func(w *world.World) { w.Tenants[0].SMTPAuthDisabled = true }), base: "daemon", protocol: "smtp",
			code: "MO-SMTP-AUTH-DISABLED", fix: "SmtpClientAuthenticationDisabled $false"},
		{name: "user without FullAccess", base: "alice", change: func(t *testing.T, l *lab, a *config.Account) { password(world.Bob, "imap")(a) },
			protocol: "imap", code: "MO-USER-NO-FULLACCESS", step: "mailbox", fix: "Add-MailboxPermission -Identity bob@contoso.test -User alice@contoso.test -AccessRights FullAccess",
			note: "MO-NOTE-SHARED-MAILBOX"},
		// Microsoft Graph. The app-only findings come from Graph's answers: the claims are right.
		{name: "Graph of another identity platform", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) {
			// A second emulator: its Graph trusts its own identity platform's signing key only, as
			// another cloud's Graph does (401 InvalidAuthenticationToken, even for a fresh token).
			other := emulatortest.Start(t, emulator.Options{}).E
			a.Graph = other.MailAddrs["graph"]
			a.CAFile = l.file(t, "two-cas.pem", string(l.e.CAPEM())+string(other.CAPEM()))
		}, protocol: "graph", code: "MO-GRAPH-TOKEN", step: "mailbox", fix: "graph, cloud and authority name one cloud"},
		{name: "Graph application access policy", world: scenario("graph-access"), account: "daemon-bob", protocol: "graph",
			code: "MO-GRAPH-ACCESS-POLICY", step: "mailbox", fix: "Test-ApplicationAccessPolicy -Identity bob@contoso.test -AppId "},
		{name: "Graph mailbox not in Exchange Online", world: scenario("graph-access"), account: "daemon-carol", protocol: "graph",
			code: "MO-GRAPH-NOT-EXCHANGE-ONLINE", step: "mailbox", fix: "Get-Mailbox -Identity carol@contoso.test"},
		{name: "Graph does not know the mailbox", base: "daemon", change: func(t *testing.T, l *lab, a *config.Account) { a.Mailbox = "nobody@contoso.test" },
			protocol: "graph", code: "MO-GRAPH-NOT-FOUND", step: "mailbox", cause: "nobody@contoso.test", fix: "mailbox (or email)"},
		// The Graph client retries 429 (and 5xx) honouring Retry-After, 1 s here, five tries: ~4 s. A 5xx
		// is MO-GRAPH-REFUSED with "try again later" (catalog's TestGraphAnswers; not here, for time).
		// Graph takes longer than the doctor's caller waits: Graph's timeout, not the identity platform's.
		{name: "Graph does not answer in time", world: modified(func(w *world.World) {
			w.Faults = []world.Fault{{Endpoint: "graph", Latency: 30 * time.Second}}
		}), base: "daemon", protocol: "graph", deadline: 8 * time.Second, code: "MO-NET-TIMEOUT", step: "list folders", cause: "did not answer in time", fix: "check a firewall or proxy"},
		{name: "Graph throttling", world: modified(func(w *world.World) { w.Faults = []world.Fault{{Endpoint: "graph", Status: 429}} }), base: "daemon",
			protocol: "graph", code: "MO-GRAPH-THROTTLED", step: "mailbox", cause: "TooManyRequests", fix: "retry less often"},
		{name: "Graph refusing otherwise", world: modified(func(w *world.World) { w.Faults = []world.Fault{{Endpoint: "graph", Status: 400}} }), base: "daemon",
			protocol: "graph", code: "MO-GRAPH-REFUSED", step: "mailbox", cause: "400", fix: "Graph's error code"},
		{name: "Graph denies the user another mailbox", base: "alice", change: func(t *testing.T, l *lab, a *config.Account) { password(world.Bob, "graph")(a) },
			protocol: "graph", code: "MO-GRAPH-DENIED", fix: "Mail.ReadWrite.Shared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w *world.World
			if tc.world != nil {
				w = tc.world(t)
			}
			l := start(t, w, tc.now)
			account := tc.account
			if tc.base != "" {
				account = "x"
				l.account("x", tc.base, func(a *config.Account) {
					if tc.change != nil {
						tc.change(t, l, a)
					}
				})
			}
			var protocols []string
			if tc.protocol != "" {
				protocols = []string{tc.protocol}
			}
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			rep := l.runCtx(t, ctx, account, protocols...)
			fs := rep.Findings()
			if rep.OK || len(fs) != 1 {
				t.Fatalf("want one finding %s; report %+v", tc.code, rep)
			}
			f := fs[0]
			if f.Code != tc.code || !strings.Contains(f.Fix, tc.fix) || f.Cause == "" {
				t.Fatalf("finding %+v\nwant code %s with a fix naming %q", f, tc.code, tc.fix)
			}
			if tc.step != "" && f.Step != tc.step {
				t.Errorf("finding at link %q, want %q", f.Step, tc.step)
			}
			if !strings.Contains(f.Cause, tc.cause) {
				t.Errorf("cause %q does not name %q", f.Cause, tc.cause)
			}
			if tc.note != "" && !hasNote(rep, tc.note) {
				t.Errorf("no note %s in %+v", tc.note, rep)
			}
			if strings.Contains(f.String(), "\n") || !strings.HasPrefix(f.String(), f.Cause) {
				t.Errorf("String() %q is not one line \"cause: fix\"", f.String())
			}
		})
	}
}

// silentServer is a loopback address that accepts connections and never says a word.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

// selfSigned is a certificate for 127.0.0.1 that is its own CA, and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "doctor test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// fakeIMAP is an IMAP server (implicit TLS with cert) that offers XOAUTH2, accepts any
// AUTHENTICATE, and answers SELECT with selectReply.
func fakeIMAP(t *testing.T, cert tls.Certificate, selectReply string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serve := func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReader(c)
		say := func(lines ...string) { fmt.Fprint(c, strings.Join(lines, "\r\n")+"\r\n") }
		say("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] test server ready")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			tag := f[0]
			switch strings.ToUpper(f[1]) {
			case "CAPABILITY":
				say("* CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR", tag+" OK CAPABILITY completed.")
			case "AUTHENTICATE":
				if len(f) < 4 { // no initial response: ask for it
					say("+ ")
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
				}
				say(tag + " OK AUTHENTICATE completed.")
			case "SELECT", "EXAMINE":
				say(tag + " " + selectReply)
			case "LOGOUT":
				say("* BYE", tag+" OK LOGOUT completed.")
				return
			default:
				say(tag + " OK")
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

func hasNote(rep doctor.Report, code string) bool {
	notes := rep.Notes
	for _, p := range rep.Protocols {
		notes = append(notes, p.Notes...)
	}
	for _, n := range notes {
		if n.Code == code {
			return true
		}
	}
	return false
}

// expiredPEM is a self-signed RSA certificate that expired yesterday, with its key.
func expiredPEM(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "daemon"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}))
}

// TestGraphScopeMissing: MO-GRAPH-SCOPE-MISSING cannot come out of doctor.Run against the emulator,
// nor, as far as we know, against Entra: mailoauth always asks Graph for Mail.ReadWrite and Mail.Send,
// and the identity platform grants them or refuses with AADSTS65001, which the token link reports.
// This is as close as it gets: a real delegated Graph token without a mail scope (User.Read, asked for
// through the account's scopes), the claims link's judgement of it, and the emulator's Graph refusing
// it (403 ErrorAccessDenied) explained as check and the mail commands explain it.
func TestGraphScopeMissing(t *testing.T) {
	t.Setenv("DOCTOR_TEST_PW", "alice-password")
	l := start(t, nil, nil)
	l.account("x", "alice", func(a *config.Account) {
		password("", "graph")(a)
		a.Scopes = []string{"https://graph.microsoft.com/User.Read"}
	})
	a, err := auth.New(l.cfg, auth.Options{}).Account("x")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := a.Token(ctx, token.Exchange) // the resource the account's scopes name: Graph
	if err != nil {
		t.Fatal(err)
	}
	claims, err := catalog.ParseClaims(tok.AccessToken)
	if err != nil || claims.AppOnly || !claims.HasScope("User.Read") || claims.HasScope("Mail.ReadWrite") {
		t.Fatalf("want a delegated Graph token with scp User.Read alone: %+v %v", claims, err)
	}
	s := catalog.For(a)
	const fix = "Microsoft Graph > Delegated > Mail.ReadWrite"
	f, _ := catalog.CheckClaims(s, "graph", claims, "")
	if f == nil || f.Code != "MO-GRAPH-SCOPE-MISSING" || f.Step != "claims" || !strings.Contains(f.Fix, fix) || !strings.Contains(f.Cause, "User.Read") {
		t.Errorf("the claims link: %+v", f)
	}
	gc := graph.New(graph.Options{BaseURL: a.Server("graph"), Tokens: token.Static(tok), HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: a.TLSConfig()}}})
	_, err = gc.Folders(ctx)
	var ge *graph.Error
	if !errors.As(err, &ge) || ge.Status != 403 || ge.Code != "ErrorAccessDenied" {
		t.Fatalf("Graph's answer: %v", err)
	}
	g, ok := catalog.Explain(s, catalog.Failure{Protocol: "graph", Addr: a.Server("graph"), Claims: claims, Err: err})
	if !ok || g.Code != "MO-GRAPH-SCOPE-MISSING" || g.Step != "mailbox" || !strings.Contains(g.Fix, fix) {
		t.Errorf("Graph's refusal explained: %+v", g)
	}
}

// TestHealthy: every default account that needs no browser walks every link.
func TestHealthy(t *testing.T) {
	l := start(t, nil, nil)
	for _, account := range []string{"daemon", "daemon-cert", "daemon-bob"} {
		rep := l.run(t, account, check.Protocols()...)
		if !rep.OK || len(rep.Findings()) != 0 || len(rep.Protocols) != 4 {
			t.Fatalf("%s: %+v", account, rep)
		}
		if rep.Steps[0].Name != "config" || rep.Steps[1].Name != "store" || rep.Steps[2].Name != "discovery" || !strings.Contains(rep.Steps[2].Detail, world.Default().Tenants[0].ID) {
			t.Errorf("%s: shared links %+v", account, rep.Steps)
		}
	}
}

// TestExplainRefusal is the proxy's way in: the server's words and the token that was sent, over
// real connections to the emulator's Exchange.
func TestExplainRefusal(t *testing.T) {
	l := start(t, nil, nil)
	m := auth.New(l.cfg, auth.Options{})
	a, err := m.Account("daemon")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	graphTok, err := a.Token(ctx, token.Graph)
	if err != nil {
		t.Fatal(err)
	}
	// A Graph token presented to IMAP.
	o := imap.ForAccount(a)
	o.Tokens = token.Static(graphTok)
	_, err = imap.Dial(ctx, o)
	var ie *mailerr.Error
	if !errors.As(err, &ie) || ie.Server == "" {
		t.Fatalf("a Graph token on IMAP: %v", err)
	}
	f := doctor.ExplainRefusal(a, "imap", ie.Server, graphTok.AccessToken)
	if f.Code != "MO-AUD-GRAPH" || strings.Contains(f.String(), graphTok.AccessToken) || strings.Contains(f.String(), "eyJ") {
		t.Errorf("Graph token on IMAP: %s %s", f.Code, f)
	}
	// A password (basic authentication): Exchange's LOGIN refusal.
	conn, err := tls.Dial("tcp", l.e.MailAddrs["imap"], &tls.Config{RootCAs: l.e.CAPool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	_, _ = r.ReadString('\n')
	fmt.Fprintf(conn, "a1 LOGIN alice@contoso.test alice-password\r\n")
	line, _ := r.ReadString('\n')
	said := strings.TrimSpace(strings.TrimPrefix(line, "a1 "))
	exTok, _ := a.Token(ctx, token.Exchange)
	if f := doctor.ExplainRefusal(a, "imap", said, exTok.AccessToken); f.Code != "MO-BASIC-AUTH" || !strings.Contains(f.Fix, "mailoauth token daemon") {
		t.Errorf("LOGIN answered %q: %+v", said, f)
	}
	// POP3's refusal of an opaque token (a personal account's).
	if f := doctor.ExplainRefusal(a, "pop", "-ERR Authentication failure: unknown user name or bad password.", "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA"); f.Code != "MO-REFUSED-OPAQUE" {
		t.Errorf("opaque token: %+v", f)
	}
	if f, ok := doctor.SharedMailboxSyntax(`alice@contoso.test\support`); !ok || !strings.Contains(f.Fix, "support@contoso.test") {
		t.Errorf("shared syntax: %+v", f)
	}
}

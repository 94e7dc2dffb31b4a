//go:build unix

package interop

// The harness: one emulator, one Dovecot and one Postfix per test run (TestMain), in a temp dir with
// free loopback ports, stopped and removed at the end whatever happened. See README.md.

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/identity"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/testpki"
)

const (
	// requireEnv makes a server that cannot start a test failure instead of a skip (scripts/test sets it).
	requireEnv = "MAILOAUTH_REQUIRE_INTEROP"
	// userEnv names the unprivileged user Dovecot runs as when the tests run as root.
	userEnv = "MAILOAUTH_INTEROP_USER"
	// keepEnv keeps the temp dir (configs, logs, mail) for a look after the run.
	keepEnv = "MAILOAUTH_INTEROP_KEEP"

	// watchdogEnv runs this test binary as the watchdog of another one (see startWatchdog).
	watchdogEnv = "MAILOAUTH_INTEROP_WATCHDOG"

	defaultUser = "mailoauth-test"

	howTo = "the interop tests need Dovecot (dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd) and, " +
		"for SMTP, Postfix run as root: `./scripts/test` installs them and runs everything, or as root " +
		"`apt-get install --no-install-recommends dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix` " +
		"then `go test ./interop/` (see interop/README.md)"
)

//go:embed testdata/*.tmpl
var templates embed.FS

// lab is what TestMain set up.
type lab struct {
	dir     string // temp root (0755): dovecot/ belongs to the Dovecot user, postfix/ to root
	user    string // Dovecot's user and group
	group   string
	ports   ports
	emu     *emulator.Emulator
	clock   atomic.Int64 // offset of the emulator's clock, ns
	caPool  *x509.CertPool
	guard   *watchdog
	tok     tokens
	dovecot *proc
	postfix *proc
}

type ports struct{ IMAP, IMAPS, POP3S, LMTP, Auth, Submission int }

// tokens are what the tests present.
type tokens struct {
	good    string // alice, delegated, Exchange (IMAP, POP, SMTP scopes)
	expired string // the same, issued by the emulator two hours ago
	forged  string // good's header and payload, signed by another RSA key (same kid)
	graph   string // alice, delegated, aud Microsoft Graph: the classic wrong-audience mistake
	app     string // the daemon app, app-only, aud https://outlook.office365.com, no upn
}

var (
	theLab     *lab
	labErr     error // Dovecot (and so everything) unavailable
	postfixErr error // Postfix unavailable (Dovecot may still run)
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(watchdogEnv); dir != "" {
		os.Exit(runWatchdog(dir))
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	required := os.Getenv(requireEnv) != ""
	l, err := setUp()
	if l != nil {
		defer l.tearDown()
	}
	labErr = err
	what, problem := "servers", err
	if problem == nil && postfixErr != nil {
		what, problem = "Postfix", postfixErr
	}
	if problem != nil {
		fmt.Fprintf(os.Stderr, "interop: %s unavailable: %v\n", what, problem)
		if required || !(errors.Is(problem, errMissing) || errors.Is(problem, errNeedRoot)) {
			l.printLogs(os.Stderr)
			if required {
				fmt.Fprintf(os.Stderr, "interop: %s is set: failing\n", requireEnv)
			}
			return 1
		}
		fmt.Fprintf(os.Stderr, "interop: skipping what needs them; %s\n", howTo)
	}
	theLab = l
	code := m.Run()
	if code != 0 && labErr == nil {
		l.printLogs(os.Stderr)
	}
	return code
}

// need returns the lab, or skips (fails under MAILOAUTH_REQUIRE_INTEROP) when the servers are missing.
func need(t *testing.T, withPostfix bool) *lab {
	t.Helper()
	err := labErr
	if err == nil && withPostfix {
		err = postfixErr
	}
	if err != nil {
		if os.Getenv(requireEnv) != "" {
			t.Fatalf("interop servers unavailable (%s is set): %v", requireEnv, err)
		}
		t.Skipf("interop servers unavailable: %v (see interop/README.md)", err)
	}
	return theLab
}

// errMissing and errNeedRoot mark what a developer's machine may lack: outside scripts/test the tests
// that need it skip. Any other trouble starting the servers is a failure.
var (
	errMissing  = errors.New("not installed")
	errNeedRoot = errors.New("needs root")
)

func setUp() (*lab, error) {
	dovecotBin, err := findDovecot()
	if err != nil {
		return nil, err
	}
	l := &lab{}
	if l.user, l.group, err = dovecotUser(); err != nil {
		return nil, err
	}
	if l.dir, err = makeRoot(); err != nil {
		return nil, err
	}
	if l.guard, err = startWatchdog(l.dir); err != nil {
		return l, err
	}
	if err := l.startEmulator(); err != nil {
		return l, err
	}
	if err := l.mintTokens(); err != nil {
		return l, err
	}
	certPEM, keyPEM, pool, err := testpki.New()
	if err != nil {
		return l, err
	}
	l.caPool = pool
	if err := l.pickPorts(); err != nil {
		return l, err
	}
	if err := l.writeDovecot(certPEM, keyPEM); err != nil {
		return l, err
	}
	if err := l.startDovecot(dovecotBin); err != nil {
		return l, err
	}
	postfixErr = l.setUpPostfix(certPEM, keyPEM)
	return l, nil
}

func findDovecot() (string, error) {
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = "/usr/sbin/dovecot"
	}
	var missing []string
	for pkg, path := range map[string]string{
		"dovecot-core": bin, "dovecot-imapd": "/usr/lib/dovecot/imap",
		"dovecot-pop3d": "/usr/lib/dovecot/pop3", "dovecot-lmtpd": "/usr/lib/dovecot/lmtp",
	} {
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("Dovecot %w (missing %s)", errMissing, strings.Join(missing, " "))
	}
	return bin, nil
}

// dovecotUser is who Dovecot runs as: the current user, or, as root, an unprivileged one
// (MAILOAUTH_INTEROP_USER, else mailoauth-test, which scripts/test creates, else nobody).
func dovecotUser() (name, group string, err error) {
	var u *user.User
	if os.Geteuid() != 0 {
		u, err = user.Current()
	} else {
		names := []string{defaultUser, "nobody"}
		if v := os.Getenv(userEnv); v != "" {
			names = []string{v}
		}
		for _, n := range names {
			if u, err = user.Lookup(n); err == nil {
				break
			}
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("a user for Dovecot: %w", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return "", "", fmt.Errorf("group of %s: %w", u.Username, err)
	}
	return u.Username, g.Name, nil
}

// makeRoot makes the temp root, 0755 so that Dovecot's user and Postfix's reach their parts.
func makeRoot() (string, error) {
	base := os.TempDir()
	if os.Geteuid() == 0 && !traversable(base) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "mailoauth-interop-")
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// traversable says whether every directory down to dir lets others through.
func traversable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

func (l *lab) dovecotDir(p ...string) string {
	return filepath.Join(append([]string{l.dir, "dovecot"}, p...)...)
}
func (l *lab) postfixDir(p ...string) string {
	return filepath.Join(append([]string{l.dir, "postfix"}, p...)...)
}

func (l *lab) startEmulator() error {
	e, err := emulator.Start(context.Background(), emulator.Options{
		World:       world.Default(),
		AutoApprove: world.Alice,
		Now:         func() time.Time { return time.Now().Add(time.Duration(l.clock.Load())) },
	})
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	l.emu = e
	return nil
}

// mintTokens gets every token the tests use, once, before any test runs (the clock moves here only).
func (l *lab) mintTokens() error {
	exchange := world.ExchangeResource
	var err error
	delegated := strings.Join([]string{exchange + "/IMAP.AccessAsUser.All", exchange + "/POP.AccessAsUser.All", exchange + "/SMTP.Send"}, " ")
	if l.tok.good, err = l.passwordToken(delegated); err != nil {
		return err
	}
	l.clock.Store(int64(-2 * time.Hour)) // issued two hours ago: a 1-hour token expired an hour ago
	l.tok.expired, err = l.passwordToken(delegated)
	l.clock.Store(0)
	if err != nil {
		return err
	}
	if l.tok.graph, err = l.passwordToken(world.GraphResource + "/User.Read"); err != nil {
		return err
	}
	if l.tok.forged, err = forge(l.tok.good); err != nil {
		return err
	}
	daemon := l.emu.Credentials["daemon"]
	if daemon == nil {
		return errors.New("emulator: no credentials for the daemon app")
	}
	l.tok.app, err = l.token(url.Values{
		"grant_type": {"client_credentials"}, "client_id": {world.DaemonClientID},
		"client_secret": {daemon.Secret}, "scope": {world.ExchangeResourceAlias + "/.default"},
	})
	return err
}

func (l *lab) passwordToken(scope string) (string, error) {
	return l.token(url.Values{
		"grant_type": {"password"}, "client_id": {world.DesktopClientID},
		"username": {world.Alice}, "password": {"alice-password"}, "scope": {scope},
	})
}

func (l *lab) token(form url.Values) (string, error) {
	resp, err := l.emu.HTTPClient().PostForm(l.emu.TenantAuthority(world.DefaultTenantName)+"/oauth2/v2.0/token", form)
	if err != nil {
		return "", fmt.Errorf("emulator token endpoint: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("emulator token endpoint (%s): HTTP %d %s %s %v", form.Get("grant_type"), resp.StatusCode, body.Error, body.Description, err)
	}
	return body.AccessToken, nil
}

// forge re-signs a token's header and payload with a fresh RSA key: same kid, same claims, wrong key.
func forge(tok string) (string, error) {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return "", errors.New("forge: not a JWT")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(tok[:i]))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig), nil
}

// tlsConfig trusts only this run's CA.
func (l *lab) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: l.caPool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// pickPorts takes free loopback ports, holding them all until every one is chosen.
func (l *lab) pickPorts() error {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, p := range []*int{&l.ports.IMAP, &l.ports.IMAPS, &l.ports.POP3S, &l.ports.LMTP, &l.ports.Auth, &l.ports.Submission} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		*p = ln.Addr().(*net.TCPAddr).Port
	}
	return nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

type appPassdb struct {
	Name, ClientID, Audience, Mailboxes string
}

// writeDovecot writes Dovecot's config, the emulator's key and the TLS files, all owned by Dovecot's user.
func (l *lab) writeDovecot(certPEM, keyPEM []byte) error {
	w := l.emu.World()
	tenant := w.Tenant(world.DefaultTenantName)
	var apps []appPassdb
	for _, sp := range tenant.ServicePrincipals {
		app := w.App(sp.App)
		if app == nil || len(sp.FullAccess) == 0 {
			continue
		}
		apps = append(apps, appPassdb{Name: app.Name, ClientID: app.ClientID, Audience: world.ExchangeResourceAlias,
			Mailboxes: strings.ToLower(strings.Join(sp.FullAccess, " "))})
	}
	data := map[string]any{
		"Dir": l.dovecotDir(), "User": l.user, "Group": l.group, "Ports": l.ports, "Apps": apps,
		"Instance": filepath.Base(l.dir), "Issuer": identity.Issuer(tenant.ID), "Audience": world.ExchangeResource,
	}
	for _, d := range []string{"run", "state", "mail", "ssl", "keys/default/RS256"} {
		if err := os.MkdirAll(l.dovecotDir(d), 0o755); err != nil {
			return err
		}
	}
	if err := render("dovecot.conf.tmpl", l.dovecotDir("dovecot.conf"), data); err != nil {
		return err
	}
	if err := render("oauth2-user.conf.ext.tmpl", l.dovecotDir("oauth2-user.conf.ext"), data); err != nil {
		return err
	}
	for _, a := range apps {
		data["App"] = a
		if err := render("oauth2-app.conf.ext.tmpl", l.dovecotDir("oauth2-app-"+a.Name+".conf.ext"), data); err != nil {
			return err
		}
	}
	// The emulator's signing key, where Dovecot's local validation looks: keys/<azp|default>/RS256/<kid>,
	// kid escaped as Dovecot does ('%' -> %25, '/' -> %2f; Entra-style kids are base64url and need neither).
	spki, err := x509.MarshalPKIXPublicKey(l.emu.Identity.PublicKey())
	if err != nil {
		return err
	}
	kid := strings.NewReplacer("%", "%25", "/", "%2f").Replace(l.emu.Identity.KeyID())
	files := map[string][]byte{
		"keys/default/RS256/" + kid: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}),
		"ssl/cert.pem":              certPEM,
		"ssl/key.pem":               keyPEM,
	}
	for name, b := range files {
		if err := os.WriteFile(l.dovecotDir(name), b, 0o600); err != nil {
			return err
		}
	}
	return chownTree(l.dovecotDir(), l.user)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func render(tmpl, dst string, data any) error {
	t, err := template.New(tmpl).Option("missingkey=error").ParseFS(templates, "testdata/"+tmpl)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("%s: %w", tmpl, err)
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}

// chownTree gives a tree to a user (as root; a no-op otherwise: the files are already the caller's).
func chownTree(root, name string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func (l *lab) startDovecot(bin string) error {
	cmd := exec.Command(bin, "-F", "-c", l.dovecotDir("dovecot.conf"))
	if os.Geteuid() == 0 {
		// What `runuser -u USER -- dovecot ...` does, without PAM: Dovecot runs unprivileged.
		u, err := user.Lookup(l.user)
		if err != nil {
			return err
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	}
	p, err := startProc("dovecot", cmd, filepath.Join(l.dir, "dovecot.out"))
	if err != nil {
		return err
	}
	l.dovecot = p
	l.guard.watch(p)
	return p.waitListening(10*time.Second, l.ports.IMAP, l.ports.IMAPS, l.ports.POP3S, l.ports.LMTP, l.ports.Auth)
}

// setUpPostfix writes Postfix's config and starts its master in the foreground. It needs root.
func (l *lab) setUpPostfix(certPEM, keyPEM []byte) error {
	postfix, err := exec.LookPath("postfix")
	if err != nil {
		postfix = "/usr/sbin/postfix"
	}
	if _, err := os.Stat(postfix); err != nil {
		return fmt.Errorf("Postfix %w", errMissing)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("Postfix %w: its master runs only as root (scripts/test runs the tests as root in CI)", errNeedRoot)
	}
	daemonDir := "/usr/lib/postfix/sbin"
	if out, err := exec.Command("postconf", "-d", "-h", "daemon_directory").Output(); err == nil {
		daemonDir = strings.TrimSpace(string(out))
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		return fmt.Errorf("Postfix's mail_owner: %w", err)
	}
	// The queue and data directories lie outside config_directory, whose files `postfix check` wants
	// all owned by root.
	for _, d := range []string{"etc/tls", "spool", "data"} {
		if err := os.MkdirAll(l.postfixDir(d), 0o755); err != nil {
			return err
		}
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)
	if err := os.Chown(l.postfixDir("data"), uid, gid); err != nil {
		return err
	}
	data := map[string]any{"Dir": l.postfixDir(), "Etc": l.postfixDir("etc"), "Ports": l.ports, "Domain": world.DefaultDomain}
	if err := render("postfix-main.cf.tmpl", l.postfixDir("etc/main.cf"), data); err != nil {
		return err
	}
	if err := render("postfix-master.cf.tmpl", l.postfixDir("etc/master.cf"), data); err != nil {
		return err
	}
	if err := os.WriteFile(l.postfixDir("etc/tls/cert.pem"), certPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(l.postfixDir("etc/tls/key.pem"), keyPEM, 0o600); err != nil {
		return err
	}
	// Postfix waits until a configuration file is over a second old before it trusts it (300 ms steps):
	// date the fresh ones back.
	past := time.Now().Add(-time.Minute)
	for _, f := range []string{"etc/main.cf", "etc/master.cf"} {
		if err := os.Chtimes(l.postfixDir(f), past, past); err != nil {
			return err
		}
	}
	// `postfix check` creates the queue directories with their owners and modes.
	if out, err := exec.Command(postfix, "-c", l.postfixDir("etc"), "check").CombinedOutput(); err != nil {
		return fmt.Errorf("postfix check: %v: %s", err, out)
	}
	// The master in the foreground (-d), so that it is our child and dies with us.
	cmd := exec.Command(filepath.Join(daemonDir, "master"), "-c", l.postfixDir("etc"), "-d")
	p, err := startProc("postfix", cmd, filepath.Join(l.dir, "postfix.out"))
	if err != nil {
		return err
	}
	l.postfix = p
	l.guard.watch(p)
	return p.waitSMTPBanner(15*time.Second, l.ports.Submission)
}

// proc is a server we started and must stop.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *os.File
	done chan struct{}
	err  error
}

func startProc(name string, cmd *exec.Cmd, outPath string) (*proc, error) {
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Its own process group, stopped as a whole. (Pdeathsig would not do for "if this test binary
	// dies": both masters change credentials at start, which clears it; the watchdog does that job.)
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.name, p.err)
	default:
		return nil
	}
}

func (p *proc) waitListening(timeout time.Duration, ports ...int) error {
	deadline := time.Now().Add(timeout)
	for _, port := range ports {
		for {
			c, err := net.DialTimeout("tcp", addr(port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if err := p.exited(); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: nothing listens on %s after %v", p.name, addr(port), timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func (p *proc) waitSMTPBanner(timeout time.Duration, port int) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := p.exited(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr(port), time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220 ") {
				return nil
			}
			err = fmt.Errorf("banner %q: %v", line, rerr)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: no SMTP banner on %s after %v: %v", p.name, addr(port), timeout, last)
}

// stop ends the server: SIGTERM to its master, then SIGKILL to its process group if it lingers.
func (p *proc) stop() {
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived their master (none expected) go with the group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	p.out.Close()
}

func (l *lab) tearDown() {
	// Both at once: each takes up to a second to wind down.
	done := make(chan struct{})
	go func() {
		l.postfix.stop()
		close(done)
	}()
	l.dovecot.stop()
	<-done
	l.guard.release()
	if l.emu != nil {
		l.emu.Close()
	}
	if os.Getenv(keepEnv) != "" {
		fmt.Fprintf(os.Stderr, "interop: kept %s (%s)\n", l.dir, keepEnv)
		return
	}
	if l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			fmt.Fprintf(os.Stderr, "interop: removing %s: %v\n", l.dir, err)
		}
	}
}

// printLogs shows the servers' logs (they hold no tokens: auth_debug is off).
func (l *lab) printLogs(w io.Writer) {
	if l == nil || l.dir == "" {
		return
	}
	for _, f := range []string{"dovecot.out", "dovecot/dovecot.log", "postfix.out", "postfix/maillog"} {
		b, err := os.ReadFile(filepath.Join(l.dir, f))
		if err != nil || len(b) == 0 {
			continue
		}
		if len(b) > 64<<10 {
			b = append([]byte("...\n"), b[len(b)-64<<10:]...)
		}
		fmt.Fprintf(w, "----- %s -----\n%s\n", f, b)
	}
}

// dovecotLog is Dovecot's log so far.
func (l *lab) dovecotLog() string {
	b, _ := os.ReadFile(l.dovecotDir("dovecot.log"))
	return string(b)
}

// watchdog is this test binary run again as a child in its own process group, reading the process
// groups of the servers on a pipe. If the pipe closes without "done" — this binary was killed, timed
// out, panicked or got Ctrl-C — it stops the servers and removes the temp dir, which TestMain's own
// teardown can no longer do.
type watchdog struct {
	cmd *exec.Cmd
	w   io.WriteCloser
}

func startWatchdog(dir string) (*watchdog, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), watchdogEnv+"="+dir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // out of reach of a Ctrl-C to the test
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, w: w}, nil
}

func (g *watchdog) watch(p *proc) {
	if g != nil {
		fmt.Fprintf(g.w, "%d\n", p.cmd.Process.Pid)
	}
}

// release ends the watchdog once the servers are stopped by TestMain.
func (g *watchdog) release() {
	if g == nil {
		return
	}
	fmt.Fprintln(g.w, "done")
	g.w.Close()
	_ = g.cmd.Wait()
}

func runWatchdog(dir string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGQUIT)
	var groups []int
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "done" {
			return 0
		}
		if g, err := strconv.Atoi(sc.Text()); err == nil && g > 1 {
			groups = append(groups, g)
		}
	}
	for _, g := range groups {
		_ = syscall.Kill(-g, syscall.SIGTERM)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		alive := false
		for _, g := range groups {
			alive = alive || syscall.Kill(-g, 0) == nil
		}
		if !alive {
			break
		}
	}
	for _, g := range groups {
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
	if os.Getenv(keepEnv) == "" {
		_ = os.RemoveAll(dir)
	}
	fmt.Fprintf(os.Stderr, "interop watchdog: the test binary ended without its teardown; stopped its servers and removed %s\n", dir)
	return 0
}

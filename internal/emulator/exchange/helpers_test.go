package exchange_test

// Helpers of the mail servers' tests: emulators (a shared one over a world with every condition, and
// dedicated ones with a clock), tokens from the emulator's own token endpoint, forged tokens, and a
// raw line client over TLS that trusts only the emulator's CA.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/sasl"
)

// ---- the world -----------------------------------------------------------------------------------

// Addresses of richWorld beyond the default world's alice, bob and support@.
const (
	carol = "carol@contoso.test" // IMAP and POP disabled
	dave  = "dave@contoso.test"  // SMTP AUTH disabled on the mailbox
	sales = "sales@contoso.test" // shared, FullAccess bob, no SendAs
	frank = "frank@fabrikam.test"
	grace = "grace@fabrikam.test" // SMTP AUTH re-enabled in a tenant that disables it
)

// richWorld is the default world plus every Exchange-side condition: carol's mailbox has IMAP and
// POP disabled; dave's has SMTP AUTH disabled; support@ gives alice FullAccess and SendAs, sales@
// gives bob FullAccess only; the daemon's service principal has FullAccess on alice and bob (not
// carol); app "nosp" has Exchange roles and no service principal; app "graphonly" has only Graph
// roles; tenant fabrikam disables SMTP AUTH, with grace's mailbox re-enabling it, and the
// multi-tenant public app "partner" serves its users.
func richWorld() *world.World {
	w := world.Default()
	t := w.Tenants[0]
	t.Users = append(t.Users,
		&world.User{UPN: carol, Password: "carol-password", Mailbox: world.MailboxSettings{IMAPDisabled: true, POPDisabled: true}},
		&world.User{UPN: dave, Password: "dave-password", Mailbox: world.MailboxSettings{SMTPAuth: "disabled"}},
	)
	t.SharedMailboxes[0].SendAs = []string{world.Alice}
	t.SharedMailboxes = append(t.SharedMailboxes, &world.SharedMailbox{Address: sales, FullAccess: []string{world.Bob}})
	t.ServicePrincipals = append(t.ServicePrincipals, &world.ServicePrincipal{App: "graphonly", FullAccess: []string{world.Alice}})
	w.Tenants = append(w.Tenants, &world.Tenant{
		Name: "fabrikam", Domains: []string{"fabrikam.test"}, SMTPAuthDisabled: true,
		Users: []*world.User{
			{UPN: frank, Password: "frank-password"},
			{UPN: grace, Password: "grace-password", Mailbox: world.MailboxSettings{SMTPAuth: "enabled"}},
		},
	})
	w.Apps = append(w.Apps,
		&world.App{Name: "nosp", Tenant: "contoso", Application: world.ExchangeApplication, AdminConsented: true},
		&world.App{Name: "graphonly", Tenant: "contoso", Application: world.GraphMailApplication, AdminConsented: true},
		&world.App{Name: "partner", Tenant: "contoso", Public: true, MultiTenant: true, RedirectURIs: []string{"http://localhost"},
			Delegated: world.ExchangeDelegated, Consented: true},
	)
	return w
}

var passwords = map[string]string{
	world.Alice: "alice-password", world.Bob: "bob-password", carol: "carol-password", dave: "dave-password",
	frank: "frank-password", grace: "grace-password",
}

// ---- emulators -----------------------------------------------------------------------------------

// env is a running emulator with a client that trusts only its CA.
type env struct {
	E     *emulator.Emulator
	HTTP  *http.Client
	TLS   *tls.Config
	Clock *clock
	Logs  *syncBuffer
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer collects the emulator's logs for the tests that look into them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func newEnv(w *world.World, c *clock) (*env, error) {
	logs := &syncBuffer{}
	opts := emulator.Options{World: w, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if c != nil {
		opts.Now = c.Now
	}
	e, err := emulator.Start(context.Background(), opts)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.CAPEM()) {
		return nil, fmt.Errorf("CAPEM holds no certificate")
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	return &env{E: e, HTTP: hc, TLS: tc, Clock: c, Logs: logs}, nil
}

var (
	sharedOnce sync.Once
	sharedEnv  *env
	sharedErr  error
)

// shared is an emulator over richWorld on real time; tests must not change its World.
func shared(t testing.TB) *env {
	t.Helper()
	sharedOnce.Do(func() { sharedEnv, sharedErr = newEnv(richWorld(), nil) })
	if sharedErr != nil {
		t.Fatalf("emulator.Start: %v", sharedErr)
	}
	return sharedEnv
}

// dedicated starts an emulator for one test, with a clock.
func dedicated(t testing.TB, w *world.World) *env {
	t.Helper()
	if w == nil {
		w = richWorld()
	}
	v, err := newEnv(w, &clock{now: time.Now()})
	if err != nil {
		t.Fatalf("emulator.Start: %v", err)
	}
	t.Cleanup(func() { v.E.Close() })
	return v
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEnv != nil {
		sharedEnv.E.Close()
	}
	os.Exit(code)
}

// ---- tokens --------------------------------------------------------------------------------------

// Scopes.
const (
	exoAll  = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/POP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
	exoSMTP = "https://outlook.office.com/SMTP.Send"
	exoApp  = "https://outlook.office365.com/.default"
	graph   = "https://graph.microsoft.com/Mail.ReadWrite"
)

func (v *env) tokenRequest(t testing.TB, tenant string, form url.Values) string {
	t.Helper()
	resp, err := v.HTTP.PostForm(v.E.Authority()+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.AccessToken == "" {
		t.Fatalf("token request: %d %s", resp.StatusCode, out.Error)
	}
	return out.AccessToken
}

// userToken is a delegated token from the password grant (app "desktop", or "partner" for fabrikam).
func (v *env) userToken(t testing.TB, upn, scope string) string {
	t.Helper()
	app, tenant := "desktop", "contoso.test"
	if strings.HasSuffix(upn, "@fabrikam.test") {
		app, tenant = "partner", "fabrikam.test"
	}
	return v.tokenRequest(t, tenant, url.Values{
		"grant_type": {"password"}, "client_id": {v.E.World().App(app).ClientID},
		"username": {upn}, "password": {passwords[upn]}, "scope": {scope},
	})
}

// appToken is an app-only token from the client-credentials grant with the app's generated secret.
func (v *env) appToken(t testing.TB, app, scope string) string {
	t.Helper()
	return v.tokenRequest(t, "contoso.test", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {v.E.World().App(app).ClientID},
		"client_secret": {v.E.Credentials[app].Secret}, "scope": {scope},
	})
}

// forge re-signs a token's claims with another key (same kid), after edit.
func forge(t testing.TB, token string, edit func(jwt.MapClaims, map[string]any)) string {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(token, claims)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(claims, parsed.Header)
	}
	nt := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	for k, val := range parsed.Header {
		if k != "alg" {
			nt.Header[k] = val
		}
	}
	out, err := nt.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func xoauth2(user, token string) string {
	msg, err := sasl.EncodeXOAuth2(user, token)
	if err != nil {
		panic(err) // every test passes a mailbox address and a token
	}
	return base64.StdEncoding.EncodeToString(msg)
}

// ---- a raw line client ----------------------------------------------------------------------------

type lineConn struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func (v *env) addr(name string) string { return v.E.MailAddrs[name] }

// dialTLS connects with implicit TLS, trusting only the emulator's CA.
func (v *env) dialTLS(t testing.TB, name string) *lineConn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", v.addr(name), v.TLS)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	return newLineConn(t, c)
}

// dialPlain connects without TLS (the STARTTLS listeners).
func (v *env) dialPlain(t testing.TB, name string) *lineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", v.addr(name), 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	return newLineConn(t, c)
}

func newLineConn(t testing.TB, c net.Conn) *lineConn {
	lc := &lineConn{t: t, conn: c, br: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	return lc
}

// startTLS upgrades the connection (after the server agreed).
func (lc *lineConn) startTLS(v *env) {
	lc.t.Helper()
	cfg := v.TLS.Clone()
	cfg.ServerName, _, _ = net.SplitHostPort(lc.conn.RemoteAddr().String())
	tc := tls.Client(lc.conn, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		lc.t.Fatalf("STARTTLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	lc.conn, lc.br = tc, bufio.NewReader(tc)
}

func (lc *lineConn) send(line string) {
	lc.t.Helper()
	lc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(lc.conn, line+"\r\n"); err != nil {
		lc.t.Fatalf("send: %v", err)
	}
}

// line reads one line without CRLF.
func (lc *lineConn) line() string {
	lc.t.Helper()
	lc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := lc.br.ReadString('\n')
	if err != nil {
		lc.t.Fatalf("read: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		lc.t.Fatalf("line %q does not end with CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// expect reads lines and checks they are exactly want.
func (lc *lineConn) expect(want ...string) {
	lc.t.Helper()
	for _, w := range want {
		if got := lc.line(); got != w {
			lc.t.Fatalf("got  %q\nwant %q", got, w)
		}
	}
}

// until reads lines up to and including one that starts with prefix, returning them all.
func (lc *lineConn) until(prefix string) []string {
	lc.t.Helper()
	var out []string
	for {
		l := lc.line()
		out = append(out, l)
		if strings.HasPrefix(l, prefix) {
			return out
		}
	}
}

// eof checks the server closed the connection.
func (lc *lineConn) eof() {
	lc.t.Helper()
	lc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if s, err := lc.br.ReadString('\n'); err == nil || s != "" {
		lc.t.Fatalf("connection still open (read %q, %v)", s, err)
	}
}

package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/console"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/passhash"
	"github.com/mailoauth/mailoauth/proxy"
	"github.com/mailoauth/mailoauth/token"
)

const adminPassword = "console-admin-password"

var (
	adminHashOnce sync.Once
	adminHash     string
)

func hashAdmin(tb testing.TB) string {
	var err error
	adminHashOnce.Do(func() { adminHash, err = passhash.Hash(adminPassword) })
	if err != nil {
		tb.Fatal(err)
	}
	return adminHash
}

type labOptions struct {
	auth      string        // config.ConsoleAuth*; "" is password
	delay     time.Duration // the login failure delay; 0 is none
	tls       bool
	withProxy bool
	world     *world.World // nil: the default world
	manual    bool         // nobody approves sign-ins: they wait
}

// lab is a console over the emulator's accounts (plus "broken": the daemon app with a wrong secret),
// served by httptest on loopback, and a browser-like client that records every body it reads.
type lab struct {
	t      *testing.T
	el     *emulatortest.Lab
	cfg    *config.File
	mgr    *auth.Manager
	con    *console.Console
	srv    *httptest.Server
	proxy  *proxy.Server
	client *http.Client
	logs   *bytes.Buffer
	bodies *bodies
}

func newLab(t *testing.T, o labOptions) *lab {
	t.Helper()
	approve := world.Alice
	if o.manual {
		approve = ""
	}
	el := emulatortest.Start(t, emulator.Options{AutoApprove: approve, World: o.world})
	cfg := el.Config
	broken := *cfg.Accounts["daemon"]
	broken.Name = "broken"
	broken.ClientSecretFile = filepath.Join(el.Dir, "broken-secret.txt")
	if err := os.WriteFile(broken.ClientSecretFile, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Accounts["broken"] = &broken
	cfg.Console = &config.Console{Auth: o.auth, PasswordHash: hashAdmin(t)}
	if o.auth == "" {
		cfg.Console.Auth = config.ConsoleAuthPassword
	}
	l := &lab{t: t, el: el, cfg: cfg, mgr: auth.New(cfg, auth.Options{}), logs: &bytes.Buffer{}, bodies: &bodies{}}
	if o.withProxy {
		// The proxy's own listeners only: those via Graph need the gateway's servers, which this
		// package's proxy does not run.
		cfg.Proxy.Listeners = slices.DeleteFunc(cfg.Proxy.Listeners, func(l config.Listener) bool { return l.Via != "" })
		for i := range cfg.Proxy.Listeners {
			cfg.Proxy.Listeners[i].Listen = "127.0.0.1:0"
		}
		var err error
		if l.proxy, err = proxy.New(cfg.Proxy, l.mgr, proxy.Options{FailureDelay: -1}); err != nil {
			t.Fatal(err)
		}
		if err := l.proxy.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = l.proxy.Shutdown(ctx)
		})
	}
	l.srv = httptest.NewUnstartedServer(nil)
	delay := o.delay
	if delay == 0 {
		delay = -1 // only TestLoginRateLimited waits
	}
	opts := console.Options{Config: cfg, Manager: l.mgr, Addr: l.srv.Listener.Addr().String(), TLS: o.tls, FailureDelay: delay,
		Log: slogTo(l.logs)}
	if l.proxy != nil {
		opts.Proxy = l.proxy
	}
	con, err := console.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l.con = con
	t.Cleanup(func() { con.Close() })
	l.srv.Config.Handler = con
	if o.tls {
		l.srv.StartTLS()
	} else {
		l.srv.Start()
	}
	t.Cleanup(l.srv.Close)
	jar, _ := cookiejar.New(nil)
	base := l.srv.Client().Transport
	l.client = &http.Client{Jar: jar, Timeout: time.Minute, Transport: recorder{base, l.bodies},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return l
}

// bodies keeps every response body the client read, for the no-secret scan.
type bodies struct {
	mu  sync.Mutex
	all []string
}

type recorder struct {
	next http.RoundTripper
	b    *bodies
}

func (rc recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rc.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	rc.b.mu.Lock()
	rc.b.all = append(rc.b.all, r.Method+" "+r.URL.Path+"\n"+headerText(resp.Header)+"\n"+string(data))
	rc.b.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}

func headerText(h http.Header) string {
	var b strings.Builder
	_ = h.Write(&b)
	return b.String()
}

// do sends a request and returns the status, the body and the response.
func (l *lab) do(method, path string, form url.Values, hdr map[string]string) (int, string, *http.Response) {
	l.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, l.srv.URL+path, body)
	if err != nil {
		l.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

var csrfRE = regexp.MustCompile(`name="csrf" (?:value|content)="([^"]+)"`)

// csrf is the CSRF token of the session, from a page.
func (l *lab) csrf(path string) string {
	l.t.Helper()
	_, body, _ := l.do("GET", path, nil, nil)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		l.t.Fatalf("no CSRF token on %s:\n%s", path, body)
	}
	return m[1]
}

func (l *lab) login() {
	l.t.Helper()
	code, body, resp := l.do("POST", "/login", url.Values{"csrf": {l.csrf("/login")}, "password": {adminPassword}}, nil)
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		l.t.Fatalf("login: %d %s\n%s", code, resp.Header.Get("Location"), body)
	}
}

// post sends a form with the session's CSRF token.
func (l *lab) post(path string, form url.Values, hdr map[string]string) (int, string, *http.Response) {
	l.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", l.csrf("/"))
	return l.do("POST", path, form, hdr)
}

type status struct {
	ID, Account, State, User, Error string
	UserCode                        string `json:"user_code"`
	VerificationURI                 string `json:"verification_uri"`
	ExpiresIn                       int    `json:"expires_in"`
	Problem                         *struct{ Code, Cause, Fix string }
}

// signInDevice signs an account in through the device-code panel's requests, as its script does.
func (l *lab) signInDevice(name string) status {
	l.t.Helper()
	code, body, _ := l.post("/accounts/"+name+"/signin", url.Values{"method": {"device"}}, map[string]string{"Accept": "application/json"})
	var st status
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.ID == "" {
		l.t.Fatalf("start a device sign-in: %d %s", code, body)
	}
	if st.State == "waiting" && (st.UserCode == "" || !strings.HasPrefix(st.VerificationURI, "https://") || st.ExpiresIn <= 0) {
		l.t.Fatalf("the panel lacks the code, the link or the time left: %+v", st)
	}
	deadline := time.Now().Add(time.Minute)
	for st.State == "waiting" {
		if time.Now().After(deadline) {
			l.t.Fatalf("the sign-in of %s did not finish: %+v", name, st)
		}
		time.Sleep(50 * time.Millisecond) // polling, as the page does; the emulator approves at once
		_, body, _ := l.do("GET", "/signins/"+st.ID+"/status", nil, map[string]string{"Accept": "application/json"})
		st = status{}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			l.t.Fatalf("status: %v\n%s", err, body)
		}
	}
	return st
}

func TestLogin(t *testing.T) {
	l := newLab(t, labOptions{})
	code, _, resp := l.do("GET", "/", nil, nil)
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("GET / before login: %d %s, want a redirect to /login", code, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/accounts/alice-device/card", "/signins/x"} {
		if code, _, _ := l.do("GET", path, nil, nil); code != http.StatusSeeOther {
			t.Errorf("GET %s before login: %d, want a redirect", path, code)
		}
	}
	if code, _, _ := l.do("POST", "/accounts/broken/doctor", url.Values{"csrf": {l.csrf("/login")}}, nil); code != http.StatusUnauthorized {
		t.Errorf("an action before login: %d, want 401", code)
	}
	code, body, _ := l.do("POST", "/login", url.Values{"csrf": {l.csrf("/login")}, "password": {"wrong"}}, nil)
	if code != http.StatusUnauthorized || !strings.Contains(body, "Wrong password.") {
		t.Fatalf("wrong password: %d\n%s", code, body)
	}
	before := cookieValue(t, l)
	l.login()
	if after := cookieValue(t, l); after == before {
		t.Error("the session id is the same after login (session fixation)")
	}
	code, body, _ = l.do("GET", "/", nil, nil)
	if code != http.StatusOK || !strings.Contains(body, `id="account-alice-device"`) || !strings.Contains(body, "Log out") {
		t.Fatalf("dashboard after login: %d\n%s", code, body)
	}
	code, _, resp = l.post("/logout", nil, nil)
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %s", code, resp.Header.Get("Location"))
	}
	if code, _, _ := l.do("GET", "/", nil, nil); code != http.StatusSeeOther {
		t.Fatalf("GET / after logout: %d, want a redirect to /login", code)
	}
	for _, want := range []string{"console login refused: wrong password", "console login ", "console logout"} {
		if !strings.Contains(l.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, l.logs)
		}
	}
	if strings.Contains(l.logs.String(), adminPassword) || strings.Contains(l.logs.String(), "wrong\"") {
		t.Error("a password reached the log")
	}
}

func cookieValue(t *testing.T, l *lab) string {
	u, _ := url.Parse(l.srv.URL)
	for _, c := range l.client.Jar.Cookies(u) {
		if c.Name == "mailoauth_console" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// TestLoginRateLimited: after a wrong password the source's next attempt is refused, without a
// check, until the delay has passed — even with the right password.
func TestLoginRateLimited(t *testing.T) {
	l := newLab(t, labOptions{delay: time.Hour})
	csrf := l.csrf("/login")
	if code, _, _ := l.do("POST", "/login", url.Values{"csrf": {csrf}, "password": {"guess-1"}}, nil); code != http.StatusUnauthorized {
		t.Fatalf("first wrong password: %d", code)
	}
	code, body, resp := l.do("POST", "/login", url.Values{"csrf": {csrf}, "password": {adminPassword}}, nil)
	if code != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many wrong passwords") {
		t.Fatalf("attempt inside the delay: %d Retry-After %q\n%s", code, resp.Header.Get("Retry-After"), body)
	}
	if code, _, _ := l.do("GET", "/", nil, nil); code != http.StatusSeeOther {
		t.Fatal("logged in during the delay")
	}
}

func TestCookieFlags(t *testing.T) {
	for _, tls := range []bool{false, true} {
		l := newLab(t, labOptions{tls: tls})
		_, _, resp := l.do("GET", "/login", nil, nil)
		cs := resp.Cookies()
		if len(cs) != 1 {
			t.Fatalf("TLS %v: cookies %v", tls, cs)
		}
		c := cs[0]
		wantName := "mailoauth_console"
		if tls {
			wantName = "__Host-mailoauth_console"
		}
		if c.Name != wantName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != tls || c.Path != "/" {
			t.Errorf("TLS %v: cookie %s HttpOnly %v SameSite %v Secure %v Path %q", tls, c.Name, c.HttpOnly, c.SameSite, c.Secure, c.Path)
		}
		if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") || !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("CSP %q", got)
		}
		if tls && resp.Header.Get("Strict-Transport-Security") == "" {
			t.Error("no HSTS over TLS")
		}
	}
}

// TestCSRF: every action without the session's token, with another's, or from another origin is
// refused, and does nothing.
func TestCSRF(t *testing.T) {
	l := newLab(t, labOptions{})
	l.login()
	if st := l.signInDevice("alice-device"); st.State != "done" {
		t.Fatalf("sign-in: %+v", st)
	}
	token := l.csrf("/")
	actions := []string{"/logout", "/accounts/alice-device/signout", "/accounts/alice-device/signin", "/accounts/broken/doctor", "/login"}
	for _, path := range actions {
		for name, c := range map[string]struct {
			form url.Values
			hdr  map[string]string
		}{
			"no token":     {url.Values{"method": {"device"}}, nil},
			"wrong token":  {url.Values{"csrf": {token + "x"}, "method": {"device"}}, nil},
			"other origin": {url.Values{"csrf": {token}, "method": {"device"}}, map[string]string{"Origin": "https://evil.example"}},
			"cross-site":   {url.Values{"csrf": {token}, "method": {"device"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		} {
			if code, body, _ := l.do("POST", path, c.form, c.hdr); code != http.StatusForbidden || !strings.Contains(body, "reload the page") {
				t.Errorf("POST %s, %s: %d, want 403\n%s", path, name, code, body)
			}
		}
	}
	_, card, _ := l.do("GET", "/accounts/alice-device/card", nil, nil)
	if !strings.Contains(card, `data-state="ok"`) || !strings.Contains(card, world.Alice) {
		t.Fatalf("a refused sign-out signed out:\n%s", card)
	}
	if code, _, _ := l.do("GET", "/", nil, nil); code != http.StatusOK {
		t.Fatal("a refused logout logged out")
	}
}

// TestUnsafeAddressesRefused: not on loopback, the console needs TLS and a login; on loopback it
// answers loopback names only (a rebound DNS name reaches it with another Host).
func TestUnsafeAddressesRefused(t *testing.T) {
	cfg := &config.File{Console: &config.Console{Auth: config.ConsoleAuthPassword, PasswordHash: hashAdmin(t)}}
	mgr := auth.New(cfg, auth.Options{})
	if _, err := console.New(console.Options{Config: cfg, Manager: mgr, Addr: "0.0.0.0:8090"}); !errors.Is(err, console.ErrNeedsTLS) {
		t.Errorf("no TLS on 0.0.0.0: %v", err)
	}
	if _, err := console.New(console.Options{Config: cfg, Manager: mgr, Addr: "192.0.2.1:8090", TLS: true}); err != nil {
		t.Errorf("TLS and a password on 192.0.2.1: %v", err)
	}
	none := &config.File{Console: &config.Console{Auth: config.ConsoleAuthNone}}
	if _, err := console.New(console.Options{Config: none, Manager: mgr, Addr: "192.0.2.1:8090", TLS: true}); !errors.Is(err, console.ErrNeedsPassword) {
		t.Errorf("auth none on 192.0.2.1: %v", err)
	}
	if _, err := console.New(console.Options{Config: &config.File{}, Manager: mgr, Addr: "127.0.0.1:8090"}); err == nil || !strings.Contains(err.Error(), "[console]") {
		t.Errorf("no [console] section: %v", err)
	}

	l := newLab(t, labOptions{auth: config.ConsoleAuthNone})
	req, _ := http.NewRequest("GET", l.srv.URL+"/", nil)
	req.Host = "rebound.example:80"
	resp, err := l.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host rebound.example: %d, want 421", resp.StatusCode)
	}
	// auth none on loopback: no login, straight to the accounts.
	if code, body, _ := l.do("GET", "/", nil, nil); code != http.StatusOK || !strings.Contains(body, `id="account-daemon"`) {
		t.Errorf("auth none: %d", code)
	}
}

// TestDeviceSignInAndSignOut: the device-code panel's requests sign alice-device in against the
// emulator; its card turns healthy with the user and per-resource expiry; signing the user out
// empties it.
func TestDeviceSignInAndSignOut(t *testing.T) {
	l := newLab(t, labOptions{})
	l.login()
	_, card, _ := l.do("GET", "/accounts/alice-device/card", nil, nil)
	if !strings.Contains(card, `data-state="signin"`) || !strings.Contains(card, "Nobody is signed in.") || !strings.Contains(card, `data-signin="device"`) {
		t.Fatalf("before sign-in:\n%s", card)
	}
	st := l.signInDevice("alice-device")
	if st.State != "done" || st.User != world.Alice {
		t.Fatalf("sign-in ended %+v, want done as %s", st, world.Alice)
	}
	_, card, _ = l.do("GET", "/accounts/alice-device/card", nil, nil)
	for _, want := range []string{`data-state="ok"`, "Healthy", world.Alice, "<td>outlook.office.com</td>", "Last refresh", " ago</time>", "in 5"} {
		if !strings.Contains(card, want) {
			t.Errorf("card after sign-in lacks %q:\n%s", want, card)
		}
	}
	// The no-script page of the same sign-in says so too.
	if code, body, _ := l.do("GET", "/signins/"+st.ID, nil, nil); code != http.StatusOK || !strings.Contains(body, "is signed in as "+world.Alice) {
		t.Errorf("sign-in page: %d\n%s", code, body)
	}
	home := regexp.MustCompile(`name="user" value="([^"]+)"`).FindStringSubmatch(card)
	if home == nil {
		t.Fatalf("no sign-out form for the user:\n%s", card)
	}
	if code, _, resp := l.post("/accounts/alice-device/signout", url.Values{"user": {home[1]}}, nil); code != http.StatusSeeOther || resp.Header.Get("Location") != "/#account-alice-device" {
		t.Fatalf("sign-out: %d", code)
	}
	_, card, _ = l.do("GET", "/accounts/alice-device/card", nil, nil)
	if !strings.Contains(card, "Nobody is signed in.") {
		t.Fatalf("after sign-out:\n%s", card)
	}
	acc, _ := l.mgr.Account("alice-device")
	if _, err := acc.Token(context.Background(), token.Exchange); !errors.Is(err, token.ErrLoginRequired) {
		t.Errorf("a token after sign-out: %v", err)
	}
	for _, want := range []string{"console sign-in started", "console sign-in completed", "user=" + world.Alice, "console sign-out"} {
		if !strings.Contains(l.logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// Another session cannot follow this one's sign-in.
	other := newClientOf(l)
	if code, _, _ := other.do("GET", "/signins/"+st.ID+"/status", nil, map[string]string{"Accept": "application/json"}); code != http.StatusNotFound {
		t.Errorf("another session reads the sign-in: %d", code)
	}
	l.checkNoSecrets()
}

// newClientOf is a second browser on the same console, logged in.
func newClientOf(l *lab) *lab {
	jar, _ := cookiejar.New(nil)
	o := *l
	o.client = &http.Client{Jar: jar, Timeout: time.Minute, Transport: l.client.Transport, CheckRedirect: l.client.CheckRedirect}
	o.login()
	return &o
}

// TestDoctor: the doctor for a broken account (a wrong client secret) renders its chain and the
// finding; the account's card then shows the finding's code, cause and fix.
func TestDoctor(t *testing.T) {
	l := newLab(t, labOptions{})
	l.login()
	code, body, _ := l.post("/accounts/broken/doctor", nil, nil)
	if code != http.StatusOK || !strings.Contains(body, "A link is broken") || !strings.Contains(body, "MO-") || !strings.Contains(body, "Fix:") {
		t.Fatalf("doctor: %d\n%s", code, body)
	}
	finding := regexp.MustCompile(`<strong class="code">(MO-[A-Z0-9-]+)</strong>`).FindStringSubmatch(body)
	if finding == nil {
		t.Fatalf("no finding code:\n%s", body)
	}
	_, card, _ := l.do("GET", "/accounts/broken/card", nil, nil)
	if !strings.Contains(card, `data-state="refused"`) || !strings.Contains(card, finding[1]) || !strings.Contains(card, "Fix:") {
		t.Errorf("card after the doctor lacks %s:\n%s", finding[1], card)
	}
	code, body, _ = l.post("/accounts/daemon/doctor", nil, nil)
	if code != http.StatusOK || !strings.Contains(body, "Every link works.") {
		t.Fatalf("doctor of a working account: %d\n%s", code, body)
	}
	if !strings.Contains(l.logs.String(), "console doctor run") || !strings.Contains(l.logs.String(), finding[1]) {
		t.Error("the doctor run is not logged with its finding")
	}
	if code, _, _ := l.post("/accounts/nosuch/doctor", nil, nil); code != http.StatusNotFound {
		t.Errorf("doctor of an unknown account: %d", code)
	}
	l.checkNoSecrets()
}

// TestProxySection: the proxy's listeners, users and a refused login, from its Snapshot.
func TestProxySection(t *testing.T) {
	l := newLab(t, labOptions{withProxy: true})
	l.login()
	var imapAddr string
	for k, a := range l.proxy.Addrs() {
		if strings.HasPrefix(k, "imap ") {
			imapAddr = a
		}
	}
	c, err := net.DialTimeout("tcp", imapAddr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	user := l.cfg.Proxy.Users
	var name string
	for n := range user {
		name = n
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "a LOGIN "+name+" proxy-wrong-password\r\n"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "a NO") {
		t.Fatalf("wrong password: %q %v", buf[:n], err)
	}
	_, body, _ := l.do("GET", "/", nil, nil)
	for _, want := range []string{"Listeners", imapAddr, name, "bad_password", "wrong password", "1 refused since the proxy started", "<td>1</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(body, "proxy-wrong-password") || strings.Contains(body, emulator.ProxyPassword) {
		t.Error("a proxy password on the page")
	}
	l.checkNoSecrets()
}

// checkNoSecrets scans every body and header the client read for the emulator's secrets, the admin
// password and anything shaped like a token.
func (l *lab) checkNoSecrets() {
	l.t.Helper()
	secrets := []string{adminPassword, emulator.ProxyPassword, "alice-password", "not-the-secret"}
	for _, c := range l.el.E.Credentials {
		secrets = append(secrets, c.Secret, c.PFXPassword)
	}
	l.bodies.mu.Lock()
	defer l.bodies.mu.Unlock()
	if len(l.bodies.all) == 0 {
		l.t.Fatal("no bodies recorded")
	}
	for _, b := range l.bodies.all {
		for _, s := range secrets {
			if s != "" && strings.Contains(b, s) {
				l.t.Errorf("a secret (%d bytes) in a response:\n%.300s", len(s), b)
			}
		}
		// JWTs (access and ID tokens) start with eyJ; refresh tokens and codes never appear by name.
		for _, marker := range []string{"eyJ", "refresh_token", "device_code", "code_verifier", "?code=", "&code="} {
			if strings.Contains(b, marker) {
				l.t.Errorf("%q in a response:\n%.300s", marker, b)
			}
		}
	}
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestBrowserSignIn: an interactive account, from a browser on the console's machine: the console
// sends the browser to the identity platform, whose redirect (the emulator approves at once) comes
// back to the sign-in's loopback listener; the card then shows the user. From elsewhere only the
// device code is offered.
func TestBrowserSignIn(t *testing.T) {
	l := newLab(t, labOptions{})
	l.login()
	_, card, _ := l.do("GET", "/accounts/alice/card", nil, nil)
	if !strings.Contains(card, `data-signin="browser"`) || !strings.Contains(card, `data-signin="device"`) {
		t.Fatalf("an interactive account on loopback offers both sign-ins:\n%s", card)
	}
	code, _, resp := l.post("/accounts/alice/signin", url.Values{"method": {"browser"}}, nil)
	authorize := resp.Header.Get("Location")
	if code != http.StatusSeeOther || !strings.HasPrefix(authorize, l.cfg.Accounts["alice"].Authority) || !strings.Contains(authorize, "code_challenge=") {
		t.Fatalf("browser sign-in: %d to %q, want the identity platform's authorize URL with PKCE", code, authorize)
	}
	// The browser follows the identity platform to the loopback listener.
	browser := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: l.el.E.CAPool()}}}
	r, err := browser.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(card, `data-state="ok"`) {
		if time.Now().After(deadline) {
			t.Fatalf("alice never turned healthy:\n%s", card)
		}
		time.Sleep(20 * time.Millisecond) // the listener hands the code to the sign-in in the background
		_, card, _ = l.do("GET", "/accounts/alice/card", nil, nil)
	}
	if !strings.Contains(card, world.Alice) {
		t.Errorf("alice's card lacks the user:\n%s", card)
	}
	// A method the account does not offer is refused.
	if code, _, _ := l.post("/accounts/daemon/signin", url.Values{"method": {"device"}}, nil); code != http.StatusBadRequest {
		t.Errorf("device sign-in of an app-only account: %d, want 400", code)
	}
	l.checkNoSecrets()
}

// TestWebSignIn: a web app (auth_code_web) signs in with PKCE and comes back to the console's own
// /callback, found by the OAuth state (the SameSite=Strict cookie does not come along) with the Lax
// binding cookie of the browser that started it; an unknown state is refused.
func TestWebSignIn(t *testing.T) {
	l := newWebLab(t)
	l.login()
	code, _, resp := l.post("/accounts/web/signin", url.Values{"method": {"web"}}, nil)
	authorize := resp.Header.Get("Location")
	if code != http.StatusSeeOther || !strings.Contains(authorize, "code_challenge=") ||
		!strings.Contains(authorize, url.QueryEscape(l.srv.URL+"/callback")) {
		t.Fatalf("web sign-in: %d to %q, want the authorize URL with PKCE and this console's /callback", code, authorize)
	}
	// The same browser (its cookies) follows the identity platform back to /callback.
	browser := &http.Client{Timeout: time.Minute, Jar: l.client.Jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: l.el.E.CAPool()}}}
	r, err := browser.Get(authorize) // the emulator approves and calls /callback itself
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	_, card, _ := l.do("GET", "/accounts/web/card", nil, nil)
	if !strings.Contains(card, `data-state="ok"`) || !strings.Contains(card, world.Alice) {
		t.Fatalf("web's card after the callback:\n%s", card)
	}
	if !strings.Contains(l.logs.String(), "console sign-in completed") {
		t.Error("the sign-in is not logged")
	}
	if code, body, _ := l.do("GET", "/callback?state=forged&code=abc", nil, nil); code != http.StatusBadRequest || !strings.Contains(body, "unknown, expired or already finished") {
		t.Errorf("a forged state: %d\n%s", code, body)
	}
	l.checkNoSecrets()
}

// newWebLab is a lab with a web app account, "web" (auth_code_web), whose redirect URI is the
// console's /callback on loopback.
func newWebLab(t *testing.T) *lab {
	w := world.Default()
	daemon := w.App("daemon")
	daemon.RedirectURIs = []string{"http://127.0.0.1/callback"} // any port on loopback
	daemon.Delegated = append(append([]string{}, world.ExchangeDelegated...), world.GraphMailDelegated...)
	daemon.Consented = true
	w.Accounts = append(w.Accounts, world.AccountSpec{Name: "web", App: "daemon", Flow: "auth_code_web", Email: world.Alice, Credential: "secret"})
	return newLab(t, labOptions{world: w})
}

// TestStaticHasNoListing: the embedded assets are served, but /static/ itself is a 404, not a list of
// what the console ships.
func TestStaticHasNoListing(t *testing.T) {
	l := newLab(t, labOptions{})
	l.login()
	if code, body, _ := l.do("GET", "/static/", nil, nil); code != http.StatusNotFound || strings.Contains(body, "<a href") {
		t.Errorf("GET /static/ = %d %q, want a 404 without links", code, body)
	}
}

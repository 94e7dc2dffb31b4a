package control_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/control"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// lab is a running emulator and a plain net/http client that trusts only its CA.
type lab struct {
	*emulatortest.Lab
	http  *http.Client
	token string
}

func start(t *testing.T) *lab {
	t.Helper()
	return startWith(t, nil)
}

// startWith starts a lab on the World w (nil: the default one).
func startWith(t *testing.T, w *world.World) *lab {
	t.Helper()
	l := &lab{Lab: emulatortest.Start(t, emulator.Options{World: w})}
	l.http = l.E.HTTPClient()
	tok, err := os.ReadFile(filepath.Join(l.Dir, "control-token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(l.Dir, "control-token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("control-token has mode %v, want 0600", fi.Mode().Perm())
	}
	l.token = strings.TrimSpace(string(tok))
	if u, _ := os.ReadFile(filepath.Join(l.Dir, "control-url")); strings.TrimSpace(string(u)) != l.E.ControlURL() {
		t.Errorf("control-url holds %q, want %q", u, l.E.ControlURL())
	}
	return l
}

type answer struct {
	Status int
	Body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Fatalf("answer %d %s is not a JSON object: %v", a.Status, a.Body, err)
	}
	return m
}

// call sends a control request with the lab's token (or token, when given).
func (l *lab) call(t *testing.T, method, path string, body any, token ...string) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, l.E.ControlURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	tok := l.token
	if len(token) > 0 {
		tok = token[0]
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := l.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, data}
}

func (l *lab) want(t *testing.T, status int, method, path string, body any) answer {
	t.Helper()
	a := l.call(t, method, path, body)
	if a.Status != status {
		t.Fatalf("%s %s: %d %s, want %d", method, path, a.Status, a.Body, status)
	}
	return a
}

// tokenFor asks the identity platform for a token; it returns the JSON answer and the status.
func (l *lab) tokenFor(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := l.http.PostForm(l.E.Authority()+"/contoso/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// hasCode reports whether an Entra error answer carries the AADSTS code.
func hasCode(m map[string]any, code int) bool {
	codes, _ := m["error_codes"].([]any)
	for _, c := range codes {
		if n, ok := c.(float64); ok && int(n) == code {
			return true
		}
	}
	return false
}

func passwordForm(user, password string) url.Values {
	return url.Values{"grant_type": {"password"}, "client_id": {world.DesktopClientID}, "username": {user},
		"password": {password}, "scope": {"https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}}
}

// imapLogin authenticates over IMAP with XOAUTH2 and returns the tagged answer.
func (l *lab) imapLogin(t *testing.T, user, token string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", l.E.MailAddrs["imap"],
		&tls.Config{RootCAs: l.E.CAPool(), MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	ir := base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
	fmt.Fprintf(c, "A1 AUTHENTICATE XOAUTH2 %s\r\nA2 SELECT INBOX\r\n", ir)
	var last string
	for !strings.HasPrefix(last, "A2 ") {
		line, err := br.ReadString('\n')
		if err != nil {
			return "closed"
		}
		last = strings.TrimSpace(line)
	}
	return last
}

// TestTokenRequired: without the token, or with another, every endpoint answers 401 and changes
// nothing.
func TestTokenRequired(t *testing.T) {
	l := start(t)
	for _, tok := range []string{"", "Bearer", l.token[:len(l.token)-1], l.token + "x", strings.ToUpper(l.token)} {
		if a := l.call(t, "POST", "/tenants/contoso/users", map[string]any{"upn": "eve@contoso.test"}, tok); a.Status != 401 {
			t.Errorf("token %q: %d %s", tok, a.Status, a.Body)
		}
		if a := l.call(t, "GET", "/events", nil, tok); a.Status != 401 {
			t.Errorf("events with token %q: %d", tok, a.Status)
		}
	}
	if l.E.World().Tenant("contoso").User("eve@contoso.test") != nil {
		t.Fatal("an unauthorised request changed the World")
	}
	if strings.Contains(string(l.want(t, 200, "GET", "/world", nil).Body), "alice-password") {
		t.Error("GET world shows a password")
	}
	// The identity platform's paths still work beside the API.
	resp, err := l.http.Get(l.E.Authority() + "/contoso/v2.0/.well-known/openid-configuration")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("discovery beside the control API: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestUsersAtRuntime: a user added at runtime gets a token and opens its mailbox over IMAP; settings
// change what Exchange answers; once deleted, the user gets no token and its token opens nothing.
func TestUsersAtRuntime(t *testing.T) {
	l := start(t)
	a := l.want(t, 201, "POST", "/tenants/contoso/users", map[string]any{"upn": "carol@contoso.test", "password": "carol-pw"}).json(t)
	if a["upn"] != "carol@contoso.test" || a["object_id"] == "" || bytes.Contains(l.call(t, "GET", "/world", nil).Body, []byte("carol-pw")) {
		t.Fatalf("created %v", a)
	}
	st, tok := l.tokenFor(t, passwordForm("carol@contoso.test", "carol-pw"))
	if st != 200 {
		t.Fatalf("token for the new user: %d %v", st, tok)
	}
	access := tok["access_token"].(string)
	if got := l.imapLogin(t, "carol@contoso.test", access); !strings.HasPrefix(got, "A2 OK") {
		t.Fatalf("IMAP for the new user: %q", got)
	}

	l.want(t, 204, "PATCH", "/tenants/contoso/users/carol@contoso.test", map[string]any{"imap_disabled": true})
	if got := l.imapLogin(t, "carol@contoso.test", access); got != "A2 BAD User is authenticated but not connected." {
		t.Fatalf("IMAP with imap_disabled: %q", got)
	}

	l.want(t, 204, "DELETE", "/tenants/contoso/users/carol@contoso.test", nil)
	if st, m := l.tokenFor(t, passwordForm("carol@contoso.test", "carol-pw")); st != 400 || !hasCode(m, 50034) {
		t.Fatalf("token for a deleted user: %d %v", st, m)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {world.DesktopClientID},
		"refresh_token": {tok["refresh_token"].(string)}, "scope": {"https://outlook.office.com/IMAP.AccessAsUser.All"}}
	if st, m := l.tokenFor(t, refresh); st != 400 || !hasCode(m, 50034) {
		t.Fatalf("refresh token of a deleted user: %d %v", st, m)
	}
	if got := l.imapLogin(t, "carol@contoso.test", access); !strings.Contains(got, "BAD") && !strings.HasPrefix(got, "A1 NO") && got != "closed" {
		t.Fatalf("IMAP for a deleted user: %q", got)
	}
	l.want(t, 404, "DELETE", "/tenants/contoso/users/carol@contoso.test", nil)
}

// TestRevokeSessions: revoke_sessions makes the user's refresh tokens fail with AADSTS50173.
func TestRevokeSessions(t *testing.T) {
	l := start(t)
	st, tok := l.tokenFor(t, passwordForm(world.Bob, "bob-password"))
	if st != 200 {
		t.Fatalf("%d %v", st, tok)
	}
	l.want(t, 204, "PATCH", "/tenants/contoso/users/"+world.Bob, map[string]any{"revoke_sessions": true})
	st, m := l.tokenFor(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {world.DesktopClientID},
		"refresh_token": {tok["refresh_token"].(string)}, "scope": {"https://outlook.office.com/IMAP.AccessAsUser.All"}})
	if st != 400 || !hasCode(m, 50173) {
		t.Fatalf("refresh after revoke_sessions: %d %v", st, m)
	}
}

// TestAppsAndSecrets: an app registered at runtime gets its secret once; client credentials work
// with it; removing the secret gets AADSTS7000215; a permission change shows in the next token.
func TestAppsAndSecrets(t *testing.T) {
	l := start(t)
	app := l.want(t, 201, "POST", "/apps", map[string]any{"name": "tool", "application": []string{"IMAP.AccessAsApp"}}).json(t)
	secret, _ := app["secret"].(string)
	clientID, _ := app["client_id"].(string)
	if secret == "" || clientID == "" {
		t.Fatalf("created %v", app)
	}
	if strings.Contains(string(l.call(t, "GET", "/world", nil).Body), secret) {
		t.Error("GET world shows the secret's value")
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {"https://outlook.office365.com/.default"}}
	if st, m := l.tokenFor(t, form); st != 200 {
		t.Fatalf("client credentials with the new secret: %d %v", st, m)
	}
	second := l.want(t, 201, "POST", "/apps/tool/secrets", map[string]any{}).json(t)
	if second["n"] != 2.0 || second["value"] == "" {
		t.Fatalf("second secret %v", second)
	}
	l.want(t, 204, "DELETE", "/apps/tool/secrets/1", nil)
	if st, m := l.tokenFor(t, form); st != 401 || !hasCode(m, 7000215) {
		t.Fatalf("client credentials with a removed secret: %d %v", st, m)
	}
	form.Set("client_secret", second["value"].(string))
	if st, m := l.tokenFor(t, form); st != 200 {
		t.Fatalf("client credentials with the second secret: %d %v", st, m)
	}
	l.want(t, 204, "PATCH", "/apps/tool", map[string]any{"admin_consented": false})
	if _, m := l.tokenFor(t, form); m["access_token"] == nil || strings.Contains(payload(t, m["access_token"].(string)), "IMAP.AccessAsApp") {
		t.Fatalf("after admin_consented false the token still carries the role: %v", m)
	}
	l.want(t, 204, "DELETE", "/apps/tool", nil)
	if st, _ := l.tokenFor(t, form); st != 400 {
		t.Fatalf("a removed app got %d", st)
	}
}

func payload(t *testing.T, jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	return string(b)
}

// TestRefusedChanges: a change the scenario rules refuse is a 400 naming the key, and changes nothing.
func TestRefusedChanges(t *testing.T) {
	l := start(t)
	for _, c := range []struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		{"POST", "/tenants/contoso/users", map[string]any{"upn": "x@contoso.test", "smtp_auth": "off"}, 400, "smtp_auth"},
		{"POST", "/tenants/contoso/users", map[string]any{"upn": "x@elsewhere.test"}, 400, "not one of tenant contoso"},
		{"POST", "/tenants/contoso/users", map[string]any{"upn": "x@contoso.test", "colour": "red"}, 400, "unknown key `colour`"},
		{"POST", "/tenants/nowhere/users", map[string]any{"upn": "x@contoso.test"}, 404, "no tenant"},
		{"POST", "/tenants/contoso/users", "not json", 400, "not one JSON object"},
		{"POST", "/tenants/contoso/users", strings.Repeat(" ", 70<<10), 413, "larger than"},
		{"POST", "/faults", map[string]any{"endpoint": "smtp", "status": 503}, 400, "reply"},
		{"POST", "/apps", map[string]any{"name": "x", "delegated": []string{"Mail.Nope"}}, 400, "Mail.Nope"},
		{"PATCH", "/tenants/contoso", map[string]any{"smtp_basic_auth": "gone"}, 400, "smtp_basic_auth"},
		{"DELETE", "/apps/desktop/secrets/1", nil, 404, "no secret 1"},
		{"GET", "/nothing", nil, 404, "no control endpoint"},
	} {
		a := l.call(t, c.method, c.path, c.body)
		var e struct{ Error string }
		_ = json.Unmarshal(a.Body, &e)
		if a.Status != c.status || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, a.Status, a.Body, c.status, c.want)
		}
	}
	if l.E.Live.Generation() != 0 {
		t.Errorf("refused changes published %d Worlds", l.E.Live.Generation())
	}
}

// TestFaultsAtRuntime: an identity fault answers the next token request; an SMTP fault the next
// command; clearing them restores the servers.
func TestFaultsAtRuntime(t *testing.T) {
	l := start(t)
	f := l.want(t, 201, "POST", "/faults", map[string]any{"endpoint": "token", "status": 503, "times": 1}).json(t)
	if f["id"] == "" {
		t.Fatalf("fault %v", f)
	}
	if st, m := l.tokenFor(t, passwordForm(world.Alice, "alice-password")); st != 503 || m["error"] != "temporarily_unavailable" {
		t.Fatalf("token under a fault: %d %v", st, m)
	}
	if st, _ := l.tokenFor(t, passwordForm(world.Alice, "alice-password")); st != 200 {
		t.Fatalf("token after the fault's one time: %d", st)
	}
	l.want(t, 201, "POST", "/faults", map[string]any{"endpoint": "smtp", "reply": "421 4.3.2 Service not available"})
	if got := smtpFirstReply(t, l); got != "421 4.3.2 Service not available" {
		t.Fatalf("SMTP under a fault: %q", got)
	}
	if n := len(l.want(t, 200, "GET", "/world", nil).json(t)["faults"].([]any)); n != 2 {
		t.Fatalf("%d faults listed, want 2", n)
	}
	l.want(t, 204, "DELETE", "/faults", nil)
	if got := smtpFirstReply(t, l); got != "250 2.0.0 OK" {
		t.Fatalf("SMTP after clearing: %q", got)
	}
	l.want(t, 404, "DELETE", "/faults/"+f["id"].(string), nil)
}

// smtpFirstReply connects to SMTP and returns the answer to NOOP.
func smtpFirstReply(t *testing.T, l *lab) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.E.MailAddrs["smtp"], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	br.ReadString('\n')
	io.WriteString(c, "NOOP\r\n")
	line, _ := br.ReadString('\n')
	return strings.TrimSpace(line)
}

// TestDeliverEventsAndReset: a delivered message is in the mailbox and in the event log; reset
// removes it and what was added.
func TestDeliverEventsAndReset(t *testing.T) {
	l := start(t)
	msg := "From: x@example.org\r\nTo: bob@contoso.test\r\nSubject: seeded\r\n\r\nhello\r\n"
	d := l.want(t, 201, "POST", "/mailboxes/bob@contoso.test/messages", msg).json(t)
	got, err := l.E.Store.Get(world.Bob, "INBOX", d["id"].(string))
	if err != nil || string(got.Data) != msg {
		t.Fatalf("delivered %v: %v %q", d, err, got.Data)
	}
	ev := l.want(t, 200, "GET", "/events?kind=message.delivered&mailbox=bob@contoso.test", nil)
	if !bytes.Contains(ev.Body, []byte(`"mailbox":"bob@contoso.test"`)) {
		t.Fatalf("events: %s", ev.Body)
	}
	l.want(t, 404, "POST", "/mailboxes/nobody@contoso.test/messages", msg)

	l.want(t, 201, "POST", "/tenants/contoso/users", map[string]any{"upn": "carol@contoso.test"})
	l.want(t, 201, "POST", "/tenants/contoso/shared-mailboxes", map[string]any{"address": "team@contoso.test", "full_access": []string{world.Bob}})
	l.want(t, 204, "POST", "/reset", nil)
	w := l.E.World()
	if w.Tenant("contoso").User("carol@contoso.test") != nil || w.Tenant("contoso").SharedMailbox("team@contoso.test") != nil {
		t.Error("reset kept what was added")
	}
	if msgs, _ := l.E.Store.List(world.Bob, "INBOX"); len(msgs) != 0 {
		t.Errorf("reset kept %d messages", len(msgs))
	}
}

// TestControlWhileLogging: control calls and logins at once (run with -race).
func TestControlWhileLogging(t *testing.T) {
	l := start(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			upn := fmt.Sprintf("user%d@contoso.test", i)
			for range 3 {
				if a := l.call(t, "POST", "/tenants/contoso/users", map[string]any{"upn": upn}); a.Status != 201 {
					t.Errorf("add %s: %d %s", upn, a.Status, a.Body)
					return
				}
				if a := l.call(t, "DELETE", "/tenants/contoso/users/"+upn, nil); a.Status != 204 {
					t.Errorf("remove %s: %d %s", upn, a.Status, a.Body)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 2 {
				st, m := l.tokenFor(t, passwordForm(world.Alice, "alice-password"))
				if st != 200 {
					t.Errorf("token: %d %v", st, m)
					return
				}
				if got := l.imapLogin(t, world.Alice, m["access_token"].(string)); !strings.HasPrefix(got, "A2 OK") {
					t.Errorf("IMAP: %q", got)
				}
			}
		}()
	}
	wg.Wait()
	if n := len(l.E.World().Tenant("contoso").Users); n != 2 {
		t.Errorf("%d users at the end, want alice and bob", n)
	}
}

// TestWebPageAuth: on loopback the page is served without the token, under the API's prefix.
func TestWebPageAuth(t *testing.T) {
	l := start(t)
	resp, err := l.http.Get(l.E.ControlURL() + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), world.Alice) {
		t.Fatalf("the page on loopback: %d %.300s", resp.StatusCode, body)
	}
	// Without the trailing slash, the browser is sent to the page.
	resp, err = l.http.Get(l.E.ControlURL() + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/_emulator/ui/" {
		t.Fatalf("GET /_emulator/ui: %d at %s", resp.StatusCode, resp.Request.URL)
	}
}

// TestWebPageNeedsTokenOffLoopback: with OpenUI off the page answers 401 with a basic-auth
// challenge, and serves with the token as the password.
func TestWebPageNeedsTokenOffLoopback(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page "+r.URL.Path) })
	srv := httptest.NewServer(control.Handler(control.Config{Live: world.NewLive(world.Default(), nil), Token: "s3cret-token-for-test", UI: page}))
	defer srv.Close()
	get := func(user, pass string) (int, string, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/_emulator/ui/mailboxes", nil)
		if pass != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
	}
	if st, challenge, _ := get("", ""); st != 401 || !strings.HasPrefix(challenge, "Basic ") {
		t.Fatalf("without the token: %d %q", st, challenge)
	}
	if st, _, _ := get("me", "wrong"); st != 401 {
		t.Fatalf("with a wrong password: %d", st)
	}
	if st, _, body := get("anyone", "s3cret-token-for-test"); st != 200 || body != "page /mailboxes" {
		t.Fatalf("with the token: %d %q", st, body)
	}
}

// TestCertificates: a certificate registered at runtime signs client assertions; removed, the
// assertion gets AADSTS700027.
func TestCertificates(t *testing.T) {
	l := start(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ci runner"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	added := l.want(t, 201, "POST", "/apps/daemon/certificates", certPEM).json(t)
	sum := sha1.Sum(der)
	if added["thumbprint"] != strings.ToUpper(hex.EncodeToString(sum[:])) {
		t.Fatalf("added %v", added)
	}
	assertion := func() url.Values {
		now := time.Now()
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"aud": l.E.Authority() + "/contoso/oauth2/v2.0/token", "iss": world.DaemonClientID, "sub": world.DaemonClientID,
			"jti": rand.Text(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
		s256 := sha256.Sum256(cert.Raw)
		tok.Header["x5t#S256"] = base64.StdEncoding.EncodeToString(s256[:])
		signed, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {world.DaemonClientID},
			"scope":                 {"https://outlook.office365.com/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {signed}}
	}
	if st, m := l.tokenFor(t, assertion()); st != 200 {
		t.Fatalf("assertion with the registered certificate: %d %v", st, m)
	}
	l.want(t, 400, "POST", "/apps/daemon/certificates", "not a certificate")
	l.want(t, 204, "DELETE", "/apps/daemon/certificates/"+strconv.Itoa(int(added["n"].(float64))), nil)
	if st, m := l.tokenFor(t, assertion()); st == 200 || !hasCode(m, 700027) {
		t.Fatalf("assertion with a removed certificate: %d %v", st, m)
	}
}

package proxy_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestSnapshot: the status a console shows — listeners with the sessions open on each, the users
// and catch-alls, and refused logins newest first: a wrong password (no password in it) and a token
// the server refused, with the doctor's finding code.
func TestSnapshot(t *testing.T) {
	w, err := world.LoadScenario(filepath.Join("..", "internal", "emulator", "world", "testdata", "no-service-principal.toml"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, labOptions{world: w, mutate: func(f *config.File) {
		// A user whose account's client secret is wrong: its login is refused for want of a token.
		broken := *f.Accounts["daemon"]
		broken.Name, broken.ClientSecretFile = "broken", filepath.Join(t.TempDir(), "wrong-secret.txt")
		if err := os.WriteFile(broken.ClientSecretFile, []byte("wrong-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f.Accounts["broken"] = &broken
		f.Proxy.Users["signin@contoso.test"] = &config.ProxyUser{Account: "broken", PasswordHash: f.Proxy.Users[aliceUser].PasswordHash}
	}})
	c := l.dial(t, "imap", config.LocalTLSNone)
	if got := c.attempt("imap", aliceUser, "wrong-password-snapshot"); got != refusedLine["imap"] {
		t.Fatalf("wrong password: %q", got)
	}
	c.attempt("imap", aliceUser, alicePassword) // refused upstream: no service principal

	nobody := l.dial(t, "imap", config.LocalTLSNone)
	nobody.attempt("imap", "signin@contoso.test", alicePassword)

	s := l.srv.Snapshot()
	imapAddr := l.addr("imap", config.LocalTLSNone)
	found := false
	for _, ls := range s.Listeners {
		if ls.Addr == imapAddr {
			found = true
			if ls.Sessions != 2 || ls.Protocol != "imap" || ls.LocalTLS != config.LocalTLSNone {
				t.Errorf("the IMAP listener: %+v, want 2 sessions open", ls)
			}
		} else if ls.Sessions != 0 {
			t.Errorf("listener %+v has sessions; only the IMAP one has a connection", ls)
		}
	}
	if !found || len(s.Listeners) != len(l.cfg.Proxy.Listeners) {
		t.Fatalf("listeners %+v: want the %d configured, with %s", s.Listeners, len(l.cfg.Proxy.Listeners), imapAddr)
	}
	var users []string
	for _, u := range s.Users {
		users = append(users, u.Name+"→"+u.Account)
	}
	if got := strings.Join(users, " "); !strings.Contains(got, aliceUser+"→daemon") || !strings.Contains(got, "contoso.test→daemon") {
		t.Errorf("users: %s", got)
	}
	if len(s.Refusals) != 3 {
		t.Fatalf("refusals: %+v, want 3", s.Refusals)
	}
	if tok := s.Refusals[0]; tok.Outcome != "token_error" || tok.Account != "broken" || !strings.HasPrefix(tok.Code, "MO-") || tok.Reason == "" {
		t.Errorf("the refusal for want of a token: %+v, want the doctor's finding", tok)
	}
	newest, oldest := s.Refusals[1], s.Refusals[2]
	if newest.Outcome != "upstream_refused" || newest.Code != "MO-NO-SERVICE-PRINCIPAL" || newest.Account != "daemon" || newest.User != aliceUser {
		t.Errorf("newest refusal: %+v", newest)
	}
	if oldest.Outcome != "bad_password" || oldest.Reason != "wrong password" || time.Since(oldest.Time) > time.Minute {
		t.Errorf("oldest refusal: %+v", oldest)
	}
	if s.Logins["bad_password"] != 1 || s.Logins["upstream_refused"] != 1 || s.Logins["token_error"] != 1 {
		t.Errorf("logins by outcome: %v", s.Logins)
	}
	for _, r := range s.Refusals {
		if strings.Contains(r.Reason, "wrong-password-snapshot") || strings.Contains(r.Reason, alicePassword) {
			t.Fatalf("a password in a refusal: %+v", r)
		}
	}
}

// TestServeAdminWith: another handler shares the admin address; /healthz and /metrics stay the
// proxy's.
func TestServeAdminWith(t *testing.T) {
	l := newLab(t, labOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.srv.ServeAdminWith(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "console at "+r.URL.Path)
	}))
	client := &http.Client{Timeout: 30 * time.Second}
	for path, want := range map[string]string{"/healthz": "ok\n", "/": "console at /", "/accounts/x": "console at /accounts/x"} {
		r, err := client.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if string(b) != want {
			t.Errorf("%s: %q, want %q", path, b, want)
		}
	}
	r, err := client.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), "# TYPE mailoauth_proxy_sessions_total counter") {
		t.Errorf("/metrics: %s", b)
	}
}

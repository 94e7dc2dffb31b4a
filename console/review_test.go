package console_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAnonymousFloodKeepsLogin: a flood of visits without a cookie (each makes an anonymous
// session) does not push the admin's logged-in session out of the bounded table.
func TestAnonymousFloodKeepsLogin(t *testing.T) {
	l := newLab(t, labOptions{})
	l.login()
	anon := &http.Client{Transport: l.client.Transport, CheckRedirect: l.client.CheckRedirect}
	for range 1100 { // more than the table holds
		resp, err := anon.Get(l.srv.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	l.bodies.mu.Lock()
	l.bodies.all = nil // the login pages, already known to be clean
	l.bodies.mu.Unlock()
	if code, _, resp := l.do("GET", "/", nil, nil); code != http.StatusOK {
		t.Fatalf("after 1100 anonymous visits the admin's page answers %d (to %q), want 200: the login was pushed out", code, resp.Header.Get("Location"))
	}
}

// TestCallbackBoundToBrowser: a web sign-in's callback (state and code) brought by another client
// — the emulator's own server, which delivers a loopback redirect itself, then another browser that
// learnt the state and could slip in a code of its own — is refused and does not use the state up;
// the browser that started the sign-in then completes it.
func TestCallbackBoundToBrowser(t *testing.T) {
	l := newWebLab(t)
	l.login()
	_, _, resp := l.post("/accounts/web/signin", url.Values{"method": {"web"}}, nil)
	authorize := resp.Header.Get("Location")
	// Follow the identity platform up to its redirect to /callback, and stop there.
	idp := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: l.el.E.CAPool()}},
		CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			if r.URL.Path == "/callback" {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	r, err := idp.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	callback := r.Header.Get("Location")
	if r.StatusCode == http.StatusOK {
		// The emulator delivers a loopback redirect from its own server first, without the browser's
		// cookies, and redirects the browser only when that is refused.
		t.Fatal("a client without the starting browser's cookies (the emulator's server) completed the callback")
	}
	if !strings.Contains(callback, "/callback?") || !strings.Contains(callback, "code=") {
		t.Fatalf("the identity platform answered %d to %q, want a redirect to /callback with a code", r.StatusCode, callback)
	}

	other := &http.Client{Timeout: time.Minute, Transport: l.client.Transport, CheckRedirect: l.client.CheckRedirect}
	r, err = other.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if _, card, _ := l.do("GET", "/accounts/web/card", nil, nil); r.StatusCode != http.StatusForbidden || strings.Contains(card, `data-state="ok"`) {
		t.Fatalf("another browser's callback: %d, want 403, and web must not be signed in:\n%s", r.StatusCode, card)
	}

	code, body, _ := l.do("GET", strings.TrimPrefix(callback, l.srv.URL), nil, nil)
	if _, card, _ := l.do("GET", "/accounts/web/card", nil, nil); code != http.StatusOK || !strings.Contains(card, `data-state="ok"`) {
		t.Fatalf("the starting browser's callback: %d\n%s\ncard:\n%s", code, body, card)
	}
	l.checkNoSecrets()
}

// startDevice starts a device sign-in of account as the panel's script does, and returns its status.
func (l *lab) startDevice(account string) status {
	l.t.Helper()
	code, body, _ := l.post("/accounts/"+account+"/signin", url.Values{"method": {"device"}}, map[string]string{"Accept": "application/json"})
	var st status
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.State != "waiting" {
		l.t.Fatalf("start a device sign-in of %s: %d %s", account, code, body)
	}
	return st
}

func (l *lab) statusOf(id string) status {
	l.t.Helper()
	_, body, _ := l.do("GET", "/signins/"+id+"/status", nil, map[string]string{"Accept": "application/json"})
	var st status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		l.t.Fatalf("status: %v\n%s", err, body)
	}
	return st
}

// TestOneSignInPerAccount: each sign-in waits in a goroutine polling the identity platform for up to
// 20 minutes; a second sign-in of the same account ends the first (a flood of clicks or requests
// cannot pile them up), and says so; Close ends the last one before it returns.
func TestOneSignInPerAccount(t *testing.T) {
	l := newLab(t, labOptions{manual: true}) // nobody approves: the sign-ins wait
	l.login()
	first := l.startDevice("alice-device")
	second := l.startDevice("alice-device")
	deadline := time.Now().Add(time.Minute)
	st := l.statusOf(first.ID)
	for st.State == "waiting" {
		if time.Now().After(deadline) {
			t.Fatalf("the first sign-in still waits beside the second: %+v", st)
		}
		time.Sleep(20 * time.Millisecond) // polling, as the page does
		st = l.statusOf(first.ID)
	}
	if st.State != "failed" || !strings.Contains(st.Error, "newer sign-in") {
		t.Errorf("the replaced sign-in: %+v, want failed, saying a newer one replaced it", st)
	}
	if st := l.statusOf(second.ID); st.State != "waiting" {
		t.Errorf("the newer sign-in: %+v, want waiting", st)
	}
	if _, card, _ := l.do("GET", "/accounts/alice-device/card", nil, nil); strings.Contains(card, `class="problem"`) {
		t.Errorf("a replaced sign-in is shown as the account's problem:\n%s", card)
	}
	l.con.Close()
	if st := l.statusOf(second.ID); st.State != "failed" || !strings.Contains(st.Error, "console stopped") {
		t.Errorf("after Close the sign-in: %+v, want failed, saying the console stopped", st)
	}
}

// TestDoctorOneRunPerAccount: a doctor run holds connections for up to minutes; a second run for the
// same account while one is under way is refused with 429 (a flood of requests cannot pile them
// up), and the account can be examined again once the first has ended.
func TestDoctorOneRunPerAccount(t *testing.T) {
	// An identity platform that accepts connections and never answers: the doctor waits on it.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		hang.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	l := newLab(t, labOptions{})
	stuck := *l.cfg.Accounts["broken"]
	stuck.Name, stuck.Authority = "stuck", "https://"+hang.Addr().String()
	l.cfg.Accounts["stuck"] = &stuck
	l.login()
	form := url.Values{"csrf": {l.csrf("/")}}

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", l.srv.URL+"/accounts/stuck/doctor", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := l.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	select {
	case c := <-accepted:
		defer c.Close()
	case err := <-first:
		t.Fatalf("the first doctor run ended without reaching the hanging identity platform: %v", err)
	}
	if code, body, _ := l.do("POST", "/accounts/stuck/doctor", form, nil); code != http.StatusTooManyRequests || !strings.Contains(body, "already running for stuck") {
		t.Fatalf("a second doctor run for the same account: %d, want 429 saying one is under way\n%s", code, body)
	}
	cancel()
	<-first
	hang.Close() // the next run is refused at once
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, _ := l.do("POST", "/accounts/stuck/doctor", form, nil)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("a doctor run after the first ended: %d\n%s", code, body)
		}
		time.Sleep(20 * time.Millisecond) // the first run's handler is still returning
	}
}

var buttonRE = regexp.MustCompile(`<button[^>]*>`)

// TestAccessibleNames: a screen reader's list of buttons tells the accounts apart (every button of a
// card names its account), the device code is read as itself (no label hiding it), and a wrong
// password marks the field and points at the error.
func TestAccessibleNames(t *testing.T) {
	l := newLab(t, labOptions{manual: true}) // the sign-in waits: its page shows the code
	if _, body, _ := l.do("POST", "/login", url.Values{"csrf": {l.csrf("/login")}, "password": {"wrong"}}, nil); !strings.Contains(body, `aria-invalid="true" aria-describedby="login-error"`) || !strings.Contains(body, `id="login-error"`) {
		t.Errorf("after a wrong password the field is not marked invalid and tied to the error:\n%s", body)
	}
	l.login()
	for _, name := range []string{"alice-device", "daemon", "alice"} {
		_, card, _ := l.do("GET", "/accounts/"+name+"/card", nil, nil)
		for _, b := range buttonRE.FindAllString(card, -1) {
			if !strings.Contains(b, `aria-label="`) || !strings.Contains(b[strings.Index(b, `aria-label="`):], name) {
				t.Errorf("%s's card has a button whose name does not say the account: %s", name, b)
			}
		}
	}
	code, _, resp := l.post("/accounts/alice-device/signin", url.Values{"method": {"device"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("start a device sign-in without script: %d", code)
	}
	_, page, _ := l.do("GET", resp.Header.Get("Location"), nil, nil)
	if !strings.Contains(page, `class="usercode`) {
		t.Fatalf("the sign-in page lacks the code:\n%s", page)
	}
	if strings.Contains(page, `class="usercode" aria-label`) {
		t.Errorf("the code's paragraph has a label a screen reader reads instead of the code:\n%s", page)
	}
}

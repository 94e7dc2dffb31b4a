package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
)

// TestSessionEnds: a session used every few hours still ends sessionMax after it started, and one
// left alone ends sessionIdle after its last request.
func TestSessionEnds(t *testing.T) {
	cfg := &config.File{Accounts: map[string]*config.Account{}, Console: &config.Console{Auth: config.ConsoleAuthNone}}
	c, err := New(Options{Config: cfg, Manager: auth.New(cfg, auth.Options{}), Addr: "127.0.0.1:8090"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	get := func(cookie *http.Cookie) *http.Cookie {
		req := httptest.NewRequest("GET", "http://127.0.0.1:8090/login", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		for _, ck := range rec.Result().Cookies() {
			if ck.Name == c.cookieName() {
				return ck // a new session
			}
		}
		return nil
	}
	ck := get(nil)
	if ck == nil {
		t.Fatal("no session cookie")
	}
	for range 5 { // 20 hours of use, every 4 hours
		now = now.Add(4 * time.Hour)
		if get(ck) != nil {
			t.Fatalf("the session ended after %v of steady use", now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
		}
	}
	now = now.Add(5 * time.Hour) // 25 hours after the start, 5 after the last request
	if get(ck) == nil {
		t.Error("a session used every 4 hours lives past its 24 hours")
	}
	ck = get(nil)
	now = now.Add(sessionIdle + time.Second)
	if get(ck) == nil {
		t.Error("a session left alone lives past its idle time")
	}
}

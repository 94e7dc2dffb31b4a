package console_test

import (
	"net/http"
	"testing"
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

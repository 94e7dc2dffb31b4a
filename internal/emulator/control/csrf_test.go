package control_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator/control"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestBasicAuthOpensThePageOnly: a browser resends the page's basic-auth password by itself, also with
// a form another site's page submits; so the password opens the read-only page and nothing else.
func TestBasicAuthOpensThePageOnly(t *testing.T) {
	const token = "s3cret-token-for-test"
	live := world.NewLive(world.Default(), nil)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page") })
	srv := httptest.NewServer(control.Handler(control.Config{Live: live, Token: token, UI: page, NewSecret: func() string { return "x" }}))
	defer srv.Close()
	post := func(auth func(*http.Request)) int {
		// What <form method=post enctype=text/plain> on another site sends.
		req, _ := http.NewRequest("POST", srv.URL+"/_emulator/apps", strings.NewReader(`{"name":"evil","public":true}`))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "https://evil.example")
		auth(req)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post(func(r *http.Request) { r.SetBasicAuth("anyone", token) }); st != 401 {
		t.Fatalf("a change with the basic-auth password: %d, want 401", st)
	}
	if live.Load().App("evil") != nil {
		t.Fatal("the basic-auth password changed the World")
	}
	req, _ := http.NewRequest("GET", srv.URL+"/_emulator/ui/", nil)
	req.SetBasicAuth("anyone", token)
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the page with the basic-auth password: %v %v", resp, err)
	}
	if st := post(func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }); st != 201 {
		t.Fatalf("the same change with the bearer token: %d, want 201", st)
	}
}

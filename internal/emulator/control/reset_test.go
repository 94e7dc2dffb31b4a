package control_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestResetIsTheScenarioAgain: after a reset, a scenario fault that already fired fires again, and a
// draft made through Graph is gone with the mailboxes' messages.
func TestResetIsTheScenarioAgain(t *testing.T) {
	w := world.Default()
	w.Faults = append(w.Faults, world.Fault{Endpoint: "graph", Status: 503, Times: 1})
	l := startWith(t, w)
	graph := func(method, path, tok string, body string) (int, string) {
		req, _ := http.NewRequest(method, l.E.MailAddrs["graph"]+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := l.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := graph("GET", "/me/messages", "", ""); st != 503 {
		t.Fatalf("the scenario's fault: %d, want 503", st)
	}
	form := passwordForm(world.Alice, "alice-password")
	form.Set("scope", "https://graph.microsoft.com/Mail.ReadWrite")
	st, m := l.tokenFor(t, form)
	tok, _ := m["access_token"].(string)
	if st != 200 || tok == "" {
		t.Fatalf("token: %d %v", st, m["error_description"])
	}
	if st, body := graph("POST", "/me/messages", tok, `{"subject":"draft before reset"}`); st != 201 {
		t.Fatalf("draft: %d %s", st, body)
	}
	l.want(t, 204, "POST", "/reset", nil)
	if st, _ := graph("GET", "/me/messages", "", ""); st != 503 {
		t.Errorf("the scenario's fault after reset: %d, want 503 again", st)
	}
	if st, body := graph("GET", "/me/mailFolders/drafts/messages", tok, ""); st != 200 || strings.Contains(body, "draft before reset") {
		t.Errorf("Drafts after reset: %d %.300s", st, body)
	}
}

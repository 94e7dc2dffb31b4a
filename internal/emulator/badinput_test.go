package emulator_test

// Malformed requests: each gets an OAuth error (or a 404/405, or an error page for the HTML
// endpoints), never a 5xx, a panic or a dropped connection, and the emulator keeps serving.

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	v := shared(t, envAuto)
	good := v.secretForm("daemon", exchangeAppDef)
	noise := make([]byte, 4096)
	rand.Read(noise)
	huge := "grant_type=client_credentials&client_id=" + world.DaemonClientID + "&scope=" + strings.Repeat("a", 100<<10)
	almost := "grant_type=client_credentials&client_id=" + world.DaemonClientID + "&client_secret=" + strings.Repeat("x", 60<<10) + "&scope=" + url.QueryEscape(exchangeAppDef)

	type body struct {
		name, contentType string
		body              []byte
		// for the token endpoint: the status, OAuth error and AADSTS code (0: any) expected
		status int
		err    string
		code   int
	}
	const form = "application/x-www-form-urlencoded"
	bodies := []body{
		{"invalid percent-encoding", form, []byte("grant_type=client_credentials&client_id=%zz&scope=%"), 400, "", 9002313},
		{"lone percent", form, []byte("grant_type=%"), 400, "", 9002313},
		{"unknown grant type", form, []byte("grant_type=magic&client_id=" + world.DaemonClientID), 400, "unsupported_grant_type", 70003},
		{"grant type with different case", form, []byte("grant_type=CLIENT_CREDENTIALS&client_id=" + world.DaemonClientID), 400, "unsupported_grant_type", 70003},
		{"oversized body", form, []byte(huge), 413, "", 0},
		{"large body under the limit", form, []byte(almost), 401, "invalid_client", 7000215},
		{"JSON instead of a form", "application/json", []byte(`{"grant_type":"client_credentials","client_id":"` + world.DaemonClientID + `"}`), 400, "invalid_request", 900144},
		{"empty body", form, nil, 400, "invalid_request", 900144},
		{"no content type", "", []byte(good.Encode()), 400, "invalid_request", 900144},
		{"multipart", "multipart/form-data; boundary=xyz", []byte("--xyz\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--xyz--\r\n"), 400, "invalid_request", 900144},
		{"broken multipart", "multipart/form-data", []byte("--"), 400, "", 0},
		{"malformed content type", "application/x-www-form-urlencoded; charset", []byte(good.Encode()), 400, "", 0},
		{"binary noise", form, noise, 400, "", 0},
		{"NUL bytes and unicode", form, []byte("grant_type=client_credentials&client_id=%00%ff\u2603&client_secret=%00&scope=%F0%9F%98%80"), 400, "", 0},
		{"only separators", form, []byte("&&&===&"), 400, "invalid_request", 900144},
		{"garbage assertion", form, []byte(assertionForm(world.DaemonClientID, strings.Repeat("e30.", 500), exchangeAppDef).Encode()), 401, "invalid_client", 50027},
		{"assertion that is not base64", form, []byte(assertionForm(world.DaemonClientID, "!!!.???.***", exchangeAppDef).Encode()), 401, "invalid_client", 50027},
		{"authorization_code without anything", form, []byte("grant_type=authorization_code&client_id=" + world.DesktopClientID), 400, "invalid_request", 900144},
		{"device_code without anything", form, []byte("grant_type=device_code&client_id=" + world.DesktopClientID), 400, "invalid_request", 900144},
		{"password without anything", form, []byte("grant_type=password&client_id=" + world.DesktopClientID), 400, "invalid_request", 900144},
		{"refresh_token without anything", form, []byte("grant_type=refresh_token&client_id=" + world.DesktopClientID), 400, "invalid_request", 900144},
	}
	for _, endpoint := range []string{tokenPath("contoso"), deviceCodePath("contoso")} {
		for _, b := range bodies {
			t.Run(endpoint+"/"+b.name, func(t *testing.T) {
				r := v.post(t, endpoint, b.contentType, b.body)
				if endpoint == tokenPath("contoso") {
					wantAAD(t, r, b.status, b.err, b.code)
				} else if r.Status >= 500 || r.Status < 400 && r.Status != http.StatusOK {
					t.Fatalf("devicecode answered %s", r)
				} else if r.Status != http.StatusOK {
					wantAAD(t, r, r.Status, "", 0)
				}
				if b.name == "oversized body" {
					wantAAD(t, r, http.StatusRequestEntityTooLarge, "", 0)
				}
			})
		}
	}

	t.Run("methods other than POST", func(t *testing.T) {
		for _, path := range []string{tokenPath("contoso"), deviceCodePath("contoso")} {
			for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
				req, _ := http.NewRequest(method, v.url(path), strings.NewReader(good.Encode()))
				req.Header.Set("Content-Type", form)
				if r := do(t, v.C, req); r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed {
					t.Errorf("%s %s: %d, want 404 or 405", method, path, r.Status)
				}
			}
		}
	})
	t.Run("unknown paths", func(t *testing.T) {
		for _, path := range []string{"/", "/contoso", "/contoso/oauth2/v2.0/nothing", "/contoso/oauth2/token/extra", "/%2e%2e/etc/passwd", "/contoso/v2.0/.well-known/nothing"} {
			if r := v.get(t, path); r.Status != http.StatusNotFound && r.Status != http.StatusBadRequest {
				t.Errorf("GET %s: %d, want 404", path, r.Status)
			}
		}
	})
	t.Run("authorize with a malformed query", func(t *testing.T) {
		for _, q := range []string{"client_id=%zz", "%", "client_id=" + world.DesktopClientID + "&redirect_uri=%zz", "client_id=" + world.DesktopClientID + "&redirect_uri=" + url.QueryEscape("http://localhost:1") + "&response_type=code&scope=%FF%FE"} {
			r := v.get(t, authorizePath("contoso")+"?"+q)
			if r.Status >= 500 || (r.Status == http.StatusOK && !bytes.Contains(r.Body, []byte("AADSTS"))) {
				t.Errorf("authorize?%s: %s", q, r)
			}
		}
	})
	t.Run("HTML form endpoints", func(t *testing.T) {
		for _, path := range []string{"/devicelogin", "/contoso/oauth2/v2.0/login"} {
			for _, b := range []body{bodies[0], bodies[4], bodies[12], {name: "empty", contentType: form}} {
				r := v.post(t, path, b.contentType, b.body)
				if r.Status >= 500 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
					t.Errorf("POST %s (%s): %d %s", path, b.name, r.Status, r.Header.Get("Content-Type"))
				}
			}
		}
	})
	// After all of that the emulator still issues tokens.
	v.mustToken(t, "contoso", good)
}

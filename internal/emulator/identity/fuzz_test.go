package identity_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/identity"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

const fuzzSecret = "abc8Q~fuzz-secret-value-0123456789abcdef"

// fuzzServer is an identity.Server over the default world, with a known daemon secret.
func fuzzServer(f *testing.F) *identity.Server {
	f.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz signing"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour * 24)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	w := world.Default()
	w.App("daemon").Secrets = []world.Secret{{Value: fuzzSecret}}
	w.App("daemon").Certificates = []*x509.Certificate{cert}
	if err := w.Resolve(world.NewID); err != nil {
		f.Fatal(err)
	}
	s, err := identity.New(identity.Config{World: world.NewLive(w, nil), Key: key, Cert: cert, AutoApprove: world.Alice})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzTokenEndpoint posts arbitrary bodies with arbitrary content types to the token and devicecode
// endpoints: every answer must be a 2xx or a 4xx, and a 4xx must be Entra's JSON error.
func FuzzTokenEndpoint(f *testing.F) {
	s := fuzzServer(f)
	h := s.Handler()
	const form = "application/x-www-form-urlencoded"
	scope := "https://outlook.office.com/IMAP.AccessAsUser.All openid offline_access profile"
	enc := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	// What MSAL for Go sends (research/msal-go.md), and some near misses.
	seeds := []struct {
		devicecode  bool
		contentType string
		body        string
	}{
		{false, form, enc("client_id", world.DaemonClientID, "client_secret", fuzzSecret, "grant_type", "client_credentials", "scope", "https://outlook.office365.com/.default openid offline_access profile")},
		{false, form, enc("client_id", world.DaemonClientID, "client_assertion", "eyJhbGciOiJQUzI1NiIsInR5cCI6IkpXVCIsIng1dCNTMjU2IjoiYWJjPSJ9.eyJhdWQiOiJ4In0.c2ln", "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_info", "1", "grant_type", "client_credentials", "scope", "https://outlook.office365.com/.default openid offline_access profile")},
		{true, form, enc("client_id", world.DesktopClientID, "scope", scope)},
		{false, form, enc("client_id", world.DesktopClientID, "grant_type", "device_code", "device_code", "DAQABAAEAAAxyz", "client_info", "1", "scope", scope)},
		{false, form, enc("client_id", world.DesktopClientID, "grant_type", "urn:ietf:params:oauth:grant-type:device_code", "device_code", "DAQABAAEAAAxyz")},
		{false, form, enc("client_id", world.DesktopClientID, "grant_type", "authorization_code", "code", "1.Axyz", "code_verifier", "abc", "redirect_uri", "http://localhost:1234", "client_info", "1", "scope", scope)},
		{false, form, enc("client_id", world.DesktopClientID, "grant_type", "refresh_token", "refresh_token", "0.Axyz", "client_info", "1", "scope", scope)},
		{false, form, enc("client_id", world.DesktopClientID, "grant_type", "password", "username", world.Alice, "password", "alice-password", "client_info", "1", "scope", scope)},
		{false, form, enc("client_id", world.DesktopClientID, "grant_type", "password", "username", world.Alice, "password", "alice-password", "scope", "IMAP.AccessAsUser.All")},
		{false, form, "grant_type=client_credentials&client_id=%zz"},
		{false, "application/json", `{"grant_type":"client_credentials"}`},
		{false, "multipart/form-data; boundary=x", "--x\r\n\r\n--x--"},
		{true, "", ""},
		{true, form, "scope=%"},
	}
	for _, sd := range seeds {
		f.Add(sd.devicecode, sd.contentType, []byte(sd.body))
	}
	f.Fuzz(func(t *testing.T, devicecode bool, contentType string, body []byte) {
		path := "/contoso/oauth2/v2.0/token"
		if devicecode {
			path = "/contoso/oauth2/v2.0/devicecode"
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req) // a panic fails the fuzz target
		switch {
		case rec.Code >= 200 && rec.Code < 300:
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%d with a body that is not JSON: %q", rec.Code, rec.Body.Bytes())
			}
		case rec.Code >= 400 && rec.Code < 500:
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
				Codes       []int  `json:"error_codes"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || !strings.HasPrefix(e.Description, "AADSTS") || len(e.Codes) != 1 {
				t.Fatalf("%d without Entra's error JSON: %q", rec.Code, rec.Body.Bytes())
			}
		default:
			t.Fatalf("status %d for %q %q: %s", rec.Code, contentType, body, rec.Body.Bytes())
		}
	})
}

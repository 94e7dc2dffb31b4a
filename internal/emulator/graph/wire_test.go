package graph_test

// Graph's wire shapes, over raw HTTPS against the in-process emulator (trusting only its CA).

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

type env struct {
	E  *emulator.Emulator
	HC *http.Client
}

func start(t *testing.T) *env {
	t.Helper()
	return startWorld(t, nil)
}

// startWorld starts an emulator of w (nil: the default world).
func startWorld(t *testing.T, w *world.World) *env {
	t.Helper()
	e, err := emulator.Start(context.Background(), emulator.Options{World: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.CAPEM())
	return &env{E: e, HC: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
}

func (v *env) appToken(t *testing.T) string {
	t.Helper()
	resp, err := v.HC.PostForm(v.E.Authority()+"/contoso.test/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {v.E.World().App("daemon").ClientID}, "client_secret": {v.E.Credentials["daemon"].Secret}, "scope": {"https://graph.microsoft.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.AccessToken == "" {
		t.Fatal("no token")
	}
	return out.AccessToken
}

// userToken is alice's delegated Graph token for Mail.ReadWrite.
func (v *env) userToken(t *testing.T) string {
	t.Helper()
	return v.scopedToken(t, "https://graph.microsoft.com/Mail.ReadWrite")
}

type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (v *env) do(t *testing.T, method, u, tok, ct string, body []byte, hdr ...string) answer {
	t.Helper()
	if !strings.HasPrefix(u, "https://") {
		u = v.E.MailAddrs["graph"] + u
	}
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := v.HC.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func wantError(t *testing.T, a answer, status int, code string) {
	t.Helper()
	var env struct {
		Error struct {
			Code, Message string
			InnerError    map[string]string `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.Body, &env); err != nil || a.Status != status || env.Error.Code != code {
		t.Fatalf("got %d %s, want %d %s", a.Status, a.Body, status, code)
	}
	ie := env.Error.InnerError
	if env.Error.Message == "" || ie["date"] == "" || ie["request-id"] == "" || ie["client-request-id"] == "" || ie["request-id"] != a.Header.Get("request-id") {
		t.Fatalf("error envelope incomplete: %s", a.Body)
	}
}

func TestWireErrors(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	a := v.do(t, "GET", "/users/alice@contoso.test/mailFolders", "", "", nil)
	wantError(t, a, 401, "InvalidAuthenticationToken")
	if !strings.Contains(a.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Error("no WWW-Authenticate")
	}
	wantError(t, v.do(t, "GET", "/users/alice@contoso.test/messages/AAMkmissing", tok, "", nil), 404, "ErrorItemNotFound")
	wantError(t, v.do(t, "GET", "/users/nobody@contoso.test/messages", tok, "", nil), 404, "ErrorInvalidUser")
	wantError(t, v.do(t, "GET", "/me/messages", tok, "", nil), 400, "BadRequest")
	wantError(t, v.do(t, "GET", "/users/alice@contoso.test/messages?$filter=isRead%20eq", tok, "", nil), 400, "ErrorInvalidUrlQueryFilter")
	wantError(t, v.do(t, "POST", "/users/alice@contoso.test/sendMail", tok, "application/json", []byte(`{"message":{"subject":"x","toRecipients":[{"emailAddress":{"address":"bad"}}]}}`)), 400, "ErrorInvalidRecipients")
	wantError(t, v.do(t, "POST", "/users/alice@contoso.test/sendMail", tok, "application/json", []byte(`{"message":{"subject":"x","from":{"emailAddress":{"address":"bob@contoso.test"}},"toRecipients":[{"emailAddress":{"address":"bob@contoso.test"}}]}}`)), 403, "ErrorSendAsDenied")
	wantError(t, v.do(t, "POST", "/users/alice@contoso.test/sendMail", tok, "text/plain", []byte("!!not base64!!")), 400, "ErrorMimeContentInvalidBase64String")
	wantError(t, v.do(t, "POST", "/users/alice@contoso.test/sendMail", tok, "application/json", bytes.Repeat([]byte(" "), 6<<20)), 413, "ErrorRequestEntityTooLarge")
	a = v.do(t, "GET", "/users/alice@contoso.test/mailFolders", tok, "", nil, "client-request-id", "abc-123")
	if a.Status != 200 || a.Header.Get("client-request-id") != "abc-123" {
		t.Errorf("client-request-id not echoed: %d %v", a.Status, a.Header)
	}
}

// TestWireAccessPolicyAndRESTDisabled: an application access policy keeps the app out of the
// mailboxes it does not list (403 ErrorAccessDenied "Access to OData is disabled: ..."), and a
// mailbox out of Graph's reach gets 404 MailboxNotEnabledForRESTAPI, for app and user alike.
func TestWireAccessPolicyAndRESTDisabled(t *testing.T) {
	w := world.Default()
	w.Tenants[0].ApplicationAccessPolicies = []*world.ApplicationAccessPolicy{{App: "daemon", Mailboxes: []string{"bob@contoso.test", "support@contoso.test"}}}
	w.Tenants[0].SharedMailboxes[0].Mailbox.RESTDisabled = true // support@, which alice holds FullAccess on
	v := startWorld(t, w)
	app, user := v.appToken(t), v.userToken(t)
	if a := v.do(t, "GET", "/users/bob@contoso.test/mailFolders", app, "", nil); a.Status != 200 {
		t.Fatalf("a mailbox the policy lists: %d %s", a.Status, a.Body)
	}
	a := v.do(t, "GET", "/users/alice@contoso.test/mailFolders", app, "", nil)
	wantError(t, a, 403, "ErrorAccessDenied")
	if !strings.Contains(string(a.Body), "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.") {
		t.Errorf("policy refusal: %s", a.Body)
	}
	for _, tok := range []string{app, user} {
		a := v.do(t, "GET", "/users/support@contoso.test/mailFolders", tok, "", nil)
		wantError(t, a, 404, "MailboxNotEnabledForRESTAPI")
		if !strings.Contains(string(a.Body), "The mailbox is either inactive, soft-deleted, or is hosted on-premise.") {
			t.Errorf("REST disabled: %s", a.Body)
		}
	}
	// A policy binds app-only tokens only: alice herself opens her mailbox.
	if a := v.do(t, "GET", "/me/mailFolders", user, "", nil); a.Status != 200 {
		t.Errorf("delegated, own mailbox: %d %s", a.Status, a.Body)
	}
}

func TestWireSendMIME(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	mime := "From: alice@contoso.test\r\nTo: bob@contoso.test\r\nBcc: support@contoso.test\r\nSubject: mime\r\n\r\nhello\r\n"
	a := v.do(t, "POST", "/users/alice@contoso.test/sendMail", tok, "text/plain", []byte(base64.StdEncoding.EncodeToString([]byte(mime))))
	if a.Status != 202 || len(a.Body) != 0 {
		t.Fatalf("%d %s", a.Status, a.Body)
	}
	for _, box := range []string{world.Bob, "support@contoso.test"} {
		list, _ := v.E.Store.List(box, mailstore.Inbox)
		if len(list) != 1 || bytes.Contains(list[0].Data, []byte("Bcc:")) {
			t.Fatalf("%s: %d messages", box, len(list))
		}
	}
	// $value gives the stored bytes.
	list, _ := v.E.Store.List(world.Bob, mailstore.Inbox)
	a = v.do(t, "GET", "/users/bob@contoso.test/messages/"+list[0].ID+"/$value", tok, "", nil)
	if a.Status != 200 || !bytes.Equal(a.Body, list[0].Data) {
		t.Fatalf("$value: %d", a.Status)
	}
}

func TestWireUploadSession(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	a := v.do(t, "POST", "/users/alice@contoso.test/messages", tok, "application/json",
		[]byte(`{"subject":"big","toRecipients":[{"emailAddress":{"address":"bob@contoso.test"}}]}`))
	if a.Status != 201 {
		t.Fatalf("draft: %d %s", a.Status, a.Body)
	}
	var draft struct{ ID string }
	json.Unmarshal(a.Body, &draft)
	data := bytes.Repeat([]byte("0123456789abcdef"), 5<<16) // 5 MiB
	a = v.do(t, "POST", "/users/alice@contoso.test/messages/"+draft.ID+"/attachments/createUploadSession", tok, "application/json",
		[]byte(fmt.Sprintf(`{"AttachmentItem":{"attachmentType":"file","name":"big.bin","size":%d}}`, len(data))))
	var sess struct {
		UploadURL          string   `json:"uploadUrl"`
		Expiration         string   `json:"expirationDateTime"`
		NextExpectedRanges []string `json:"nextExpectedRanges"`
	}
	json.Unmarshal(a.Body, &sess)
	if a.Status != 201 || sess.UploadURL == "" || sess.Expiration == "" || len(sess.NextExpectedRanges) != 1 || sess.NextExpectedRanges[0] != "0-" {
		t.Fatalf("session: %d %s", a.Status, a.Body)
	}
	put := func(from, to int) answer {
		return v.do(t, "PUT", sess.UploadURL, "", "application/octet-stream", data[from:to],
			"Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, len(data)))
	}
	half := 3 << 20
	wantError(t, put(1000, 2000), 416, "ErrorInvalidRange") // not the next byte
	a = put(0, half)                                        // no Authorization header
	if a.Status != 200 || !bytes.Contains(a.Body, []byte(`"nextExpectedRanges":["3145728"]`)) || !bytes.Contains(a.Body, []byte(`"ExpirationDateTime"`)) {
		t.Fatalf("chunk 1: %d %s", a.Status, a.Body)
	}
	a = put(half, len(data))
	if a.Status != 201 || a.Header.Get("Location") == "" || len(a.Body) != 0 {
		t.Fatalf("last chunk: %d %s", a.Status, a.Body)
	}
	wantError(t, put(0, 10), 404, "ErrorItemNotFound") // the session is over
	a = v.do(t, "POST", "/users/alice@contoso.test/messages/"+draft.ID+"/send", tok, "", nil)
	if a.Status != 202 {
		t.Fatalf("send: %d %s", a.Status, a.Body)
	}
	list, _ := v.E.Store.List(world.Bob, mailstore.Inbox)
	if len(list) != 1 {
		t.Fatalf("bob has %d messages", len(list))
	}
	a = v.do(t, "GET", "/users/bob@contoso.test/messages/"+list[0].ID+"/attachments", tok, "", nil)
	var atts struct {
		Value []struct {
			Name         string
			ContentBytes []byte
		}
	}
	json.Unmarshal(a.Body, &atts)
	if len(atts.Value) != 1 || atts.Value[0].Name != "big.bin" || !bytes.Equal(atts.Value[0].ContentBytes, data) {
		t.Fatalf("attachment differs")
	}
	wantError(t, v.do(t, "GET", "/users/alice@contoso.test/messages/"+draft.ID, tok, "", nil), 404, "ErrorItemNotFound")
}

// TestWireMessageSize: PidTagMessageSize through $expand=singleValueExtendedProperties, as Graph
// writes it ("Integer 0xe08", the value a string), in lists (with $select too) and on one message.
func TestWireMessageSize(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	mime := "From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: sized\r\n\r\nhello\r\n"
	if a := v.do(t, "POST", "/users/alice@contoso.test/sendMail", tok, "text/plain", []byte(base64.StdEncoding.EncodeToString([]byte(mime)))); a.Status != 202 {
		t.Fatalf("send: %d %s", a.Status, a.Body)
	}
	list, _ := v.E.Store.List(world.Bob, mailstore.Inbox)
	if len(list) != 1 {
		t.Fatalf("%d messages", len(list))
	}
	want := fmt.Sprintf(`"singleValueExtendedProperties":[{"id":"Integer 0xe08","value":"%d"}]`, len(list[0].Data))
	exp := "$expand=" + url.QueryEscape("singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')")
	for _, u := range []string{
		"/users/bob@contoso.test/mailFolders/inbox/messages?" + exp,
		"/users/bob@contoso.test/messages?$select=subject&" + strings.ReplaceAll(exp, "+", "%20"),
		"/users/bob@contoso.test/messages/" + list[0].ID + "?" + exp,
	} {
		a := v.do(t, "GET", u, tok, "", nil)
		if a.Status != 200 || !strings.Contains(string(a.Body), want) {
			t.Errorf("GET %s: %d %s, want %s", u, a.Status, a.Body, want)
		}
	}
	if a := v.do(t, "GET", "/users/bob@contoso.test/messages", tok, "", nil); a.Status != 200 || strings.Contains(string(a.Body), "singleValueExtendedProperties") {
		t.Errorf("without $expand: %d %s", a.Status, a.Body)
	}
	// An unknown property is absent; an $expand the emulator does not support is refused.
	a := v.do(t, "GET", "/users/bob@contoso.test/messages?$expand="+url.QueryEscape("singleValueExtendedProperties($filter=id eq 'String 0x1000')"), tok, "", nil)
	if a.Status != 200 || strings.Contains(string(a.Body), "singleValueExtendedProperties") {
		t.Errorf("unknown property: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "GET", "/users/bob@contoso.test/messages?$expand=extensions", tok, "", nil), 400, "BadRequest")
}

// TestWireGraphGatewayScenario: in graph-gateway.toml alice's IMAP is refused while Graph serves
// her mailbox to her delegated token and to the daemon.
func TestWireGraphGatewayScenario(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "world", "testdata", "graph-gateway.toml"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := world.ParseScenario("graph-gateway.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	v := startWorld(t, w)
	if a := v.do(t, "GET", "/me/mailFolders/inbox/messages", v.userToken(t), "", nil); a.Status != 200 {
		t.Errorf("alice's delegated Graph: %d %s", a.Status, a.Body)
	}
	if a := v.do(t, "GET", "/users/alice@contoso.test/mailFolders/inbox/messages/delta", v.appToken(t), "", nil); a.Status != 200 {
		t.Errorf("the daemon's Graph: %d %s", a.Status, a.Body)
	}
	c := v.imapLogin(t)
	if _, err := c.Select("INBOX", nil).Wait(); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("IMAP SELECT on an IMAP-disabled mailbox: %v", err)
	}
}

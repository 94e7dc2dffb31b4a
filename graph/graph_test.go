package graph_test

// Real HTTPS against the in-process emulator, trusting only its CA (the written ca.pem).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

const (
	alice   = world.Alice
	bob     = world.Bob
	support = "support@contoso.test"
)

// testWorld is the default world plus app "reader": Graph Mail.ReadWrite only (no Mail.Send).
func testWorld(faults ...world.Fault) *world.World {
	w := world.Default()
	w.Apps = append(w.Apps, &world.App{Name: "reader", Tenant: "contoso",
		Application: []string{world.GraphResource + "/Mail.ReadWrite"}, AdminConsented: true})
	w.Faults = faults
	return w
}

type env struct {
	E   *emulator.Emulator
	M   *auth.Manager
	HC  *http.Client
	dir string
}

func newEnv(t testing.TB, w *world.World) *env {
	t.Helper()
	e, err := emulator.Start(context.Background(), emulator.Options{World: w})
	if err != nil {
		t.Fatalf("emulator.Start: %v", err)
	}
	dir, err := os.MkdirTemp("", "graphtest")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.WriteData(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "mailoauth.toml"))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return &env{E: e, M: auth.New(cfg, auth.Options{}), HC: hc, dir: dir}
}

func (v *env) close() {
	v.HC.CloseIdleConnections()
	v.E.Close()
	os.RemoveAll(v.dir)
}

var (
	sharedOnce sync.Once
	sharedEnv  *env
)

func shared(t testing.TB) *env {
	t.Helper()
	sharedOnce.Do(func() { sharedEnv = newEnv(t, testWorld()) })
	return sharedEnv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEnv != nil {
		sharedEnv.close()
	}
	os.Exit(code)
}

// account is a client for a written account (client credentials: daemon, daemon-bob).
func (v *env) account(t testing.TB, name string) *graph.Client {
	t.Helper()
	a, err := v.M.Account(name)
	if err != nil {
		t.Fatal(err)
	}
	return graph.ForAccount(a)
}

// token asks the emulator's token endpoint directly.
func (v *env) token(t testing.TB, form url.Values) string {
	t.Helper()
	resp, err := v.HC.PostForm(v.E.Authority()+"/contoso.test/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Desc        string `json:"error_description"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.AccessToken == "" {
		t.Fatalf("token: %d %s", resp.StatusCode, out.Desc)
	}
	return out.AccessToken
}

func (v *env) userToken(t testing.TB, upn, password, scope string) string {
	return v.token(t, url.Values{"grant_type": {"password"}, "client_id": {v.E.World().App("desktop").ClientID},
		"username": {upn}, "password": {password}, "scope": {scope}})
}

func (v *env) appToken(t testing.TB, app, scope string) string {
	return v.token(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {v.E.World().App(app).ClientID},
		"client_secret": {v.E.Credentials[app].Secret}, "scope": {scope}})
}

func static(tok string) token.Source {
	return token.Static(&token.Token{AccessToken: tok, ExpiresOn: time.Now().Add(time.Hour), Resource: token.Graph})
}

// client builds a client from a raw token: delegated (/me) unless mailbox is set (/users/{mailbox}).
func (v *env) client(tok, mailbox string) *graph.Client {
	return graph.New(graph.Options{BaseURL: v.E.MailAddrs["graph"], Tokens: static(tok), HTTPClient: v.HC, Mailbox: mailbox})
}

func random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func findBySubject(t testing.TB, msgs []*graph.Message, subject string) *graph.Message {
	t.Helper()
	for _, m := range msgs {
		if m.Subject == subject {
			return m
		}
	}
	t.Fatalf("no message %q among %d", subject, len(msgs))
	return nil
}

func wantGraphErr(t testing.TB, err error, status int, code string) {
	t.Helper()
	var ge *graph.Error
	if !errors.As(err, &ge) {
		t.Fatalf("error %v (%T), want *graph.Error %d %s", err, err, status, code)
	}
	if ge.Status != status || ge.Code != code {
		t.Fatalf("error %d %s (%v), want %d %s", ge.Status, ge.Code, ge, status, code)
	}
	if ge.RequestID == "" {
		t.Errorf("error without request-id: %v", ge)
	}
}

func TestSendWithAttachmentsAndRead(t *testing.T) {
	v := shared(t)
	ctx := context.Background()
	sender := v.account(t, "daemon")     // app-only, mailbox alice
	reader := v.account(t, "daemon-bob") // app-only, mailbox bob
	small := random(t, 20<<10)
	large := random(t, 3<<20+123457) // > 3 MB: upload session, two chunks
	subject := fmt.Sprintf("Grüße aus Köln — 東京 %d", time.Now().UnixNano())
	var progress int64
	sender.Progress = func(sent, total int64) { progress = sent }
	err := sender.SendMail(ctx, &graph.Message{
		Subject: subject, To: []graph.Address{{Name: "Bob Ünïcode", Address: bob}}, Body: "<p>Bonjour, ça va ?</p>", HTML: true,
		Attachments: []graph.Attachment{
			{Name: "résumé.txt", ContentType: "text/plain", Content: small},
			{Name: "données 大.bin", ContentType: "application/octet-stream", Content: large},
		},
	})
	if err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if progress != int64(len(large)) {
		t.Errorf("progress %d, want %d", progress, len(large))
	}
	msgs, err := reader.ListMessages(ctx, "inbox", graph.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := findBySubject(t, msgs, subject)
	if !m.HasAttachments || m.IsRead || m.From == nil || !strings.EqualFold(m.From.Address, alice) || !m.HTML {
		t.Errorf("message %+v", m)
	}
	full, err := reader.GetMessage(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(full.Body, "ça va") || full.InternetMessageID == "" || full.Received.IsZero() {
		t.Errorf("GetMessage: %+v", full)
	}
	atts, err := reader.Attachments(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 || atts[0].Name != "résumé.txt" || !bytes.Equal(atts[0].Content, small) ||
		atts[1].Name != "données 大.bin" || !bytes.Equal(atts[1].Content, large) {
		t.Fatalf("attachments differ: %d", len(atts))
	}
	// The same bytes in the store (what IMAP and POP3 serve) and through $value.
	mime, err := reader.GetMIME(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := v.E.Store.Get(bob, mailstore.Inbox, m.ID)
	if err != nil || !bytes.Equal(stored.Data, mime) {
		t.Fatalf("store and $value differ: %v", err)
	}
	if !bytes.Contains(mime, []byte("Subject: =?utf-8?")) {
		t.Errorf("subject not RFC 2047-encoded:\n%s", mime[:min(len(mime), 600)])
	}
	// A copy in alice's Sent Items, none left in Drafts.
	sent, err := sender.ListMessages(ctx, "sentitems", graph.ListOptions{Select: []string{"subject"}})
	if err != nil {
		t.Fatal(err)
	}
	findBySubject(t, sent, subject)
	drafts, err := sender.ListMessages(ctx, "drafts", graph.ListOptions{})
	if err != nil || len(drafts) != 0 {
		t.Errorf("drafts left: %d %v", len(drafts), err)
	}
}

func TestSendInlineDelegated(t *testing.T) {
	v := shared(t)
	ctx := context.Background()
	tok := v.userToken(t, alice, "alice-password", "https://graph.microsoft.com/Mail.ReadWrite https://graph.microsoft.com/Mail.Send")
	me := v.client(tok, "")
	subject := "inline " + time.Now().Format(time.RFC3339Nano)
	att := random(t, 100<<10)
	if err := me.SendMail(ctx, &graph.Message{Subject: subject, To: []graph.Address{{Address: bob}}, Bcc: []graph.Address{{Address: support}},
		Body: "plain text", Attachments: []graph.Attachment{{Name: "a.bin", Content: att}}}); err != nil {
		t.Fatal(err)
	}
	for _, box := range []string{bob, support} {
		list, _ := v.E.Store.List(box, mailstore.Inbox)
		found := false
		for _, m := range list {
			if bytes.Contains(m.Data, []byte(subject)) {
				found = true
				if bytes.Contains(m.Data, []byte("Bcc:")) {
					t.Errorf("%s: Bcc header delivered", box)
				}
			}
		}
		if !found {
			t.Errorf("%s did not receive the message", box)
		}
	}
	// Delegated alice reads the shared mailbox she has FullAccess on.
	if _, err := v.client(tok, support).ListMessages(ctx, "inbox", graph.ListOptions{}); err != nil {
		t.Errorf("alice on support@: %v", err)
	}
	// ...but not bob's.
	_, err := v.client(tok, bob).ListMessages(ctx, "inbox", graph.ListOptions{})
	wantGraphErr(t, err, 403, "ErrorAccessDenied")
	// Sending with no recipients.
	err = me.SendMail(ctx, &graph.Message{Subject: "nobody"})
	wantGraphErr(t, err, 400, "ErrorInvalidRecipients")
	err = me.SendMail(ctx, &graph.Message{Subject: "bad", To: []graph.Address{{Address: "not an address"}}})
	wantGraphErr(t, err, 400, "ErrorInvalidRecipients")
}

func TestPagingFilterSelect(t *testing.T) {
	v := shared(t)
	ctx := context.Background()
	c := v.account(t, "daemon-bob")
	f, err := c.CreateFolder(ctx, "Paging "+time.Now().Format("150405.000000"))
	if err != nil {
		t.Fatal(err)
	}
	name := f.DisplayName
	base := time.Now().Add(-time.Hour)
	for i := range 23 {
		var flags []string
		if i%3 == 0 {
			flags = []string{mailstore.FlagSeen}
		}
		data := fmt.Sprintf("From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: page %02d\r\n\r\nbody %d\r\n", i, i)
		if _, err := v.E.Store.Append(bob, name, []byte(data), flags, base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := c.ListMessages(ctx, f.ID, graph.ListOptions{Top: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 23 || all[0].Subject != "page 22" || all[22].Subject != "page 00" {
		t.Fatalf("got %d messages, first %q", len(all), all[0].Subject)
	}
	unread, err := c.ListMessages(ctx, f.ID, graph.ListOptions{Top: 5, Unread: true, Select: []string{"subject", "isRead"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(unread) != 15 {
		t.Fatalf("unread: %d, want 15", len(unread))
	}
	for _, m := range unread {
		if m.IsRead || m.Body != "" || m.ID == "" {
			t.Errorf("unread with $select: %+v", m)
		}
	}
	limited, err := c.ListMessages(ctx, f.ID, graph.ListOptions{Top: 4, Limit: 6})
	if err != nil || len(limited) != 6 {
		t.Fatalf("limit: %d %v", len(limited), err)
	}
	if err := c.MarkRead(ctx, unread[0].ID, true); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.GetMessage(ctx, unread[0].ID); !m.IsRead {
		t.Error("MarkRead did not stick")
	}
}

func TestFoldersMoveDelete(t *testing.T) {
	v := shared(t)
	ctx := context.Background()
	c := v.account(t, "daemon")
	folders, err := c.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range folders {
		names[f.DisplayName] = true
	}
	for _, n := range []string{"Inbox", "Drafts", "Sent Items", "Deleted Items", "Junk Email", "Archive"} {
		if !names[n] {
			t.Errorf("folder %s missing from %v", n, names)
		}
	}
	created, err := c.CreateFolder(ctx, "Projets été")
	if err != nil {
		t.Fatal(err)
	}
	if created.DisplayName != "Projets été" || created.ID == "" {
		t.Errorf("created %+v", created)
	}
	if v.E.Store.Mailbox(alice).Folder("Projets été") == nil {
		t.Error("the folder is not in the store (IMAP would not see it)")
	}
	_, err = c.CreateFolder(ctx, "Projets été")
	wantGraphErr(t, err, 409, "ErrorFolderExists")

	msg, err := v.E.Store.Append(alice, mailstore.Inbox, []byte("From: bob@contoso.test\r\nSubject: to archive\r\n\r\nx\r\n"), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	moved, err := c.Move(ctx, msg.ID, "archive")
	if err != nil {
		t.Fatal(err)
	}
	// A move gives the message a new id, as Graph's default ids do.
	if _, err := v.E.Store.Get(alice, mailstore.Archive, moved.ID); err != nil {
		t.Errorf("not in Archive: %v", err)
	}
	if moved, err = c.Move(ctx, moved.ID, created.ID); err != nil {
		t.Fatalf("move to a created folder: %v", err)
	}
	if err := c.Delete(ctx, moved.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.E.Store.Find(alice, moved.ID); err == nil {
		t.Error("deleted message still in the store")
	}
	_, err = c.GetMessage(ctx, moved.ID)
	wantGraphErr(t, err, 404, "ErrorItemNotFound")
	if !graph.IsNotFound(err) {
		t.Error("IsNotFound false")
	}
}

func TestRefusals(t *testing.T) {
	v := shared(t)
	ctx := context.Background()
	// An Exchange token at Graph: wrong audience.
	exo := v.appToken(t, "daemon", "https://outlook.office365.com/.default")
	_, err := v.client(exo, alice).Folders(ctx)
	wantGraphErr(t, err, 401, "InvalidAuthenticationToken")
	if strings.Contains(err.Error(), exo) {
		t.Fatal("the token is in the error")
	}
	// An app with Mail.ReadWrite but not Mail.Send.
	rd := v.client(v.appToken(t, "reader", "https://graph.microsoft.com/.default"), alice)
	if _, err := rd.Folders(ctx); err != nil {
		t.Fatalf("reader lists folders: %v", err)
	}
	err = rd.SendMail(ctx, &graph.Message{Subject: "x", To: []graph.Address{{Address: bob}}})
	wantGraphErr(t, err, 403, "ErrorAccessDenied")
	// Delegated /me with an app-only token is Graph's 400.
	_, err = v.client(v.appToken(t, "daemon", "https://graph.microsoft.com/.default"), "").Folders(ctx)
	wantGraphErr(t, err, 400, "BadRequest")
	// A mailbox outside the tenant.
	_, err = v.account(t, "daemon").Move(ctx, "AAMknothere", "archive")
	wantGraphErr(t, err, 404, "ErrorItemNotFound")
}

// refresher hands out a bad token until Refresh is called.
type refresher struct {
	mu        sync.Mutex
	good      string
	refreshed int
}

func (r *refresher) Token(context.Context) (*token.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refreshed == 0 {
		return &token.Token{AccessToken: "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", ExpiresOn: time.Now().Add(time.Hour)}, nil
	}
	return &token.Token{AccessToken: r.good, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (r *refresher) Refresh(ctx context.Context) (*token.Token, error) {
	r.mu.Lock()
	r.refreshed++
	r.mu.Unlock()
	return r.Token(ctx)
}

func TestRefreshOn401(t *testing.T) {
	v := shared(t)
	r := &refresher{good: v.appToken(t, "daemon", "https://graph.microsoft.com/.default")}
	c := graph.New(graph.Options{BaseURL: v.E.MailAddrs["graph"], Tokens: r, HTTPClient: v.HC, Mailbox: alice})
	if _, err := c.Folders(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.refreshed != 1 {
		t.Errorf("refreshed %d times", r.refreshed)
	}
}

func TestThrottlingRetried(t *testing.T) {
	v := newEnv(t, testWorld(world.Fault{Endpoint: "graph", Status: 429, Times: 1}))
	defer v.close()
	c := v.account(t, "daemon")
	start := time.Now()
	if _, err := c.Folders(context.Background()); err != nil {
		t.Fatalf("after a 429: %v", err)
	}
	if n := v.E.Graph.Requests(); n != 2 {
		t.Errorf("%d Graph requests, want 2", n)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v, before Retry-After", d)
	}
}

func TestIMAPSeesGraphMail(t *testing.T) {
	// Graph and IMAP share the store: what Graph delivered is in the store under the id Graph gave
	// (IMAP serves the store's bytes; the exchange package's tests cover IMAP itself).
	v := shared(t)
	ctx := context.Background()
	subject := "shared store " + time.Now().Format(time.RFC3339Nano)
	if err := v.account(t, "daemon").SendMail(ctx, &graph.Message{Subject: subject, To: []graph.Address{{Address: bob}}, Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	list, _ := v.E.Store.List(bob, mailstore.Inbox)
	var id string
	for _, m := range list {
		if bytes.Contains(m.Data, []byte(subject)) {
			id = m.ID
		}
	}
	if id == "" {
		t.Fatal("not delivered")
	}
	m, err := v.account(t, "daemon-bob").GetMessage(ctx, id)
	if err != nil || m.Subject != subject {
		t.Fatalf("%v %+v", err, m)
	}
}

// corrupt is a transport that replaces a text/plain request's body (a MIME sendMail) with what is
// not base64, and counts those requests.
type corrupt struct {
	rt http.RoundTripper
	n  int
}

func (c *corrupt) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Content-Type") == "text/plain" {
		c.n++
		r = r.Clone(r.Context())
		body := []byte("!!not base64!!")
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	return c.rt.RoundTrip(r)
}

// TestSendMIMEAndSize: SendMIME delivers a ready-made message (body and attachment byte-identical,
// Bcc delivered and removed); listing and getting give each message's size, the stored bytes'
// length (IMAP's RFC822.SIZE); Graph's refusals come back as *graph.Error.
func TestSendMIMEAndSize(t *testing.T) {
	v := shared(t)
	ctx := context.Background()
	subject := "mime " + time.Now().Format(time.RFC3339Nano)
	att := random(t, 40<<10)
	enc := base64.StdEncoding.EncodeToString(att)
	var lines []string
	for len(enc) > 76 {
		lines, enc = append(lines, enc[:76]), enc[76:]
	}
	lines = append(lines, enc)
	body := "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello over Graph\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Join(lines, "\r\n") + "\r\n--b--\r\n"
	raw := "From: " + alice + "\r\nTo: " + bob + "\r\nBcc: " + support + "\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body
	if err := v.account(t, "daemon").SendMIME(ctx, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	for _, box := range []string{bob, support} {
		list, _ := v.E.Store.List(box, mailstore.Inbox)
		var got []byte
		for _, m := range list {
			if bytes.Contains(m.Data, []byte(subject)) {
				got = m.Data
			}
		}
		if got == nil || bytes.Contains(got, []byte("Bcc:")) || !bytes.HasSuffix(got, []byte("\r\n\r\n"+body)) {
			t.Fatalf("%s: not delivered as sent (or with Bcc): %q", box, got)
		}
		if box == bob {
			stored = got
		}
	}

	c := v.account(t, "daemon-bob")
	list, err := c.ListMessages(ctx, "inbox", graph.ListOptions{Top: 5})
	if err != nil {
		t.Fatal(err)
	}
	m := findBySubject(t, list, subject)
	if m.Size != int64(len(stored)) {
		t.Errorf("listed size %d, stored %d bytes", m.Size, len(stored))
	}
	if list, err := c.ListMessages(ctx, "inbox", graph.ListOptions{Select: []string{"subject"}}); err != nil || findBySubject(t, list, subject).Size != int64(len(stored)) {
		t.Errorf("with $select: %v", err)
	}
	got, err := c.GetMessage(ctx, m.ID)
	if err != nil || got.Size != int64(len(stored)) {
		t.Errorf("GetMessage: %v, size %d, want %d", err, got.Size, len(stored))
	}
	if mime, err := c.GetMIME(ctx, m.ID); err != nil || !bytes.Equal(mime, stored) {
		t.Errorf("GetMIME: %v", err)
	}

	err = v.account(t, "daemon").SendMIME(ctx, []byte("From: "+alice+"\r\nSubject: nobody\r\n\r\nx\r\n"))
	wantGraphErr(t, err, 400, "ErrorInvalidRecipients")

	tr := &corrupt{rt: v.HC.Transport}
	bad := graph.New(graph.Options{BaseURL: v.E.MailAddrs["graph"], Tokens: static(v.appToken(t, "daemon", "https://graph.microsoft.com/.default")), HTTPClient: &http.Client{Transport: tr}, Mailbox: alice})
	wantGraphErr(t, bad.SendMIME(ctx, []byte(raw)), 400, "ErrorMimeContentInvalidBase64String")
	if tr.n != 1 {
		t.Errorf("a 400 was tried %d times", tr.n)
	}
	if err := c.SendMIME(ctx, bytes.Repeat([]byte("x"), 4<<20)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("oversized: %v", err)
	}
}

func TestSendMIMERetried(t *testing.T) {
	v := newEnv(t, testWorld(world.Fault{Endpoint: "graph", Status: 503, Times: 1}))
	defer v.close()
	c := v.account(t, "daemon")
	c.BaseDelay = time.Millisecond
	if err := c.SendMIME(context.Background(), []byte("To: "+bob+"\r\nSubject: retried\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("after a 503: %v", err)
	}
	if n := v.E.Graph.Requests(); n != 2 {
		t.Errorf("%d Graph requests, want 2", n)
	}
	if list, _ := v.E.Store.List(bob, mailstore.Inbox); len(list) != 1 {
		t.Errorf("%d messages delivered, want 1", len(list))
	}
}

// TestNoTokenIsAnError: a client without a token source, or with one that returns neither a token
// nor an error, fails its calls with an error saying so — not a nil dereference — and sends Graph
// nothing.
func TestNoTokenIsAnError(t *testing.T) {
	v := shared(t)
	for name, o := range map[string]graph.Options{
		"no Tokens":      {},
		"no token given": {Tokens: token.Static(nil)},
	} {
		o.BaseURL, o.HTTPClient, o.Mailbox = v.E.MailAddrs["graph"], v.HC, alice
		_, err := graph.New(o).Folders(context.Background())
		var ge *graph.Error
		if err == nil || errors.As(err, &ge) || !strings.Contains(err.Error(), "Tokens is nil") && !strings.Contains(err.Error(), "no access token") {
			t.Errorf("%s: %v, want an error about the token source, before any request", name, err)
		}
	}
}

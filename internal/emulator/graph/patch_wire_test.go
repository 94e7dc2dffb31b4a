package graph_test

// PATCH, changeKey and @odata.etag, move and copy ids, over raw HTTPS; IMAP's view of the changes
// through go-imap's client.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/sasl"
)

// scopedToken is alice's delegated token for scope (the password flow of the public app "desktop").
func (v *env) scopedToken(t *testing.T, scope string) string {
	t.Helper()
	resp, err := v.HC.PostForm(v.E.Authority()+"/contoso.test/oauth2/v2.0/token", url.Values{"grant_type": {"password"},
		"client_id": {v.E.World().App("desktop").ClientID}, "username": {"alice@contoso.test"}, "password": {"alice-password"},
		"scope": {scope}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.AccessToken == "" {
		t.Fatalf("no token for %s", scope)
	}
	return out.AccessToken
}

// imapLogin is an IMAP connection logged in as alice, closed when the test ends.
func (v *env) imapLogin(t *testing.T) *imapclient.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(v.E.CAPEM())
	c, err := imapclient.DialTLS(v.E.MailAddrs["imap"], &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(sasl.NewXOAuth2Client(world.Alice, v.scopedToken(t, "https://outlook.office.com/IMAP.AccessAsUser.All"))); err != nil {
		t.Fatalf("IMAP authenticate: %v", err)
	}
	return c
}

// imapFlags are the flags IMAP shows for alice's INBOX messages, by subject.
func (v *env) imapFlags(t *testing.T) map[string][]imap.Flag {
	t.Helper()
	c := v.imapLogin(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]imap.Flag{}
	for _, m := range msgs {
		out[m.Envelope.Subject] = m.Flags
	}
	return out
}

func decode(t *testing.T, a answer) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Fatalf("%d %s", a.Status, a.Body)
	}
	return m
}

func appendAlice(t *testing.T, v *env, subject string) string {
	t.Helper()
	m, err := v.E.Store.Append(world.Alice, mailstore.Inbox, []byte("From: bob@contoso.test\r\nTo: alice@contoso.test\r\nSubject: "+subject+"\r\n\r\nhi\r\n"), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func TestWirePatch(t *testing.T) {
	v := start(t)
	tok := v.userToken(t)
	id := appendAlice(t, v, "patched")
	appendAlice(t, v, "untouched")
	u := "/me/messages/" + id
	got0 := v.do(t, "GET", u, tok, "", nil)
	before := decode(t, got0)
	if got0.Header.Get("ETag") == "" || got0.Header.Get("ETag") != before["@odata.etag"] {
		t.Errorf("ETag header %q, @odata.etag %v", got0.Header.Get("ETag"), before["@odata.etag"])
	}
	if sel := decode(t, v.do(t, "GET", u+"?$select=subject,isRead", tok, "", nil)); !strings.HasSuffix(fmt.Sprint(sel["@odata.context"]), "/messages(subject,isRead)/$entity") {
		t.Errorf("@odata.context with $select: %v", sel["@odata.context"])
	}
	if !strings.HasSuffix(fmt.Sprint(before["@odata.context"]), "/$metadata#users('alice@contoso.test')/messages/$entity") {
		t.Errorf("@odata.context %v", before["@odata.context"])
	}
	a := v.do(t, "PATCH", u, tok, "application/json", []byte(`{"isRead":true,"flag":{"flagStatus":"flagged"},"categories":["Red category","Travel"],"importance":"High"}`))
	after := decode(t, a)
	if a.Header.Get("ETag") != after["@odata.etag"] {
		t.Errorf("PATCH: ETag header %q, @odata.etag %v", a.Header.Get("ETag"), after["@odata.etag"])
	}
	if a.Status != 200 || after["isRead"] != true || after["importance"] != "high" || after["flag"].(map[string]any)["flagStatus"] != "flagged" ||
		strings.Join(toStrings(after["categories"]), ",") != "Red category,Travel" {
		t.Fatalf("PATCH: %d %s", a.Status, a.Body)
	}
	if after["changeKey"] == before["changeKey"] || after["@odata.etag"] != `W/"`+fmt.Sprint(after["changeKey"])+`"` || after["@odata.context"] == nil {
		t.Errorf("changeKey %v → %v, etag %v", before["changeKey"], after["changeKey"], after["@odata.etag"])
	}
	got := decode(t, v.do(t, "GET", u, tok, "", nil))
	for _, k := range []string{"isRead", "importance", "changeKey", "@odata.etag"} {
		if got[k] != after[k] {
			t.Errorf("GET after PATCH: %s = %v, PATCH answered %v", k, got[k], after[k])
		}
	}
	flags := v.imapFlags(t)
	if !slices.Contains(flags["patched"], imap.FlagSeen) || !slices.Contains(flags["patched"], imap.FlagFlagged) || len(flags["untouched"]) != 0 {
		t.Errorf("IMAP flags: %v", flags)
	}
	// Another PATCH changes the key again; complete leaves \Flagged.
	a = v.do(t, "PATCH", u, tok, "application/json", []byte(`{"isRead":false,"flag":{"flagStatus":"complete"}}`))
	again := decode(t, a)
	if again["changeKey"] == after["changeKey"] || again["flag"].(map[string]any)["flagStatus"] != "complete" || again["isRead"] != false {
		t.Errorf("second PATCH: %s", a.Body)
	}
	if f := v.imapFlags(t)["patched"]; slices.Contains(f, imap.FlagSeen) || slices.Contains(f, imap.FlagFlagged) {
		t.Errorf("IMAP flags after the second PATCH: %v", f)
	}

	// Draft-only, read-only and unknown properties of a received message: refused, nothing changed.
	a = v.do(t, "PATCH", u, tok, "application/json", []byte(`{"isRead":true,"subject":"new"}`))
	wantError(t, a, 400, "ErrorInvalidPropertySet")
	if !strings.Contains(string(a.Body), "Message is not draft.") {
		t.Errorf("subject of a received message: %s", a.Body)
	}
	wantError(t, v.do(t, "PATCH", u, tok, "application/json", []byte(`{"receivedDateTime":"2020-01-01T00:00:00Z"}`)), 400, "ErrorInvalidPropertySet")
	a = v.do(t, "PATCH", u, tok, "application/json", []byte(`{"bogus":1}`))
	wantError(t, a, 400, "RequestBodyRead")
	if !strings.Contains(string(a.Body), "The property 'bogus' does not exist on type") {
		t.Errorf("unknown property: %s", a.Body)
	}
	wantError(t, v.do(t, "PATCH", u, tok, "application/json", []byte(`{"importance":"urgent"}`)), 400, "RequestBodyRead")
	wantError(t, v.do(t, "PATCH", u, tok, "application/json", []byte(`{"flag":{"flagStatus":"flagged","dueDateTime":{"dateTime":"2026-01-01T00:00:00","timeZone":"UTC"}}}`)), 400, "BadRequest")
	if now := decode(t, v.do(t, "GET", u, tok, "", nil)); now["isRead"] != false || now["changeKey"] != again["changeKey"] {
		t.Errorf("a refused PATCH changed the message: %v", now)
	}

	// A draft takes subject, body and recipients.
	a = v.do(t, "POST", "/me/messages", tok, "application/json", []byte(`{"subject":"draft","toRecipients":[{"emailAddress":{"address":"bob@contoso.test"}}]}`))
	draft := decode(t, a)
	if a.Status != 201 || draft["@odata.context"] == nil {
		t.Fatalf("draft: %d %s", a.Status, a.Body)
	}
	a = v.do(t, "PATCH", "/me/messages/"+draft["id"].(string), tok, "application/json",
		[]byte(`{"subject":"final","body":{"contentType":"text","content":"the text"},"ccRecipients":[{"emailAddress":{"address":"support@contoso.test"}}],"categories":["Blue category"]}`))
	d := decode(t, a)
	if a.Status != 200 || d["subject"] != "final" || d["body"].(map[string]any)["content"] != "the text" || len(d["ccRecipients"].([]any)) != 1 || d["changeKey"] == draft["changeKey"] {
		t.Fatalf("PATCH draft: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "PATCH", "/me/messages/"+draft["id"].(string), tok, "application/json", []byte(`{"toRecipients":[{"emailAddress":{"address":"not an address"}}]}`)), 400, "ErrorInvalidRecipients")
	if a := v.do(t, "POST", "/me/messages/"+draft["id"].(string)+"/send", v.scopedToken(t, "https://graph.microsoft.com/Mail.Send"), "", nil); a.Status != 202 {
		t.Fatalf("send: %d %s", a.Status, a.Body)
	}
	list, _ := v.E.Store.List("support@contoso.test", mailstore.Inbox)
	if len(list) != 1 || !strings.Contains(string(list[0].Data), "Subject: final") {
		t.Errorf("the patched draft was not what was sent: %d messages", len(list))
	}
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestWireMoveCopyIDs(t *testing.T) {
	v := start(t)
	tok := v.userToken(t)
	id := appendAlice(t, v, "moving")
	v.do(t, "PATCH", "/me/messages/"+id, tok, "application/json", []byte(`{"categories":["Kept"]}`))
	before := decode(t, v.do(t, "GET", "/me/messages/"+id, tok, "", nil))

	// A default id changes with a move; the old one is gone.
	a := v.do(t, "POST", "/me/messages/"+id+"/move", tok, "application/json", []byte(`{"destinationId":"archive"}`))
	moved := decode(t, a)
	if a.Status != 201 || moved["id"] == id || moved["id"] == nil || moved["@odata.context"] == nil || moved["changeKey"] == before["changeKey"] ||
		strings.Join(toStrings(moved["categories"]), ",") != "Kept" {
		t.Fatalf("move: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "GET", "/me/messages/"+id, tok, "", nil), 404, "ErrorItemNotFound")
	id = moved["id"].(string)

	// An immutable id survives a move.
	a = v.do(t, "POST", "/me/messages/"+id+"/move", tok, "application/json", []byte(`{"destinationId":"inbox"}`), "Prefer", `IdType="ImmutableId"`)
	kept := decode(t, a)
	if a.Status != 201 || kept["id"] != id || kept["changeKey"] == moved["changeKey"] || a.Header.Get("Preference-Applied") != `IdType="ImmutableId"` {
		t.Fatalf("immutable move: %d %s %v", a.Status, a.Body, a.Header)
	}
	if got := decode(t, v.do(t, "GET", "/me/messages/"+id, tok, "", nil)); got["parentFolderId"] != kept["parentFolderId"] {
		t.Errorf("after the immutable move: %v", got)
	}

	// A copy is a new item with its own id; the original stays.
	a = v.do(t, "POST", "/me/messages/"+id+"/copy", tok, "application/json", []byte(`{"destinationId":"archive"}`), "Prefer", `IdType="ImmutableId"`)
	cp := decode(t, a)
	if a.Status != 201 || cp["id"] == id || cp["subject"] != "moving" || strings.Join(toStrings(cp["categories"]), ",") != "Kept" {
		t.Fatalf("copy: %d %s", a.Status, a.Body)
	}
	if a := v.do(t, "GET", "/me/messages/"+id, tok, "", nil); a.Status != 200 {
		t.Errorf("the original after a copy: %d", a.Status)
	}
	if arch, _ := v.E.Store.List(world.Alice, mailstore.Archive); len(arch) != 1 {
		t.Errorf("Archive holds %d messages", len(arch))
	}
	f := decode(t, v.do(t, "GET", "/me/mailFolders/archive", tok, "", nil))
	if f["@odata.context"] == nil || f["totalItemCount"] != float64(1) {
		t.Errorf("folder: %v", f)
	}
}

// TestWireChangeKeyConflict: a PATCH or DELETE made against an older version of the message (an
// If-Match with an old @odata.etag, or an old changeKey in the body) is refused and changes nothing.
func TestWireChangeKeyConflict(t *testing.T) {
	v := start(t)
	tok := v.userToken(t)
	u := "/me/messages/" + appendAlice(t, v, "versioned")
	old := decode(t, v.do(t, "GET", u, tok, "", nil))
	cur := decode(t, v.do(t, "PATCH", u, tok, "application/json", []byte(`{"importance":"low"}`), "If-Match", fmt.Sprint(old["@odata.etag"])))
	if cur["importance"] != "low" {
		t.Fatalf("PATCH with the current etag: %v", cur)
	}
	for _, c := range []struct {
		method, body string
		hdr          []string
	}{
		{"PATCH", `{"importance":"high"}`, []string{"If-Match", fmt.Sprint(old["@odata.etag"])}},
		{"PATCH", `{"importance":"high","changeKey":"` + fmt.Sprint(old["changeKey"]) + `"}`, nil},
		{"DELETE", "", []string{"If-Match", fmt.Sprint(old["@odata.etag"])}},
	} {
		a := v.do(t, c.method, u, tok, "application/json", []byte(c.body), c.hdr...)
		wantError(t, a, 412, "ErrorIrresolvableConflict")
		if !strings.Contains(string(a.Body), "does not match the current change key for the item.") {
			t.Errorf("%s: %s", c.method, a.Body)
		}
	}
	if now := decode(t, v.do(t, "GET", u, tok, "", nil)); now["importance"] != "low" || now["changeKey"] != cur["changeKey"] {
		t.Errorf("a refused change changed the message: %v", now)
	}
	a := v.do(t, "PATCH", u, tok, "application/json", []byte(`{"importance":"high","changeKey":"`+fmt.Sprint(cur["changeKey"])+`"}`), "If-Match", "*")
	if a.Status != 200 {
		t.Errorf("PATCH with the current changeKey: %d %s", a.Status, a.Body)
	}
	if a := v.do(t, "DELETE", u, tok, "", nil, "If-Match", fmt.Sprint(decode(t, a)["@odata.etag"])); a.Status != 204 {
		t.Errorf("DELETE with the current etag: %d %s", a.Status, a.Body)
	}
}

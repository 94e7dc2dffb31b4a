package graph_test

// Message properties and operations the gateway relies on: internetMessageHeaders, create from
// MIME, permanentDelete, MIME $value.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

func TestWireInternetMessageHeaders(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	in := "Received: from a.example\r\n\tby b.example; Mon, 1 Dec 2026 10:00:00 +0000\r\nFrom: bob@contoso.test\r\nTo: alice@contoso.test\r\nSubject: folded\r\n  subject\r\nX-Custom: 1\r\n\r\nbody: not a header\r\n"
	if _, err := v.E.Store.Append(world.Alice, mailstore.Inbox, []byte(in), nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.E.Store.Append(world.Alice, mailstore.SentItems, []byte("From: alice@contoso.test\r\nSubject: sent\r\n\r\nx\r\n"), []string{mailstore.FlagSeen}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var p deltaPage
	a := v.do(t, "GET", "/users/alice@contoso.test/mailFolders/inbox/messages/delta?$select=internetMessageHeaders", tok, "", nil)
	if a.Status != 200 || jsonInto(a.Body, &p) != nil || len(p.Value) != 1 {
		t.Fatalf("%d %s", a.Status, a.Body)
	}
	got := fmt.Sprint(p.Value[0]["internetMessageHeaders"])
	want := "[map[name:Received value:from a.example by b.example; Mon, 1 Dec 2026 10:00:00 +0000] map[name:From value:bob@contoso.test] " +
		"map[name:To value:alice@contoso.test] map[name:Subject value:folded subject] map[name:X-Custom value:1]]"
	if got != want {
		t.Errorf("headers\n got %s\nwant %s", got, want)
	}
	var plain, sent deltaPage
	if a := v.do(t, "GET", "/users/alice@contoso.test/mailFolders/inbox/messages", tok, "", nil); jsonInto(a.Body, &plain) != nil || plain.Value[0]["internetMessageHeaders"] != nil {
		t.Errorf("headers without $select: %s", a.Body)
	}
	a = v.do(t, "GET", "/users/alice@contoso.test/mailFolders/sentitems/messages?$select=subject,internetMessageHeaders", tok, "", nil)
	if jsonInto(a.Body, &sent) != nil || len(sent.Value) != 1 || sent.Value[0]["subject"] != "sent" {
		t.Fatalf("%d %s", a.Status, a.Body)
	}
	if _, ok := sent.Value[0]["internetMessageHeaders"]; ok {
		t.Errorf("Sent Items copy with headers: %s", a.Body)
	}
}

func TestWireCreateFromMIME(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	raw := "From: bob@contoso.test\r\nTo: alice@contoso.test\r\nSubject: appended\r\nMessage-ID: <x1@contoso.test>\r\n\r\nkept byte for byte\r\n"
	b64 := []byte(base64.StdEncoding.EncodeToString([]byte(raw)))
	imm := []string{"Prefer", `IdType="ImmutableId"`}

	// MIME into a folder: stored as given, a draft (Graph: "Create a draft of a new message").
	a := v.do(t, "POST", "/users/alice@contoso.test/mailFolders/inbox/messages", tok, "text/plain", b64, imm...)
	m := decode(t, a)
	inbox := decode(t, v.do(t, "GET", "/users/alice@contoso.test/mailFolders/inbox", tok, "", nil))
	if a.Status != 201 || m["isDraft"] != true || m["subject"] != "appended" || m["parentFolderId"] != inbox["id"] ||
		a.Header.Get("Preference-Applied") != `IdType="ImmutableId"` {
		t.Fatalf("create from MIME: %d %s %v", a.Status, a.Body, a.Header)
	}
	id := m["id"].(string)
	if a := v.do(t, "GET", "/users/alice@contoso.test/messages/"+id+"/$value", tok, "", nil); a.Status != 200 || string(a.Body) != raw || a.Header.Get("Content-Length") != fmt.Sprint(len(raw)) {
		t.Errorf("$value: %d %q %v", a.Status, a.Body, a.Header)
	}
	if got := v.imapFlags(t)["appended"]; !slices.Contains(got, imap.FlagDraft) {
		t.Errorf("IMAP flags %v", got)
	}
	// POST messages puts it in Drafts.
	a = v.do(t, "POST", "/users/alice@contoso.test/messages", tok, "text/plain", b64)
	drafts := decode(t, v.do(t, "GET", "/users/alice@contoso.test/mailFolders/drafts", tok, "", nil))
	if m := decode(t, a); a.Status != 201 || m["parentFolderId"] != drafts["id"] || m["isDraft"] != true {
		t.Errorf("POST messages with MIME: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "POST", "/users/alice@contoso.test/mailFolders/inbox/messages", tok, "text/plain", []byte("!!")), 400, "ErrorMimeContentInvalidBase64String")

	// JSON with PidTagMessageFlags (no mfUnsent) and a delivery time: a received message.
	body := `{"subject":"imported","toRecipients":[{"emailAddress":{"address":"alice@contoso.test"}}],"from":{"emailAddress":{"address":"alice@contoso.test"}},
		"singleValueExtendedProperties":[{"id":"Integer 0x0E07","value":"1"},{"id":"SystemTime 0x0E06","value":"2026-01-02T03:04:05Z"}]}`
	a = v.do(t, "POST", "/users/alice@contoso.test/mailFolders/archive/messages", tok, "application/json", []byte(body))
	if m := decode(t, a); a.Status != 201 || m["isDraft"] != false || m["isRead"] != true || m["receivedDateTime"] != "2026-01-02T03:04:05Z" {
		t.Errorf("JSON with PidTagMessageFlags: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "POST", "/users/alice@contoso.test/mailFolders/archive/messages", tok, "application/json",
		[]byte(`{"subject":"x","singleValueExtendedProperties":[{"id":"Integer 0x0E07","value":"9"}]}`)), 400, "BadRequest")

	// permanentDelete: gone, not in Deleted Items.
	if a := v.do(t, "POST", "/users/alice@contoso.test/messages/"+id+"/permanentDelete", tok, "", nil); a.Status != 204 {
		t.Fatalf("permanentDelete: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "GET", "/users/alice@contoso.test/messages/"+id, tok, "", nil), 404, "ErrorItemNotFound")
	if di, _ := v.E.Store.List(world.Alice, mailstore.DeletedItems); len(di) != 0 {
		t.Errorf("Deleted Items holds %d", len(di))
	}
}

// TestWireImmutableIDs: every message endpoint answers Prefer: IdType="ImmutableId" with
// Preference-Applied, and an id it gave survives a move.
func TestWireImmutableIDs(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	id := appendAlice(t, v, "kept")
	imm := []string{"Prefer", `IdType="ImmutableId"`}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/messages", ""}, {"GET", "/mailFolders/inbox/messages", ""}, {"GET", "/mailFolders/inbox/messages/delta", ""},
		{"GET", "/messages/" + id, ""}, {"POST", "/messages/" + id + "/copy", `{"destinationId":"archive"}`},
		{"POST", "/messages/" + id + "/move", `{"destinationId":"archive"}`}, {"GET", "/messages/" + id, ""},
	} {
		a := v.do(t, r.method, "/users/alice@contoso.test"+r.path, tok, "application/json", []byte(r.body), imm...)
		if a.Status/100 != 2 || a.Header.Get("Preference-Applied") != `IdType="ImmutableId"` {
			t.Errorf("%s %s: %d %v %s", r.method, r.path, a.Status, a.Header, a.Body)
		}
	}
}

func TestWireLargeMIME(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), 8<<20/18)...)
	m, err := v.E.Store.Append(world.Alice, mailstore.Inbox, big, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// Listing it with header properties only does not read (copy) its body: far less than its size
	// is allocated in this process, the emulator's included.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, p := range []string{"/mailFolders/inbox/messages/delta?$select=subject,isRead,internetMessageHeaders", "/mailFolders/inbox/messages?$select=subject,receivedDateTime", "/messages/" + m.ID + "?$select=subject"} {
		if a := v.do(t, "GET", "/users/alice@contoso.test"+p, tok, "", nil); a.Status != 200 || !bytes.Contains(a.Body, []byte(`"subject":"big"`)) {
			t.Fatalf("%s: %d %.200s", p, a.Status, a.Body)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(len(big))/2 {
		t.Errorf("three listings of a %d-byte message allocated %d bytes", len(big), grew)
	}
	a := v.do(t, "GET", "/users/alice@contoso.test/messages/"+m.ID+"/$value", tok, "", nil)
	if a.Status != 200 || !bytes.Equal(a.Body, big) || a.Header.Get("Content-Length") != fmt.Sprint(len(big)) {
		t.Errorf("$value of %d bytes: %d, %d bytes, Content-Length %s", len(big), a.Status, len(a.Body), a.Header.Get("Content-Length"))
	}
}

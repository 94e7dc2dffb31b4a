package graph_test

// Message properties and operations the gateway relies on: internetMessageHeaders, create from
// MIME, permanentDelete, MIME $value.

import (
	"fmt"
	"testing"
	"time"

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

package graph_test

// Delta queries of a folder's messages over raw HTTPS, with changes made through Graph and IMAP.

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// deltaPage is one page of a delta round.
type deltaPage struct {
	Value     []map[string]any `json:"value"`
	NextLink  string           `json:"@odata.nextLink"`
	DeltaLink string           `json:"@odata.deltaLink"`
}

// deltaRound follows a round from u to its deltaLink and returns every entry and the deltaLink.
func (v *env) deltaRound(t *testing.T, tok, u string, hdr ...string) ([]map[string]any, string, []int) {
	t.Helper()
	var all []map[string]any
	var sizes []int
	for range 100 {
		a := v.do(t, "GET", u, tok, "", nil, hdr...)
		var p deltaPage
		if a.Status != 200 || jsonInto(a.Body, &p) != nil {
			t.Fatalf("GET %s: %d %s", u, a.Status, a.Body)
		}
		all = append(all, p.Value...)
		sizes = append(sizes, len(p.Value))
		if p.DeltaLink != "" {
			if p.NextLink != "" {
				t.Fatal("both nextLink and deltaLink")
			}
			return all, p.DeltaLink, sizes
		}
		if p.NextLink == "" {
			t.Fatalf("a page with neither link: %s", a.Body)
		}
		u = p.NextLink
	}
	t.Fatal("no deltaLink after 100 pages")
	return nil, "", nil
}

func TestWireDelta(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	ids := map[string]string{} // by subject
	for i := range 25 {
		s := fmt.Sprintf("m%02d", i)
		ids[s] = appendAlice(t, v, s)
	}
	base := "/users/alice@contoso.test/mailFolders/inbox/messages/delta"

	// The first round lists every message, 10 a page by default; $select shapes the entries.
	entries, deltaLink, sizes := v.deltaRound(t, tok, base+"?$select=subject,isRead")
	if fmt.Sprint(sizes) != "[10 10 5]" || len(entries) != 25 {
		t.Fatalf("first round pages %v", sizes)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if e["subject"] == nil || e["isRead"] != false || e["body"] != nil || e["id"] == nil {
			t.Fatalf("entry %v", e)
		}
		seen[e["id"].(string)] = true
	}
	if len(seen) != 25 {
		t.Fatalf("%d distinct ids", len(seen))
	}
	// Nothing changed: an empty page and a new deltaLink.
	entries, deltaLink, _ = v.deltaRound(t, tok, deltaLink)
	if len(entries) != 0 {
		t.Fatalf("no change, yet %v", entries)
	}

	// Changes: read through Graph, flagged over IMAP, moved, deleted, one new.
	v.do(t, "PATCH", "/users/alice@contoso.test/messages/"+ids["m01"], tok, "application/json", []byte(`{"isRead":true}`))
	c := v.imapLogin(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err) // m02
	}
	v.do(t, "POST", "/users/alice@contoso.test/messages/"+ids["m03"]+"/move", tok, "application/json", []byte(`{"destinationId":"archive"}`), "Prefer", `IdType="ImmutableId"`)
	v.do(t, "DELETE", "/users/alice@contoso.test/messages/"+ids["m04"], tok, "", nil)
	ids["new"] = appendAlice(t, v, "new")

	entries, deltaLink, _ = v.deltaRound(t, tok, deltaLink, "Prefer", "odata.maxpagesize=2")
	got := map[string]string{}
	for _, e := range entries {
		id := e["id"].(string)
		if r, ok := e["@removed"].(map[string]any); ok {
			got[id] = "removed:" + fmt.Sprint(r["reason"])
			continue
		}
		if _, ok := e["body"]; ok {
			t.Errorf("the deltaLink lost the round's $select: %v", e)
		}
		got[id] = fmt.Sprintf("%v read=%v", e["subject"], e["isRead"])
	}
	want := map[string]string{ids["m01"]: "m01 read=true", ids["m02"]: "m02 read=false", ids["m03"]: "removed:changed",
		ids["m04"]: "removed:deleted", ids["new"]: "new read=false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("changes\n got %v\nwant %v", got, want)
	}

	// The IMAP flag shows as Graph's flag.
	a := v.do(t, "GET", "/users/alice@contoso.test/messages/"+ids["m02"]+"?$select=flag", tok, "", nil)
	if !strings.Contains(string(a.Body), `"flagStatus":"flagged"`) {
		t.Errorf("m02's flag: %s", a.Body)
	}

	// An unknown token is 410 syncStateNotFound with where to start again.
	u, _ := url.Parse(deltaLink)
	a = v.do(t, "GET", u.Scheme+"://"+u.Host+u.Path+"?$deltatoken=bogus", tok, "", nil)
	wantError(t, a, 410, "syncStateNotFound")
	if loc := a.Header.Get("Location"); !strings.HasSuffix(loc, "/messages/delta") {
		t.Errorf("Location %q", loc)
	}
	wantError(t, v.do(t, "GET", base+"?$top=5", tok, "", nil), 400, "BadRequest")
	wantError(t, v.do(t, "GET", base+"?changeType=moved", tok, "", nil), 400, "BadRequest")

	// changeType=created, encoded in the links, gives only new messages in later rounds.
	_, createdLink, _ := v.deltaRound(t, tok, base+"?changeType=created&$select=subject", "Prefer", "odata.maxpagesize=1000")
	v.do(t, "PATCH", "/users/alice@contoso.test/messages/"+ids["m05"], tok, "application/json", []byte(`{"isRead":true}`))
	appendAlice(t, v, "newer")
	if entries, _, _ := v.deltaRound(t, tok, createdLink); len(entries) != 1 || entries[0]["subject"] != "newer" {
		t.Errorf("changeType=created: %v", entries)
	}
}

func TestWireFoldersDelta(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	u := "/users/alice@contoso.test/mailFolders"
	mk := func(path, name string) string {
		t.Helper()
		a := v.do(t, "POST", u+path, tok, "application/json", []byte(`{"displayName":"`+name+`"}`))
		if a.Status != 201 {
			t.Fatalf("create %s: %d %s", name, a.Status, a.Body)
		}
		return decode(t, a)["id"].(string)
	}
	work := mk("/inbox/childFolders", "Work")
	gone := mk("", "Gone")
	entries, link, sizes := v.deltaRound(t, tok, u+"/delta?$select=displayName", "Prefer", "odata.maxpagesize=3")
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprint(e["displayName"]))
		if e["id"] == nil || e["totalItemCount"] != nil {
			t.Errorf("entry %v", e)
		}
	}
	if fmt.Sprint(sizes) != "[3 3 2]" || !strings.Contains(fmt.Sprint(got), "Work") {
		t.Fatalf("first round: %v in pages %v", got, sizes)
	}

	// A rename, a message (Inbox's counts), a folder deleted for good, a new one.
	v.do(t, "PATCH", u+"/"+work, tok, "application/json", []byte(`{"displayName":"Projects"}`))
	appendAlice(t, v, "hello")
	v.do(t, "DELETE", u+"/"+gone, tok, "", nil)
	v.do(t, "DELETE", u+"/"+gone, tok, "", nil)
	mk("", "New")
	entries, _, _ = v.deltaRound(t, tok, link)
	got = nil
	for _, e := range entries {
		if r, ok := e["@removed"].(map[string]any); ok {
			got = append(got, fmt.Sprintf("removed:%v:%v", e["id"] == gone, r["reason"]))
			continue
		}
		got = append(got, fmt.Sprint(e["displayName"]))
	}
	// Deleted Items held Gone for a while, and is as it was again.
	if fmt.Sprint(got) != "[Inbox Projects New removed:true:deleted]" {
		t.Errorf("second round: %v", got)
	}
	wantError(t, v.do(t, "GET", u+"/delta?$deltatoken=nope", tok, "", nil), 410, "syncStateNotFound")
}

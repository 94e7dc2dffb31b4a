package graph_test

// The folder tree over raw HTTPS: child folders, well-known names, rename, move, delete to Deleted
// Items, paging; IMAP's view of the same folders.

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// imapFolders are the folder names alice's IMAP LIST shows.
func (v *env) imapFolders(t *testing.T) []string {
	t.Helper()
	c := v.imapLogin(t)
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range list {
		out = append(out, m.Mailbox)
	}
	return out
}

// folderPage is one page of a folder list.
type folderPage struct {
	Value    []map[string]any `json:"value"`
	NextLink string           `json:"@odata.nextLink"`
}

func (v *env) folders(t *testing.T, tok, path string) folderPage {
	t.Helper()
	var p folderPage
	a := v.do(t, "GET", path, tok, "", nil)
	if a.Status != 200 || jsonInto(a.Body, &p) != nil {
		t.Fatalf("GET %s: %d %s", path, a.Status, a.Body)
	}
	return p
}

func jsonInto(b []byte, v any) error { return json.Unmarshal(b, v) }

func names(p folderPage) []string {
	var out []string
	for _, f := range p.Value {
		out = append(out, fmt.Sprint(f["displayName"]))
	}
	return out
}

func TestWireFolderTree(t *testing.T) {
	v := start(t)
	tok := v.userToken(t)
	root := decode(t, v.do(t, "GET", "/me/mailFolders/msgfolderroot", tok, "", nil))
	inbox := decode(t, v.do(t, "GET", "/me/mailFolders/inbox", tok, "", nil))
	if inbox["displayName"] != "Inbox" || inbox["parentFolderId"] != root["id"] || inbox["childFolderCount"] != float64(0) {
		t.Fatalf("inbox %v, root %v", inbox, root)
	}

	// A child folder under Inbox, by well-known name and by id.
	a := v.do(t, "POST", "/me/mailFolders/inbox/childFolders", tok, "application/json", []byte(`{"displayName":"Projects"}`))
	projects := decode(t, a)
	if a.Status != 201 || projects["parentFolderId"] != inbox["id"] || projects["displayName"] != "Projects" {
		t.Fatalf("create child: %d %s", a.Status, a.Body)
	}
	pid := projects["id"].(string)
	a = v.do(t, "POST", "/me/mailFolders/"+pid+"/childFolders", tok, "application/json", []byte(`{"displayName":"Alpha"}`))
	alpha := decode(t, a)
	if a.Status != 201 || alpha["parentFolderId"] != pid {
		t.Fatalf("create grandchild: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "POST", "/me/mailFolders/inbox/childFolders", tok, "application/json", []byte(`{"displayName":"projects"}`)), 409, "ErrorFolderExists")
	wantError(t, v.do(t, "POST", "/me/mailFolders", tok, "application/json", []byte(`{"displayName":"Sent Items"}`)), 409, "ErrorFolderExists")
	if got := decode(t, v.do(t, "GET", "/me/mailFolders/inbox", tok, "", nil)); got["childFolderCount"] != float64(1) {
		t.Errorf("inbox childFolderCount: %v", got)
	}
	if got := names(v.folders(t, tok, "/me/mailFolders/inbox/childFolders")); !slices.Equal(got, []string{"Projects"}) {
		t.Errorf("inbox's children: %v", got)
	}
	// The long path form names the same folder.
	if got := decode(t, v.do(t, "GET", "/me/mailFolders/inbox/childFolders/"+pid, tok, "", nil)); got["id"] != pid {
		t.Errorf("childFolders/{id}: %v", got)
	}
	if got := v.imapFolders(t); !slices.Contains(got, "INBOX/Projects/Alpha") {
		t.Errorf("IMAP lists %v", got)
	}

	// Rename keeps the id; IMAP sees the new name.
	a = v.do(t, "PATCH", "/me/mailFolders/"+pid, tok, "application/json", []byte(`{"displayName":"Work"}`))
	if got := decode(t, a); a.Status != 200 || got["id"] != pid || got["displayName"] != "Work" {
		t.Fatalf("rename: %d %s", a.Status, a.Body)
	}
	if got := decode(t, v.do(t, "GET", "/me/mailFolders/"+alpha["id"].(string), tok, "", nil)); got["parentFolderId"] != pid {
		t.Errorf("the child after its parent's rename: %v", got)
	}
	wantError(t, v.do(t, "PATCH", "/me/mailFolders/inbox", tok, "application/json", []byte(`{"displayName":"Post"}`)), 400, "BadRequest")

	// Move to the top level (msgfolderroot), keeping the id.
	a = v.do(t, "POST", "/me/mailFolders/"+pid+"/move", tok, "application/json", []byte(`{"destinationId":"msgfolderroot"}`))
	if got := decode(t, a); a.Status != 201 || got["id"] != pid || got["parentFolderId"] != root["id"] {
		t.Fatalf("move: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "POST", "/me/mailFolders/"+pid+"/move", tok, "application/json", []byte(`{"destinationId":"`+alpha["id"].(string)+`"}`)), 400, "ErrorMoveCopyFailed")
	if got := v.imapFolders(t); !slices.Contains(got, "Work/Alpha") || slices.Contains(got, "INBOX/Work") {
		t.Errorf("IMAP after the move lists %v", got)
	}

	// Delete moves the folder, with its children, to Deleted Items; deleting it there removes it.
	if a := v.do(t, "DELETE", "/me/mailFolders/"+pid, tok, "", nil); a.Status != 204 {
		t.Fatalf("delete: %d %s", a.Status, a.Body)
	}
	deleted := decode(t, v.do(t, "GET", "/me/mailFolders/"+pid, tok, "", nil))
	di := decode(t, v.do(t, "GET", "/me/mailFolders/deleteditems", tok, "", nil))
	if deleted["parentFolderId"] != di["id"] || di["childFolderCount"] != float64(1) {
		t.Fatalf("after delete: %v in %v", deleted, di)
	}
	if a := v.do(t, "DELETE", "/me/mailFolders/"+pid, tok, "", nil); a.Status != 204 {
		t.Fatalf("delete from Deleted Items: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "GET", "/me/mailFolders/"+pid, tok, "", nil), 404, "ErrorItemNotFound")
	wantError(t, v.do(t, "DELETE", "/me/mailFolders/inbox", tok, "", nil), 400, "BadRequest")
}

func TestWireFolderPaging(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	for i := range 7 {
		if a := v.do(t, "POST", "/users/alice@contoso.test/mailFolders", tok, "application/json", []byte(fmt.Sprintf(`{"displayName":"F%d"}`, i))); a.Status != 201 {
			t.Fatalf("create: %d %s", a.Status, a.Body)
		}
	}
	// 6 default folders and 7 more: Graph's default page is 10.
	p := v.folders(t, tok, "/users/alice@contoso.test/mailFolders?includeHiddenFolders=true")
	if len(p.Value) != 10 || p.NextLink == "" {
		t.Fatalf("first page: %d folders, next %q", len(p.Value), p.NextLink)
	}
	all := names(p)
	for p.NextLink != "" {
		p = v.folders(t, tok, p.NextLink)
		all = append(all, names(p)...)
	}
	want := []string{"Archive", "Deleted Items", "Drafts", "F0", "F1", "F2", "F3", "F4", "F5", "F6", "Inbox", "Junk Email", "Sent Items"}
	if !slices.Equal(all, want) {
		t.Errorf("folders %v, want %v", all, want)
	}
	if p := v.folders(t, tok, "/users/alice@contoso.test/mailFolders?$top=3&$select=displayName"); len(p.Value) != 3 || p.Value[0]["totalItemCount"] != nil || p.Value[0]["id"] == nil {
		t.Errorf("$top=3&$select: %v", p)
	}
}

package imapgw_test

import (
	"fmt"
	"strings"
	"time"

	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"

	"github.com/emersion/go-imap/v2"
)

// keys lists a LIST answer's names, for messages.
func keys(m map[string]*imap.ListData) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Folder names outside ASCII travel as modified UTF-7 (RFC 3501 5.1.3) and are Graph's display names.
func TestNonASCIIFolder(t *testing.T) {
	v := newEnv(t)
	c := v.dial(nil)
	if err := c.Create("Été/Überweisungen", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	names := listNames(t, c, "*")
	if names["Été/Überweisungen"] == nil || names["Été"] == nil {
		t.Fatalf("LIST after CREATE of non-ASCII names: %v", keys(names))
	}
	selectBox(t, c, "Été/Überweisungen", false)
}

// RFC 3501 6.3.1: a SELECT that fails leaves no folder selected.
func TestFailedSelectDeselects(t *testing.T) {
	v := newEnv(t)
	v.deliver(mailstore.Inbox, "one", "x")
	c := v.dial(nil)
	selectBox(t, c, "INBOX", false)
	if _, err := c.Select("Nowhere", nil).Wait(); err == nil {
		t.Fatal("SELECT Nowhere succeeded")
	} else if imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT Nowhere: %v, want [NONEXISTENT]", err)
	}
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect(); err == nil {
		t.Error("FETCH after a failed SELECT answered from the folder selected before")
	}
}

// RFC 3501 6.3.5: RENAME creates the new name's missing superiors.
func TestRenameCreatesParents(t *testing.T) {
	v := newEnv(t)
	c := v.dial(nil)
	if err := c.Create("Old", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("Old", "New/Inner", nil).Wait(); err != nil {
		t.Fatalf("RENAME Old New/Inner: %v (code %s)", err, imapCode(err))
	}
	if names := listNames(t, c, "*"); names["New/Inner"] == nil || names["New"] == nil || names["Old"] != nil {
		t.Errorf("LIST after RENAME Old New/Inner: %v", keys(names))
	}
}

// RFC 3501 6.4.7: COPY to the selected folder itself is allowed (it duplicates the messages).
func TestCopyToSelf(t *testing.T) {
	v := newEnv(t)
	v.deliver(mailstore.Inbox, "one", "x")
	c := v.dial(nil)
	selectBox(t, c, "INBOX", false)
	d, err := c.Copy(imap.SeqSetNum(1), "INBOX").Wait()
	if err != nil {
		t.Fatalf("COPY 1 INBOX: %v", err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	m := fetchAll(t, c, imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, Envelope: true})
	if len(m) != 2 || m[1].Envelope.Subject != "one" || !d.DestUIDs.Contains(m[1].UID) {
		t.Errorf("after COPY 1 INBOX (COPYUID %v): %d messages", d.DestUIDs, len(m))
	}
}

// EXAMINE: BODY[] does not set \Seen (RFC 3501 6.3.2, read-only).
func TestExamineBodyNotSeen(t *testing.T) {
	v := newEnv(t)
	v.deliver(mailstore.Inbox, "one", "x")
	c := v.dial(nil)
	selectBox(t, c, "INBOX", true)
	fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
	msgs, _ := v.lab.E.Store.List(v.address, mailstore.Inbox)
	if hasString(msgs[0].Flags, `\Seen`) {
		t.Error("FETCH BODY[] in an EXAMINEd folder set \\Seen in Graph")
	}
}

// BODY[HEADER] and BODY[TEXT] together are BODY[] (how c-client programs such as Alpine read a
// message), and BODY[HEADER]'s size is what it sends.
func TestHeaderPlusTextIsBody(t *testing.T) {
	v := newEnv(t)
	raw := "From: Bob <bob@contoso.test>\r\nTo: alice@contoso.test\r\nSubject: a subject that is long\r\n and folded\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <f@contoso.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\n"
	if _, err := v.lab.E.Store.Append(v.address, mailstore.Inbox, []byte(raw), nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	c := v.dial(nil)
	selectBox(t, c, "INBOX", true)
	m := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{RFC822Size: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, BodySection: []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader, Peek: true}, {Specifier: imap.PartSpecifierText, Peek: true}, {Peek: true}}})
	h := m[0].FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
	b := m[0].FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
	all := m[0].FindBodySection(&imap.FetchItemBodySection{})
	if string(h)+string(b) != string(all) {
		t.Errorf("BODY[HEADER] %q + BODY[TEXT] is not BODY[] %q", h, all)
	}
	if int64(len(all)) != m[0].RFC822Size {
		t.Errorf("RFC822.SIZE %d, BODY[] %d octets", m[0].RFC822Size, len(all))
	}
	mp, ok := m[0].BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 2 || !strings.EqualFold(mp.Subtype, "mixed") {
		t.Errorf("BODYSTRUCTURE %#v", m[0].BodyStructure)
	}
}

// SEARCH is case-insensitive substring, on decoded words; SINCE/BEFORE on INTERNALDATE dates.
func TestSearchDecodedAndDates(t *testing.T) {
	v := newEnv(t)
	if _, err := v.lab.E.Store.Append(v.address, mailstore.Inbox, message("=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "x"), nil, time.Date(2026, 3, 2, 23, 30, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	c := v.dial(nil)
	selectBox(t, c, "INBOX", false)
	for _, tc := range []struct {
		c    imap.SearchCriteria
		want int
	}{
		{imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "KÖLN"}}}, 1},
		{imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "BOB@contoso"}}}, 1},
		{imap.SearchCriteria{Since: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}, 1},
		{imap.SearchCriteria{Since: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)}, 0},
		{imap.SearchCriteria{Before: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)}, 1},
	} {
		d, err := c.UIDSearch(&tc.c, nil).Wait()
		if err != nil {
			t.Errorf("SEARCH %+v: %v", tc.c, err)
			continue
		}
		if n := len(d.AllUIDs()); n != tc.want {
			t.Errorf("SEARCH %+v: %d results, want %d", tc.c, n, tc.want)
		}
	}
}

// COPYUID pairs each source UID with its message's UID in the destination (RFC 4315 3), also
// when a moved message comes back to a folder that still knows its UID.
func TestCopyUIDPairs(t *testing.T) {
	v := newEnv(t)
	v.deliver(mailstore.Archive, "x", "x")
	c := v.dial(nil)
	selectBox(t, c, "Archive", false) // Archive numbers x
	archived, _ := v.lab.E.Store.List(v.address, mailstore.Archive)
	if _, err := v.lab.E.Store.Append(v.address, mailstore.Inbox, message("y", "y"), nil, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.lab.E.Store.Move(v.address, mailstore.Archive, mailstore.Inbox, archived[0].ID); err != nil {
		t.Fatal(err) // another program moves x to the Inbox
	}
	selectBox(t, c, "INBOX", false)
	before := fetchAll(t, c, imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, Envelope: true})
	subj := map[imap.UID]string{}
	for _, m := range before {
		subj[m.UID] = m.Envelope.Subject
	}
	d, err := c.Move(imap.SeqSetNum(1, 2), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	src, _ := d.SourceUIDs.(imap.UIDSet).Nums()
	dst, _ := d.DestUIDs.(imap.UIDSet).Nums()
	c2 := v.dial(nil)
	selectBox(t, c2, "Archive", true)
	after := fetchAll(t, c2, imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, Envelope: true})
	now := map[imap.UID]string{}
	for _, m := range after {
		now[m.UID] = m.Envelope.Subject
	}
	for i := range src {
		if subj[src[i]] != now[dst[i]] {
			t.Errorf("COPYUID %v %v pairs %q (source UID %d) with destination UID %d, which is %q", d.SourceUIDs, d.DestUIDs, subj[src[i]], src[i], dst[i], now[dst[i]])
		}
	}
}

// RFC 3501 6.3.4: DELETE MUST NOT remove inferior hierarchical names, and Graph would delete them
// with the folder: it is refused with NO [HASCHILDREN] (RFC 5530).
func TestDeleteKeepsChildren(t *testing.T) {
	v := newEnv(t)
	c := v.dial(nil)
	if err := c.Create("Projects/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	err := c.Delete("Projects").Wait()
	names := listNames(t, c, "*")
	if names["Projects/2026"] == nil {
		t.Errorf("DELETE Projects (%v) removed Projects/2026 too; LIST: %v", err, keys(names))
	}
	if imapCode(err) != imap.ResponseCodeHasChildren {
		t.Errorf("DELETE of a folder with children: %v, want NO [HASCHILDREN]", err)
	}
}

// LIST with a reference, the INBOX's children in any case, and a name with "&" (modified UTF-7's
// escape).
func TestListPatterns(t *testing.T) {
	v := newEnv(t)
	c := v.dial(nil)
	for _, n := range []string{"INBOX/Sub/Deep", "R&D", "Top/Child"} {
		if err := c.Create(n, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", n, err)
		}
	}
	list := func(ref, pat string) []string {
		l, err := c.List(ref, pat, nil).Collect()
		if err != nil {
			t.Fatalf("LIST %q %q: %v", ref, pat, err)
		}
		var out []string
		for _, d := range l {
			out = append(out, d.Mailbox)
		}
		return out
	}
	if got := fmt.Sprint(list("INBOX/", "%")); got != "[INBOX/Sub]" {
		t.Errorf(`LIST "INBOX/" "%%" = %s`, got)
	}
	if got := fmt.Sprint(list("", "inbox/*")); got != "[INBOX/Sub INBOX/Sub/Deep]" {
		t.Errorf(`LIST "" "inbox/*" = %s`, got)
	}
	if got := fmt.Sprint(list("", "R&D")); got != "[R&D]" {
		t.Errorf(`LIST "" "R&D" = %s`, got)
	}
	selectBox(t, c, "R&D", true)
}

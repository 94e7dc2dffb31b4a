package gateway_test

// The mailbox model against the in-process emulator's Microsoft Graph, over real HTTPS.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

const timeout = 3 * time.Minute // every wait: generous for a busy machine

// lab is an emulator and alice's mailbox, opened as the proxy opens it.
type lab struct {
	*emulatortest.Lab
	acct    *auth.Account
	address string
	uids    gateway.UIDStore
}

func newLab(t testing.TB) *lab {
	t.Helper()
	l := emulatortest.Start(t, emulator.Options{})
	a, err := auth.NewAccount(l.Config.Accounts["daemon"], auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &lab{Lab: l, acct: a, address: a.Mailbox(), uids: gateway.NewFileUIDStore(t.TempDir())}
}

// open opens the mailbox in a new Mailboxes over the lab's UID store: as a new process would.
func (l *lab) open(t testing.TB, o gateway.Options) *gateway.Mailbox {
	t.Helper()
	mb := gateway.NewMailboxes(l.uids, o).Open("daemon", l.address, l.client())
	t.Cleanup(func() { mb.Close() })
	return mb
}

// client is a Graph client of the mailbox as the proxy makes one.
func (l *lab) client() *graph.Client {
	return graph.ClientFor(l.acct, l.address, graph.NewLimiter(4))
}

// deliver puts messages into a folder of the mailbox (the emulator's store: no Graph request).
func (l *lab) deliver(t testing.TB, folder string, subjects ...string) {
	t.Helper()
	for i, s := range subjects {
		msg := fmt.Sprintf("From: Bob <bob@contoso.test>\r\nTo: alice@contoso.test\r\nSubject: %s\r\nMessage-ID: <%d.%s@test>\r\n\r\nBody of %s.\r\n", s, i, strings.ReplaceAll(s, " ", "-"), s)
		if _, err := l.E.Store.Append(l.address, folder, []byte(msg), nil, time.Now().Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

// requests counts the Graph requests fn makes.
func (l *lab) requests(fn func()) int64 {
	before := l.E.Graph.Requests()
	fn()
	return l.E.Graph.Requests() - before
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func folder(t testing.TB, mb *gateway.Mailbox, name string) *gateway.Folder {
	t.Helper()
	f, err := mb.Folder(ctxT(t), name)
	if err != nil {
		t.Fatalf("Folder(%q): %v", name, err)
	}
	return f
}

func syncNow(t testing.TB, f *gateway.Folder) *gateway.View {
	t.Helper()
	v, err := f.Sync(ctxT(t), 0)
	if err != nil {
		t.Fatalf("Sync %s: %v", f.Info.Name, err)
	}
	return v
}

// subjects maps each message's subject (from its Header) to its UID.
func subjects(t testing.TB, v *gateway.View) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	for _, m := range v.Messages {
		_, rest, ok := bytes.Cut(m.Header, []byte("Subject: "))
		if !ok {
			t.Fatalf("UID %d: no Subject in its header %q", m.UID, m.Header)
		}
		s, _, _ := bytes.Cut(rest, []byte("\r\n"))
		out[string(s)] = m.UID
	}
	return out
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %04d", prefix, i)
	}
	return out
}

// The target: the headers of a 1,000-message folder in at most ~15 Graph requests, and a
// refresh with nothing new in one; UIDs in order of arrival, the same after a restart.
func TestListingCost(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", numbered("bulk", 1000)...)
	mb := l.open(t, gateway.Options{})
	f := folder(t, mb, "inbox")
	if f.Info.Name != "INBOX" {
		t.Fatalf("Folder(inbox).Info.Name = %q", f.Info.Name)
	}
	var v *gateway.View
	first := l.requests(func() { v = syncNow(t, f) })
	t.Logf("first Sync of 1,000 messages: %d Graph requests", first)
	if first > 15 {
		t.Errorf("the first Sync cost %d Graph requests, want at most 15", first)
	}
	if len(v.Messages) != 1000 || v.UIDValidity == 0 {
		t.Fatalf("%d messages, UIDVALIDITY %d; want 1000 and not 0", len(v.Messages), v.UIDValidity)
	}
	byS := subjects(t, v)
	for i, s := range numbered("bulk", 1000) {
		if byS[s] != uint32(i+1) {
			t.Fatalf("%q has UID %d, want %d (UIDs in the order of arrival)", s, byS[s], i+1)
		}
	}
	for _, m := range v.Messages {
		if m.Size <= 0 || m.Received.IsZero() || m.ID == "" || m.IsRead || !bytes.HasSuffix(m.Header, []byte("\r\n\r\n")) {
			t.Fatalf("message %+v: want a size, a received time, an id, unread and a header section", m)
		}
	}
	if v.UIDNext != 1001 {
		t.Errorf("UIDNEXT %d, want 1001", v.UIDNext)
	}

	var again *gateway.View
	if n := l.requests(func() { again = syncNow(t, f) }); n != 1 {
		t.Errorf("a Sync with nothing new cost %d Graph requests, want 1", n)
	}
	if again.Version != v.Version {
		t.Errorf("Version moved from %d to %d with nothing new", v.Version, again.Version)
	}
	if n := l.requests(func() {
		if _, err := f.Sync(ctxT(t), time.Hour); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("a Sync within maxAge cost %d Graph requests, want 0", n)
	}

	// Something new: the next UID, the Version moves.
	l.deliver(t, "INBOX", "late arrival")
	v2 := syncNow(t, f)
	if got := subjects(t, v2)["late arrival"]; got != 1001 || v2.Version <= v.Version || v2.UIDNext != 1002 {
		t.Fatalf("new message: UID %d, Version %d→%d, UIDNEXT %d; want 1001, growing, 1002", got, v.Version, v2.Version, v2.UIDNext)
	}

	// Another process over the same UID store: the same UIDs and UIDVALIDITY.
	other := syncNow(t, folder(t, l.open(t, gateway.Options{}), "INBOX"))
	if other.UIDValidity != v.UIDValidity {
		t.Fatalf("UIDVALIDITY %d after a restart, was %d", other.UIDValidity, v.UIDValidity)
	}
	for s, u := range subjects(t, other) {
		if subjects(t, v2)[s] != u {
			t.Fatalf("%q: UID %d after a restart, was %d", s, u, subjects(t, v2)[s])
		}
	}
}

// Sessions share one refresh; Graph's 429s slow it down and lose nothing.
func TestSyncSharedAndThrottled(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", numbered("m", 450)...)
	mb := l.open(t, gateway.Options{})
	f := folder(t, mb, "INBOX")
	if err := l.E.Live.Update(func(w *world.World) error {
		w.Faults = append(w.Faults, world.Fault{Endpoint: "graph", Status: 429, Times: 3})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	views := make([]*gateway.View, 6)
	errs := make([]error, len(views))
	n := l.requests(func() {
		for i := range views {
			wg.Add(1)
			go func() {
				defer wg.Done()
				views[i], errs[i] = f.Sync(ctxT(t), 0)
			}()
		}
		wg.Wait()
	})
	for i := range views {
		if errs[i] != nil {
			t.Fatalf("Sync %d: %v", i, errs[i])
		}
		if len(views[i].Messages) != 450 {
			t.Fatalf("Sync %d: %d messages, want 450", i, len(views[i].Messages))
		}
	}
	// One listing (3 pages) plus the 3 refused: concurrent callers did not list again each.
	if n > 9 {
		t.Errorf("6 concurrent Syncs cost %d Graph requests; want one shared listing (at most 9 with the 429s)", n)
	}
	t.Logf("6 concurrent first Syncs through 3 429s: %d Graph requests", n)
}

// Graph forgets a delta state: a full listing again, UIDs of the messages still there kept.
func TestExpiredDeltaKeepsUIDs(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "one", "two", "three")
	f := folder(t, l.open(t, gateway.Options{}), "INBOX")
	before := subjects(t, syncNow(t, f))
	msgs, err := l.E.Store.List(l.address, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.E.Store.Delete(l.address, "INBOX", msgs[1].ID); err != nil {
		t.Fatal(err)
	}
	l.E.Graph.Reset() // drops every delta token: the next round is 410 syncStateNotFound
	l.deliver(t, "INBOX", "four")
	after := subjects(t, syncNow(t, f))
	want := map[string]uint32{"one": before["one"], "three": before["three"], "four": 4}
	if fmt.Sprint(after) != fmt.Sprint(want) {
		t.Fatalf("after the delta state expired: %v, want %v (from %v)", after, want, before)
	}

	// The newest message goes, then a restart: UIDNEXT stays above every UID given, 4 included.
	msgs, err = l.E.Store.List(l.address, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if bytes.Contains(m.Data, []byte("Subject: four\r\n")) {
			if _, err := l.E.Store.Delete(l.address, "INBOX", m.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v := syncNow(t, folder(t, l.open(t, gateway.Options{}), "INBOX")); v.UIDNext != 5 || len(v.Messages) != 2 {
		t.Fatalf("after a restart: UIDNEXT %d, %d messages; want 5 (UID 4 was given) and 2", v.UIDNext, len(v.Messages))
	}
}

// IDLE: Wait returns when a delivery is seen, polling at most every PollInterval.
func TestWaitSeesDelivery(t *testing.T) {
	l := newLab(t)
	const every = 300 * time.Millisecond
	f := folder(t, l.open(t, gateway.Options{PollInterval: every}), "INBOX")
	v := syncNow(t, f)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	base := l.E.Graph.Requests()
	n := l.requests(func() {
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = f.Wait(ctxT(t), v.Version) }()
		}
		// Let the waiters poll a few times before the delivery; they poll, not this test.
		for l.E.Graph.Requests() < base+2 {
			if err := ctxT(t).Err(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(every / 10)
		}
		l.deliver(t, "INBOX", "news")
		wg.Wait()
	})
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Three waiters share the polls: at most one per PollInterval (and one to begin).
	if max := int64(elapsed/every) + 2; n > max {
		t.Errorf("3 waiters made %d Graph requests in %v; want at most %d (one per %v)", n, elapsed, max, every)
	}
	if _, ok := subjects(t, syncNow(t, f))["news"]; !ok {
		t.Fatal("the delivery is not in the listing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Wait(ctx, 1<<60); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with an ended ctx: %v", err)
	}
}

func names(t testing.TB, mb *gateway.Mailbox) map[string]gateway.FolderInfo {
	t.Helper()
	fs, err := mb.Folders(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) == 0 || fs[0].Name != "INBOX" {
		t.Fatalf("Folders: %v, want INBOX first", fs)
	}
	out := map[string]gateway.FolderInfo{}
	for _, f := range fs {
		out[f.Name] = f
	}
	return out
}

func TestFolderTree(t *testing.T) {
	l := newLab(t)
	mb := l.open(t, gateway.Options{})
	ctx := ctxT(t)
	got := names(t, mb)
	for name, use := range map[string]string{"INBOX": "", "Sent Items": `\Sent`, "Drafts": `\Drafts`,
		"Deleted Items": `\Trash`, "Junk Email": `\Junk`, "Archive": `\Archive`} {
		if f, ok := got[name]; !ok || f.SpecialUse != use {
			t.Errorf("folder %q: %+v (listed: %v), want special-use %q", name, f, ok, use)
		}
	}

	// Sessions that list at once share one listing of the tree.
	one := l.requests(func() { names(t, l.open(t, gateway.Options{})) })
	burst := l.open(t, gateway.Options{})
	var wg sync.WaitGroup
	five := l.requests(func() {
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := burst.Folders(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	})
	if five != one {
		t.Errorf("5 concurrent Folders cost %d Graph requests, one costs %d", five, one)
	}

	// CREATE makes missing parents; INBOX's children are under INBOX in any case.
	for _, name := range []string{"Projects/2026/Q1", "inbox/Receipts", "Clients/"} {
		if err := mb.CreateFolder(ctx, name); err != nil {
			t.Fatalf("CreateFolder(%q): %v", name, err)
		}
	}
	got = names(t, mb)
	for _, name := range []string{"Projects", "Projects/2026", "Projects/2026/Q1", "INBOX/Receipts", "Clients"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no folder %q after CREATE; have %v", name, got)
		}
	}
	if !got["Projects/2026"].HasChildren || got["Projects/2026/Q1"].HasChildren || !got["INBOX"].HasChildren {
		t.Errorf("HasChildren wrong: %+v", got)
	}
	if err := mb.CreateFolder(ctx, "Projects/2026"); !errors.Is(err, gateway.ErrFolderExists) {
		t.Errorf("CREATE of an existing folder: %v, want ErrFolderExists", err)
	}

	// RENAME: a new name, a new parent, both; the folder keeps its id (and so its UIDs).
	l.deliver(t, "Projects/2026/Q1", "plan")
	q1 := folder(t, mb, "Projects/2026/Q1")
	v := syncNow(t, q1)
	if err := mb.RenameFolder(ctx, "Projects/2026/Q1", "Clients/First quarter"); err != nil {
		t.Fatal(err)
	}
	got = names(t, mb)
	if _, ok := got["Projects/2026/Q1"]; ok {
		t.Errorf("the old name is still listed: %v", got)
	}
	moved := folder(t, mb, "Clients/First quarter")
	if moved.Info.ID != q1.Info.ID {
		t.Fatalf("renamed folder's id %q, was %q", moved.Info.ID, q1.Info.ID)
	}
	if mv := syncNow(t, moved); mv.UIDValidity != v.UIDValidity || subjects(t, mv)["plan"] != subjects(t, v)["plan"] {
		t.Fatalf("after RENAME: UIDVALIDITY %d UID %d, was %d %d", mv.UIDValidity, subjects(t, mv)["plan"], v.UIDValidity, subjects(t, v)["plan"])
	}
	for _, bad := range [][2]string{{"INBOX", "Old inbox"}, {"Nowhere", "Somewhere"}, {"Clients", "Projects"}} {
		if err := mb.RenameFolder(ctx, bad[0], bad[1]); err == nil {
			t.Errorf("RenameFolder(%q, %q) succeeded", bad[0], bad[1])
		}
	}
	if _, err := mb.Folder(ctx, "Nowhere"); !errors.Is(err, gateway.ErrNoFolder) {
		t.Errorf("Folder(Nowhere): %v, want ErrNoFolder", err)
	}

	// DELETE: Graph moves it under Deleted Items; a folder made again has a new UIDVALIDITY.
	if err := mb.DeleteFolder(ctx, "Clients/First quarter"); err != nil {
		t.Fatal(err)
	}
	got = names(t, mb)
	if _, ok := got["Clients/First quarter"]; ok {
		t.Fatal("a deleted folder is still listed")
	}
	if _, ok := got["Deleted Items/First quarter"]; !ok {
		t.Errorf("the deleted folder is not under Deleted Items: %v", got)
	}
	if err := mb.CreateFolder(ctx, "Clients/First quarter"); err != nil {
		t.Fatal(err)
	}
	if again := syncNow(t, folder(t, mb, "Clients/First quarter")); again.UIDValidity == v.UIDValidity || len(again.Messages) != 0 {
		t.Fatalf("the folder made again: UIDVALIDITY %d (old %d), %d messages; want a new one, empty", again.UIDValidity, v.UIDValidity, len(again.Messages))
	}
	if err := mb.DeleteFolder(ctx, "INBOX"); err == nil {
		t.Error("DeleteFolder(INBOX) succeeded")
	}
}

// where says which folders of the emulator's store hold a subject.
func (l *lab) where(t testing.TB, subject string) []string {
	t.Helper()
	var out []string
	mb := l.E.Store.Mailbox(l.address)
	for _, name := range mb.Folders() {
		msgs, err := l.E.Store.List(l.address, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if bytes.Contains(m.Data, []byte("Subject: "+subject+"\r\n")) {
				out = append(out, name)
			}
		}
	}
	return out
}

func TestMessageOps(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "keep", "flag me", "bin me", "copy me", "move me")
	mb := l.open(t, gateway.Options{})
	ctx := ctxT(t)
	inbox := folder(t, mb, "INBOX")
	v := syncNow(t, inbox)
	uid := subjects(t, v)
	id := map[string]string{}
	for _, m := range v.Messages {
		for s, u := range uid {
			if u == m.UID {
				id[s] = m.ID
			}
		}
	}

	// Open streams the MIME as delivered.
	rc, err := inbox.Open(ctx, id["keep"])
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Contains(body, []byte("Subject: keep\r\n")) || !bytes.HasSuffix(body, []byte("Body of keep.\r\n")) {
		t.Fatalf("Open: %q, %v", body, err)
	}

	// SetFlags: Graph (as IMAP sees it) and the listing at once.
	yes := true
	if err := inbox.SetFlags(ctx, []string{id["flag me"]}, &yes, &yes); err != nil {
		t.Fatal(err)
	}
	cached, err := inbox.Sync(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cached.Version <= v.Version {
		t.Error("SetFlags did not move the listing's Version")
	}
	for _, m := range cached.Messages {
		if m.ID == id["flag me"] && (!m.IsRead || !m.Flagged) {
			t.Errorf("listing after SetFlags: %+v", m)
		}
	}
	sm, err := l.E.Store.Find(l.address, id["flag me"])
	if err != nil || !sm.HasFlag(`\Seen`) || !sm.HasFlag(`\Flagged`) {
		t.Fatalf("the store's message after SetFlags: %+v, %v", sm.Flags, err)
	}

	// Delete: to Deleted Items; there, for good.
	if err := inbox.Delete(ctx, []string{id["bin me"]}); err != nil {
		t.Fatal(err)
	}
	if w := l.where(t, "bin me"); fmt.Sprint(w) != "[Deleted Items]" {
		t.Fatalf("deleted message in %v, want Deleted Items", w)
	}
	trash := folder(t, mb, "Deleted Items")
	tv := syncNow(t, trash)
	if len(tv.Messages) != 1 {
		t.Fatalf("Deleted Items lists %d messages, want 1", len(tv.Messages))
	}
	if err := trash.Delete(ctx, []string{tv.Messages[0].ID}); err != nil {
		t.Fatal(err)
	}
	if w := l.where(t, "bin me"); len(w) != 0 {
		t.Fatalf("a message deleted in Deleted Items is still in %v", w)
	}

	// Copy and Move: the UIDs they return are those the destination lists.
	if err := mb.CreateFolder(ctx, "Kept"); err != nil {
		t.Fatal(err)
	}
	kept := folder(t, mb, "Kept")
	syncNow(t, kept) // listed before: Copy and Move must make its next Sync ask Graph
	cu, err := inbox.Copy(ctx, []string{id["copy me"]}, kept)
	if err != nil {
		t.Fatal(err)
	}
	mu, err := inbox.Move(ctx, []string{id["move me"]}, kept)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := kept.Sync(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ks := subjects(t, kv)
	if len(cu) != 1 || len(mu) != 1 || ks["copy me"] != cu[0] || ks["move me"] != mu[0] || cu[0] == mu[0] {
		t.Fatalf("Copy gave %v, Move %v; the destination lists %v", cu, mu, ks)
	}
	after := subjects(t, syncNow(t, inbox))
	if _, ok := after["move me"]; ok || after["copy me"] != uid["copy me"] || after["keep"] != uid["keep"] {
		t.Fatalf("INBOX after Copy and Move: %v (was %v)", after, uid)
	}
	if v, err := kept.UIDValidity(ctx); err != nil || v != kv.UIDValidity {
		t.Fatalf("UIDValidity: %d, %v; the listing says %d", v, err, kv.UIDValidity)
	}

	// Append: the UID the listing gives it, flags as asked, not shown as a draft outside Drafts.
	raw := "From: Carol <carol@contoso.test>\r\nSubject: appended\r\n\r\nAppended body.\r\n"
	au, err := kept.Append(ctx, strings.NewReader(raw), int64(len(raw)), false, true, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	kv = syncNow(t, kept)
	var found bool
	for _, m := range kv.Messages {
		if m.UID == au {
			found = true
			if m.IsRead || !m.Flagged || m.IsDraft || m.Received.IsZero() {
				t.Errorf("appended message %+v: want unread, flagged, not a draft, an INTERNALDATE", m)
			}
		}
	}
	if !found {
		t.Fatalf("appended UID %d not listed: %+v", au, kv.Messages)
	}
	big := strings.Repeat("x", 4<<20)
	if _, err := kept.Append(ctx, strings.NewReader(big), int64(len(big)), false, false, time.Time{}); !errors.Is(err, gateway.ErrTooBig) {
		t.Fatalf("Append of 4 MB: %v, want ErrTooBig", err)
	}

	// DeletePermanently: nothing goes to Deleted Items.
	perm := folder(t, l.open(t, gateway.Options{DeletePermanently: true}), "INBOX")
	syncNow(t, perm)
	if err := perm.Delete(ctx, []string{id["keep"]}); err != nil {
		t.Fatal(err)
	}
	if w := l.where(t, "keep"); len(w) != 0 {
		t.Fatalf("a message deleted with DeletePermanently is in %v", w)
	}
}

// gateStore holds the first Assign until open is closed: a refresh is then under way, its Graph
// answer already in.
type gateStore struct {
	gateway.UIDStore
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
}

func (g *gateStore) Assign(ctx context.Context, mailbox, folder string, ids []string) (uint32, []uint32, error) {
	g.once.Do(func() { close(g.entered); <-g.open })
	return g.UIDStore.Assign(ctx, mailbox, folder, ids)
}

// Sync(0) refreshes now: it does not take the answer of a refresh that asked Graph before the call.
func TestSyncNowIsNow(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "old")
	gate := &gateStore{UIDStore: l.uids, entered: make(chan struct{}), open: make(chan struct{})}
	mb := gateway.NewMailboxes(gate, gateway.Options{}).Open("daemon", l.address, l.client())
	defer mb.Close()
	f := folder(t, mb, "INBOX")
	first := make(chan error, 1)
	go func() { _, err := f.Sync(ctxT(t), 0); first <- err }()
	select {
	case <-gate.entered:
	case <-ctxT(t).Done():
		t.Fatal("the first refresh never reached the UID store")
	}
	l.deliver(t, "INBOX", "new")
	second := make(chan *gateway.View, 1)
	go func() { second <- syncNow(t, f) }()
	close(gate.open)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, ok := subjects(t, <-second)["new"]; !ok {
		t.Fatal("Sync(0) called after a delivery returned a listing without it")
	}
}

// Two proxies over one UID store: one saw a message leave and come back and gave it a new UID;
// the other, when Graph next gives it that message, shows the same UID.
func TestReplicaTakesStoresUID(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "one", "two")
	f := folder(t, l.open(t, gateway.Options{}), "INBOX")
	v := syncNow(t, f)
	var one gateway.Message
	for _, m := range v.Messages {
		if m.UID == subjects(t, v)["one"] {
			one = m
		}
	}
	// What the other replica did: forgot it (gone) and numbered it again (back).
	ctx := ctxT(t)
	if err := l.uids.Forget(ctx, l.address, f.Info.ID, []string{one.ID}); err != nil {
		t.Fatal(err)
	}
	_, again, err := l.uids.Assign(ctx, l.address, f.Info.ID, []string{one.ID})
	if err != nil {
		t.Fatal(err)
	}
	// An update Graph reports (its flags changed elsewhere).
	if err := l.E.Store.SetFlags(l.address, "INBOX", one.ID, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, syncNow(t, f))["one"]; got != again[0] || got == one.UID {
		t.Fatalf("message one: UID %d here, the store gives %d (was %d)", got, again[0], one.UID)
	}
}

// The UID store loses a folder's map while the proxy runs (its file removed, as the damaged-file
// error tells the operator to do, or Redis flushed): the folder is numbered again under a new
// UIDVALIDITY, and every message of it is still listed. (From review R2.)
func TestStoreLostKeepsEveryMessage(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	l.uids = gateway.NewFileUIDStore(dir)
	l.deliver(t, "INBOX", "one", "two")
	f := folder(t, l.open(t, gateway.Options{}), "INBOX")
	before := syncNow(t, f)
	// The folder's file goes (what the damaged-file error tells the operator to do); the mailbox's
	// record of the last UIDVALIDITY stays.
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, p := range files {
		if b := filepath.Base(p); len(b) == 32 && !strings.Contains(b, ".") {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed != 1 {
		t.Fatalf("removed %d folder files of %v, want 1", removed, files)
	}
	l.deliver(t, "INBOX", "three")
	after := syncNow(t, f)
	if after.UIDValidity == before.UIDValidity {
		t.Errorf("UIDVALIDITY %d unchanged after the store lost the folder", after.UIDValidity)
	}
	if got := subjects(t, after); len(got) != 3 {
		t.Errorf("after the store lost the folder the listing has %v, want one, two and three", got)
	}
}

// RENAME makes the parents the new name needs; DELETE of a folder with child folders is refused
// (Graph would delete them with it). (From review R2.)
func TestRenameMakesParentsDeleteKeepsChildren(t *testing.T) {
	l := newLab(t)
	mb := l.open(t, gateway.Options{})
	ctx := ctxT(t)
	if err := mb.CreateFolder(ctx, "Old/Child"); err != nil {
		t.Fatal(err)
	}
	if err := mb.RenameFolder(ctx, "Old/Child", "New/Deeper/Child"); err != nil {
		t.Fatalf("RENAME into missing parents: %v", err)
	}
	got := names(t, mb)
	if _, ok := got["New/Deeper/Child"]; !ok {
		t.Fatalf("after RENAME: %v", got)
	}
	if err := mb.DeleteFolder(ctx, "New/Deeper"); !errors.Is(err, gateway.ErrHasChildren) {
		t.Fatalf("DELETE of a folder with children: %v, want ErrHasChildren", err)
	}
	if _, ok := names(t, mb)["New/Deeper/Child"]; !ok {
		t.Fatal("the child folder is gone after a refused DELETE")
	}
	if err := mb.DeleteFolder(ctx, "New/Deeper/Child"); err != nil {
		t.Fatal(err)
	}
	if err := mb.DeleteFolder(ctx, "New/Deeper"); err != nil {
		t.Fatalf("DELETE once the child is gone: %v", err)
	}
}

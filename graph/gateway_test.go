package graph_test

// The calls the Graph gateway makes, against the emulator over HTTPS.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// gatewayClient is ClientFor the written account name (immutable ids, a Limiter of 4).
func (v *env) gatewayClient(t testing.TB, name string) *graph.Client {
	t.Helper()
	a, err := v.M.Account(name)
	if err != nil {
		t.Fatal(err)
	}
	return graph.ClientFor(a, "", graph.NewLimiter(4))
}

// TestFlagsMoveCopyMIME: SetFlags changes what IMAP sees (\Seen, \Flagged) and only what it is
// told; a move keeps an immutable id, a copy has its own; OpenMIME streams the stored bytes.
func TestFlagsMoveCopyMIME(t *testing.T) {
	v := shared(t)
	ctx := context.Background()
	c := v.gatewayClient(t, "daemon") // alice
	raw := []byte("From: bob@contoso.test\r\nTo: alice@contoso.test\r\nSubject: flags " + time.Now().Format(time.RFC3339Nano) + "\r\n\r\nbody\r\n")
	stored, err := v.E.Store.Append(alice, mailstore.Inbox, raw, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.GetMessage(ctx, stored.ID)
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	if err := c.SetFlags(ctx, stored.ID, graph.FlagUpdate{IsRead: &yes, Flagged: &yes}); err != nil {
		t.Fatal(err)
	}
	flags := func() []string {
		m, err := v.E.Store.Find(alice, stored.ID)
		if err != nil {
			t.Fatal(err)
		}
		return m.Flags
	}
	if f := flags(); !slices.Contains(f, mailstore.FlagSeen) || !slices.Contains(f, mailstore.FlagFlagged) {
		t.Fatalf("flags after SetFlags(read, flagged): %v", f)
	}
	m, err := c.GetMessage(ctx, stored.ID)
	if err != nil || !m.IsRead || !m.Flagged || m.ChangeKey == "" || m.ChangeKey == before.ChangeKey {
		t.Fatalf("after SetFlags: %v %+v (change key before %q)", err, m, before.ChangeKey)
	}
	if err := c.SetFlags(ctx, stored.ID, graph.FlagUpdate{Flagged: &no}); err != nil {
		t.Fatal(err)
	}
	if f := flags(); !slices.Contains(f, mailstore.FlagSeen) || slices.Contains(f, mailstore.FlagFlagged) {
		t.Fatalf("flags after SetFlags(unflagged): %v, want \\Seen kept", f)
	}

	moved, err := c.Move(ctx, stored.ID, "archive")
	if err != nil || moved.ID != stored.ID {
		t.Fatalf("move with immutable ids: %v, id %q → %q", err, stored.ID, moved.ID)
	}
	cp, err := c.Copy(ctx, moved.ID, "inbox")
	if err != nil || cp.ID == "" || cp.ID == moved.ID {
		t.Fatalf("copy: %v, id %q", err, cp.ID)
	}
	for id, folder := range map[string]string{moved.ID: mailstore.Archive, cp.ID: mailstore.Inbox} {
		if _, err := v.E.Store.Get(alice, folder, id); err != nil {
			t.Errorf("%s not in %s: %v", id, folder, err)
		}
	}

	body, size, err := c.OpenMIME(ctx, cp.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, raw) || size != int64(len(raw)) {
		t.Fatalf("OpenMIME: %v, size %d, %q", err, size, got)
	}
	_, _, err = c.OpenMIME(ctx, "AAMkNotThere")
	if !graph.IsNotFound(err) {
		t.Errorf("OpenMIME of a missing message: %v", err)
	}
}

// TestLimiterKeepsUnderGraphsConcurrency: many concurrent calls through one Limiter of 4 never meet
// Graph's concurrency limit (4 in flight per app and mailbox, 429 beyond): Graph sees each request
// once, none refused and retried.
func TestLimiterKeepsUnderGraphsConcurrency(t *testing.T) {
	v := newEnv(t, testWorld())
	defer v.close()
	ctx := context.Background()
	c := v.gatewayClient(t, "daemon")
	var ids []string
	for i := range 4 {
		m, err := v.E.Store.Append(alice, mailstore.Inbox, []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, bytes.Repeat([]byte("x"), 256<<10))), nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	start := v.E.Graph.Requests()
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _, err := c.OpenMIME(ctx, ids[i%len(ids)])
			if err == nil {
				_, err = io.Copy(io.Discard, body)
				body.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a request failed: %v", err)
		}
	}
	if got := v.E.Graph.Requests() - start; got != n {
		t.Errorf("Graph saw %d requests for %d calls: some were throttled and retried", got, n)
	}
}

// TestFolderTree: AllFolders lists the whole tree, parents first, with the well-known folders
// named, in one request per level that has children (the well-known ids asked once per client);
// CreateChildFolder, RenameFolder, MoveFolder and DeleteFolder change what IMAP sees.
func TestFolderTree(t *testing.T) {
	v := newEnv(t, testWorld())
	defer v.close()
	ctx := context.Background()
	c := v.gatewayClient(t, "daemon")
	// 6 default folders + 3 top-level with 2 children each: 15 folders.
	var parents []*graph.Folder
	for i := range 3 {
		p, err := c.CreateChildFolder(ctx, "", fmt.Sprintf("Projekt %d", i))
		if err != nil {
			t.Fatal(err)
		}
		parents = append(parents, p)
		for j := range 2 {
			if _, err := c.CreateChildFolder(ctx, p.ID, fmt.Sprintf("Teil %d", j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	list := func(wantRequests int64) map[string]graph.Folder {
		t.Helper()
		start := v.E.Graph.Requests()
		all, err := c.AllFolders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := v.E.Graph.Requests() - start; n != wantRequests {
			t.Errorf("AllFolders cost %d requests, want %d", n, wantRequests)
		}
		byName := map[string]graph.Folder{} // by name, and by name@parent id
		seen := map[string]bool{}
		for _, f := range all {
			if seen[f.ID] {
				t.Errorf("%q listed twice", f.DisplayName)
			}
			seen[f.ID] = true
			byName[f.DisplayName], byName[f.DisplayName+"@"+f.ParentFolderID] = f, f
			if p := f.ParentFolderID; !seen[p] && slices.ContainsFunc(all, func(g graph.Folder) bool { return g.ID == p }) {
				t.Errorf("%q listed before its parent", f.DisplayName)
			}
		}
		return byName
	}
	// First listing: the top level, the 3 parents' children, and the 6 well-known ids.
	got := list(1 + 3 + 6)
	if len(got) < 15 {
		t.Fatalf("%d folders", len(got))
	}
	for name, want := range map[string]string{"Inbox": "inbox", "Sent Items": "sentitems", "Drafts": "drafts",
		"Deleted Items": "deleteditems", "Junk Email": "junkemail", "Archive": "archive", "Projekt 0": ""} {
		if got[name].WellKnownName != want {
			t.Errorf("%s: well-known name %q, want %q", name, got[name].WellKnownName, want)
		}
	}
	if f := got["Teil 1@"+parents[2].ID]; f.ID == "" {
		t.Errorf("Projekt 2/Teil 1 missing")
	}
	// Again: the well-known ids are known.
	list(1 + 3)

	child := got["Teil 0@"+parents[0].ID]
	if err := c.RenameFolder(ctx, child.ID, "Teil null"); err != nil {
		t.Fatal(err)
	}
	if v.E.Store.Mailbox(alice).Folder("Projekt 0/Teil null") == nil {
		t.Error("IMAP does not see the rename")
	}
	moved, err := c.MoveFolder(ctx, child.ID, "")
	if err != nil || moved.ID != child.ID || v.E.Store.Mailbox(alice).Folder("Teil null") == nil {
		t.Fatalf("move to the top level: %v %+v", err, moved)
	}
	if _, err := c.MoveFolder(ctx, child.ID, parents[1].ID); err != nil || v.E.Store.Mailbox(alice).Folder("Projekt 1/Teil null") == nil {
		t.Fatalf("move under Projekt 1: %v", err)
	}
	if err := c.DeleteFolder(ctx, parents[2].ID); err != nil {
		t.Fatal(err)
	}
	if v.E.Store.Mailbox(alice).Folder("Projekt 2") != nil || v.E.Store.Mailbox(alice).Folder("Deleted Items/Projekt 2/Teil 1") == nil {
		t.Error("a deleted folder is not under Deleted Items with its children")
	}
	_, err = c.CreateChildFolder(ctx, parents[1].ID, "teil 1")
	wantGraphErr(t, err, 409, "ErrorFolderExists")
}

// TestMessagesDelta: a folder's first round lists every message with what a listing needs (headers,
// size, flags, dates) in pages; a round with no change costs one request and brings nothing; a flag
// change, a move out and a deletion come back as a change and removals; an unknown state is
// ErrDeltaExpired.
func TestMessagesDelta(t *testing.T) {
	v := newEnv(t, testWorld())
	defer v.close()
	ctx := context.Background()
	c := v.gatewayClient(t, "daemon")
	f, err := c.CreateChildFolder(ctx, "", "Delta")
	if err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 25 {
		raw := fmt.Sprintf("From: bob@contoso.test\r\nTo: alice@contoso.test\r\nSubject: delta %02d\r\nDate: Sun, 01 Mar 2026 11:00:00 +0000\r\n\r\nbody %d\r\n", i, i)
		m, err := v.E.Store.Append(alice, "Delta", []byte(raw), nil, received.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	round := func(state string, o graph.DeltaOptions, wantRequests int64) *graph.Delta {
		t.Helper()
		start := v.E.Graph.Requests()
		d, err := c.MessagesDelta(ctx, f.ID, state, o)
		if err != nil {
			t.Fatal(err)
		}
		if n := v.E.Graph.Requests() - start; n != wantRequests {
			t.Errorf("the round cost %d requests, want %d", n, wantRequests)
		}
		return d
	}
	first := round("", graph.DeltaOptions{PageSize: 10}, 3)
	if len(first.Changed) != 25 || len(first.Removed) != 0 || first.State == "" {
		t.Fatalf("first round: %d changed, %d removed, state %q", len(first.Changed), len(first.Removed), first.State)
	}
	for _, m := range first.Changed {
		subject := ""
		for _, h := range m.Headers {
			if h.Name == "Subject" {
				subject = h.Value
			}
		}
		if !slices.Contains(ids, m.ID) || m.Size == 0 || m.Received.IsZero() || m.Sent.IsZero() || m.ChangeKey == "" ||
			len(subject) != len("delta 00") || m.IsRead || m.Flagged {
			t.Fatalf("listed %+v", m)
		}
	}
	quiet := round(first.State, graph.DeltaOptions{}, 1)
	if len(quiet.Changed)+len(quiet.Removed) != 0 {
		t.Fatalf("a round without changes: %+v", quiet)
	}
	yes := true
	if err := c.SetFlags(ctx, ids[3], graph.FlagUpdate{Flagged: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(ctx, ids[4], "archive"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, ids[5]); err != nil {
		t.Fatal(err)
	}
	changes := round(quiet.State, graph.DeltaOptions{}, 1)
	slices.Sort(changes.Removed)
	if len(changes.Changed) != 1 || changes.Changed[0].ID != ids[3] || !changes.Changed[0].Flagged ||
		!slices.Equal(changes.Removed, slices.Sorted(slices.Values([]string{ids[4], ids[5]}))) {
		t.Fatalf("changes: %d changed, removed %v", len(changes.Changed), changes.Removed)
	}
	// A default round asks for pages of 200: the whole folder in one request.
	if all := round("", graph.DeltaOptions{}, 1); len(all.Changed) != 23 {
		t.Errorf("a new first round lists %d messages, want 23", len(all.Changed))
	}
	bogus := strings.Replace(changes.State, "$deltatoken=", "$deltatoken=x", 1)
	if _, err := c.MessagesDelta(ctx, f.ID, bogus, graph.DeltaOptions{}); !errors.Is(err, graph.ErrDeltaExpired) {
		t.Fatalf("an unknown state: %v, want ErrDeltaExpired", err)
	}
}

// TestCreateFromMIMEAndPermanentDelete: a message created from its MIME is stored byte for byte in
// the folder (a draft, as Graph makes it), also from a reader of unknown size and when the first
// try meets a 503; one over 3 MB is refused before anything is sent; PermanentDelete removes a
// message for good (not to Deleted Items).
func TestCreateFromMIMEAndPermanentDelete(t *testing.T) {
	v := newEnv(t, testWorld(world.Fault{Endpoint: "graph", Status: 503, Times: 1}))
	defer v.close()
	ctx := context.Background()
	c := v.gatewayClient(t, "daemon")
	c.BaseDelay = time.Millisecond
	raw := []byte("From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: imported\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.Repeat("Grüße, line of text\r\n", 150_000))
	// 3 MB: 4 MB base64-encoded, Graph's limit.
	raw = append(raw[:3<<20-2], "\r\n"...)
	// The first request meets the 503.
	m, err := c.CreateFromMIME(ctx, "archive", bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if v.E.Graph.Requests() != 2 {
		t.Errorf("%d Graph requests, want 2 (a 503 and its retry)", v.E.Graph.Requests())
	}
	stored, err := v.E.Store.Get(alice, mailstore.Archive, m.ID)
	if err != nil || !bytes.Equal(stored.Data, raw) || !m.IsDraft {
		t.Fatalf("created: %v, draft %v, bytes equal %v", err, m.IsDraft, bytes.Equal(stored.Data, raw))
	}
	small := []byte("Subject: small\r\n\r\nx\r\n")
	m2, err := c.CreateFromMIME(ctx, "inbox", io.MultiReader(bytes.NewReader(small)), -1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.E.Store.Get(alice, mailstore.Inbox, m2.ID); err != nil || !bytes.Equal(got.Data, small) {
		t.Fatalf("from a reader of unknown size: %v", err)
	}
	before := v.E.Graph.Requests()
	big := bytes.Repeat([]byte("x"), graph.MaxCreateMIME+1)
	for _, size := range []int64{int64(len(big)), -1} {
		if _, err := c.CreateFromMIME(ctx, "inbox", bytes.NewReader(big), size); !errors.Is(err, graph.ErrMIMETooLarge) {
			t.Errorf("size %d: %v, want ErrMIMETooLarge", size, err)
		}
	}
	if _, err := c.CreateFromMIME(ctx, "inbox", bytes.NewReader(small), 3); err == nil {
		t.Error("a size that is not the reader's was taken")
	}
	if n := v.E.Graph.Requests() - before; n != 0 {
		t.Errorf("refused messages cost %d requests", n)
	}

	if err := c.PermanentDelete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.E.Store.Find(alice, m.ID); err == nil {
		t.Error("permanently deleted, still in the mailbox")
	}
	if list, _ := v.E.Store.List(alice, mailstore.DeletedItems); len(list) != 0 {
		t.Errorf("%d messages in Deleted Items", len(list))
	}
	err = c.PermanentDelete(ctx, m.ID)
	wantGraphErr(t, err, 404, "ErrorItemNotFound")
}

// TestThrottledPastWhatTheCallerWaits: the emulator's 429 asks for a second; a client that waits at
// most half a second (MaxDelay; a nearer deadline does the same, see
// TestThrottledBeyondDeadlineFailsAtOnce) fails at once, saying Graph throttles and when to retry;
// once the throttling is over the same call succeeds.
func TestThrottledPastWhatTheCallerWaits(t *testing.T) {
	v := newEnv(t, testWorld(world.Fault{Endpoint: "graph", Status: 429, Times: 2}))
	defer v.close()
	c := v.gatewayClient(t, "daemon")
	c.MaxDelay = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := c.AllFolders(ctx)
	var ge *graph.Error
	if !graph.IsThrottled(err) || !errors.As(err, &ge) || ge.RetryAfter < time.Second || ctx.Err() != nil {
		t.Fatalf("%v (deadline: %v), want an at-once 429 with its Retry-After", err, ctx.Err())
	}
	if !strings.Contains(err.Error(), "throttling") {
		t.Errorf("the error does not say Graph throttles: %v", err)
	}
	c.MaxDelay = 0 // 60 s
	if _, err := c.AllFolders(ctx); err != nil {
		t.Fatalf("with time to wait: %v", err)
	}
}

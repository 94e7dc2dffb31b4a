package graph_test

// The calls the Graph gateway makes, against the emulator over HTTPS.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
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

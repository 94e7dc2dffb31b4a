package graph

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenMIMEHoldsItsSlot: a streamed body holds its Limiter slot until Close: another request of
// the mailbox waits (here until its deadline, sending nothing), and goes once the body is closed.
func TestOpenMIMEHoldsItsSlot(t *testing.T) {
	var n atomic.Int32
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Length", "18")
		io.WriteString(w, "Subject: x\r\n\r\nhi\r\n")
	})
	defer srv.Close()
	c.lim = NewLimiter(1)
	body, size, err := c.OpenMIME(context.Background(), "id1")
	if err != nil || size != 18 {
		t.Fatalf("OpenMIME: %v, size %d", err, size)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := c.OpenMIME(ctx, "id2"); err == nil || !strings.Contains(err.Error(), "request slots") || n.Load() != 1 {
		t.Fatalf("a second request while the body is open: %v (%d requests), want it to wait for the slot", err, n.Load())
	}
	got, _ := io.ReadAll(body)
	if string(got) != "Subject: x\r\n\r\nhi\r\n" {
		t.Errorf("body %q", got)
	}
	body.Close()
	body.Close() // twice is harmless: the slot is given back once
	b2, _, err := c.OpenMIME(context.Background(), "id2")
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	b2.Close()
	if b3, _, err := c.OpenMIME(context.Background(), "id3"); err != nil {
		t.Fatalf("the slot was not given back: %v", err)
	} else {
		b3.Close()
	}
}

// TestImmutableIDsAndPageSize: ImmutableIDs puts Prefer: IdType="ImmutableId" on every request, with
// a delta query's page size in the same header.
func TestImmutableIDsAndPageSize(t *testing.T) {
	var prefer atomic.Value
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		prefer.Store(r.Header.Values("Prefer"))
		io.WriteString(w, `{"value":[],"@odata.deltaLink":"https://`+r.Host+`/v1.0/delta?$deltatoken=x"}`)
	})
	defer srv.Close()
	c.immutable = true
	if _, err := c.MessagesDelta(context.Background(), "inbox", "", DeltaOptions{PageSize: 50}); err != nil {
		t.Fatal(err)
	}
	if got := prefer.Load().([]string); len(got) != 1 || got[0] != `IdType="ImmutableId", odata.maxpagesize=50` {
		t.Errorf("Prefer %q", got)
	}
}

// TestAnswersBounded: an answer read whole larger than its bound (maxJSONAnswer unless the call
// says) fails with an error saying so, after reading no more than the bound.
func TestAnswersBounded(t *testing.T) {
	var written atomic.Int64
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"value":[`)
		chunk := strings.Repeat(`{"displayName":"x"},`, 1000)
		for i := 0; i < 800; i++ { // 16 MB
			n, err := io.WriteString(w, chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	defer srv.Close()
	_, _, err := c.do(context.Background(), request{method: "GET", url: c.root + c.prefix + "/mailFolders", limit: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("%v, want the answer refused as too large", err)
	}
	if written.Load() >= 16_000_000 {
		t.Errorf("the whole answer was read (%d bytes)", written.Load())
	}
}

// TestDeltaLinks: a delta state or link on another origin is refused (the token would go with it);
// 410 Gone and syncStateNotFound are ErrDeltaExpired; @removed entries are Removed.
func TestDeltaLinks(t *testing.T) {
	var answer atomic.Value
	var n atomic.Int32
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		a := strings.ReplaceAll(answer.Load().(string), "HOST", r.Host)
		if code, body, ok := strings.Cut(a, " "); ok && len(code) == 3 {
			w.WriteHeader(map[string]int{"410": 410, "400": 400}[code])
			a = body
		}
		io.WriteString(w, a)
	})
	defer srv.Close()
	ctx := context.Background()
	if _, err := c.MessagesDelta(ctx, "inbox", "https://evil.example/v1.0/users/a@b.c/mailFolders/inbox/messages/delta?$deltatoken=1", DeltaOptions{}); err == nil || n.Load() != 0 {
		t.Fatalf("a state on another origin: %v, %d requests", err, n.Load())
	}
	answer.Store(`{"value":[{"id":"m1","isRead":true,"flag":{"flagStatus":"flagged"},"internetMessageHeaders":[{"name":"Subject","value":"hi"}]},{"id":"m2","@removed":{"reason":"deleted"}}],"@odata.nextLink":"https://evil.example/next"}`)
	if _, err := c.MessagesDelta(ctx, "inbox", "", DeltaOptions{}); err == nil || !strings.Contains(err.Error(), "points away") {
		t.Fatalf("a nextLink to another origin: %v", err)
	}
	answer.Store(`{"value":[{"id":"m1","isRead":true,"flag":{"flagStatus":"flagged"},"internetMessageHeaders":[{"name":"Subject","value":"hi"}]},{"id":"m2","@removed":{"reason":"deleted"}}],"@odata.deltaLink":"https://HOST/v1.0/d?$deltatoken=2"}`)
	d, err := c.MessagesDelta(ctx, "inbox", "", DeltaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Changed) != 1 || !d.Changed[0].IsRead || !d.Changed[0].Flagged || len(d.Changed[0].Headers) != 1 ||
		len(d.Removed) != 1 || d.Removed[0] != "m2" || !strings.HasSuffix(d.State, "$deltatoken=2") {
		t.Fatalf("delta %+v", d)
	}
	for _, a := range []string{`410 {"error":{"code":"syncStateNotFound","message":"gone"}}`, `400 {"error":{"code":"SyncStateNotFound","message":"x"}}`} {
		answer.Store(a)
		if _, err := c.MessagesDelta(ctx, "inbox", d.State, DeltaOptions{}); !errors.Is(err, ErrDeltaExpired) {
			t.Errorf("%s: %v, want ErrDeltaExpired", a, err)
		}
	}
}

// TestSlotFreeWhileWaitingToRetry: a request waiting out Retry-After does not hold its Limiter slot:
// another request of the mailbox goes meanwhile.
func TestSlotFreeWhileWaitingToRetry(t *testing.T) {
	throttled := make(chan struct{})
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1.0/users/a@b.c/messages/slow" {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(429)
			close(throttled)
			return
		}
		io.WriteString(w, `{"value":[]}`)
	})
	defer srv.Close()
	c.lim = NewLimiter(1)
	ctxA, cancelA := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := c.GetMessage(ctxA, "slow")
		done <- err
	}()
	<-throttled
	ctxB, cancelB := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelB()
	if _, err := c.Folders(ctxB); err != nil {
		t.Errorf("a request while another waits to retry: %v", err)
	}
	cancelA()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the waiting request: %v", err)
	}
}

// TestDeltaPagesThatLoop: a Graph (or something answering in its place) whose delta pages never end must not keep the
// gateway's refresh going until its deadline, holding every item in memory: a nextLink already
// followed in this round is a loop, refused at once.
func TestDeltaPagesThatLoop(t *testing.T) {
	var n atomic.Int32
	var c *Client
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 50 {
			w.WriteHeader(400) // ends the test's round on the old code
			w.Write([]byte(`{"error":{"code":"Stop","message":"the test's end"}}`))
			return
		}
		next := c.root + c.prefix + "/mailFolders/inbox/messages/delta?$skiptoken=same"
		w.Write([]byte(`{"value":[{"id":"m1"}],"@odata.nextLink":"` + next + `"}`))
	})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.MessagesDelta(ctx, "inbox", "", DeltaOptions{})
	if err == nil || strings.Contains(err.Error(), "Stop") || n.Load() > 3 {
		t.Fatalf("a delta round whose nextLink repeats: %v after %d requests; want a loop refused at its first repeat", err, n.Load())
	}
}

// TestAllFoldersCycle: a folder tree with a cycle (a folder listed among its own children) is listed once, not asked
// for until the deadline.
func TestAllFoldersCycle(t *testing.T) {
	var n atomic.Int32
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 100 {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":{"code":"Stop","message":"the test's end"}}`))
			return
		}
		switch {
		case strings.Contains(r.URL.Path, "/childFolders"), strings.HasSuffix(r.URL.Path, "/mailFolders"):
			w.Write([]byte(`{"value":[{"id":"A","displayName":"A","parentFolderId":"A","childFolderCount":1}]}`))
		default: // a well-known folder
			w.Write([]byte(`{"id":"` + r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:] + `"}`))
		}
	})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs, err := c.AllFolders(ctx)
	if err != nil || len(fs) != 1 {
		t.Fatalf("AllFolders of a tree with a cycle: %d folders, %v (after %d requests); want A once", len(fs), err, n.Load())
	}
}

// TestDeltaReplays: an id given twice in a round (Graph does) is in the Delta once, as its last
// entry says.
func TestDeltaReplays(t *testing.T) {
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "skiptoken") {
			io.WriteString(w, `{"value":[{"id":"m1","isRead":true},{"id":"m2","@removed":{"reason":"deleted"}},{"id":"m3"}],"@odata.deltaLink":"https://`+r.Host+`/v1.0/d?$deltatoken=2"}`)
			return
		}
		io.WriteString(w, `{"value":[{"id":"m1"},{"id":"m2"},{"id":"m3","@removed":{"reason":"changed"}}],"@odata.nextLink":"https://`+r.Host+`/v1.0/d?$skiptoken=1"}`)
	})
	defer srv.Close()
	d, err := c.MessagesDelta(context.Background(), "inbox", "", DeltaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, m := range d.Changed {
		changed = append(changed, m.ID)
	}
	if strings.Join(changed, ",") != "m1,m3" || !d.Changed[0].IsRead || strings.Join(d.Removed, ",") != "m2" {
		t.Fatalf("changed %v (m1 read %v), removed %v; want m1 (read), m3 changed, m2 removed", changed, d.Changed[0].IsRead, d.Removed)
	}
}

package graph_test

// Graph's throttling per app and mailbox, over raw HTTPS. Requests are held in flight with
// Expect: 100-continue: the server answers 100 Continue when the handler starts reading the body,
// which it does only after admitting the request, and the body is a pipe the test closes later.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// held is a request the server has admitted and is reading the body of.
type held struct {
	body *io.PipeWriter
	done chan int // the status, when the request ends
}

// hold starts a PATCH of a message and returns once the server reads its body.
func (v *env) hold(t *testing.T, tok, path string) held {
	t.Helper()
	tr := v.HC.Transport.(*http.Transport).Clone()
	tr.ExpectContinueTimeout = time.Minute // send the body only when the server asks for it
	hc := &http.Client{Transport: tr, Timeout: v.HC.Timeout}
	pr, pw := io.Pipe()
	reading := make(chan struct{})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got100Continue: func() { close(reading) }})
	req, _ := http.NewRequestWithContext(ctx, "PATCH", v.E.MailAddrs["graph"]+path, pr)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	h := held{body: pw, done: make(chan int, 1)}
	go func() {
		resp, err := hc.Do(req)
		if err != nil {
			h.done <- 0
			return
		}
		resp.Body.Close()
		h.done <- resp.StatusCode
	}()
	select {
	case <-reading:
	case status := <-h.done:
		t.Fatalf("PATCH %s ended with %d before the server read its body", path, status)
	case <-time.After(v.HC.Timeout):
		t.Fatalf("the server did not read the body of PATCH %s", path)
	}
	return h
}

// finish sends the held request's body and returns its status.
func (h held) finish(t *testing.T) int {
	t.Helper()
	go func() {
		io.WriteString(h.body, `{"isRead":true}`)
		h.body.Close()
	}()
	return <-h.done
}

func TestWireThrottling(t *testing.T) {
	w := world.Default()
	w.GraphThrottling = world.GraphThrottling{Concurrent: 2, Requests: 6, Window: time.Hour}
	v := startWorld(t, w)
	tok := v.appToken(t)
	ids := []string{}
	for _, s := range []string{"one", "two"} {
		ids = append(ids, appendBob(t, v, s))
	}
	a, b := v.hold(t, tok, "/users/bob@contoso.test/messages/"+ids[0]), v.hold(t, tok, "/users/bob@contoso.test/messages/"+ids[1])

	// A third request in flight on bob's mailbox is refused; alice's mailbox is counted apart.
	third := v.do(t, "GET", "/users/bob@contoso.test/mailFolders", tok, "", nil)
	wantError(t, third, 429, "ApplicationThrottled")
	if third.Header.Get("Retry-After") != "1" || !strings.Contains(string(third.Body), "Application is over its MailboxConcurrency limit.") {
		t.Errorf("concurrency: Retry-After %q, %s", third.Header.Get("Retry-After"), third.Body)
	}
	if got := v.do(t, "GET", "/users/alice@contoso.test/mailFolders", tok, "", nil); got.Status != 200 {
		t.Errorf("another mailbox: %d %s", got.Status, got.Body)
	}
	if sa, sb := a.finish(t), b.finish(t); sa != 200 || sb != 200 {
		t.Fatalf("held requests ended with %d, %d", sa, sb)
	}

	// The budget: 6 requests an hour per app and mailbox; the daemon spent 1 on alice's.
	for i := 0; i < 5; i++ {
		if got := v.do(t, "GET", "/users/alice@contoso.test/mailFolders", tok, "", nil); got.Status != 200 {
			t.Fatalf("request %d within the budget: %d %s", i+2, got.Status, got.Body)
		}
	}
	over := v.do(t, "GET", "/users/alice@contoso.test/mailFolders", tok, "", nil)
	wantError(t, over, 429, "ApplicationThrottled")
	if secs, _ := strconv.Atoi(over.Header.Get("Retry-After")); secs < 3000 || secs > 3600 {
		t.Errorf("budget: Retry-After %q, want the rest of the hour", over.Header.Get("Retry-After"))
	}
	// Another app on the same mailbox is counted apart: alice's own delegated token (app "desktop").
	if got := v.do(t, "GET", "/me/mailFolders", v.userToken(t), "", nil); got.Status != 200 {
		t.Errorf("another app: %d %s", got.Status, got.Body)
	}

	// Turned off at runtime: no limit.
	if err := v.E.Live.Update(func(w *world.World) error { w.GraphThrottling.Off = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := v.do(t, "GET", "/users/bob@contoso.test/mailFolders", tok, "", nil); got.Status != 200 {
		t.Errorf("throttling off: %d %s", got.Status, got.Body)
	}
}

func appendBob(t *testing.T, v *env, subject string) string {
	t.Helper()
	m, err := v.E.Store.Append(world.Bob, "INBOX", []byte("Subject: "+subject+"\r\n\r\nx\r\n"), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// TestWireRequestCount: RequestsTo counts the requests that opened each mailbox, whatever the case of
// the address; an injected 429 (a scenario's graph fault) carries Retry-After and is not counted.
func TestWireRequestCount(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	alice0, bob0 := v.E.Graph.RequestsTo("alice@contoso.test"), v.E.Graph.RequestsTo("bob@contoso.test")
	for _, p := range []string{"/users/ALICE@contoso.test/mailFolders", "/users/alice@contoso.test/messages", "/users/alice@contoso.test/mailFolders/inbox/messages/delta"} {
		if a := v.do(t, "GET", p, tok, "", nil); a.Status != 200 {
			t.Fatalf("%s: %d %s", p, a.Status, a.Body)
		}
	}
	v.do(t, "GET", "/users/bob@contoso.test/messages", tok, "", nil)
	if err := v.E.Live.Update(func(w *world.World) error {
		w.Faults = append(w.Faults, world.Fault{ID: "throttle-once", Endpoint: "graph", Status: 429, Times: 1})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a := v.do(t, "GET", "/users/alice@contoso.test/messages", tok, "", nil)
	wantError(t, a, 429, "TooManyRequests")
	if a.Header.Get("Retry-After") == "" {
		t.Error("an injected 429 without Retry-After")
	}
	if a := v.do(t, "GET", "/users/alice@contoso.test/messages", tok, "", nil); a.Status != 200 {
		t.Errorf("after the fault: %d", a.Status)
	}
	if got := v.E.Graph.RequestsTo("Alice@Contoso.test") - alice0; got != 4 {
		t.Errorf("alice's requests: %d, want 4", got)
	}
	if got := v.E.Graph.RequestsTo("bob@contoso.test") - bob0; got != 1 {
		t.Errorf("bob's requests: %d, want 1", got)
	}
}

// TestWireFaultProbability: a graph fault with a probability fails some requests and not others, the
// same ones for the same seed.
func TestWireFaultProbability(t *testing.T) {
	run := func() string {
		v := start(t)
		tok := v.appToken(t)
		if err := v.E.Live.Update(func(w *world.World) error {
			w.Faults = append(w.Faults, world.Fault{ID: "sometimes", Endpoint: "graph", Status: 429, Probability: 0.5, Seed: 7})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for range 30 {
			got.WriteString(strconv.Itoa(v.do(t, "GET", "/users/alice@contoso.test/mailFolders/inbox", tok, "", nil).Status / 100))
		}
		return got.String()
	}
	first, second := run(), run()
	if !strings.Contains(first, "2") || !strings.Contains(first, "4") || first != second {
		t.Errorf("statuses %s, then %s: want a mix, the same twice", first, second)
	}
}

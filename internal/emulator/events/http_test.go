package events_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
)

// get fetches the log over HTTP and decodes its JSON lines and cursor.
func get(t *testing.T, c *http.Client, url string) ([]events.Event, uint64) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, url, resp)
}

// decode reads a Handler's answer: its JSON lines and cursor.
func decode(t *testing.T, url string, resp *http.Response) ([]events.Event, uint64) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", ct)
	}
	var evs []events.Event
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	cursor, err := strconv.ParseUint(resp.Header.Get(events.CursorHeader), 10, 64)
	if err != nil {
		t.Fatalf("%s header: %v", events.CursorHeader, err)
	}
	return evs, cursor
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 30s")
		}
		runtime.Gosched()
	}
}

func seqs(evs []events.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, strconv.FormatUint(e.Seq, 10)+":"+string(e.Kind))
	}
	return strings.Join(s, " ")
}

// TestHandlerFiltersAndCursor: filters select, limit cuts short with a cursor at the last event
// returned, and a filtered answer's cursor skips the events that did not match.
func TestHandlerFiltersAndCursor(t *testing.T) {
	l := events.New(0, nil, nil)
	srv := httptest.NewServer(events.Handler(l))
	defer srv.Close()
	c := srv.Client()
	l.Add(events.Event{Kind: events.TokenIssued, Protocol: "identity", ClientID: "AAAA-1", User: "alice@contoso.test"})
	l.Add(events.Event{Kind: events.AuthRefused, Protocol: "smtp", User: "bob@contoso.test", Code: "5.7.139"})
	l.Add(events.Event{Kind: events.AuthAccepted, Protocol: "imap", User: "Alice@Contoso.test", App: "mail"})
	l.Add(events.Event{Kind: events.MessageDelivered, Mailbox: "bob@contoso.test", Size: 10})

	all, cur := get(t, c, srv.URL)
	if seqs(all) != "1:token.issued 2:auth.refused 3:auth.accepted 4:message.delivered" || cur != 4 {
		t.Fatalf("all: %s cursor %d", seqs(all), cur)
	}
	if all[1].Code != "5.7.139" || all[3].Size != 10 {
		t.Fatalf("fields lost: %+v", all)
	}
	for q, want := range map[string]string{
		"?kind=auth.refused,auth.accepted":                "2:auth.refused 3:auth.accepted",
		"?kind=token.issued&kind=message.delivered":       "1:token.issued 4:message.delivered",
		"?protocol=imap":                                  "3:auth.accepted",
		"?user=alice@contoso.test":                        "1:token.issued 3:auth.accepted",
		"?client_id=aaaa-1":                               "1:token.issued",
		"?app=mail":                                       "3:auth.accepted",
		"?mailbox=bob@contoso.test":                       "4:message.delivered",
		"?since=2":                                        "3:auth.accepted 4:message.delivered",
		"?user=alice@contoso.test&kind=auth.accepted":     "3:auth.accepted",
		"?kind=auth.refused&protocol=imap":                "",
		"?since=1&kind=auth.refused,token.issued&limit=5": "2:auth.refused",
	} {
		got, cur := get(t, c, srv.URL+q)
		if seqs(got) != want || cur != 4 {
			t.Errorf("%s: got %q cursor %d, want %q cursor 4", q, seqs(got), cur, want)
		}
	}
	got, cur := get(t, c, srv.URL+"?limit=2&since=1")
	if seqs(got) != "2:auth.refused 3:auth.accepted" || cur != 3 {
		t.Fatalf("limit: %s cursor %d, want 2,3 cursor 3", seqs(got), cur)
	}
	if got, cur = get(t, c, srv.URL+"?since="+strconv.FormatUint(cur, 10)); seqs(got) != "4:message.delivered" || cur != 4 {
		t.Fatalf("continuing: %s cursor %d", seqs(got), cur)
	}
}

// TestHandlerRefusesBadQueries: typos and out-of-range values are a 400 naming the problem, not
// an empty answer that looks like "nothing happened".
func TestHandlerRefusesBadQueries(t *testing.T) {
	srv := httptest.NewServer(events.Handler(events.New(0, nil, nil)))
	defer srv.Close()
	for q, want := range map[string]string{
		"?kind=token.isued":  `unknown event kind "token.isued"`,
		"?protocol=pop3":     `unknown protocol "pop3"`,
		"?since=-1":          `since="-1"`,
		"?limit=x":           `limit="x"`,
		"?wait=2m":           `wait="2m"`,
		"?wait=5":            `wait="5"`,
		"?kinds=auth.issued": `unknown parameter "kinds"`,
	} {
		resp, err := srv.Client().Get(srv.URL + q)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.String(), want) {
			t.Errorf("%s: %s %q, want 400 containing %q", q, resp.Status, body.String(), want)
		}
	}
	resp, err := srv.Client().Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}
}

// TestHandlerLongPoll: a wait answers as soon as a matching event is added (an event that does not
// match does not wake it with an empty answer), and an expired wait answers empty with the cursor.
func TestHandlerLongPoll(t *testing.T) {
	l := events.New(0, nil, nil)
	srv := httptest.NewServer(events.Handler(l))
	defer srv.Close()
	type answer struct {
		resp *http.Response
		err  error
	}
	done := make(chan answer, 1)
	url := srv.URL + "?kind=auth.refused&wait=60s"
	go func() {
		// The wait is far longer than the test may take: only the Add below can end it in time.
		resp, err := srv.Client().Get(url)
		done <- answer{resp, err}
	}()
	waitFor(t, func() bool { return events.Waiting(l) == 1 })
	l.Add(events.Event{Kind: events.TokenIssued}) // wakes the poll, which finds nothing and waits again
	waitFor(t, func() bool { return events.Waiting(l) == 1 })
	select {
	case a := <-done:
		t.Fatalf("an event that does not match ended the long poll: %v", a.err)
	default:
	}
	l.Add(events.Event{Kind: events.AuthRefused, Protocol: "imap"})
	select {
	case a := <-done:
		if a.err != nil {
			t.Fatal(a.err)
		}
		if evs, cur := decode(t, url, a.resp); seqs(evs) != "2:auth.refused" || cur != 2 {
			t.Fatalf("long poll: %s cursor %d", seqs(evs), cur)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll did not answer when a matching event was added")
	}
	start := time.Now()
	evs, cur := get(t, srv.Client(), srv.URL+"?since=2&wait=50ms")
	if len(evs) != 0 || cur != 2 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("expired wait: %s cursor %d after %v", seqs(evs), cur, time.Since(start))
	}
}

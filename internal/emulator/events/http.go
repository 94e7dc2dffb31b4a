package events

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// MaxWait bounds the long poll of Handler's wait parameter, below common proxies' idle timeouts.
const MaxWait = 60 * time.Second

// CursorHeader is the response header of Handler that holds the cursor to pass as since next time.
const CursorHeader = "Mailoauth-Events-Cursor"

// Handler serves l over HTTP: GET (or HEAD) answers the events as JSON lines
// (application/x-ndjson), one Event object per line, oldest first. Query parameters:
//
//	since=SEQ      only events with a greater Seq (default 0: all the log still holds)
//	kind=K         only these kinds; repeatable or a comma list (token.issued,auth.refused)
//	protocol=P     identity, imap, pop, smtp or graph
//	user=, app=, client_id=, mailbox=   only events about these
//	limit=N        at most N events
//	wait=DURATION  when nothing matches yet, wait up to DURATION (at most MaxWait; Go syntax:
//	               "30s") for a matching event and answer as soon as one is added
//
// The CursorHeader response header holds the cursor to pass as since to continue where this
// answer ended. An unknown parameter or a malformed value is a 400 whose body says which. Handler
// does no authorization: mount it behind the control API's.
func Handler(l *Log) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the event log is read with GET", http.StatusMethodNotAllowed)
			return
		}
		q, err := parseQuery(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		evs, cursor := q.read(r.Context(), l)
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set(CursorHeader, strconv.FormatUint(cursor, 10))
		if r.Method == http.MethodHead {
			return
		}
		enc := json.NewEncoder(w) // one object and a newline per Encode: JSON lines
		for _, e := range evs {
			if enc.Encode(e) != nil {
				return // the client went away
			}
		}
	})
}

// query is one request to Handler.
type query struct {
	since  uint64
	filter Filter
	limit  int
	wait   time.Duration
}

var queryParams = map[string]bool{
	"since": true, "kind": true, "protocol": true, "user": true, "app": true, "client_id": true,
	"mailbox": true, "limit": true, "wait": true,
}

func parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	for k := range v {
		if !queryParams[k] {
			return query{}, fmt.Errorf("unknown parameter %q: use since, kind, protocol, user, app, client_id, mailbox, limit or wait", k)
		}
	}
	var q query
	var err error
	if s := v.Get("since"); s != "" {
		if q.since, err = strconv.ParseUint(s, 10, 64); err != nil {
			return query{}, fmt.Errorf("since=%q is not a Seq: use the number of the %s header", s, CursorHeader)
		}
	}
	if s := v.Get("limit"); s != "" {
		if q.limit, err = strconv.Atoi(s); err != nil || q.limit < 0 {
			return query{}, fmt.Errorf("limit=%q is not a count of events: use a whole number, 0 for no limit", s)
		}
	}
	if s := v.Get("wait"); s != "" {
		if q.wait, err = time.ParseDuration(s); err != nil || q.wait < 0 || q.wait > MaxWait {
			return query{}, fmt.Errorf("wait=%q is not a duration up to %s: use Go's syntax, such as 30s", s, MaxWait)
		}
	}
	q.filter, err = ParseFilter(v)
	return q, err
}

// read answers q from l, waiting up to q.wait for a first matching event; the request's context
// ends the wait early when the client goes away.
func (q query) read(ctx context.Context, l *Log) ([]Event, uint64) {
	evs, cursor := l.Read(q.since, q.filter.Match, q.limit)
	if len(evs) > 0 || q.wait == 0 {
		return evs, cursor
	}
	ctx, cancel := context.WithTimeout(ctx, q.wait)
	defer cancel()
	for l.Wait(ctx, cursor) {
		if evs, cursor = l.Read(cursor, q.filter.Match, q.limit); len(evs) > 0 {
			break
		}
	}
	return evs, cursor
}

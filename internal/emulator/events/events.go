// Package events is the emulator's event log: every token the identity platform issues or refuses,
// every IMAP, POP3, SMTP and Graph authentication Exchange accepts or refuses (with its reason), and
// every message delivered, in order, for tests to assert on ("exactly one token request", "refused
// because the app lacks SMTP.SendAsApp").
//
// The servers Add to one Log, which also writes each event to the emulator's log; readers take what
// came after a cursor (Since, Read) or wait for it (Wait), and Handler serves the same over HTTP as
// JSON lines, for the control API.
// The Log keeps the most recent events only (a ring), so a long-running emulator's memory stays
// bounded. An event must never carry a token, secret, password or code: only who, what and why.
package events

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Kind says what happened.
type Kind string

// The kinds of event.
const (
	TokenIssued      Kind = "token.issued"      // the identity platform issued a token
	TokenRefused     Kind = "token.refused"     // the identity platform refused a token request (Code: AADSTS)
	AuthAccepted     Kind = "auth.accepted"     // a mail server or Graph accepted a login or a bearer token
	AuthRefused      Kind = "auth.refused"      // a mail server or Graph refused one (Code: Exchange's reason)
	MessageDelivered Kind = "message.delivered" // a message reached a mailbox
)

// Event is one thing that happened. Fields that do not apply are empty.
type Event struct {
	Seq      uint64    `json:"seq"` // 1, 2, ... in the order of Add
	Time     time.Time `json:"time"`
	Kind     Kind      `json:"kind"`
	Protocol string    `json:"protocol,omitempty"`  // identity, imap, pop, smtp or graph
	Grant    string    `json:"grant,omitempty"`     // OAuth grant type of a token request
	ClientID string    `json:"client_id,omitempty"` // the app's client id
	App      string    `json:"app,omitempty"`       // the app's name in the World
	User     string    `json:"user,omitempty"`      // the user signed in or logging in
	Mailbox  string    `json:"mailbox,omitempty"`   // the mailbox opened or delivered to
	Code     string    `json:"code,omitempty"`      // AADSTS number or Exchange's refusal reason
	Reason   string    `json:"reason,omitempty"`    // why, in words
	Size     int       `json:"size,omitempty"`      // bytes of a delivered message
}

// DefaultCapacity is how many events a Log made with capacity 0 keeps.
const DefaultCapacity = 10000

// Log is a bounded, ordered event log, safe for concurrent use. A nil *Log drops what is added, so
// servers built without one need no checks.
type Log struct {
	now func() time.Time
	log *slog.Logger

	mu      sync.Mutex
	ring    []Event // ring[(seq-1) % cap]
	next    uint64  // Seq of the next event
	changed chan struct{}
	waiting int // readers blocked in Wait since the last Add, for tests of long polls
}

// New returns a Log keeping the last capacity events (0: DefaultCapacity); now nil means time.Now.
// Each event added is also written to log (nil: nowhere) as one line at level Info, with the
// event's fields as attributes, so that the emulator's log tells the same story.
func New(capacity int, now func() time.Time, log *slog.Logger) *Log {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	if now == nil {
		now = time.Now
	}
	return &Log{now: now, log: log, ring: make([]Event, capacity), next: 1, changed: make(chan struct{})}
}

// Add records e, giving it the next Seq and the current time.
func (l *Log) Add(e Event) {
	if l == nil {
		return
	}
	l.mu.Lock()
	e.Seq = l.next
	e.Time = l.now().UTC()
	l.ring[(e.Seq-1)%uint64(len(l.ring))] = e
	l.next++
	close(l.changed)
	l.changed = make(chan struct{})
	l.waiting = 0
	l.mu.Unlock()
	if l.log != nil {
		l.log.LogAttrs(context.Background(), slog.LevelInfo, "event: "+string(e.Kind), e.attrs()...)
	}
}

// attrs are e's fields that are set, as log attributes named as in JSON.
func (e Event) attrs() []slog.Attr {
	a := []slog.Attr{slog.Uint64("seq", e.Seq)}
	for _, f := range []struct{ k, v string }{
		{"protocol", e.Protocol}, {"grant", e.Grant}, {"client_id", e.ClientID}, {"app", e.App},
		{"user", e.User}, {"mailbox", e.Mailbox}, {"code", e.Code}, {"reason", e.Reason},
	} {
		if f.v != "" {
			a = append(a, slog.String(f.k, f.v))
		}
	}
	if e.Size > 0 {
		a = append(a, slog.Int("size", e.Size))
	}
	return a
}

// Since returns the events with Seq > after that match (nil: all), oldest first, at most limit of
// them (0: no limit). Events that fell out of the ring are gone; Last tells where the log is.
func (l *Log) Since(after uint64, match func(Event) bool, limit int) []Event {
	evs, _ := l.Read(after, match, limit)
	return evs
}

// Read is Since that also returns the cursor to pass as after next time: the Seq of the last event
// returned when limit cut the answer short, else the newest Seq it looked at (so events that did
// not match are not looked at again, and none added meanwhile is skipped).
func (l *Log) Read(after uint64, match func(Event) bool, limit int) (evs []Event, cursor uint64) {
	if l == nil {
		return nil, after
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	first := uint64(1)
	if n := uint64(len(l.ring)); l.next-1 > n {
		first = l.next - n
	}
	if after+1 > first {
		first = after + 1
	}
	cursor = max(after, l.next-1)
	for seq := first; seq < l.next; seq++ {
		e := l.ring[(seq-1)%uint64(len(l.ring))]
		if match == nil || match(e) {
			evs = append(evs, e)
			if limit > 0 && len(evs) == limit {
				return evs, seq
			}
		}
	}
	return evs, cursor
}

// Last returns the Seq of the newest event (0 when none was added).
func (l *Log) Last() uint64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// Wait blocks until an event with Seq > after exists or ctx ends, and reports whether one does.
func (l *Log) Wait(ctx context.Context, after uint64) bool {
	if l == nil {
		return false
	}
	for {
		l.mu.Lock()
		if l.next-1 > after {
			l.mu.Unlock()
			return true
		}
		ch := l.changed
		l.waiting++
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			l.mu.Lock()
			if ch == l.changed {
				l.waiting--
			}
			l.mu.Unlock()
			return false
		}
	}
}

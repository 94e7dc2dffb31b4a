package mailoauthtest

import (
	"context"
	"fmt"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
)

// EventKind says what happened.
type EventKind string

// The kinds of Event.
const (
	TokenIssued      EventKind = "token.issued"      // the identity platform issued a token
	TokenRefused     EventKind = "token.refused"     // it refused a token request (Code: AADSTS…)
	AuthAccepted     EventKind = "auth.accepted"     // IMAP, POP3, SMTP or Graph accepted a login or bearer token
	AuthRefused      EventKind = "auth.refused"      // one of them refused it (Code: Exchange's or Graph's reason)
	MessageDelivered EventKind = "message.delivered" // a message reached a mailbox
)

// Event is one thing the Server did that a test may assert on: a token issued or refused, a login
// accepted or refused, a message delivered. Fields that do not apply are empty; none ever holds a
// token, secret, password or code.
type Event struct {
	Seq      uint64    // 1, 2, ... in the order things happened
	Time     time.Time // by Options.Now
	Kind     EventKind
	Protocol string // "identity", "imap", "pop", "smtp" or "graph"
	Grant    string // a token request's OAuth grant type, e.g. "client_credentials"
	ClientID string // the app's client id
	App      string // the app's name in the world: "desktop" or "daemon" in the default one
	User     string // the user signing in or logging in
	Mailbox  string // the mailbox opened or delivered to
	Code     string // why a refusal: "AADSTS7000215", "basic_auth_disabled", "ErrorAccessDenied", ...
	Reason   string // the same in words
	Size     int    // a delivered message's bytes
}

// EventFilter selects events. Its zero value selects every event.
type EventFilter struct {
	After    uint64      // only events with a greater Seq: the Seq of the last event seen
	Kinds    []EventKind // only these kinds (none: every kind)
	Protocol string      // only this protocol
	User     string      // only about this user (case-insensitive)
	App      string      // only about the app of this name
	Mailbox  string      // only about this mailbox (case-insensitive)
}

func (f EventFilter) match() func(events.Event) bool {
	in := events.Filter{Protocol: f.Protocol, User: f.User, App: f.App, Mailbox: f.Mailbox}
	for _, k := range f.Kinds {
		in.Kinds = append(in.Kinds, events.Kind(k))
	}
	return in.Match
}

// Events returns the events f selects, oldest first. The Server keeps the latest 10,000.
func (s *Server) Events(f EventFilter) []Event {
	in := s.e.Events.Since(f.After, f.match(), 0)
	out := make([]Event, len(in))
	for i, e := range in {
		out[i] = event(e)
	}
	return out
}

// WaitEvent returns the first event f selects, waiting for it to happen if none has yet, until ctx
// ends. To wait for something that follows what a test already saw, set f.After to the Seq of the
// last event seen.
func (s *Server) WaitEvent(ctx context.Context, f EventFilter) (Event, error) {
	match := f.match()
	after := f.After
	for {
		evs, cursor := s.e.Events.Read(after, match, 1)
		if len(evs) == 1 {
			return event(evs[0]), nil
		}
		if !s.e.Events.Wait(ctx, cursor) {
			return Event{}, fmt.Errorf("mailoauthtest: no event matched %+v before the context ended: %w", f, ctx.Err())
		}
		after = cursor
	}
}

func event(e events.Event) Event {
	return Event{
		Seq: e.Seq, Time: e.Time, Kind: EventKind(e.Kind), Protocol: e.Protocol, Grant: e.Grant,
		ClientID: e.ClientID, App: e.App, User: e.User, Mailbox: e.Mailbox, Code: e.Code, Reason: e.Reason, Size: e.Size,
	}
}

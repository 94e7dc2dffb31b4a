package events_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
)

// TestRingKeepsTheNewest adds more events than the Log holds: Since returns the newest, in order,
// from the cursor on, filtered and limited.
func TestRingKeepsTheNewest(t *testing.T) {
	l := events.New(4, nil, nil)
	for i := range 10 {
		k := events.TokenIssued
		if i%2 == 1 {
			k = events.TokenRefused
		}
		l.Add(events.Event{Kind: k})
	}
	all := l.Since(0, nil, 0)
	if len(all) != 4 || all[0].Seq != 7 || all[3].Seq != 10 {
		t.Fatalf("got %v, want seq 7..10", all)
	}
	if got := l.Since(8, nil, 0); len(got) != 2 || got[0].Seq != 9 {
		t.Fatalf("Since(8) = %v", got)
	}
	refused := l.Since(0, func(e events.Event) bool { return e.Kind == events.TokenRefused }, 1)
	if len(refused) != 1 || refused[0].Seq != 8 {
		t.Fatalf("first refusal in the ring = %v, want seq 8", refused)
	}
	if l.Last() != 10 {
		t.Fatalf("Last = %d", l.Last())
	}
	var nilLog *events.Log
	nilLog.Add(events.Event{}) // servers built without a log
}

// TestWaitWakesOnAdd: a reader waiting past the newest event wakes when one is added, and gives up
// when its context ends.
func TestWaitWakesOnAdd(t *testing.T) {
	l := events.New(0, nil, nil)
	done := make(chan bool)
	go func() { done <- l.Wait(context.Background(), 0) }()
	l.Add(events.Event{Kind: events.MessageDelivered})
	if !<-done {
		t.Fatal("Wait returned false after an Add")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if l.Wait(ctx, 1) {
		t.Fatal("Wait reported an event that was never added")
	}
}

// TestAddWritesTheLog: each event is one log line carrying the fields that are set.
func TestAddWritesTheLog(t *testing.T) {
	var buf bytes.Buffer
	l := events.New(0, nil, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	l.Add(events.Event{Kind: events.AuthRefused, Protocol: "smtp", User: "bob@contoso.test", Code: "MissingRole",
		Reason: "the app lacks SMTP.SendAsApp"})
	l.Add(events.Event{Kind: events.MessageDelivered, Mailbox: "bob@contoso.test", Size: 42})
	want := `level=INFO msg="event: auth.refused" seq=1 protocol=smtp user=bob@contoso.test code=MissingRole reason="the app lacks SMTP.SendAsApp"
level=INFO msg="event: message.delivered" seq=2 mailbox=bob@contoso.test size=42
`
	if buf.String() != want {
		t.Fatalf("log:\n%s\nwant:\n%s", buf.String(), want)
	}
}

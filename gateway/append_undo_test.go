package gateway_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// An APPEND whose message Graph stored but whose flags it then refused must not leave the message:
// the program is told NO and appends it again (mbsync, imaplib scripts), and the folder would hold
// it twice.
func TestAppendRefusedLeavesNothing(t *testing.T) {
	l := newLab(t)
	mb := l.open(t, gateway.Options{})
	ctx := ctxT(t)
	inbox := folder(t, mb, "INBOX")
	syncNow(t, inbox)
	raw := []byte("From: bob@contoso.test\r\nTo: alice@contoso.test\r\nSubject: appended once\r\n\r\nbody\r\n")
	// The creation goes through; the flags' PATCH is refused.
	if err := l.E.Live.Update(func(w *world.World) error {
		w.Faults = append(w.Faults, world.Fault{Endpoint: "graph", Status: 403, After: 1, Times: 1})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := inbox.Append(ctx, bytes.NewReader(raw), int64(len(raw)), false, true, time.Time{}); err == nil {
		t.Fatal("Append succeeded through a refused flag change")
	}
	if w := l.where(t, "appended once"); len(w) != 0 {
		t.Errorf("after a refused Append the message is in %v; want nowhere (the program appends it again)", w)
	}
}

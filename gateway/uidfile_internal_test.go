package gateway

import (
	"context"
	"testing"
)

// An id from Graph (which the gateway does not trust) with a line end in it must not damage the
// folder's file: every later Assign would fail, and the folder could not be opened again.
func TestFileUIDStoreIDWithLineEnd(t *testing.T) {
	s := NewFileUIDStore(t.TempDir())
	ctx := context.Background()
	if _, _, err := s.Assign(ctx, testMailbox, "f", []string{"good-1"}); err != nil {
		t.Fatal(err)
	}
	_, _, _ = s.Assign(ctx, testMailbox, "f", []string{"evil\nx"}) // refused or stored: either
	v, uids, err := s.Assign(ctx, testMailbox, "f", []string{"good-1", "good-2"})
	if err != nil {
		t.Fatalf("Assign after an id with a line end: %v", err)
	}
	if v == 0 || uids[0] != 1 || uids[1] == 1 {
		t.Fatalf("Assign after an id with a line end: validity %d, UIDs %v; want good-1 still 1 and good-2 another", v, uids)
	}
}

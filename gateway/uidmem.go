package gateway

import (
	"context"
	"strings"
	"sync"
)

// memUIDStore keeps UIDs in memory, for a process alone: what NewMailboxes uses without a store.
type memUIDStore struct {
	mu      sync.Mutex
	folders map[[2]string]*uidMap
	last    map[string]uint32 // the last UIDVALIDITY given, per mailbox
}

func newMemUIDStore() *memUIDStore {
	return &memUIDStore{folders: map[[2]string]*uidMap{}, last: map[string]uint32{}}
}

func (s *memUIDStore) Assign(_ context.Context, mailbox, folder string, ids []string) (uint32, []uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mailbox = strings.ToLower(mailbox)
	k := [2]string{mailbox, folder}
	m := s.folders[k]
	if m == nil {
		v := newValidity(s.last[mailbox])
		s.last[mailbox] = v
		m = &uidMap{validity: v, next: 1, uids: map[string]uint32{}}
		s.folders[k] = m
	}
	uids, _ := m.assign(ids)
	return m.validity, uids, nil
}

func (s *memUIDStore) Forget(_ context.Context, mailbox, folder string, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.folders[[2]string{strings.ToLower(mailbox), folder}]; m != nil {
		m.forget(ids)
	}
	return nil
}

func (s *memUIDStore) nextUID(_ context.Context, mailbox, folder string) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.folders[[2]string{strings.ToLower(mailbox), folder}]; m != nil {
		return m.next, nil
	}
	return 1, nil
}

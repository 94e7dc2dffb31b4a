package store

import (
	"context"
	"sort"
	"sync"
)

// Memory is a Store that lives and dies with the process (library users who persist nothing, tests).
type Memory struct {
	mu    sync.Mutex
	m     map[string][]byte
	locks keyLocks // Lock's: within the process, the only one that sees this store
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{m: map[string][]byte{}} }

// Load implements Store: a copy of the entry, or nil.
func (s *Memory) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.m[key]...), nil
}

// Update implements Store: fn runs with the store locked, so updates of one process never interleave.
func (s *Memory) Update(_ context.Context, key string, fn func(old []byte) ([]byte, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	var in []byte
	if ok {
		in = append([]byte(nil), old...)
	}
	next, err := fn(in)
	if err != nil {
		return err
	}
	if next == nil {
		delete(s.m, key)
	} else {
		s.m[key] = append([]byte(nil), next...)
	}
	return nil
}

// Keys implements Store, sorted.
func (s *Memory) Keys(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// Entries implements Lister: copies of the entries under prefix.
func (s *Memory) Entries(_ context.Context, prefix string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := withPrefix(s.m, prefix)
	for k, v := range out {
		out[k] = append([]byte(nil), v...)
	}
	return out, nil
}

// Lock implements Locker.
func (s *Memory) Lock(ctx context.Context, key string) (func(), error) { return s.locks.lock(ctx, key) }

package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/mailoauth/mailoauth/internal/atomicfile"
)

// FileUIDStore is a UIDStore in a directory (made 0700): one subdirectory per mailbox and one file
// per folder (0600), both named by a hash so that no address is in clear. A folder's file holds its
// UIDVALIDITY, the next UID and one "UID id" line per message; it is rewritten whole and atomically
// (a temporary file renamed over it) under an flock(2) lock on a file beside it, so that processes
// sharing the directory assign the same UIDs, and a crash leaves the old file or the new one.
// Rewriting is linear in the folder's size, and happens only when messages arrive or go.
type FileUIDStore struct {
	dir string
	mu  sync.Mutex // flock is per open file, and one lock file a time keeps this process simple
}

// NewFileUIDStore returns a store in dir, created on first write.
func NewFileUIDStore(dir string) *FileUIDStore { return &FileUIDStore{dir: dir} }

const (
	uidFileMagic = "mailoauth-uids 1"
	lockRetry    = 10 * time.Millisecond // how often a taken flock is tried again
)

// Assign implements UIDStore.
func (s *FileUIDStore) Assign(ctx context.Context, mailbox, folder string, ids []string) (uint32, []uint32, error) {
	if err := checkIDs(ids); err != nil {
		return 0, nil, err
	}
	var validity uint32
	var uids []uint32
	err := s.update(ctx, mailbox, folder, true, func(m *uidMap) bool {
		var changed bool
		uids, changed = m.assign(ids)
		validity = m.validity
		return changed
	})
	return validity, uids, err
}

// Forget implements UIDStore.
func (s *FileUIDStore) Forget(ctx context.Context, mailbox, folder string, ids []string) error {
	if err := checkIDs(ids); err != nil {
		return err
	}
	return s.update(ctx, mailbox, folder, false, func(m *uidMap) bool { return m.forget(ids) })
}

// nextUID reads the folder's file: it is replaced whole, so it needs no lock to be read.
func (s *FileUIDStore) nextUID(_ context.Context, mailbox, folder string) (uint32, error) {
	m, err := readUIDFile(filepath.Join(s.dir, nameHash(mailbox), nameHash(folder)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 1, nil
	case err != nil:
		return 0, errUIDStore(s.dir, err)
	}
	return m.next, nil
}

// update runs fn on a folder's map under the folder's lock and writes the map if fn changed it. A
// missing folder is created when create is set (a new UIDVALIDITY), else left missing.
func (s *FileUIDStore) update(ctx context.Context, mailbox, folder string, create bool, fn func(*uidMap) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mdir := filepath.Join(s.dir, nameHash(mailbox))
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return errUIDStore(s.dir, err)
	}
	path := filepath.Join(mdir, nameHash(folder))
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return errUIDStore(s.dir, err)
	}
	defer unlock()
	m, err := readUIDFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !create:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		if m, err = s.newFolder(ctx, mdir); err != nil {
			return errUIDStore(s.dir, err)
		}
		fn(m)
	case err != nil:
		return errUIDStore(path, err)
	case !fn(m):
		return nil
	}
	if err := atomicfile.WriteFile(path, m.marshal(), 0o600); err != nil {
		return errUIDStore(s.dir, err)
	}
	return nil
}

// newFolder chooses a new folder's UIDVALIDITY under the mailbox's lock, and records it there as
// the last one given.
func (s *FileUIDStore) newFolder(ctx context.Context, mdir string) (*uidMap, error) {
	path := filepath.Join(mdir, "validity")
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	var last uint64
	if b, err := os.ReadFile(path); err == nil {
		last, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	v := newValidity(uint32(last))
	if err := atomicfile.WriteFile(path, []byte(strconv.FormatUint(uint64(v), 10)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return &uidMap{validity: v, next: 1, uids: map[string]uint32{}}, nil
}

// lockFile takes an exclusive flock on path, waiting until ctx ends.
func lockFile(ctx context.Context, path string) (func(), error) {
	l := flock.New(path, flock.SetPermissions(0o600))
	ok, err := l.TryLockContext(ctx, lockRetry)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("lock %s: not taken", path)
	}
	return func() { _ = l.Unlock() }, nil
}

// marshal writes the map: magic, validity, next, then "UID id" lines in UID order.
func (m *uidMap) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nvalidity %d\nnext %d\n", uidFileMagic, m.validity, m.next)
	for id, u := range m.uids {
		fmt.Fprintf(&b, "%d %s\n", u, id)
	}
	return b.Bytes()
}

// readUIDFile reads a folder's file.
func readUIDFile(path string) (*uidMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := &uidMap{uids: map[string]uint32{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 0; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case n == 0:
			if line != uidFileMagic {
				return nil, errBadUIDFile
			}
		case n == 1:
			if _, err := fmt.Sscanf(line, "validity %d", &m.validity); err != nil {
				return nil, errBadUIDFile
			}
		case n == 2:
			if _, err := fmt.Sscanf(line, "next %d", &m.next); err != nil {
				return nil, errBadUIDFile
			}
		default:
			us, id, ok := strings.Cut(line, " ")
			u, err := strconv.ParseUint(us, 10, 32)
			if !ok || err != nil || id == "" {
				return nil, errBadUIDFile
			}
			m.uids[id] = uint32(u)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if m.validity == 0 || m.next == 0 {
		return nil, errBadUIDFile
	}
	return m, nil
}

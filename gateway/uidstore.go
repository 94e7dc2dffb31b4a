package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/store"
)

// UIDStore keeps the UID maps: per mailbox and folder, a UIDVALIDITY and the UID of each message
// (by Graph's immutable id), where the proxy keeps its tokens (beside the file store, or in Redis
// for a fleet) so that every replica and every restart gives the same UIDs.
//
// A folder is named by its Graph id, which survives renames and moves: a folder deleted and
// created again has a new id, hence a new UIDVALIDITY. A new folder's UIDVALIDITY is the time in
// seconds, or one more than the last one given in that mailbox if that is not less.
type UIDStore interface {
	// Assign returns the folder's UIDVALIDITY and the UIDs of ids, in order: an id seen before keeps
	// its UID; new ids get the next UIDs, in the order given. It is atomic across processes.
	Assign(ctx context.Context, mailbox, folder string, ids []string) (validity uint32, uids []uint32, err error)
	// Forget drops ids (messages gone from the folder); their UIDs are never given again.
	Forget(ctx context.Context, mailbox, folder string, ids []string) error
}

// nextUIDer is a UIDStore that can say a folder's next UID, so that UIDNEXT after a restart stays
// above every UID given before, not only above those of the messages still there. The stores of
// this package are; another UIDStore gets UIDNEXT from the UIDs it gave.
type nextUIDer interface {
	nextUID(ctx context.Context, mailbox, folder string) (uint32, error)
}

// OpenUIDStore opens the UID store that goes with a configuration's token store: in Redis (under
// the token store's prefix) when the backend is redis, else files in the directory "uids" beside
// the token file. Close the returned io.Closer when done.
func OpenUIDStore(c config.Store) (UIDStore, io.Closer, error) {
	if c.Backend == config.BackendRedis {
		rc, err := store.RedisClient(c)
		if err != nil {
			return nil, nil, err
		}
		prefix := c.Prefix
		if prefix == "" {
			prefix = "mailoauth:"
		}
		s := NewRedisUIDStore(rc, prefix)
		return s, rc, nil
	}
	path := c.Path
	if path == "" {
		p, err := config.DefaultStorePath()
		if err != nil {
			return nil, nil, err
		}
		path = p
	}
	return NewFileUIDStore(filepath.Join(filepath.Dir(path), "uids")), io.NopCloser(nil), nil
}

// nameHash names a mailbox or folder in file names and Redis keys without its address in clear.
func nameHash(s string) string {
	h := sha256.Sum256([]byte(strings.ToLower(s)))
	return hex.EncodeToString(h[:16])
}

// newValidity is a new folder's UIDVALIDITY: now in seconds, or last+1 when that is not less, so
// that a folder created again within the second still gets a new one.
func newValidity(last uint32) uint32 {
	v := uint32(time.Now().Unix())
	if v <= last {
		v = last + 1
	}
	return v
}

// errUIDStore is a UID store's failure, said for the log.
func errUIDStore(where string, err error) error {
	if errors.Is(err, errBadUIDFile) {
		return fmt.Errorf("gateway: the UIDs kept in %s are damaged; remove them to number the folder's messages again under a new UIDVALIDITY", where)
	}
	return fmt.Errorf("gateway: the UID store %s cannot be used (it must be writable by this user, or Redis reachable): %w", where, err)
}

// uidMap is one folder's UIDs.
type uidMap struct {
	validity, next uint32
	uids           map[string]uint32
}

// assign gives ids their UIDs, new ones from next; it says whether it changed anything.
func (m *uidMap) assign(ids []string) (uids []uint32, changed bool) {
	uids = make([]uint32, len(ids))
	for i, id := range ids {
		u, ok := m.uids[id]
		if !ok {
			u = m.next
			m.next++
			m.uids[id] = u
			changed = true
		}
		uids[i] = u
	}
	return uids, changed
}

// forget drops ids; it says whether any was there.
func (m *uidMap) forget(ids []string) (changed bool) {
	for _, id := range ids {
		if _, ok := m.uids[id]; ok {
			delete(m.uids, id)
			changed = true
		}
	}
	return changed
}

// errBadID is a message id the UID stores refuse: empty, longer than maxIDLen, or with a byte
// outside printable ASCII (Graph's immutable ids are base64url-like). Graph is upstream and not
// trusted: such an id could otherwise break a UID file's lines.
var errBadID = errors.New("gateway: Graph gave a message id that is empty, too long or not printable ASCII; the message is left out")

// maxIDLen bounds a message id (Graph's are about 150 bytes).
const maxIDLen = 1024

// validID says whether a UID store takes id.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkIDs refuses a list with an id no store may keep.
func checkIDs(ids []string) error {
	for _, id := range ids {
		if !validID(id) {
			return errBadID
		}
	}
	return nil
}

// errBadUIDFile is a UID file (or Redis answer) that cannot be read back.
var errBadUIDFile = errors.New("damaged UIDs")

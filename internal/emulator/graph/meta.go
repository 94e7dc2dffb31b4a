package graph

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// itemMeta is what Graph keeps of a message beyond its MIME bytes and IMAP flags (which the store
// holds): properties IMAP does not show, and a version that every change through Graph bumps.
type itemMeta struct {
	categories []string
	importance string // "" = the message's Importance header
	// flag is the flagStatus IMAP cannot carry: "complete" for a stored message ("flagged" is
	// \Flagged), any status for a Graph draft, which the store does not hold.
	flag     string
	version  int
	modified time.Time
}

// metas holds the itemMeta of messages by id.
type metas struct {
	mu sync.Mutex
	m  map[string]itemMeta
}

func (ms *metas) get(id string) itemMeta {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.m[id]
}

// update changes a message's meta and bumps its version.
func (ms *metas) update(id string, now time.Time, f func(*itemMeta)) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.m == nil {
		ms.m = map[string]itemMeta{}
	}
	v := ms.m[id]
	v.categories = slices.Clone(v.categories)
	f(&v)
	v.version++
	v.modified = now
	ms.m[id] = v
}

// carry gives a new id (a moved or copied message) the meta of an old one; move drops the old.
func (ms *metas) carry(from, to string, move bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	v, ok := ms.m[from]
	if !ok {
		return
	}
	if move {
		delete(ms.m, from)
	}
	v.categories = slices.Clone(v.categories)
	ms.m[to] = v
}

func (ms *metas) drop(id string) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	delete(ms.m, id)
}

// changeKey is the message's version as Graph shows it (changeKey, and @odata.etag W/"<changeKey>"):
// it changes at every update, through Graph (the meta's version) or IMAP (flags), and at a move —
// also at one back to where the message was (its UID in the folder is new then): Exchange's change
// keys never return to an older value.
func changeKey(msg mailstore.Message, meta itemMeta) string {
	h := sha256.New()
	for _, s := range []string{msg.ID, msg.Folder, strconv.FormatUint(uint64(msg.UID), 10), strings.Join(msg.Flags, " "), strconv.Itoa(meta.version),
		strconv.FormatInt(msg.Received.UnixNano(), 36), strconv.Itoa(len(msg.Data))} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	// Exchange's change keys are base64 of a binary blob starting CQAAABYAAA; the tail is ours.
	return "CQAAABYAAA" + base64.StdEncoding.EncodeToString(h.Sum(nil)[:18])
}

// flagStatus is Graph's followupFlag status: \Flagged is "flagged"; otherwise what Graph set.
func flagStatus(msg mailstore.Message, meta itemMeta) string {
	switch {
	case msg.HasFlag(mailstore.FlagFlagged):
		return "flagged"
	case meta.flag != "":
		return meta.flag
	}
	return "notFlagged"
}

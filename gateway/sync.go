package gateway

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/graph"
)

// FolderInfo describes a folder as IMAP names it.
type FolderInfo struct {
	ID   string // Graph's folder id
	Name string // the IMAP name: "INBOX", or the path of display names joined with "/"
	// SpecialUse is RFC 6154's attribute: \Sent, \Drafts, \Trash, \Junk, \Archive, or "".
	SpecialUse    string
	HasChildren   bool
	Total, Unread int
}

// Folder is one folder's messages with their UIDs. The Folders of one folder that Mailbox.Folder
// returns share its listing, its refreshes and its waits.
type Folder struct {
	Info FolderInfo
	st   *folderState
	m    *Mailbox
}

// Message is what the gateway knows of a message without reading its MIME.
type Message struct {
	UID      uint32
	ID       string // Graph's immutable id
	Size     int64  // RFC822.SIZE (PidTagMessageSize)
	Received time.Time
	IsRead   bool
	Flagged  bool
	IsDraft  bool
	// Header is the message's header section (CRLF lines and the empty line after them), built from
	// Graph's internetMessageHeaders where Graph has them (nil where it has none, as for a message
	// created in the mailbox rather than received): ENVELOPE, BODY[HEADER] and SEARCH read it
	// without fetching the MIME.
	Header []byte
}

// View is a folder's listing at one moment: UIDVALIDITY, UIDNEXT and the messages by UID. It is
// shared by the sessions that asked for it: read it, never change it.
type View struct {
	UIDValidity uint32
	UIDNext     uint32
	Messages    []Message // ascending UID
	Version     uint64    // grows with every change seen
}

// refreshTimeout bounds one refresh, which runs on without the session that started it (others
// wait for it too).
const refreshTimeout = 10 * time.Minute

// folderState is a folder's listing, shared by its sessions.
type folderState struct {
	m      *Mailbox
	id     string // Graph's folder id
	drafts bool   // the Drafts folder: the only one whose messages show as drafts (see toMessage)

	mu       sync.Mutex
	delta    string              // the delta query's state ("": none yet)
	msgs     map[string]*Message // by id
	validity uint32
	uidNext  uint32
	version  uint64
	synced   time.Time       // when the last refresh succeeded
	began    time.Time       // when the last refresh that succeeded began
	polled   time.Time       // when the last refresh ended, however it ended
	view     *View           // the listing as a View, until the next change
	flight   *flight         // the refresh under way, if any
	touched  map[string]bool // ids changed here while flight is under way (see apply)
	changed  chan struct{}   // closed, and replaced, at every change
}

// flight is one refresh that every caller of Sync waits for.
type flight struct {
	done  chan struct{}
	began time.Time
	err   error
}

func newFolderState(m *Mailbox, fi FolderInfo) *folderState {
	return &folderState{m: m, id: fi.ID, drafts: fi.SpecialUse == `\Drafts`, msgs: map[string]*Message{}, changed: make(chan struct{})}
}

// Sync returns the folder's listing, refreshed from Graph (through a delta query) if it is older
// than maxAge; 0 refreshes now (a refresh that began before the call does not do). Sessions of the
// folder share one refresh: a caller that comes while one is under way waits for it, and a caller
// that gives up (its ctx ends) does not end it for the others.
func (f *Folder) Sync(ctx context.Context, maxAge time.Duration) (*View, error) {
	st := f.st
	called := time.Now()
	for {
		st.mu.Lock()
		fresh := !st.synced.IsZero() && maxAge > 0 && time.Since(st.synced) < maxAge
		if fresh || (maxAge <= 0 && !st.began.IsZero() && !st.began.Before(called)) {
			v := st.viewLocked()
			st.mu.Unlock()
			return v, nil
		}
		fl := st.flight
		if fl == nil {
			fl = st.startLocked(ctx)
		}
		st.mu.Unlock()
		select {
		case <-fl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if fl.err != nil && (maxAge > 0 || !fl.began.Before(called)) {
			return nil, fl.err
		}
		// Done: the next turn returns the listing; or it began too early for maxAge 0: another.
	}
}

// startLocked starts a refresh; it runs on without the caller, bounded by refreshTimeout.
func (st *folderState) startLocked(ctx context.Context) *flight {
	fl := &flight{done: make(chan struct{}), began: time.Now()}
	st.flight, st.touched = fl, nil
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	go func() {
		defer cancel()
		err := st.refresh(rctx)
		st.mu.Lock()
		fl.err = err
		st.flight = nil
		st.polled = time.Now()
		if err == nil {
			st.synced, st.began = st.polled, fl.began
		}
		st.mu.Unlock()
		close(fl.done)
	}()
	return fl
}

// Wait returns when the folder's Version passes after, or ctx ends; the folder is polled (shared,
// at most every PollInterval) while someone waits. For IMAP IDLE. A refresh that fails (Graph
// throttling, say) is tried again a PollInterval later.
func (f *Folder) Wait(ctx context.Context, after uint64) error {
	st := f.st
	every := f.m.opts().PollInterval
	for {
		st.mu.Lock()
		v, ch, last := st.version, st.changed, st.polled
		st.mu.Unlock()
		if v > after {
			return nil
		}
		if d := time.Until(last.Add(every)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ch:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			t.Stop()
			continue
		}
		if _, err := f.Sync(ctx, every); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.m.opts().Log.Warn("gateway: refreshing a folder for IDLE failed; trying again later",
				"mailbox", f.m.Address, "folder", f.Info.Name, "err", err)
		}
	}
}

// viewLocked returns the listing as a View, built once per change.
func (st *folderState) viewLocked() *View {
	if st.view != nil {
		return st.view
	}
	v := &View{UIDValidity: st.validity, UIDNext: st.uidNext, Version: st.version, Messages: make([]Message, 0, len(st.msgs))}
	for _, m := range st.msgs {
		v.Messages = append(v.Messages, *m)
	}
	sort.Slice(v.Messages, func(i, j int) bool { return v.Messages[i].UID < v.Messages[j].UID })
	st.view = v
	return v
}

// changedLocked records a change: a new version, a new View, and the waiters told.
func (st *folderState) changedLocked() {
	st.version++
	st.view = nil
	close(st.changed)
	st.changed = make(chan struct{})
}

// refresh runs the delta query from the last state (the whole folder the first time, or when Graph
// forgot the state) and applies it.
func (st *folderState) refresh(ctx context.Context) error {
	st.mu.Lock()
	state := st.delta
	st.mu.Unlock()
	g := st.m.Graph
	d, err := g.MessagesDelta(ctx, st.id, state, graph.DeltaOptions{})
	full := state == ""
	if errors.Is(err, graph.ErrDeltaExpired) && !full {
		st.m.opts().Log.Info("gateway: Graph forgot a folder's delta state; listing it again", "mailbox", st.m.Address)
		d, err = g.MessagesDelta(ctx, st.id, "", graph.DeltaOptions{})
		full = true
	}
	if err != nil {
		return err
	}
	err = st.apply(ctx, d, full)
	if errors.Is(err, errRenumbered) {
		// The UID store lost the folder: list it whole, every message numbered anew.
		if d, err = g.MessagesDelta(ctx, st.id, "", graph.DeltaOptions{}); err != nil {
			return err
		}
		err = st.apply(ctx, d, true)
	}
	return err
}

// errRenumbered: the UID store gave the folder a new UIDVALIDITY (it lost the folder's map); the
// listing was emptied and must be listed whole again.
var errRenumbered = errors.New("gateway: the UID store numbered the folder anew")

// apply takes a delta round in: new messages get UIDs (in the order they were received), known
// ones keep theirs, removed ones are forgotten. A full round lists every message: those known and
// not in it are gone.
func (st *folderState) apply(ctx context.Context, d *graph.Delta, full bool) error {
	latest := make(map[string]*graph.Message, len(d.Changed))
	var order []*graph.Message
	for _, gm := range d.Changed {
		if !validID(gm.ID) {
			st.m.opts().Log.Warn("gateway: a message Graph listed is left out", "mailbox", st.m.Address, "err", errBadID)
			continue
		}
		if _, seen := latest[gm.ID]; !seen {
			order = append(order, gm)
		}
		latest[gm.ID] = gm
	}
	removed := map[string]bool{}
	for _, id := range d.Removed {
		if latest[id] == nil && validID(id) {
			removed[id] = true
		}
	}
	st.mu.Lock()
	// A message changed or taken out here while this round was under way keeps that change: Graph's
	// answer may be older than it (a STORE \Seen seen undone, a moved message back under a new
	// UID); the next round brings what Graph has since.
	for id := range st.touched {
		delete(latest, id)
	}
	order = slices.DeleteFunc(order, func(gm *graph.Message) bool { return st.touched[gm.ID] })
	var fresh []*graph.Message
	for _, gm := range order {
		if st.msgs[gm.ID] == nil {
			fresh = append(fresh, latest[gm.ID])
		}
	}
	if full {
		for id := range st.msgs {
			if latest[id] == nil && !st.touched[id] { // a touched one is left out of latest, not gone
				removed[id] = true
			}
		}
	}
	needValidity := st.validity == 0
	// The known messages Graph gives again are asked for too: another replica may have seen one
	// leave and come back, and given it a new UID that this one must show as well.
	var known []string
	for _, gm := range order {
		if st.msgs[gm.ID] != nil {
			known = append(known, gm.ID)
		}
	}
	st.mu.Unlock()

	sort.SliceStable(fresh, func(i, j int) bool { return fresh[i].Received.Before(fresh[j].Received) })
	ids := make([]string, 0, len(fresh)+len(known))
	for _, gm := range fresh {
		ids = append(ids, gm.ID)
	}
	ids = append(ids, known...)
	var validity, next uint32
	var uids []uint32
	if len(ids) > 0 || needValidity {
		var err error
		if validity, uids, err = st.m.uidStore().Assign(ctx, st.m.Address, st.id, ids); err != nil {
			return err
		}
	}
	if nu, ok := st.m.uidStore().(nextUIDer); ok && needValidity {
		var err error
		if next, err = nu.nextUID(ctx, st.m.Address, st.id); err != nil {
			return err
		}
	}
	var gone []string
	for id := range removed {
		gone = append(gone, id)
	}

	st.mu.Lock()
	change := false
	// A new UID at or under one already shown: the store lost the folder too (and gave it the
	// same UIDVALIDITY, which only the time in seconds can cause).
	lost := false
	for _, u := range uids[:len(fresh)] {
		lost = lost || (st.validity != 0 && u < st.uidNext)
	}
	if validity != 0 && (validity != st.validity || lost) {
		if st.validity != 0 {
			// The store began the folder again (its map was lost): every UID is new.
			st.msgs, st.delta, st.validity, st.uidNext = map[string]*Message{}, "", validity, 0
			st.touched = nil // the folder is listed whole again: nothing here to keep
			st.changedLocked()
			st.mu.Unlock()
			return errRenumbered
		}
		st.validity, change = validity, true
	}
	// A known message the store now numbers otherwise is gone and new here too.
	freshUIDs := uids[:len(fresh):len(fresh)]
	for i, id := range known {
		u := uids[len(fresh)+i]
		if old := st.msgs[id]; old != nil && old.UID != u && !st.touched[id] {
			fresh, freshUIDs = append(fresh, latest[id]), append(freshUIDs, u)
			delete(st.msgs, id)
		}
	}
	uids = freshUIDs
	for i, gm := range fresh {
		if st.touched[gm.ID] { // taken out here since the round's first look (see above)
			continue
		}
		st.msgs[gm.ID] = st.toMessage(gm, uids[i], time.Now())
		st.uidNext = max(st.uidNext, uids[i]+1)
		change = true
	}
	isFresh := make(map[string]bool, len(fresh))
	for _, gm := range fresh {
		isFresh[gm.ID] = true
	}
	for id, gm := range latest {
		old := st.msgs[id]
		if old == nil || isFresh[id] || st.touched[id] {
			continue
		}
		nm := st.toMessage(gm, old.UID, old.Received)
		if nm.Header == nil && !st.drafts {
			nm.Header = old.Header // one read from the MIME (KeepHeader): a received header does not change
		}
		if !sameMessage(old, nm) {
			st.msgs[id] = nm
			change = true
		}
	}
	for _, id := range gone {
		if st.msgs[id] != nil {
			delete(st.msgs, id)
			change = true
		}
	}
	st.uidNext = max(st.uidNext, next, 1)
	st.delta = d.State
	if change {
		st.changedLocked()
	}
	st.mu.Unlock()

	if len(gone) > 0 {
		return st.m.uidStore().Forget(ctx, st.m.Address, st.id, gone)
	}
	return nil
}

// sameMessage says whether an update changed nothing a session sees.
func sameMessage(a, b *Message) bool {
	return a.IsRead == b.IsRead && a.Flagged == b.Flagged && a.IsDraft == b.IsDraft && a.Size == b.Size &&
		a.Received.Equal(b.Received) && bytes.Equal(a.Header, b.Header)
}

// toMessage is Graph's message as the gateway keeps it. Graph makes every message created from
// MIME a draft (an APPEND: Graph has no other way to store a program's MIME), so outside the
// Drafts folder isDraft is not shown: a message a program appended to its INBOX is not a \Draft.
// Such a message may have no receivedDateTime: it is then its sentDateTime, else received (when
// the gateway first saw it, or as it was last time).
func (st *folderState) toMessage(gm *graph.Message, uid uint32, received time.Time) *Message {
	m := &Message{UID: uid, ID: gm.ID, Size: gm.Size, Received: gm.Received, IsRead: gm.IsRead,
		Flagged: gm.Flagged, IsDraft: gm.IsDraft && st.drafts, Header: headerSection(gm.Headers)}
	switch {
	case !m.Received.IsZero():
	case !gm.Sent.IsZero():
		m.Received = gm.Sent
	default:
		m.Received = received
	}
	return m
}

// headerSection writes internetMessageHeaders as a header section; a CR or LF inside a value
// (Graph unfolds them) becomes a space, so that no value can end the section early. nil when Graph
// gave no headers.
func headerSection(hs []graph.Header) []byte {
	if len(hs) == 0 {
		return nil
	}
	var b bytes.Buffer
	clean := strings.NewReplacer("\r", " ", "\n", " ")
	for _, h := range hs {
		b.WriteString(clean.Replace(h.Name))
		b.WriteString(": ")
		b.WriteString(clean.Replace(h.Value))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

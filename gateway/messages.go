package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/graph"
)

// ErrTooBig is a message larger than the gateway can store: Options.MaxMessage, or for Append
// Graph's limit of a message created from MIME.
var ErrTooBig = errors.New("the message is larger than the gateway can store: Options.MaxMessage, or 3 MB for a message appended (Graph creates one from MIME only up to that)")

// parallel is how many requests of one operation on many messages are sent at once: Graph's limit
// per mailbox (graph.Limiter holds the rest back anyway).
const parallel = 4

// opts are the mailbox's Options with the defaults filled in.
func (m *Mailbox) opts() Options { return m.Options.withDefaults() }

// uidStore is the mailbox's UID store; a Mailbox made without Mailboxes keeps UIDs in memory.
func (m *Mailbox) uidStore() UIDStore {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.uids == nil {
		m.uids = newMemUIDStore()
	}
	return m.uids
}

// forEach runs fn for each index, a few at a time, and returns the first error (after every call
// ended: none is abandoned half way).
func forEach(n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, parallel)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// Open streams a message's MIME from Graph. Close it.
func (f *Folder) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	body, _, err := f.m.Graph.OpenMIME(ctx, id)
	return body, err
}

// SetFlags sets isRead and/or the follow-up flag of messages (nil: unchanged). The folder's
// listing shows the change at once (its Version grows); on an error, the messages before it in
// Graph's answers may have changed.
func (f *Folder) SetFlags(ctx context.Context, ids []string, read, flagged *bool) error {
	if read == nil && flagged == nil {
		return nil
	}
	return forEach(len(ids), func(i int) error {
		if err := f.m.Graph.SetFlags(ctx, ids[i], graph.FlagUpdate{IsRead: read, Flagged: flagged}); err != nil {
			return err
		}
		f.st.update(ids[i], func(m *Message) {
			if read != nil {
				m.IsRead = *read
			}
			if flagged != nil {
				m.Flagged = *flagged
			}
		})
		return nil
	})
}

// maxKeptHeader bounds a header section KeepHeader keeps: real ones are a few KB.
const maxKeptHeader = 64 << 10

// KeepHeader records the header section a session read from a message's MIME, for a message Graph
// gave no internetMessageHeaders for (a Sent Items copy, a draft, every message APPENDed): Header
// then gives it to every session of the folder, and none reads that MIME again for a FETCH or
// SEARCH of the header (one Graph request per message each time). Not in the Drafts folder, whose
// messages change; not over 64 KB. The listing's Version does not change.
func (f *Folder) KeepHeader(id string, header []byte) {
	if f.st.drafts || len(header) == 0 || len(header) > maxKeptHeader {
		return
	}
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if old := st.msgs[id]; old != nil && old.Header == nil {
		m := *old
		m.Header = header
		st.msgs[id] = &m
		st.view = nil // the next View has it; Views already given stay as they are
	}
}

// Header returns the header section the folder's listing has for a message: Graph's
// internetMessageHeaders, or one recorded with KeepHeader; nil if neither.
func (f *Folder) Header(id string) []byte {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if m := f.st.msgs[id]; m != nil {
		return m.Header
	}
	return nil
}

// update changes a known message of the listing.
func (st *folderState) update(id string, fn func(*Message)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	old := st.msgs[id]
	if old == nil {
		return
	}
	st.touchLocked(id)
	m := *old
	fn(&m)
	if !sameMessage(old, &m) {
		st.msgs[id] = &m
		st.changedLocked()
	}
}

// touchLocked records a change made here to a message while a refresh is under way, which that
// refresh's answer must not undo.
func (st *folderState) touchLocked(id string) {
	if st.flight == nil {
		return
	}
	if st.touched == nil {
		st.touched = map[string]bool{}
	}
	st.touched[id] = true
}

// drop takes messages that left the folder out of its listing and the UID store.
func (st *folderState) drop(ctx context.Context, ids []string) error {
	st.mu.Lock()
	change := false
	for _, id := range ids {
		st.touchLocked(id)
		if st.msgs[id] != nil {
			delete(st.msgs, id)
			change = true
		}
	}
	if change {
		st.changedLocked()
	}
	st.mu.Unlock()
	return st.m.uidStore().Forget(ctx, st.m.Address, st.id, ids)
}

// Delete removes messages: to Deleted Items, or for good when Options.DeletePermanently is set (or
// when the folder is Deleted Items itself). It lists the folder first (one Graph request): a
// message no longer in it (gone, or filed elsewhere since) counts as deleted and is not touched.
func (f *Folder) Delete(ctx context.Context, ids []string) error {
	permanent := f.m.opts().DeletePermanently || f.Info.SpecialUse == `\Trash`
	// Ids are immutable: one the user filed elsewhere since the listing would be deleted there.
	// Only those the folder still has are deleted; the others are gone from it already.
	v, err := f.Sync(ctx, 0)
	if err != nil {
		return err
	}
	here := make(map[string]bool, len(v.Messages))
	for _, m := range v.Messages {
		here[m.ID] = true
	}
	done := make([]bool, len(ids))
	err = forEach(len(ids), func(i int) error {
		if !here[ids[i]] {
			done[i] = true
			return nil
		}
		var err error
		if permanent {
			err = f.m.Graph.PermanentDelete(ctx, ids[i])
		} else {
			_, err = f.m.Graph.Move(ctx, ids[i], "deleteditems")
		}
		if err != nil && !graph.IsNotFound(err) {
			return err
		}
		done[i] = true
		return nil
	})
	var gone []string
	for i, ok := range done {
		if ok {
			gone = append(gone, ids[i])
		}
	}
	if derr := f.st.drop(ctx, gone); err == nil {
		err = derr
	}
	return err
}

// Copy and Move put messages into dest and return their UIDs there, in order (for UIDPLUS): the
// UIDs are assigned from the ids Graph gives the copies (a moved message keeps its immutable id),
// so dest's next Sync lists them with the same UIDs. On an error, Copy removes the copies it made
// (a program told COPY failed copies again; those it cannot remove are logged), and Move leaves
// the messages it moved in dest (Graph has no transaction; nothing is lost or doubled).
func (f *Folder) Copy(ctx context.Context, ids []string, dest *Folder) ([]uint32, error) {
	return f.transfer(ctx, ids, dest, false)
}

// Move is Copy, the originals leaving f.
func (f *Folder) Move(ctx context.Context, ids []string, dest *Folder) ([]uint32, error) {
	return f.transfer(ctx, ids, dest, true)
}

func (f *Folder) transfer(ctx context.Context, ids []string, dest *Folder, move bool) ([]uint32, error) {
	newIDs := make([]string, len(ids))
	err := forEach(len(ids), func(i int) error {
		var gm *graph.Message
		var err error
		if move {
			gm, err = f.m.Graph.Move(ctx, ids[i], dest.Info.ID)
		} else {
			gm, err = f.m.Graph.Copy(ctx, ids[i], dest.Info.ID)
		}
		if err != nil {
			return err
		}
		newIDs[i] = gm.ID
		return nil
	})
	if err != nil && !move {
		f.undoCopies(ctx, newIDs)
	}
	if move {
		var moved []string
		for i, id := range newIDs {
			if id != "" {
				moved = append(moved, ids[i])
			}
		}
		if derr := f.st.drop(ctx, moved); err == nil {
			err = derr
		}
	}
	if err != nil {
		return nil, err
	}
	dest.st.stale()
	if move {
		// A moved message dest's store still knows (it left and its leaving was not seen) would
		// keep its old, lower UID: UIDPLUS pairs UIDs in order, so every one is numbered anew.
		if err := dest.m.uidStore().Forget(ctx, dest.m.Address, dest.Info.ID, newIDs); err != nil {
			return nil, err
		}
	}
	_, uids, err := dest.m.uidStore().Assign(ctx, dest.m.Address, dest.Info.ID, newIDs)
	return uids, err
}

// undoCopyTimeout bounds the removal of the copies a failed Copy made.
const undoCopyTimeout = 2 * time.Minute

// undoCopies deletes for good the copies a Copy made before it failed (or the message a failed
// Append stored): IMAP's COPY either copies everything or nothing (RFC 3501 6.4.7), and a program
// told it failed copies (or appends) again. It goes on after the caller's ctx ended, for a bounded
// time; copies it cannot remove are logged (a count).
func (f *Folder) undoCopies(ctx context.Context, ids []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoCopyTimeout)
	defer cancel()
	var mu sync.Mutex
	left := 0
	_ = forEach(len(ids), func(i int) error {
		if ids[i] == "" {
			return nil
		}
		if err := f.m.Graph.PermanentDelete(ctx, ids[i]); err != nil && !graph.IsNotFound(err) {
			mu.Lock()
			left++
			mu.Unlock()
			return err
		}
		return nil
	})
	if left > 0 {
		f.m.opts().Log.Warn("gateway: a COPY or APPEND failed half way and some of what it stored could not be removed",
			"mailbox", f.m.Address, "left", left)
	}
}

// stale makes the next Sync ask Graph whatever its maxAge: a message was put in the folder here.
func (st *folderState) stale() {
	st.mu.Lock()
	st.synced = time.Time{}
	st.mu.Unlock()
}

// UIDValidity is the folder's UIDVALIDITY (for COPYUID and APPENDUID), from its listing, or from
// the UID store if it was never listed.
func (f *Folder) UIDValidity(ctx context.Context) (uint32, error) {
	f.st.mu.Lock()
	v := f.st.validity
	f.st.mu.Unlock()
	if v != 0 {
		return v, nil
	}
	v, _, err := f.m.uidStore().Assign(ctx, f.m.Address, f.Info.ID, nil)
	return v, err
}

// Append stores a message from its MIME and returns its UID; read sets \Seen, flagged \Flagged.
// Graph stores a message created from MIME as a draft (Outlook shows it as one; the gateway shows
// \Draft only in the Drafts folder), takes at most 3 MB of MIME that way (a larger one is
// ErrTooBig), and sets its received time itself: received is not kept.
func (f *Folder) Append(ctx context.Context, mime io.Reader, size int64, read, flagged bool, received time.Time) (uint32, error) {
	if size > f.m.opts().MaxMessage {
		return 0, ErrTooBig
	}
	gm, err := f.m.Graph.CreateFromMIME(ctx, f.Info.ID, mime, size)
	if errors.Is(err, graph.ErrMIMETooLarge) {
		return 0, fmt.Errorf("%w: %w", ErrTooBig, err)
	}
	if err != nil {
		return 0, err
	}
	if gm.IsRead != read || gm.Flagged != flagged {
		if err := f.m.Graph.SetFlags(ctx, gm.ID, graph.FlagUpdate{IsRead: &read, Flagged: &flagged}); err != nil {
			// The program is told the APPEND failed and sends the message again: the one stored
			// must not stay, or the folder holds it twice.
			f.undoCopies(ctx, []string{gm.ID})
			return 0, fmt.Errorf("the message's flags could not be set, so it was not stored: %w", err)
		}
	}
	f.st.stale()
	_, uids, err := f.m.uidStore().Assign(ctx, f.m.Address, f.Info.ID, []string{gm.ID})
	if err != nil {
		return 0, err
	}
	return uids[0], nil
}

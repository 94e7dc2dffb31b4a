package imapgw

import (
	"context"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailoauth/mailoauth/gateway"
)

// selection is the selected folder as this session was told it: msgs[i] has sequence number i+1.
// Changes Graph shows are folded in only when the program may be told them (poll).
type selection struct {
	f        *gateway.Folder
	readOnly bool
	validity uint32
	uidNext  uint32
	version  uint64
	msgs     []gateway.Message
	// deleted holds the UIDs this session marked \Deleted: Graph has no such flag, so it lives
	// here until EXPUNGE or CLOSE.
	deleted map[uint32]bool
	// highest is the highest UID the program was told of: a message above it is new, one below
	// it and not listed was expunged (by this session: the view may lag behind it).
	highest uint32
	// stale: messages gone from Graph are still listed, because the program could not be told yet.
	stale bool
}

var (
	mailboxFlags   = []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}
	permanentFlags = []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagDeleted}
)

func (s *session) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	ctx, cancel := s.op()
	defer cancel()
	f, v, err := s.listFolder(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	sel := &selection{f: f, readOnly: options.ReadOnly, validity: v.UIDValidity, uidNext: v.UIDNext,
		version: v.Version, msgs: append([]gateway.Message(nil), v.Messages...), deleted: map[uint32]bool{}}
	if n := len(sel.msgs); n > 0 {
		sel.highest = sel.msgs[n-1].UID
	}
	s.mu.Lock()
	s.sel = sel
	s.mu.Unlock()
	d := &imap.SelectData{
		Flags:       mailboxFlags,
		NumMessages: uint32(len(sel.msgs)),
		UIDNext:     imap.UID(sel.uidNext),
		UIDValidity: sel.validity,
	}
	if !sel.readOnly {
		d.PermanentFlags = permanentFlags
	}
	for i, m := range sel.msgs {
		if !m.IsRead {
			d.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	return d, nil
}

func (s *session) Unselect() error {
	s.mu.Lock()
	s.sel = nil
	s.mu.Unlock()
	return nil
}

// selected returns the selection (imapserver calls the selected-state methods only with one).
func (s *session) selected() *selection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sel
}

func flagsOf(m *gateway.Message, deleted bool) []imap.Flag {
	fl := []imap.Flag{}
	if m.IsRead {
		fl = append(fl, imap.FlagSeen)
	}
	if m.Flagged {
		fl = append(fl, imap.FlagFlagged)
	}
	if deleted {
		fl = append(fl, imap.FlagDeleted)
	}
	if m.IsDraft {
		fl = append(fl, imap.FlagDraft)
	}
	return fl
}

// item is a message of the selection with its sequence number.
type item struct {
	seq uint32
	m   *gateway.Message
}

// resolve returns the messages numSet names, in sequence order. "*" is the last message (its
// UID for a UID set), as RFC 3501 6.4.8 says.
func (sel *selection) resolve(numSet imap.NumSet) []item {
	var out []item
	switch set := numSet.(type) {
	case imap.SeqSet:
		max := uint32(len(sel.msgs))
		set = append(imap.SeqSet(nil), set...)
		for i := range set {
			static(&set[i].Start, &set[i].Stop, max)
		}
		for i := range sel.msgs {
			if set.Contains(uint32(i + 1)) {
				out = append(out, item{uint32(i + 1), &sel.msgs[i]})
			}
		}
	case imap.UIDSet:
		var max uint32
		if n := len(sel.msgs); n > 0 {
			max = sel.msgs[n-1].UID
		}
		set = append(imap.UIDSet(nil), set...)
		for i := range set {
			static((*uint32)(&set[i].Start), (*uint32)(&set[i].Stop), max)
		}
		for i := range sel.msgs {
			if set.Contains(imap.UID(sel.msgs[i].UID)) {
				out = append(out, item{uint32(i + 1), &sel.msgs[i]})
			}
		}
	}
	return out
}

func static(start, stop *uint32, max uint32) {
	if *start == 0 {
		*start = max
	}
	if *stop == 0 {
		*stop = max
	}
	if *start > *stop {
		*start, *stop = *stop, *start
	}
}

func ids(items []item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.m.ID
	}
	return out
}

func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	_, err := s.poll(w, allowExpunge)
	return err
}

// poll folds the folder's listing into the selection; synced is false when Graph could not be
// asked (the program hears of the changes later: that is not the command's failure).
func (s *session) poll(w *imapserver.UpdateWriter, allowExpunge bool) (synced bool, err error) {
	ctx, cancel := s.op()
	defer cancel()
	sel := s.selected()
	if sel == nil {
		return true, nil
	}
	v, err := sel.f.Sync(ctx, s.srv.o.Gateway.PollInterval)
	if err != nil {
		s.srv.o.Log.Warn("imap gateway: could not refresh the folder", "mailbox", s.mbox.Address, "folder", sel.f.Info.Name, "err", err)
		return false, nil
	}
	return true, s.apply(sel, v, w, allowExpunge)
}

// apply tells the program how v differs from what it was told: EXPUNGE for messages gone (only
// when allowed: otherwise they stay, and vanish at a later poll), FETCH FLAGS for changed flags,
// EXISTS for new messages.
func (s *session) apply(sel *selection, v *gateway.View, w *imapserver.UpdateWriter, allowExpunge bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel != sel || v.Version == sel.version && !sel.stale {
		return nil
	}
	if v.UIDValidity != sel.validity {
		// The folder's UIDs were renumbered: this session's numbers mean nothing any more.
		return &imap.Error{Type: imap.StatusResponseTypeBye, Text: "The folder's UIDVALIDITY changed; select it again."}
	}
	now := make(map[uint32]*gateway.Message, len(v.Messages))
	for i := range v.Messages {
		now[v.Messages[i].UID] = &v.Messages[i]
	}
	sel.stale = false
	for i := len(sel.msgs) - 1; i >= 0; i-- {
		if now[sel.msgs[i].UID] != nil {
			continue
		}
		if !allowExpunge {
			sel.stale = true // told at the next poll that may
			continue
		}
		delete(sel.deleted, sel.msgs[i].UID)
		sel.msgs = append(sel.msgs[:i], sel.msgs[i+1:]...)
		if err := w.WriteExpunge(uint32(i + 1)); err != nil {
			return err
		}
	}
	for i := range sel.msgs {
		m := &sel.msgs[i]
		n := now[m.UID]
		if n == nil {
			continue
		}
		changed := n.IsRead != m.IsRead || n.Flagged != m.Flagged || n.IsDraft != m.IsDraft
		*m = *n
		if changed {
			if err := w.WriteMessageFlags(uint32(i+1), imap.UID(m.UID), flagsOf(m, sel.deleted[m.UID])); err != nil {
				return err
			}
		}
	}
	added := false
	for i := range v.Messages {
		if v.Messages[i].UID > sel.highest {
			sel.msgs = append(sel.msgs, v.Messages[i])
			sel.highest = v.Messages[i].UID
			added = true
		}
	}
	if added {
		if err := w.WriteNumMessages(uint32(len(sel.msgs))); err != nil {
			return err
		}
	}
	if v.UIDNext > sel.uidNext {
		sel.uidNext = v.UIDNext
	}
	sel.version = v.Version
	return nil
}

func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	sel := s.selected()
	if sel == nil {
		<-stop
		return nil
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		synced, err := s.poll(w, true)
		if err != nil {
			return err
		}
		s.mu.Lock()
		after := sel.version
		s.mu.Unlock()
		if synced {
			err = sel.f.Wait(ctx, after)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				continue
			}
			s.srv.o.Log.Warn("imap gateway: IDLE could not watch the folder", "mailbox", s.mbox.Address, "folder", sel.f.Info.Name, "err", err)
		}
		// Graph failing: wait a poll interval rather than ask again at once.
		t := time.NewTimer(s.srv.o.Gateway.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	ctx, cancel := s.op()
	defer cancel()
	sel := s.selected()
	var gone []item
	for i := range sel.msgs {
		m := &sel.msgs[i]
		if sel.deleted[m.UID] && (uids == nil || uids.Contains(imap.UID(m.UID))) {
			gone = append(gone, item{uint32(i + 1), m})
		}
	}
	if len(gone) == 0 {
		return nil // also CLOSE of an EXAMINEd folder, where nothing can be \Deleted
	}
	if err := sel.f.Delete(ctx, ids(gone)); err != nil {
		return s.fail("delete the messages", err)
	}
	s.removeAnnounced(sel, gone, w.WriteExpunge)
	return nil
}

// removeAnnounced drops gone (ascending sequence numbers) from the selection and announces each
// with write, highest first so that the numbers the program holds stay right.
func (s *session) removeAnnounced(sel *selection, gone []item, write func(uint32) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for j := len(gone) - 1; j >= 0; j-- {
		i := int(gone[j].seq) - 1
		delete(sel.deleted, sel.msgs[i].UID)
		sel.msgs = append(sel.msgs[:i], sel.msgs[i+1:]...)
		if err := write(uint32(i + 1)); err != nil {
			return // the connection is gone; the selection is right anyway
		}
	}
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	sel := s.selected()
	if sel.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "The folder was opened with EXAMINE; SELECT it to change it."}
	}
	items := sel.resolve(numSet)
	has := map[imap.Flag]bool{}
	for _, f := range flags.Flags {
		has[imap.Flag(canonFlag(f))] = true
	}
	if err := s.storeGraph(sel, items, flags.Op, has); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		switch {
		case flags.Op == imap.StoreFlagsSet:
			sel.deleted[it.m.UID] = has[imap.FlagDeleted]
		case has[imap.FlagDeleted]:
			sel.deleted[it.m.UID] = flags.Op == imap.StoreFlagsAdd
		}
		if !sel.deleted[it.m.UID] {
			delete(sel.deleted, it.m.UID)
		}
	}
	if flags.Silent {
		return nil
	}
	for _, it := range items {
		// The FETCH responses are written under mu: IDLE is not running, nothing else waits.
		rw := w.CreateMessage(it.seq)
		rw.WriteUID(imap.UID(it.m.UID))
		rw.WriteFlags(flagsOf(it.m, sel.deleted[it.m.UID]))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// storeGraph sets \Seen and \Flagged in Graph for the messages whose state differs, and in the
// selection once Graph has them.
func (s *session) storeGraph(sel *selection, items []item, op imap.StoreFlagsOp, has map[imap.Flag]bool) error {
	ctx, cancel := s.op()
	defer cancel()
	want := func(flag imap.Flag, cur bool) bool {
		switch op {
		case imap.StoreFlagsSet:
			return has[flag]
		case imap.StoreFlagsAdd:
			return cur || has[flag]
		default:
			return cur && !has[flag]
		}
	}
	// Group by the change, so that each group is one SetFlags call.
	type change struct{ read, flagged *bool }
	groups := map[[4]bool][]item{}
	for _, it := range items {
		r, f := want(imap.FlagSeen, it.m.IsRead), want(imap.FlagFlagged, it.m.Flagged)
		key := [4]bool{r != it.m.IsRead, r, f != it.m.Flagged, f}
		if key[0] || key[2] {
			groups[key] = append(groups[key], it)
		}
	}
	for key, group := range groups {
		var c change
		if key[0] {
			c.read = &key[1]
		}
		if key[2] {
			c.flagged = &key[3]
		}
		if err := sel.f.SetFlags(ctx, ids(group), c.read, c.flagged); err != nil {
			return s.fail("set the flags", err)
		}
		s.mu.Lock()
		for _, it := range group {
			if key[0] {
				it.m.IsRead = key[1]
			}
			if key[2] {
				it.m.Flagged = key[3]
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// canonFlag spells a system flag as RFC 3501 does, whatever case the program used.
func canonFlag(f imap.Flag) string {
	for _, c := range mailboxFlags {
		if strings.EqualFold(string(c), string(f)) {
			return string(c)
		}
	}
	return string(f)
}

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	ctx, cancel := s.op()
	defer cancel()
	sel := s.selected()
	items, d, err := s.transferStart(sel, numSet, dest, false)
	if err != nil || len(items) == 0 {
		return nil, err // no COPYUID for nothing copied
	}
	uids, err := sel.f.Copy(ctx, ids(items), d)
	if err != nil {
		return nil, s.fail("copy the messages", err)
	}
	return s.copyData(items, uids, d)
}

func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	ctx, cancel := s.op()
	defer cancel()
	sel := s.selected()
	if sel.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "The folder was opened with EXAMINE; SELECT it to change it."}
	}
	items, d, err := s.transferStart(sel, numSet, dest, true)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	uids, err := sel.f.Move(ctx, ids(items), d)
	if err != nil {
		return s.fail("move the messages", err)
	}
	data, err := s.copyData(items, uids, d)
	if err != nil {
		return err
	}
	if err := w.WriteCopyData(data); err != nil {
		return err
	}
	s.removeAnnounced(sel, items, w.WriteExpunge)
	return nil
}

// transferStart finds COPY's or MOVE's messages and destination. COPY may copy into the selected
// folder itself (RFC 3501 6.4.7 allows it: the copies are new messages); MOVE there is refused.
func (s *session) transferStart(sel *selection, numSet imap.NumSet, dest string, move bool) ([]item, *gateway.Folder, error) {
	ctx, cancel := s.op()
	defer cancel()
	d, err := s.mbox.Folder(ctx, dest)
	if err != nil {
		if isNoFolder(err) {
			return nil, nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such folder."}
		}
		return nil, nil, s.fail("open the folder", err)
	}
	if move && d.Info.ID == sel.f.Info.ID {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "The destination is the selected folder."}
	}
	return sel.resolve(numSet), d, nil
}

func (s *session) copyData(items []item, uids []uint32, d *gateway.Folder) (*imap.CopyData, error) {
	ctx, cancel := s.op()
	defer cancel()
	validity, err := d.UIDValidity(ctx)
	if err != nil {
		return nil, s.fail("read the destination's UIDVALIDITY", err)
	}
	data := &imap.CopyData{UIDValidity: validity}
	for i, it := range items {
		if i < len(uids) {
			data.SourceUIDs.AddNum(imap.UID(it.m.UID))
			data.DestUIDs.AddNum(imap.UID(uids[i]))
		}
	}
	return data, nil
}

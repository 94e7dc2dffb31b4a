package mailstore

import (
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Session serves one IMAP connection on a mailbox: an imapserver.Session (with NAMESPACE and MOVE)
// for a connection that is already authenticated (the exchange package authenticates it).
type Session struct {
	mailbox *Mailbox
	view    *view // the selected folder, or nil
}

var _ imapserver.SessionIMAP4rev2 = (*Session)(nil)

// NewSession returns an IMAP session on m.
func (m *Mailbox) NewSession() *Session { return &Session{mailbox: m} }

// The NO texts below are the emulator's: Exchange's for these cases were not found (see
// docs/emulator.md).
func errNoFolder() error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "The requested item could not be found."}
}

func errTryCreate() error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "The requested item could not be found."}
}

func errNo(text string) error { return &imap.Error{Type: imap.StatusResponseTypeNo, Text: text} }

// Close implements imapserver.Session.
func (s *Session) Close() error {
	if s.view != nil {
		s.view.close()
		s.view = nil
	}
	return nil
}

// Login implements imapserver.Session; the exchange package authenticates before a Session exists.
func (s *Session) Login(string, string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "LOGIN failed."}
}

// Select implements imapserver.Session.
func (s *Session) Select(name string, _ *imap.SelectOptions) (*imap.SelectData, error) {
	f := s.mailbox.Folder(name)
	if f == nil {
		return nil, errNoFolder()
	}
	if s.view != nil {
		s.view.close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.view = &view{Folder: f, tracker: f.tracker.NewSession()}
	return f.selectDataLocked(), nil
}

// Unselect implements imapserver.Session.
func (s *Session) Unselect() error {
	if s.view != nil {
		s.view.close()
		s.view = nil
	}
	return nil
}

// Create implements imapserver.Session.
func (s *Session) Create(name string, _ *imap.CreateOptions) error {
	_, err := s.mailbox.CreateFolder(name)
	switch err {
	case nil:
		return nil
	case ErrFolderExists:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "A folder with the specified name already exists."}
	default:
		return errNo("CREATE failed.")
	}
}

// Delete implements imapserver.Session.
func (s *Session) Delete(name string) error {
	switch s.mailbox.DeleteFolder(name) {
	case nil:
		return nil
	case ErrNoFolder:
		return errNoFolder()
	default:
		return errNo("DELETE failed.")
	}
}

// Rename implements imapserver.Session.
func (s *Session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	switch err := s.mailbox.RenameFolder(oldName, newName); err {
	case nil:
		return nil
	case ErrNoFolder:
		return errNoFolder()
	case ErrFolderExists:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "A folder with the specified name already exists."}
	default:
		return errNo("RENAME failed.")
	}
}

// Subscribe implements imapserver.Session.
func (s *Session) Subscribe(name string) error { return s.setSubscribed(name, true) }

// Unsubscribe implements imapserver.Session.
func (s *Session) Unsubscribe(name string) error { return s.setSubscribed(name, false) }

func (s *Session) setSubscribed(name string, on bool) error {
	f := s.mailbox.Folder(name)
	if f == nil {
		return errNoFolder()
	}
	f.mu.Lock()
	f.subscribed = on
	f.mu.Unlock()
	return nil
}

// List implements imapserver.Session.
func (s *Session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: Delim})
	}
	folders := s.mailbox.foldersSnapshot()
	names := map[string]bool{}
	for _, f := range folders {
		names[f.Name()] = true
	}
	for _, f := range folders {
		name := f.Name()
		match := false
		for _, p := range patterns {
			if imapserver.MatchList(name, Delim, ref, p) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		if data := f.list(options, hasChildren(name, names)); data != nil {
			if err := w.WriteList(data); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasChildren(name string, names map[string]bool) bool {
	for n := range names {
		if strings.HasPrefix(n, name+string(Delim)) {
			return true
		}
	}
	return false
}

func (f *Folder) list(options *imap.ListOptions, children bool) *imap.ListData {
	f.mu.Lock()
	defer f.mu.Unlock()
	if options.SelectSubscribed && !f.subscribed {
		return nil
	}
	use, special := specialUse[f.name]
	if options.SelectSpecialUse && !special {
		return nil
	}
	data := &imap.ListData{Mailbox: f.name, Delim: Delim}
	if children {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
	} else {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
	}
	if f.subscribed && options.SelectSubscribed {
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	if special {
		// Exchange lists the special-use attributes without being asked (as LIST-EXTENDED would).
		data.Attrs = append(data.Attrs, use)
	}
	if options.ReturnStatus != nil {
		data.Status = f.statusLocked(options.ReturnStatus)
	}
	return data
}

// Status implements imapserver.Session.
func (s *Session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	f := s.mailbox.Folder(name)
	if f == nil {
		return nil, errNoFolder()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusLocked(options), nil
}

func (f *Folder) statusLocked(options *imap.StatusOptions) *imap.StatusData {
	data := &imap.StatusData{Mailbox: f.name}
	n := uint32(len(f.msgs))
	if options.NumMessages {
		data.NumMessages = &n
	}
	if options.UIDNext {
		data.UIDNext = f.uidNext
	}
	if options.UIDValidity {
		data.UIDValidity = f.uidValidity
	}
	if options.NumUnseen {
		u := n - f.countLocked(imap.FlagSeen)
		data.NumUnseen = &u
	}
	if options.NumDeleted {
		d := f.countLocked(imap.FlagDeleted)
		data.NumDeleted = &d
	}
	if options.Size {
		var size int64
		for _, m := range f.msgs {
			size += int64(len(m.data))
		}
		data.Size = &size
	}
	if options.NumRecent {
		zero := uint32(0)
		data.NumRecent = &zero
	}
	return data
}

func (f *Folder) countLocked(flag imap.Flag) uint32 {
	var n uint32
	for _, m := range f.msgs {
		if _, ok := m.flags[canonicalFlag(flag)]; ok {
			n++
		}
	}
	return n
}

func (f *Folder) selectDataLocked() *imap.SelectData {
	flags := []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft, imap.FlagMDNSent}
	data := &imap.SelectData{
		Flags:          flags,
		PermanentFlags: append(append([]imap.Flag{}, flags...), imap.FlagWildcard),
		NumMessages:    uint32(len(f.msgs)),
		UIDNext:        f.uidNext,
		UIDValidity:    f.uidValidity,
	}
	for i, m := range f.msgs {
		if _, seen := m.flags[canonicalFlag(imap.FlagSeen)]; !seen {
			data.FirstUnseenSeqNum = uint32(i) + 1
			break
		}
	}
	return data
}

// Append implements imapserver.Session.
func (s *Session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	f := s.mailbox.Folder(name)
	if f == nil {
		return nil, errTryCreate()
	}
	// Bounded like Exchange's largest message (150 MB), so an APPEND literal cannot grow without limit.
	const maxAppend = 150 << 20
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(r, maxAppend+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxAppend {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "The message is too big."}
	}
	flags := make([]string, len(options.Flags))
	for i, fl := range options.Flags {
		flags[i] = string(fl)
	}
	msg := f.Append(buf.Bytes(), flags, options.Time)
	f.mu.Lock()
	v := f.uidValidity
	f.mu.Unlock()
	return &imap.AppendData{UIDValidity: v, UID: imap.UID(msg.UID)}, nil
}

// Poll implements imapserver.Session.
func (s *Session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.view == nil {
		return nil
	}
	return s.view.tracker.Poll(w, allowExpunge)
}

// Idle implements imapserver.Session. It does not use SessionTracker.Idle, which misses an update
// queued between imapserver's "+ idling" and its registration: it takes the folder's change channel,
// then writes what is pending, then waits for the next change.
func (s *Session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if s.view == nil {
		<-stop
		return nil
	}
	for {
		changed := s.view.Folder.changes()
		if err := s.view.tracker.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stop:
			return nil
		}
	}
}

// Namespace implements imapserver.SessionNamespace: one personal namespace, "/" delimited, as
// Exchange answers (* NAMESPACE (("" "/")) NIL NIL).
func (s *Session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Delim: Delim}}}, nil
}

// Expunge implements imapserver.Session.
func (s *Session) Expunge(_ *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	f := s.view.Folder
	f.mu.Lock()
	defer f.mu.Unlock()
	set := map[*message]struct{}{}
	for _, m := range f.msgs {
		if uids != nil && !uids.Contains(m.uid) {
			continue
		}
		if _, ok := m.flags[canonicalFlag(imap.FlagDeleted)]; ok {
			set[m] = struct{}{}
		}
	}
	f.expungeLocked(set)
	return nil
}

// Search implements imapserver.Session.
func (s *Session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	v := s.view
	v.mu.Lock()
	defer v.mu.Unlock()
	v.staticCriteria(criteria)
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
	)
	for i, m := range v.msgs {
		seq := v.tracker.EncodeSeqNum(uint32(i) + 1)
		if !m.match(seq, criteria) {
			continue
		}
		uidSet.AddNum(m.uid)
		var num uint32
		switch kind {
		case imapserver.NumKindSeq:
			if seq == 0 {
				continue
			}
			seqSet.AddNum(seq)
			num = seq
		case imapserver.NumKindUID:
			num = uint32(m.uid)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
	}
	if kind == imapserver.NumKindSeq {
		data.All = seqSet
	} else {
		data.All = uidSet
	}
	if options.ReturnSave {
		v.searchRes = uidSet
	}
	return &data, nil
}

// Fetch implements imapserver.Session.
func (s *Session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	return s.view.fetch(w, numSet, options)
}

// Store implements imapserver.Session.
func (s *Session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	v := s.view
	v.forEach(numSet, func(seq uint32, m *message) {
		switch flags.Op {
		case imap.StoreFlagsSet:
			m.flags = map[imap.Flag]struct{}{}
			fallthrough
		case imap.StoreFlagsAdd:
			for _, fl := range flags.Flags {
				m.flags[canonicalFlag(fl)] = struct{}{}
			}
		case imap.StoreFlagsDel:
			for _, fl := range flags.Flags {
				delete(m.flags, canonicalFlag(fl))
			}
		}
		v.Folder.tracker.QueueMessageFlags(seq, m.uid, m.flagList(), v.tracker)
		v.Folder.notifyLocked()
	})
	if !flags.Silent {
		return v.fetch(w, numSet, &imap.FetchOptions{Flags: true})
	}
	return nil
}

// Copy implements imapserver.Session.
func (s *Session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	d := s.mailbox.Folder(dest)
	if d == nil {
		return nil, errTryCreate()
	}
	v := s.view
	if d == v.Folder {
		return nil, errNo("COPY failed.")
	}
	var copies []*message
	v.forEach(numSet, func(_ uint32, m *message) {
		copies = append(copies, &message{id: newID(), data: m.data, received: m.received, flags: cloneFlags(m.flags), uid: m.uid})
	})
	var src, dst imap.UIDSet
	for _, c := range copies {
		src.AddNum(c.uid)
		dst.AddNum(imap.UID(d.put(c).UID))
	}
	d.mu.Lock()
	validity := d.uidValidity
	d.mu.Unlock()
	return &imap.CopyData{UIDValidity: validity, SourceUIDs: src, DestUIDs: dst}, nil
}

func cloneFlags(in map[imap.Flag]struct{}) map[imap.Flag]struct{} {
	out := make(map[imap.Flag]struct{}, len(in))
	for k := range in {
		out[k] = struct{}{}
	}
	return out
}

// Move implements imapserver.SessionMove. Moved messages keep their IDs.
func (s *Session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	d := s.mailbox.Folder(dest)
	if d == nil {
		return errTryCreate()
	}
	v := s.view
	if d == v.Folder {
		return errNo("MOVE failed.")
	}
	v.mu.Lock()
	var moved []*message
	set := map[*message]struct{}{}
	v.forEachLocked(numSet, func(_ uint32, m *message) {
		moved = append(moved, m)
		set[m] = struct{}{}
	})
	seqNums := v.Folder.expungeLocked(set)
	v.mu.Unlock()

	var src, dst imap.UIDSet
	for _, m := range moved {
		src.AddNum(m.uid)
		dst.AddNum(imap.UID(d.put(m).UID))
	}
	d.mu.Lock()
	validity := d.uidValidity
	d.mu.Unlock()
	if err := w.WriteCopyData(&imap.CopyData{UIDValidity: validity, SourceUIDs: src, DestUIDs: dst}); err != nil {
		return err
	}
	for _, seq := range seqNums {
		if err := w.WriteExpunge(v.tracker.EncodeSeqNum(seq)); err != nil {
			return err
		}
	}
	return nil
}

// view is a selected folder with this session's pending updates.
type view struct {
	*Folder
	tracker   *imapserver.SessionTracker
	searchRes imap.UIDSet
}

func (v *view) close() { v.tracker.Close() }

func (v *view) fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	markSeen := false
	for _, bs := range options.BodySection {
		if !bs.Peek {
			markSeen = true
		}
	}
	type item struct {
		seq uint32
		m   *message
	}
	var items []item
	v.forEach(numSet, func(seq uint32, m *message) {
		if markSeen {
			if _, ok := m.flags[canonicalFlag(imap.FlagSeen)]; !ok {
				m.flags[canonicalFlag(imap.FlagSeen)] = struct{}{}
				v.Folder.tracker.QueueMessageFlags(seq, m.uid, m.flagList(), nil)
				v.Folder.notifyLocked()
			}
		}
		items = append(items, item{v.tracker.EncodeSeqNum(seq), m})
	})
	// Write outside the folder's lock: a big FETCH must not stall deliveries.
	for _, it := range items {
		v.Folder.mu.Lock()
		flags := it.m.flagList()
		v.Folder.mu.Unlock()
		if err := writeMessage(w.CreateMessage(it.seq), it.m, flags, options); err != nil {
			return err
		}
	}
	return nil
}

func writeMessage(w *imapserver.FetchResponseWriter, m *message, flags []imap.Flag, options *imap.FetchOptions) error {
	if err := writeItems(w, m, flags, options); err != nil {
		// The writer holds the connection's encoder lock until Close: without it, the failed
		// FETCH's status response (and the connection's goroutine) would wait on it for ever.
		_ = w.Close()
		return err
	}
	return w.Close()
}

func writeItems(w *imapserver.FetchResponseWriter, m *message, flags []imap.Flag, options *imap.FetchOptions) error {
	w.WriteUID(m.uid)
	if options.Flags {
		w.WriteFlags(flags)
	}
	if options.InternalDate {
		w.WriteInternalDate(m.received)
	}
	if options.RFC822Size {
		w.WriteRFC822Size(int64(len(m.data)))
	}
	if options.Envelope {
		w.WriteEnvelope(envelope(m.data))
	}
	if options.BodyStructure != nil {
		w.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(m.data)))
	}
	for _, bs := range options.BodySection {
		buf := imapserver.ExtractBodySection(bytes.NewReader(m.data), bs)
		wc := w.WriteBodySection(bs, int64(len(buf)))
		_, werr := wc.Write(buf)
		if cerr := wc.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	for _, bs := range options.BinarySection {
		buf := imapserver.ExtractBinarySection(bytes.NewReader(m.data), bs)
		wc := w.WriteBinarySection(bs, int64(len(buf)))
		_, werr := wc.Write(buf)
		if cerr := wc.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	for _, bss := range options.BinarySectionSize {
		w.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(m.data), bss))
	}
	return nil
}

func (v *view) forEach(numSet imap.NumSet, f func(seq uint32, m *message)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.forEachLocked(numSet, f)
}

func (v *view) forEachLocked(numSet imap.NumSet, f func(seq uint32, m *message)) {
	numSet = v.staticNumSet(numSet)
	for i, m := range v.msgs {
		seq := uint32(i) + 1
		var ok bool
		switch set := numSet.(type) {
		case imap.SeqSet:
			enc := v.tracker.EncodeSeqNum(seq)
			ok = enc != 0 && set.Contains(enc)
		case imap.UIDSet:
			ok = set.Contains(m.uid)
		}
		if ok {
			f(seq, m)
		}
	}
}

// staticNumSet resolves "*" and the SEARCHRES marker "$" (imapmemserver's logic).
func (v *view) staticNumSet(numSet imap.NumSet) imap.NumSet {
	if imap.IsSearchRes(numSet) {
		return v.searchRes
	}
	switch set := numSet.(type) {
	case imap.SeqSet:
		max := uint32(len(v.msgs))
		for i := range set {
			staticRange(&set[i].Start, &set[i].Stop, max)
		}
	case imap.UIDSet:
		max := uint32(v.uidNext) - 1
		for i := range set {
			staticRange((*uint32)(&set[i].Start), (*uint32)(&set[i].Stop), max)
		}
	}
	return numSet
}

func staticRange(start, stop *uint32, max uint32) {
	dyn := false
	if *start == 0 {
		*start, dyn = max, true
	}
	if *stop == 0 {
		*stop, dyn = max, true
	}
	if dyn && *start > *stop {
		*start, *stop = *stop, *start
	}
}

func (v *view) staticCriteria(c *imap.SearchCriteria) {
	seqs := make([]imap.SeqSet, 0, len(c.SeqNum))
	for _, s := range c.SeqNum {
		switch set := v.staticNumSet(s).(type) {
		case imap.SeqSet:
			seqs = append(seqs, set)
		case imap.UIDSet:
			c.UID = append(c.UID, set)
		}
	}
	c.SeqNum = seqs
	for i, u := range c.UID {
		c.UID[i] = v.staticNumSet(u).(imap.UIDSet)
	}
	for i := range c.Not {
		v.staticCriteria(&c.Not[i])
	}
	for i := range c.Or {
		v.staticCriteria(&c.Or[i][0])
		v.staticCriteria(&c.Or[i][1])
	}
}

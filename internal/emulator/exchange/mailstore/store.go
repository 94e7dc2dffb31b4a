// Package mailstore holds the emulator's mailboxes: one per mailbox address of the World (users and
// shared mailboxes), each with Exchange Online's default folders, in memory. IMAP (through Session),
// POP3, SMTP delivery and Graph all read and write the same Store, so a message sent one way is read
// any other way, byte for byte.
//
// Messages are immutable bytes with a stable ID (the POP3 UIDL and the Graph message id), an IMAP UID
// per folder, flags and a received time. The IMAP side keeps every open session's sequence numbers
// right through imapserver's MailboxTracker, whoever changes a folder.
//
// The IMAP adaptation (session.go, search.go) follows go-imap v2's imapmemserver (MIT licence,
// Copyright (c) 2013 The Go-IMAP Authors), which keeps its messages unexported and so cannot back
// POP3 or Graph.
package mailstore

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Exchange Online's default folders, as IMAP lists them.
const (
	Inbox        = "INBOX"
	Drafts       = "Drafts"
	SentItems    = "Sent Items"
	DeletedItems = "Deleted Items"
	JunkEmail    = "Junk Email"
	Archive      = "Archive"
)

// DefaultFolders are created in every mailbox, in this order.
var DefaultFolders = []string{Inbox, Drafts, SentItems, DeletedItems, JunkEmail, Archive}

// Delim is the hierarchy delimiter of folder names, as Exchange's IMAP uses it.
const Delim = '/'

// specialUse are the RFC 6154 attributes of the default folders.
var specialUse = map[string]imap.MailboxAttr{
	Drafts: imap.MailboxAttrDrafts, SentItems: imap.MailboxAttrSent, DeletedItems: imap.MailboxAttrTrash,
	JunkEmail: imap.MailboxAttrJunk, Archive: imap.MailboxAttrArchive,
}

// Flags with their IMAP spelling.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

// Errors. They never carry message content.
var (
	ErrNoMailbox     = errors.New("mailstore: no such mailbox")
	ErrNoFolder      = errors.New("mailstore: no such folder")
	ErrNoMessage     = errors.New("mailstore: no such message")
	ErrFolderExists  = errors.New("mailstore: folder already exists")
	ErrDefaultFolder = errors.New("mailstore: a default folder cannot be deleted or renamed")
	ErrBadName       = errors.New("mailstore: invalid folder name")
)

// Store is every mailbox of the emulator. It is safe for concurrent use.
type Store struct {
	now func() time.Time

	mu        sync.Mutex
	mailboxes map[string]*Mailbox // by lower-case address
}

// New returns an empty store; now is the clock for received times (nil: time.Now).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, mailboxes: map[string]*Mailbox{}}
}

// Ensure returns the mailbox of address, creating it with the default folders if needed.
func (s *Store) Ensure(address string) *Mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(address)
	if m := s.mailboxes[key]; m != nil {
		return m
	}
	m := &Mailbox{address: address, store: s, folders: map[string]*Folder{}}
	for _, name := range DefaultFolders {
		m.addFolderLocked(name)
	}
	s.mailboxes[key] = m
	return m
}

// Mailbox returns the mailbox of address (case-insensitive), or nil.
func (s *Store) Mailbox(address string) *Mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mailboxes[strings.ToLower(address)]
}

// Addresses lists the mailboxes' addresses, sorted.
func (s *Store) Addresses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.mailboxes))
	for _, m := range s.mailboxes {
		out = append(out, m.address)
	}
	sort.Strings(out)
	return out
}

func (s *Store) folder(address, folder string) (*Folder, error) {
	m := s.Mailbox(address)
	if m == nil {
		return nil, ErrNoMailbox
	}
	f := m.Folder(folder)
	if f == nil {
		return nil, ErrNoFolder
	}
	return f, nil
}

// Append stores data (an RFC 5322 message, kept byte for byte) in a folder of a mailbox. A zero
// received time means now.
func (s *Store) Append(address, folder string, data []byte, flags []string, received time.Time) (Message, error) {
	f, err := s.folder(address, folder)
	if err != nil {
		return Message{}, err
	}
	return f.Append(data, flags, received), nil
}

// List returns the messages of a folder, oldest first.
func (s *Store) List(address, folder string) ([]Message, error) {
	f, err := s.folder(address, folder)
	if err != nil {
		return nil, err
	}
	return f.Messages(), nil
}

// Get returns one message of a folder by ID.
func (s *Store) Get(address, folder, id string) (Message, error) {
	f, err := s.folder(address, folder)
	if err != nil {
		return Message{}, err
	}
	return f.Get(id)
}

// Find returns a message by ID from whichever folder of the mailbox holds it.
func (s *Store) Find(address, id string) (Message, error) {
	m := s.Mailbox(address)
	if m == nil {
		return Message{}, ErrNoMailbox
	}
	for _, f := range m.foldersSnapshot() {
		if msg, err := f.Get(id); err == nil {
			return msg, nil
		}
	}
	return Message{}, ErrNoMessage
}

// Delete removes messages from a folder for good (IMAP EXPUNGE, POP3 DELE + QUIT). Unknown IDs
// are ignored; the number removed is returned.
func (s *Store) Delete(address, folder string, ids ...string) (int, error) {
	f, err := s.folder(address, folder)
	if err != nil {
		return 0, err
	}
	return f.Delete(ids...), nil
}

// Move moves a message to another folder of the same mailbox. It keeps its ID (as Graph's immutable
// ids do) and gets a new UID there.
func (s *Store) Move(address, from, to, id string) (Message, error) {
	src, err := s.folder(address, from)
	if err != nil {
		return Message{}, err
	}
	dst, err := s.folder(address, to)
	if err != nil {
		return Message{}, err
	}
	if src == dst {
		return src.Get(id)
	}
	msg, err := src.take(id)
	if err != nil {
		return Message{}, err
	}
	return dst.put(msg), nil
}

// SetFlags replaces the flags of a message.
func (s *Store) SetFlags(address, folder, id string, flags []string) error {
	f, err := s.folder(address, folder)
	if err != nil {
		return err
	}
	return f.SetFlags(id, flags)
}

// Mailbox is the mailbox of one address: its folders.
type Mailbox struct {
	address string
	store   *Store

	mu          sync.Mutex
	folders     map[string]*Folder // by canonical key (see folderKey)
	lastValidty uint32
}

// Address is the mailbox's address as the World spells it.
func (m *Mailbox) Address() string { return m.address }

// folderKey: INBOX is case-insensitive (RFC 3501 §5.1), other names are compared as written.
func folderKey(name string) string {
	if strings.EqualFold(name, Inbox) {
		return Inbox
	}
	return name
}

func (m *Mailbox) addFolderLocked(name string) *Folder {
	m.lastValidty++
	f := &Folder{name: name, id: newFolderID(), mailbox: m, uidValidity: m.lastValidty, uidNext: 1, subscribed: true,
		tracker: imapserver.NewMailboxTracker(0)}
	m.folders[folderKey(name)] = f
	return f
}

// Folder returns a folder by name (INBOX in any case), or nil.
func (m *Mailbox) Folder(name string) *Folder {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.folders[folderKey(name)]
}

// FolderByID returns a folder by its ID (see Folder.ID), or nil.
func (m *Mailbox) FolderByID(id string) *Folder {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.folders {
		if f.id == id {
			return f
		}
	}
	return nil
}

// Folders lists the folder names: the default folders first in their order, then the others sorted.
func (m *Mailbox) Folders() []string {
	var out []string
	for _, f := range m.foldersSnapshot() {
		out = append(out, f.Name())
	}
	return out
}

func (m *Mailbox) foldersSnapshot() []*Folder {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Folder, 0, len(m.folders))
	for _, f := range m.folders {
		out = append(out, f)
	}
	rank := func(f *Folder) int {
		if i := slices.Index(DefaultFolders, f.name); i >= 0 {
			return i
		}
		return len(DefaultFolders)
	}
	sort.Slice(out, func(i, j int) bool {
		ri, rj := rank(out[i]), rank(out[j])
		if ri != rj {
			return ri < rj
		}
		return out[i].name < out[j].name
	})
	return out
}

func validFolderName(name string) bool {
	if name == "" || len(name) > 255 || strings.HasPrefix(name, "/") || strings.Contains(name, "//") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// CreateFolder adds a folder. Parents named in a hierarchical name are created too (as Exchange does).
func (m *Mailbox) CreateFolder(name string) (*Folder, error) {
	name = strings.TrimRight(name, string(Delim))
	if !validFolderName(name) {
		return nil, ErrBadName
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.folders[folderKey(name)] != nil {
		return nil, ErrFolderExists
	}
	parts := strings.Split(name, string(Delim))
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], string(Delim))
		if m.folders[folderKey(parent)] == nil {
			m.addFolderLocked(parent)
		}
	}
	return m.addFolderLocked(name), nil
}

// DeleteFolder removes a folder and its messages (not a default folder, nor one with subfolders'
// parent role: subfolders are removed with it).
func (m *Mailbox) DeleteFolder(name string) error {
	if slices.Contains(DefaultFolders, m.canonical(name)) {
		return ErrDefaultFolder
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := folderKey(name)
	if m.folders[k] == nil {
		return ErrNoFolder
	}
	for key := range m.folders {
		if key == k || strings.HasPrefix(key, k+string(Delim)) {
			delete(m.folders, key)
		}
	}
	return nil
}

// RenameFolder renames a folder and its subfolders. Renamed folders get a new UIDVALIDITY.
func (m *Mailbox) RenameFolder(oldName, newName string) error {
	newName = strings.TrimRight(newName, string(Delim))
	if slices.Contains(DefaultFolders, m.canonical(oldName)) {
		return ErrDefaultFolder
	}
	if !validFolderName(newName) {
		return ErrBadName
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, nk := folderKey(oldName), folderKey(newName)
	if m.folders[ok] == nil {
		return ErrNoFolder
	}
	if m.folders[nk] != nil {
		return ErrFolderExists
	}
	for key, f := range m.folders {
		if key != ok && !strings.HasPrefix(key, ok+string(Delim)) {
			continue
		}
		renamed := nk + strings.TrimPrefix(key, ok)
		delete(m.folders, key)
		f.mu.Lock()
		f.name = renamed
		m.lastValidty++
		f.uidValidity = m.lastValidty
		f.mu.Unlock()
		m.folders[folderKey(renamed)] = f
	}
	return nil
}

func (m *Mailbox) canonical(name string) string {
	if f := m.Folder(name); f != nil {
		return f.Name()
	}
	return name
}

// Message is a snapshot of a stored message. Data is shared with the store and must not be modified.
type Message struct {
	ID       string
	UID      uint32
	Folder   string
	FolderID string // the folder's ID (Folder.ID)
	Received time.Time
	Flags    []string
	Data     []byte
}

// Size is the message's size in octets.
func (m Message) Size() int { return len(m.Data) }

// HasFlag says whether the message carries a flag (case-insensitive).
func (m Message) HasFlag(flag string) bool {
	return slices.ContainsFunc(m.Flags, func(f string) bool { return strings.EqualFold(f, flag) })
}

type message struct {
	id       string
	uid      imap.UID
	data     []byte
	received time.Time
	flags    map[imap.Flag]struct{} // canonical (lower-case) keys
}

func canonicalFlag(f imap.Flag) imap.Flag { return imap.Flag(strings.ToLower(string(f))) }

// flagNames maps canonical flags back to their usual spelling.
var flagNames = map[imap.Flag]imap.Flag{}

func init() {
	for _, f := range []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted,
		imap.FlagDraft, imap.FlagForwarded, imap.FlagMDNSent, imap.FlagJunk, imap.FlagNotJunk, imap.FlagPhishing, imap.FlagImportant} {
		flagNames[canonicalFlag(f)] = f
	}
}

func (msg *message) flagList() []imap.Flag {
	out := make([]imap.Flag, 0, len(msg.flags))
	for f := range msg.flags {
		if n, ok := flagNames[f]; ok {
			f = n
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

func (msg *message) snapshot(f *Folder) Message {
	flags := msg.flagList()
	out := Message{ID: msg.id, UID: uint32(msg.uid), Folder: f.name, FolderID: f.id, Received: msg.received, Data: msg.data,
		Flags: make([]string, len(flags))}
	for i, f := range flags {
		out.Flags[i] = string(f)
	}
	return out
}

// newID makes a message id in the shape of Exchange's (base64url, starting "AAMk").
func newID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "AAMk" + base64.RawURLEncoding.EncodeToString(b[:])
}

// newFolderID makes a folder ID in the shape of Exchange's (base64url, starting "AQMk").
func newFolderID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "AQMk" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Folder is one folder of a mailbox.
type Folder struct {
	mailbox *Mailbox
	tracker *imapserver.MailboxTracker
	// id is the folder's Graph id: it stays when the folder is renamed or moved, as Exchange's folder
	// ids do.
	id string

	mu          sync.Mutex
	name        string
	uidValidity uint32
	uidNext     imap.UID
	subscribed  bool
	msgs        []*message
	changed     chan struct{} // closed (and replaced) at every change IMAP sessions must hear of
}

// notifyLocked wakes the IDLE sessions of the folder.
func (f *Folder) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// changes returns a channel closed at the folder's next change.
func (f *Folder) changes() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// ID is the folder's stable ID (Graph's folder id): a rename or move keeps it.
func (f *Folder) ID() string { return f.id }

// Name is the folder's name.
func (f *Folder) Name() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.name
}

// Append stores a message in the folder (received zero: now).
func (f *Folder) Append(data []byte, flags []string, received time.Time) Message {
	if received.IsZero() {
		received = f.mailbox.store.now()
	}
	msg := &message{id: newID(), data: data, received: received, flags: map[imap.Flag]struct{}{}}
	for _, fl := range flags {
		msg.flags[canonicalFlag(imap.Flag(fl))] = struct{}{}
	}
	return f.put(msg)
}

func (f *Folder) put(msg *message) Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	msg.uid = f.uidNext
	f.uidNext++
	f.msgs = append(f.msgs, msg)
	f.tracker.QueueNumMessages(uint32(len(f.msgs)))
	f.notifyLocked()
	return msg.snapshot(f)
}

// Messages returns the folder's messages, oldest first.
func (f *Folder) Messages() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Message, len(f.msgs))
	for i, m := range f.msgs {
		out[i] = m.snapshot(f)
	}
	return out
}

// Get returns a message by ID.
func (f *Folder) Get(id string) (Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		if m.id == id {
			return m.snapshot(f), nil
		}
	}
	return Message{}, ErrNoMessage
}

// SetFlags replaces a message's flags.
func (f *Folder) SetFlags(id string, flags []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.msgs {
		if m.id == id {
			m.flags = map[imap.Flag]struct{}{}
			for _, fl := range flags {
				m.flags[canonicalFlag(imap.Flag(fl))] = struct{}{}
			}
			f.tracker.QueueMessageFlags(uint32(i)+1, m.uid, m.flagList(), nil)
			f.notifyLocked()
			return nil
		}
	}
	return ErrNoMessage
}

// Delete removes messages by ID; it returns how many it removed.
func (f *Folder) Delete(ids ...string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	set := map[*message]struct{}{}
	for _, m := range f.msgs {
		if slices.Contains(ids, m.id) {
			set[m] = struct{}{}
		}
	}
	return len(f.expungeLocked(set))
}

func (f *Folder) take(id string) (*message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		if m.id == id {
			f.expungeLocked(map[*message]struct{}{m: {}})
			return m, nil
		}
	}
	return nil, ErrNoMessage
}

// expungeLocked removes messages, telling every IMAP session (highest sequence number first, so
// that each announced number is right when it is applied). It returns the removed sequence numbers.
func (f *Folder) expungeLocked(set map[*message]struct{}) []uint32 {
	if len(set) == 0 {
		return nil
	}
	var seqNums []uint32
	kept := f.msgs[:0:0]
	for i := len(f.msgs) - 1; i >= 0; i-- {
		if _, ok := set[f.msgs[i]]; ok {
			seqNums = append(seqNums, uint32(i)+1)
			f.tracker.QueueExpunge(uint32(i) + 1)
		}
	}
	f.notifyLocked()
	for _, m := range f.msgs {
		if _, ok := set[m]; !ok {
			kept = append(kept, m)
		}
	}
	f.msgs = kept
	return seqNums
}

package gateway

// The API in this file is the contract between the mailbox model (owned by the core) and the
// protocol servers (imapgw, pop3gw, smtpgw). Bodies marked "not yet" are being written; signatures
// change only by agreement.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/mailoauth/mailoauth/graph"
)

// errNotYet marks what is still being written.
var errNotYet = errors.New("gateway: not implemented yet")

// Options tune the gateway; zero values take the defaults.
type Options struct {
	// DontSaveToSentItems: mail submitted over SMTP keeps no copy in Sent Items (Graph's
	// saveToSentItems=false). Default: a copy is kept, as Exchange's own SMTP submission does.
	DontSaveToSentItems bool
	// DeletePermanently: POP3 DELE and IMAP EXPUNGE delete for good (Graph permanentDelete) instead
	// of moving the message to Deleted Items.
	DeletePermanently bool
	// PollInterval is how often, at most, a folder's listing is refreshed from Graph for IDLE, NOOP
	// and new SELECTs; every session of the folder shares one refresh. Default 30s.
	PollInterval time.Duration
	// MaxMessage bounds a message submitted over SMTP or APPENDed over IMAP. Default 150 MB (Graph's
	// limit for a message built through upload sessions).
	MaxMessage int64
	Log        *slog.Logger
}

// Mailboxes opens one Mailbox per (account, address) and keeps it while sessions use it, so that
// every session of a mailbox shares its folder state and Graph's per-mailbox request limit.
type Mailboxes struct{}

// NewMailboxes returns an empty set over a UID store.
func NewMailboxes(uids UIDStore, o Options) *Mailboxes { return &Mailboxes{} }

// Open returns the Mailbox of address for account, made with client on first use. The client must
// address that mailbox, ask for immutable ids and share one graph.Limiter per mailbox.
func (ms *Mailboxes) Open(account, address string, client *graph.Client) *Mailbox {
	return &Mailbox{Address: address, Account: account, Graph: client}
}

// Mailbox is one Graph mailbox as the gateway's sessions see it.
type Mailbox struct {
	Address string // the mailbox's SMTP address
	Account string // the configured account whose tokens open it
	Graph   *graph.Client
	Options Options
}

// FolderInfo describes a folder as IMAP names it.
type FolderInfo struct {
	ID   string // Graph's folder id
	Name string // the IMAP name: "INBOX", or the path of display names joined with "/"
	// SpecialUse is RFC 6154's attribute: \Sent, \Drafts, \Trash, \Junk, \Archive, or "".
	SpecialUse    string
	HasChildren   bool
	Total, Unread int
}

// Folders lists every folder, child folders included, INBOX first.
func (m *Mailbox) Folders(ctx context.Context) ([]FolderInfo, error) { return nil, errNotYet }

// CreateFolder creates a folder (its parent must exist), RenameFolder renames or moves one, and
// DeleteFolder deletes one (Graph moves it and its messages to Deleted Items).
func (m *Mailbox) CreateFolder(ctx context.Context, name string) error     { return errNotYet }
func (m *Mailbox) RenameFolder(ctx context.Context, from, to string) error { return errNotYet }
func (m *Mailbox) DeleteFolder(ctx context.Context, name string) error     { return errNotYet }

// ErrNoFolder is a folder name that does not exist.
var ErrNoFolder = errors.New("no such folder")

// Folder opens a folder by IMAP name (INBOX in any case).
func (m *Mailbox) Folder(ctx context.Context, name string) (*Folder, error) { return nil, errNotYet }

// Folder is one folder's messages with their UIDs, shared by the sessions that have it open.
type Folder struct {
	Info FolderInfo
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
	// Graph's internetMessageHeaders where Graph has them: ENVELOPE, BODY[HEADER] and SEARCH read it
	// without fetching the MIME.
	Header []byte
}

// View is a folder's listing at one moment: UIDVALIDITY, UIDNEXT and the messages by UID.
type View struct {
	UIDValidity uint32
	UIDNext     uint32
	Messages    []Message // ascending UID
	Version     uint64    // grows with every change seen
}

// Sync returns the folder's listing, refreshed from Graph (through a delta query) if it is older
// than maxAge; 0 refreshes now. Sessions of the folder share one refresh.
func (f *Folder) Sync(ctx context.Context, maxAge time.Duration) (*View, error) {
	return nil, errNotYet
}

// Wait returns when the folder's Version passes after, or ctx ends; the folder is polled (shared,
// at most every PollInterval) while someone waits. For IMAP IDLE.
func (f *Folder) Wait(ctx context.Context, after uint64) error { return errNotYet }

// Open streams a message's MIME from Graph.
func (f *Folder) Open(ctx context.Context, id string) (io.ReadCloser, error) { return nil, errNotYet }

// SetFlags sets isRead and/or the follow-up flag of messages (nil: unchanged).
func (f *Folder) SetFlags(ctx context.Context, ids []string, read, flagged *bool) error {
	return errNotYet
}

// Delete removes messages: to Deleted Items, or for good when Options.DeletePermanently is set (or
// when the folder is Deleted Items itself).
func (f *Folder) Delete(ctx context.Context, ids []string) error { return errNotYet }

// Copy and Move put messages into dest and return their UIDs there, in order (for UIDPLUS).
func (f *Folder) Copy(ctx context.Context, ids []string, dest *Folder) ([]uint32, error) {
	return nil, errNotYet
}
func (f *Folder) Move(ctx context.Context, ids []string, dest *Folder) ([]uint32, error) {
	return nil, errNotYet
}

// Append stores a message (not a draft) from its MIME and returns its UID; read sets \Seen,
// received INTERNALDATE when Graph allows it (zero: now).
func (f *Folder) Append(ctx context.Context, mime io.Reader, size int64, read, flagged bool, received time.Time) (uint32, error) {
	return 0, errNotYet
}

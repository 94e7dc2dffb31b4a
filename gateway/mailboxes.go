package gateway

import (
	"container/list"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mailoauth/mailoauth/graph"
)

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
	// Log receives the gateway's events (never a token, a password or message content); nil
	// discards them.
	Log *slog.Logger
}

// Defaults of Options.
const (
	DefaultPollInterval = 30 * time.Second
	DefaultMaxMessage   = 150 << 20
)

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// maxIdleMailboxes bounds the mailboxes kept, with their folder listings, after their last session
// closed: a session that comes back soon finds its listing warm; beyond that many, the least
// recently used go.
const maxIdleMailboxes = 64

// Mailboxes opens one Mailbox per (account, address) and keeps it while sessions use it, so that
// every session of a mailbox shares its folder state and Graph's per-mailbox request limit. A
// mailbox no session uses is kept among the last few idle ones, then dropped.
type Mailboxes struct {
	uids UIDStore
	opts Options

	mu   sync.Mutex
	open map[mailboxKey]*Mailbox
	idle *list.List // of *Mailbox with no session, most recently closed first
}

type mailboxKey struct{ account, address string }

// NewMailboxes returns an empty set over a UID store (nil: UIDs kept in this process's memory
// only, for tests and a proxy that may renumber after a restart).
func NewMailboxes(uids UIDStore, o Options) *Mailboxes {
	if uids == nil {
		uids = newMemUIDStore()
	}
	return &Mailboxes{uids: uids, opts: o.withDefaults(), open: map[mailboxKey]*Mailbox{}, idle: list.New()}
}

// Open returns the Mailbox of address for account, made with client on first use. The client must
// address that mailbox, ask for immutable ids and share one graph.Limiter per mailbox. Each Open
// is matched by one Mailbox.Close when the session ends.
func (ms *Mailboxes) Open(account, address string, client *graph.Client) *Mailbox {
	return ms.OpenWith(account, address, func() *graph.Client { return client })
}

// OpenWith is Open with the client made only when the Mailbox is made: a login to a mailbox already
// open costs no client (nor its transport and Limiter).
func (ms *Mailboxes) OpenWith(account, address string, client func() *graph.Client) *Mailbox {
	k := mailboxKey{account, strings.ToLower(address)}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m := ms.open[k]
	if m == nil {
		m = &Mailbox{Address: address, Account: account, Graph: client(), Options: ms.opts, set: ms, key: k,
			uids: ms.uids, folders: map[string]*folderState{}}
		ms.open[k] = m
	}
	if m.idleAt != nil {
		ms.idle.Remove(m.idleAt)
		m.idleAt = nil
	}
	m.refs++
	return m
}

// release is Close's: the last session of m gone, m joins the idle ones, and the oldest idle one
// beyond the bound is dropped.
func (ms *Mailboxes) release(m *Mailbox) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if m.refs <= 0 {
		return errClosedTwice
	}
	m.refs--
	if m.refs > 0 {
		return nil
	}
	m.idleAt = ms.idle.PushFront(m)
	for ms.idle.Len() > maxIdleMailboxes {
		old := ms.idle.Remove(ms.idle.Back()).(*Mailbox)
		old.idleAt = nil
		delete(ms.open, old.key)
	}
	return nil
}

var errClosedTwice = errors.New("gateway: Mailbox.Close called more often than Mailboxes.Open")

// Mailbox is one Graph mailbox as the gateway's sessions see it.
type Mailbox struct {
	Address string // the mailbox's SMTP address
	Account string // the configured account whose tokens open it
	Graph   *graph.Client
	Options Options

	set    *Mailboxes
	key    mailboxKey
	uids   UIDStore
	refs   int           // sessions using it; under set.mu
	idleAt *list.Element // its place among the idle ones; under set.mu

	mu         sync.Mutex
	tree       *folderTree             // the folder tree, cached briefly
	treeGen    int                     // grows at every change made here to the tree
	treeFlight singleflight.Group      // the listing of the tree under way
	folders    map[string]*folderState // by Graph folder id, shared by the sessions
}

// Close says a session is done with the mailbox (one Close per Mailboxes.Open). A Mailbox made
// without Mailboxes has nothing to close.
func (m *Mailbox) Close() error {
	if m.set == nil {
		return nil
	}
	return m.set.release(m)
}

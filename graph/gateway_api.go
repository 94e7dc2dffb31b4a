package graph

// The API in this file is what the Graph gateway (package gateway and its protocol servers) needs of
// the client. Bodies marked "not yet" are being written; signatures change only by agreement.

import (
	"context"
	"errors"
	"io"

	"github.com/mailoauth/mailoauth/token"
)

var errNotYet = errors.New("graph: not implemented yet")

// Limiter bounds the requests in flight to one mailbox: Graph allows 4 concurrent requests per app
// per mailbox (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits). Share one
// among every Client of a mailbox.
type Limiter struct{ slots chan struct{} }

// NewLimiter returns a Limiter of n slots (n < 1: 4).
func NewLimiter(n int) *Limiter {
	if n < 1 {
		n = 4
	}
	return &Limiter{slots: make(chan struct{}, n)}
}

// ClientFor returns a client like ForAccount's but for the given mailbox (the address the program
// logged in as, for a catch-all), asking Graph for immutable ids, its requests bounded by lim.
func ClientFor(a token.Account, mailbox string, lim *Limiter) *Client { return nil }

// FlagUpdate is a message's follow-up flag and read state, for SetFlags (nil: unchanged).
type FlagUpdate struct {
	IsRead  *bool
	Flagged *bool
}

// SetFlags PATCHes isRead and flag.flagStatus (flagged / notFlagged).
func (c *Client) SetFlags(ctx context.Context, id string, u FlagUpdate) error { return errNotYet }

// Copy copies a message into a folder and returns the copy.
func (c *Client) Copy(ctx context.Context, id, destFolder string) (*Message, error) {
	return nil, errNotYet
}

// PermanentDelete deletes a message for good (POST .../permanentDelete), not to Deleted Items.
func (c *Client) PermanentDelete(ctx context.Context, id string) error { return errNotYet }

// OpenMIME streams a message's MIME ($value); size is its Content-Length, -1 if Graph gave none.
func (c *Client) OpenMIME(ctx context.Context, id string) (body io.ReadCloser, size int64, err error) {
	return nil, -1, errNotYet
}

// CreateFromMIME stores a message from its MIME in a folder (POST .../messages, text/plain, base64)
// and returns it. Graph documents that such a message is a draft unless created with
// PidTagMessageFlags; see the function's comment for what is done.
func (c *Client) CreateFromMIME(ctx context.Context, folder string, mime io.Reader, size int64) (*Message, error) {
	return nil, errNotYet
}

// AllFolders lists every folder, child folders included (folders and their childFolders, paged).
func (c *Client) AllFolders(ctx context.Context) ([]Folder, error) { return nil, errNotYet }

// CreateChildFolder creates a folder under parent ("" top level), RenameFolder PATCHes a folder's
// displayName, MoveFolder moves it under another parent ("" or "msgfolderroot": top level),
// DeleteFolder deletes it.
func (c *Client) CreateChildFolder(ctx context.Context, parent, name string) (*Folder, error) {
	return nil, errNotYet
}
func (c *Client) RenameFolder(ctx context.Context, id, name string) error { return errNotYet }
func (c *Client) MoveFolder(ctx context.Context, id, parent string) (*Folder, error) {
	return nil, errNotYet
}
func (c *Client) DeleteFolder(ctx context.Context, id string) error { return errNotYet }

// DeltaOptions shape a delta query.
type DeltaOptions struct {
	Select   []string // $select; nil: the gateway's listing fields
	PageSize int      // Prefer: odata.maxpagesize; 0: Graph's default
}

// Delta is one round of a folder's delta query: what changed since State, and the next State.
type Delta struct {
	Changed []*Message // created or updated
	Removed []string   // ids of messages gone from the folder
	State   string     // the deltaLink to pass next time
}

// ErrDeltaExpired: Graph no longer knows the delta state (410 Gone / syncStateNotFound); start again
// with state "".
var ErrDeltaExpired = errors.New("graph: the folder's delta state expired; a full resync is needed")

// MessagesDelta runs a folder's delta query from state ("" for the initial round, which lists
// every message), following @odata.nextLink to the @odata.deltaLink.
func (c *Client) MessagesDelta(ctx context.Context, folder, state string, o DeltaOptions) (*Delta, error) {
	return nil, errNotYet
}

// Header is one of a message's internet headers, as Graph's internetMessageHeaders gives it.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

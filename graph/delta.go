package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// DeltaOptions shape a delta query.
type DeltaOptions struct {
	Select   []string // $select; nil: DeltaSelect
	PageSize int      // Prefer: odata.maxpagesize; 0: DefaultDeltaPageSize
}

// DefaultDeltaPageSize is the page size a delta query asks for unless told otherwise: a 1,000-message
// folder in 5 pages of a few MB with their headers. Graph may give smaller pages (it caps the
// preference at its own maximum); the client follows them all.
const DefaultDeltaPageSize = 200

// Delta is one round of a folder's delta query: what changed since State, and the next State.
// Each id is in Changed or Removed at most once, as the round's last entry for it says: Graph may
// give a message twice in one round (https://github.com/microsoftgraph/msgraph-sdk-go/issues/969).
type Delta struct {
	Changed []*Message // created or updated
	Removed []string   // ids of messages gone from the folder
	State   string     // the deltaLink to pass next time
}

// add records a page's entry: the last one for an id wins.
func (d *Delta) add(e deltaEntry, last map[string]bool) {
	if removed, seen := last[e.ID]; seen {
		if removed {
			d.Removed = slices.DeleteFunc(d.Removed, func(id string) bool { return id == e.ID })
		} else {
			d.Changed = slices.DeleteFunc(d.Changed, func(m *Message) bool { return m.ID == e.ID })
		}
	}
	last[e.ID] = e.Removed != nil
	if e.Removed != nil {
		d.Removed = append(d.Removed, e.ID)
		return
	}
	d.Changed = append(d.Changed, e.message())
}

// ErrDeltaExpired: Graph no longer knows the delta state (410 Gone / syncStateNotFound); start again
// with state "".
var ErrDeltaExpired = errors.New("graph: the folder's delta state expired; a full resync is needed")

// DeltaSelect returns the properties a delta query asks for unless told otherwise: what a mail
// program's listing of a folder needs (flags, dates, the internet headers and the change key),
// never the body. Each message's Size is asked for as well ($expand, see Message.Size).
func DeltaSelect() []string {
	return []string{"id", "isRead", "isDraft", "flag", "receivedDateTime", "sentDateTime", "changeKey",
		"parentFolderId", "internetMessageId", "subject", "internetMessageHeaders"}
}

// deltaEntry is a delta page's item: a message, or an id with @removed.
type deltaEntry struct {
	wireMessage
	Removed *struct {
		Reason string `json:"reason"`
	} `json:"@removed,omitempty"`
}

// MessagesDelta runs a folder's delta query from state ("" for the initial round, which lists
// every message), following @odata.nextLink to the @odata.deltaLink
// (https://learn.microsoft.com/graph/delta-query-messages). A message that moved out of the folder
// is Removed, as one that was deleted. Every link followed must stay on the API's origin (the token
// goes with it); an expired state fails with ErrDeltaExpired.
func (c *Client) MessagesDelta(ctx context.Context, folder, state string, o DeltaOptions) (*Delta, error) {
	next := state
	if next == "" {
		sel := o.Select
		if sel == nil {
			sel = DeltaSelect()
		}
		q := url.Values{"$select": {strings.Join(sel, ",")}, "$expand": {sizeExpand}}
		next = c.root + c.prefix + "/mailFolders/" + url.PathEscape(folder) + "/messages/delta?" + encodeQuery(q)
	} else if !sameOrigin(state, c.root) {
		return nil, fmt.Errorf("graph: the delta state is not a link of %s; pass the State a previous round returned", c.root)
	}
	pageSize := o.PageSize
	if pageSize <= 0 {
		pageSize = DefaultDeltaPageSize
	}
	d := &Delta{}
	last := map[string]bool{} // id → its last entry was @removed
	pages := pager{root: c.root}
	for {
		_, body, err := c.do(ctx, request{method: "GET", url: next, pageSize: pageSize})
		if err != nil {
			if expired(err) {
				return nil, fmt.Errorf("%w (%w)", ErrDeltaExpired, err)
			}
			return nil, err
		}
		var page struct {
			Value     []deltaEntry `json:"value"`
			NextLink  string       `json:"@odata.nextLink"`
			DeltaLink string       `json:"@odata.deltaLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("graph: unreadable delta page: %w", err)
		}
		for _, e := range page.Value {
			d.add(e, last)
		}
		switch {
		case page.NextLink != "":
			if err := pages.follow(page.NextLink); err != nil {
				return nil, err
			}
			next = page.NextLink
		case page.DeltaLink != "":
			if !sameOrigin(page.DeltaLink, c.root) {
				return nil, fmt.Errorf("graph: the @odata.deltaLink points away from %s", c.root)
			}
			d.State = page.DeltaLink
			return d, nil
		default:
			return nil, errors.New("graph: a delta page has neither @odata.nextLink nor @odata.deltaLink")
		}
	}
}

// expired says whether a delta query's error means its state is gone: 410 Gone, or one of the
// codes Graph gives a state it no longer has (https://learn.microsoft.com/graph/delta-query-overview,
// "Synchronization reset").
func expired(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch strings.ToLower(e.Code) {
	case "syncstatenotfound", "syncstateinvalid", "resyncrequired":
		return true
	}
	return e.Status == http.StatusGone
}

package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
)

// wellKnownNames are the well-known folders AllFolders names (Folder.WellKnownName): those a mail
// program shows as special (https://learn.microsoft.com/graph/api/resources/mailfolder, "Use
// well-known folder names"). Graph has no property saying a folder is one: their ids are asked for.
var wellKnownNames = [...]string{"inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive"}

// wellKnownCache keeps the ids of a mailbox's well-known folders once known: they are never
// deleted or replaced, so one round of requests per client is enough.
type wellKnownCache struct {
	mu  sync.Mutex
	ids map[string]string // folder id → well-known name
}

// folderPage is one page of a folder listing.
type folderPage struct {
	Value    []Folder `json:"value"`
	NextLink string   `json:"@odata.nextLink"`
}

// folderPageSize is the page size of folder listings ($top): a mailbox's folders in one page.
const folderPageSize = "250"

// AllFolders lists every folder, child folders included, each parent before its children. It asks
// for the top-level folders (GET /mailFolders) and the childFolders of each folder that has some,
// pages of 250, so a mailbox of a few folders costs one request for each level that has children;
// the first call of a client also asks for the well-known folders' ids, one request each,
// concurrently (a $batch would be one, but its answers would then need the same care for 429s).
// The top-level folders' ParentFolderID is the root folder's (msgfolderroot), which is not listed.
// Hidden folders (isHidden, which Outlook does not show either) are not listed: includeHiddenFolders
// is not asked for.
func (c *Client) AllFolders(ctx context.Context) ([]Folder, error) {
	known, err := c.wellKnownIDs(ctx)
	if err != nil {
		return nil, err
	}
	var out []Folder
	listed := map[string]bool{}
	next := []string{c.root + c.prefix + "/mailFolders"}
	for len(next) > 0 {
		u := next[0]
		next = next[1:]
		page, err := c.folderList(ctx, u+"?$top="+folderPageSize)
		if err != nil {
			return nil, err
		}
		for _, f := range page {
			if listed[f.ID] {
				continue // a folder among its own descendants: Graph's tree is never a cycle
			}
			listed[f.ID] = true
			f.WellKnownName = known[f.ID]
			out = append(out, f)
			if f.ChildFolderCount > 0 {
				next = append(next, c.root+c.prefix+"/mailFolders/"+url.PathEscape(f.ID)+"/childFolders")
			}
		}
	}
	return out, nil
}

// folderList reads a folder listing, following @odata.nextLink.
func (c *Client) folderList(ctx context.Context, u string) ([]Folder, error) {
	var out []Folder
	pages := pager{root: c.root}
	for u != "" {
		_, body, err := c.do(ctx, request{method: "GET", url: u})
		if err != nil {
			return nil, err
		}
		var page folderPage
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("graph: unreadable folder list: %w", err)
		}
		out = append(out, page.Value...)
		if page.NextLink != "" {
			if err := pages.follow(page.NextLink); err != nil {
				return nil, err
			}
		}
		u = page.NextLink
	}
	return out, nil
}

// wellKnownIDs returns the ids of the well-known folders (id → name), asking Graph the first time.
// A mailbox without one (no archive folder yet: 404) just lacks it.
func (c *Client) wellKnownIDs(ctx context.Context) (map[string]string, error) {
	c.wellKnown.mu.Lock()
	defer c.wellKnown.mu.Unlock()
	if c.wellKnown.ids != nil {
		return c.wellKnown.ids, nil
	}
	var (
		wg   sync.WaitGroup
		ids  [len(wellKnownNames)]string
		errs [len(wellKnownNames)]error
	)
	for i, name := range wellKnownNames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var f Folder
			err := c.call(ctx, "GET", "/mailFolders/"+name+"?$select=id", nil, &f)
			if err != nil && !IsNotFound(err) {
				errs[i] = err
			}
			ids[i] = f.ID
		}()
	}
	wg.Wait()
	known := map[string]string{}
	for i, name := range wellKnownNames {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if ids[i] != "" {
			known[ids[i]] = name
		}
	}
	c.wellKnown.ids = known
	return known, nil
}

// CreateChildFolder creates a folder under parent (an id or a well-known name; "" top level).
func (c *Client) CreateChildFolder(ctx context.Context, parent, name string) (*Folder, error) {
	path := "/mailFolders"
	if parent != "" {
		path += "/" + url.PathEscape(parent) + "/childFolders"
	}
	var f Folder
	if err := c.call(ctx, "POST", path, map[string]string{"displayName": name}, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// RenameFolder PATCHes a folder's displayName.
func (c *Client) RenameFolder(ctx context.Context, id, name string) error {
	return c.call(ctx, "PATCH", "/mailFolders/"+url.PathEscape(id), map[string]string{"displayName": name}, nil)
}

// MoveFolder moves a folder under another parent ("" or "msgfolderroot": top level) and returns it.
func (c *Client) MoveFolder(ctx context.Context, id, parent string) (*Folder, error) {
	if parent == "" {
		parent = "msgfolderroot"
	}
	var f Folder
	if err := c.call(ctx, "POST", "/mailFolders/"+url.PathEscape(id)+"/move", map[string]string{"destinationId": parent}, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// DeleteFolder deletes a folder: Graph moves it, its messages and its child folders to Deleted
// Items (https://learn.microsoft.com/graph/api/mailfolder-delete).
func (c *Client) DeleteFolder(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/mailFolders/"+url.PathEscape(id), nil, nil)
}

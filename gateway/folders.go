package gateway

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/graph"
)

// Folder names. IMAP names are the display names of a folder's ancestors and its own, joined with
// Delimiter; the Inbox is INBOX (its child folders INBOX/...). A "/" inside a display name would
// read as a level of the hierarchy, so it is shown as U+2215 DIVISION SLASH (∕), which looks the
// same, and turned back into "/" when a program creates or renames a folder: a display name that
// really holds a "∕" is therefore renamed with "/" if a program renames it.
const (
	Delimiter   = "/"
	slashInName = "\u2215"
)

// treeMaxAge is how long a folder tree is used before it is asked for again (LIST, SELECT and
// STATUS of a session come in bursts; a folder made by another program shows up this late).
const treeMaxAge = 5 * time.Second

// missMaxAge is how old a tree may be when a name is not in it (another program may just have made
// the folder).
const missMaxAge = time.Second

// ErrFolderExists is a folder name that is already taken.
var ErrFolderExists = errors.New("a folder of that name exists")

// ErrNoFolder is a folder name that does not exist.
var ErrNoFolder = errors.New("no such folder")

// ErrHasChildren refuses to delete a folder that has child folders: Graph would delete them with
// it, and IMAP's DELETE must not (RFC 3501 6.3.4; IMAP answers NO [HASCHILDREN]).
var ErrHasChildren = errors.New("the folder has child folders; delete them first")

// errInbox refuses what cannot be done to the Inbox.
var errInbox = errors.New("the Inbox cannot be renamed or deleted")

// specialUse maps Graph's well-known folders to RFC 6154's attributes.
var specialUse = map[string]string{
	"sentitems":    `\Sent`,
	"drafts":       `\Drafts`,
	"deleteditems": `\Trash`,
	"junkemail":    `\Junk`,
	"archive":      `\Archive`,
}

// folderTree is the mailbox's folders at one moment, by IMAP name.
type folderTree struct {
	at     time.Time
	list   []FolderInfo // INBOX first, then by name
	byName map[string]FolderInfo
}

// buildTree names Graph's folders. A folder whose parent is not listed is at the top level (its
// parent is the root, msgfolderroot, which Graph does not list).
func buildTree(fs []graph.Folder) *folderTree {
	byID := make(map[string]graph.Folder, len(fs))
	for _, f := range fs {
		byID[f.ID] = f
	}
	names := make(map[string]string, len(fs))
	var name func(f graph.Folder, depth int) string
	name = func(f graph.Folder, depth int) string {
		if n, ok := names[f.ID]; ok {
			return n
		}
		var n string
		switch p, ok := byID[f.ParentFolderID]; {
		case f.WellKnownName == "inbox":
			n = "INBOX"
		case ok && depth < len(fs):
			n = name(p, depth+1) + Delimiter + escapeName(f.DisplayName)
		default:
			n = escapeName(f.DisplayName)
		}
		names[f.ID] = n
		return n
	}
	t := &folderTree{at: time.Now(), byName: map[string]FolderInfo{}}
	for _, f := range fs {
		fi := FolderInfo{ID: f.ID, Name: name(f, 0), SpecialUse: specialUse[f.WellKnownName],
			HasChildren: f.ChildFolderCount > 0, Total: f.TotalItemCount, Unread: f.UnreadItemCount}
		if _, dup := t.byName[fi.Name]; dup {
			continue // Graph refuses two siblings of one name; the first listed wins if it ever happens
		}
		t.byName[fi.Name] = fi
		t.list = append(t.list, fi)
	}
	sort.Slice(t.list, func(i, j int) bool {
		a, b := t.list[i].Name, t.list[j].Name
		if (a == "INBOX") != (b == "INBOX") {
			return a == "INBOX"
		}
		return a < b
	})
	return t
}

// escapeName and unescapeName turn a display name into an IMAP name's part and back.
func escapeName(s string) string   { return strings.ReplaceAll(s, Delimiter, slashInName) }
func unescapeName(s string) string { return strings.ReplaceAll(s, slashInName, Delimiter) }

// canonical spells INBOX, and the names under it, as the tree does: IMAP says INBOX in any case.
func canonical(name string) string {
	name = strings.TrimSuffix(name, Delimiter)
	first, rest, found := strings.Cut(name, Delimiter)
	if strings.EqualFold(first, "INBOX") {
		first = "INBOX"
	}
	if found {
		return first + Delimiter + rest
	}
	return first
}

// splitName returns a name's parent ("" at the top level) and its last part.
func splitName(name string) (parent, leaf string) {
	i := strings.LastIndex(name, Delimiter)
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// folderTree returns the tree, asked of Graph when older than maxAge; sessions that ask at once
// share one listing.
func (m *Mailbox) folderTree(ctx context.Context, maxAge time.Duration) (*folderTree, error) {
	m.mu.Lock()
	t, gen := m.tree, m.treeGen
	m.mu.Unlock()
	if t != nil && time.Since(t.at) < maxAge {
		return t, nil
	}
	ch := m.treeFlight.DoChan("", func() (any, error) {
		// The listing is every waiting session's: one that gives up does not end it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		fs, err := m.Graph.AllFolders(fctx)
		if err != nil {
			return nil, err
		}
		t := buildTree(fs)
		m.mu.Lock()
		if m.treeGen == gen { // else a change made here since may be missing from it
			m.tree = t
		}
		m.mu.Unlock()
		return t, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*folderTree), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// forgetTree makes the next look-up ask Graph (after a change made here), and a listing under way
// not be kept.
func (m *Mailbox) forgetTree() {
	m.mu.Lock()
	m.tree = nil
	m.treeGen++
	m.mu.Unlock()
}

// lookup finds a folder by IMAP name; a name not in the cached tree is looked for in a fresh one
// (another program may just have made it).
func (m *Mailbox) lookup(ctx context.Context, name string) (FolderInfo, *folderTree, error) {
	name = canonical(name)
	t, err := m.folderTree(ctx, treeMaxAge)
	if err != nil {
		return FolderInfo{}, nil, err
	}
	if fi, ok := t.byName[name]; ok {
		return fi, t, nil
	}
	// Asked again for a name not found, at most every missMaxAge: a program polling a folder
	// deleted elsewhere must not list the tree from Graph at every command.
	if t, err = m.folderTree(ctx, missMaxAge); err != nil {
		return FolderInfo{}, nil, err
	}
	if fi, ok := t.byName[name]; ok {
		return fi, t, nil
	}
	return FolderInfo{}, t, ErrNoFolder
}

// Folders lists every folder, child folders included, INBOX first.
func (m *Mailbox) Folders(ctx context.Context) ([]FolderInfo, error) {
	t, err := m.folderTree(ctx, treeMaxAge)
	if err != nil {
		return nil, err
	}
	return append([]FolderInfo(nil), t.list...), nil
}

// CreateFolder creates a folder, and its missing parents as IMAP's CREATE asks; a trailing
// Delimiter is ignored.
func (m *Mailbox) CreateFolder(ctx context.Context, name string) error {
	name = canonical(name)
	if name == "" {
		return ErrNoFolder
	}
	defer m.forgetTree()
	t, err := m.folderTree(ctx, 0)
	if err != nil {
		return err
	}
	if _, ok := t.byName[name]; ok {
		return ErrFolderExists
	}
	parts := strings.Split(name, Delimiter)
	parentID := ""
	for i := range parts {
		path := strings.Join(parts[:i+1], Delimiter)
		if fi, ok := t.byName[path]; ok {
			parentID = fi.ID
			continue
		}
		f, err := m.Graph.CreateChildFolder(ctx, parentID, unescapeName(parts[i]))
		if err != nil {
			return err
		}
		parentID = f.ID
	}
	return nil
}

// RenameFolder renames a folder, or moves it under another parent (made if missing), or both.
func (m *Mailbox) RenameFolder(ctx context.Context, from, to string) error {
	from, to = canonical(from), canonical(to)
	if from == "INBOX" || to == "INBOX" {
		return errInbox
	}
	defer m.forgetTree()
	fi, t, err := m.lookup(ctx, from)
	if err != nil {
		return err
	}
	if _, ok := t.byName[to]; ok {
		return ErrFolderExists
	}
	oldParent, oldLeaf := splitName(from)
	newParent, newLeaf := splitName(to)
	if newParent != oldParent {
		parentID := ""
		if newParent != "" {
			p, ok := t.byName[newParent]
			if !ok {
				// IMAP's RENAME makes the parents a new name needs (RFC 3501 6.3.5).
				if err := m.CreateFolder(ctx, newParent); err != nil {
					return err
				}
				pi, _, err := m.lookup(ctx, newParent)
				if err != nil {
					return err
				}
				p = pi
			}
			parentID = p.ID
		}
		if _, err := m.Graph.MoveFolder(ctx, fi.ID, parentID); err != nil {
			return err
		}
	}
	if newLeaf != oldLeaf {
		return m.Graph.RenameFolder(ctx, fi.ID, unescapeName(newLeaf))
	}
	return nil
}

// DeleteFolder deletes a folder that has no child folders (ErrHasChildren): Graph moves it and its
// messages to Deleted Items.
func (m *Mailbox) DeleteFolder(ctx context.Context, name string) error {
	if canonical(name) == "INBOX" {
		return errInbox
	}
	defer m.forgetTree()
	fi, _, err := m.lookup(ctx, name)
	if err != nil {
		return err
	}
	if fi.HasChildren {
		return ErrHasChildren
	}
	if err := m.Graph.DeleteFolder(ctx, fi.ID); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.folders, fi.ID)
	m.mu.Unlock()
	return nil
}

// Folder opens a folder by IMAP name (INBOX in any case). The sessions of a folder share its
// listing; each Folder's Info is as of the call that returned it.
func (m *Mailbox) Folder(ctx context.Context, name string) (*Folder, error) {
	fi, _, err := m.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.folders == nil { // a Mailbox made without Mailboxes
		m.folders = map[string]*folderState{}
	}
	st := m.folders[fi.ID]
	if st == nil {
		st = newFolderState(m, fi)
		m.folders[fi.ID] = st
	}
	return &Folder{Info: fi, st: st, m: m}, nil
}

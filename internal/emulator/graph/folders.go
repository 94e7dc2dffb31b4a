package graph

// Mail folders: the folder tree under msgfolderroot, as Graph v1.0 serves it
// (https://learn.microsoft.com/graph/api/resources/mailfolder). The store keeps a folder as a path of
// display names joined with '/', which is how the emulator's IMAP lists it ("Parent/Child"); Graph
// sees the same folders by their stable ids.

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// rootFolder stands for msgfolderroot ("Top of Information Store") where a store folder's name is
// expected: it holds the top-level folders and no messages.
const rootFolder = "\x00msgfolderroot"

// rootFolderID is msgfolderroot's id. Exchange's differs per mailbox; one constant is enough here.
const rootFolderID = "AQMkAE1zZ0ZvbGRlclJvb3QAAAA"

// wellKnown are Graph's well-known folder names, accepted wherever a folder id is
// (https://learn.microsoft.com/graph/api/resources/mailfolder#well-known-folder-names), and the
// store's folders they name.
var wellKnown = map[string]string{
	"inbox": mailstore.Inbox, "drafts": mailstore.Drafts, "sentitems": mailstore.SentItems,
	"deleteditems": mailstore.DeletedItems, "junkemail": mailstore.JunkEmail, "archive": mailstore.Archive,
	"msgfolderroot": rootFolder,
}

// Paging of folder lists: "If a collection exceeds the default page size (10 items), the
// @odata.nextLink property is returned" (https://learn.microsoft.com/graph/api/user-list-mailfolders).
const (
	folderPageSize = 10
	maxFolderTop   = 1000 // the emulator's bound; Graph documents none for folders
)

var (
	errFolderExists = errf(409, "ErrorFolderExists", "A folder with the specified name already exists.")
	// The emulator keeps '/' for its hierarchy (Exchange allows it in a display name).
	errFolderName    = errf(400, "ErrorInvalidRequest", "The folder's displayName is invalid: it must be non-empty and must not contain '/', which the emulator reserves for its hierarchy.")
	errDefaultFolder = errUnsupported("renaming, moving or deleting one of Exchange's default folders", "changing folders the mailbox's user created")
)

// lookupFolder finds a folder of the mailbox by well-known name or id and returns its store name
// (rootFolder for msgfolderroot).
func (s *Server) lookupFolder(box, ref string) (string, *gerr) {
	m := s.st.Ensure(box)
	if name, ok := wellKnown[strings.ToLower(ref)]; ok {
		return name, nil
	}
	if ref == rootFolderID {
		return rootFolder, nil
	}
	if !strings.HasPrefix(ref, "AQMk") {
		return "", errMalformedID
	}
	if f := m.FolderByID(ref); f != nil {
		return f.Name(), nil
	}
	return "", errNotFound
}

// parentOf is the store name of a folder's parent (rootFolder for a top-level folder).
func parentOf(name string) string {
	if i := strings.LastIndexByte(name, mailstore.Delim); i >= 0 {
		return name[:i]
	}
	return rootFolder
}

// leaf is a folder's display name: the last part of its path (IMAP's INBOX is Graph's Inbox).
func leaf(name string) string {
	if name == mailstore.Inbox {
		return "Inbox"
	}
	return name[strings.LastIndexByte(name, mailstore.Delim)+1:]
}

// under is the store name of a child called displayName of parent.
func under(parent, displayName string) string {
	if parent == rootFolder {
		return displayName
	}
	return parent + string(mailstore.Delim) + displayName
}

// children lists the store names of parent's child folders, by display name as Graph orders them.
func children(all []string, parent string) []string {
	var out []string
	for _, name := range all {
		if parentOf(name) == parent {
			out = append(out, name)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.ToLower(leaf(a)), strings.ToLower(leaf(b))) })
	return out
}

// sibling says whether parent has a child called displayName (Exchange compares names without case).
func sibling(all []string, parent, displayName string) bool {
	return slices.ContainsFunc(children(all, parent), func(n string) bool { return strings.EqualFold(leaf(n), displayName) })
}

func (s *Server) folderID(box, name string) string {
	if name == rootFolder {
		return rootFolderID
	}
	if f := s.st.Ensure(box).Folder(name); f != nil {
		return f.ID()
	}
	return ""
}

// folderJSON is a folder as Graph shows it.
func (s *Server) folderJSON(box, name string, all []string) map[string]any {
	total, unread, size := 0, 0, 0
	display, parent := "Top of Information Store", ""
	if name != rootFolder {
		display, parent = leaf(name), s.folderID(box, parentOf(name))
		for _, m := range s.messagesIn(box, name) {
			total++
			size += m.Size()
			if !m.HasFlag(mailstore.FlagSeen) {
				unread++
			}
		}
	}
	return map[string]any{"id": s.folderID(box, name), "displayName": display, "parentFolderId": parent,
		"childFolderCount": len(children(all, name)), "unreadItemCount": unread, "totalItemCount": total,
		"sizeInBytes": size, "isHidden": false}
}

// folderEntity is one folder with its @odata.context, as Graph answers for a single entity.
func (s *Server) folderEntity(r *http.Request, c *call, name string) map[string]any {
	f := s.folderJSON(c.mailbox, name, s.st.Ensure(c.mailbox).Folders())
	f["@odata.context"] = s.context(r, "users('"+url.PathEscape(c.mailbox)+"')/mailFolders/$entity")
	return f
}

func (s *Server) context(r *http.Request, what string) string {
	return "https://" + r.Host + "/v1.0/$metadata#" + what
}

// listFolders: GET mailFolders (msgfolderroot's children) and GET mailFolders/{id}/childFolders,
// paged with $top (default 10) and $skip. The emulator has no hidden folders, so
// includeHiddenFolders=true changes nothing.
func (s *Server) listFolders(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	parent := rootFolder
	if len(c.segs) == 3 {
		var e *gerr
		if parent, e = s.lookupFolder(c.mailbox, c.segs[1]); e != nil {
			return e
		}
	}
	q := r.URL.Query()
	for _, k := range []string{"$filter", "$orderby", "$expand", "$search", "$count"} {
		if q.Has(k) {
			return errUnsupported(k+" on mail folders", "$top, $skip, $select and includeHiddenFolders")
		}
	}
	top, e := nonNegative(q, "$top", folderPageSize)
	if e != nil {
		return e
	}
	skip, e := nonNegative(q, "$skip", 0)
	if e != nil {
		return e
	}
	top = min(max(top, 1), maxFolderTop)
	var sel []string
	if v := q.Get("$select"); v != "" {
		sel = strings.Split(v, ",")
	}
	all := s.st.Ensure(c.mailbox).Folders()
	names := children(all, parent)
	page := []map[string]any{}
	end := min(len(names), skip+top)
	for i := skip; i < end; i++ {
		page = append(page, selectFields(s.folderJSON(c.mailbox, names[i], all), sel))
	}
	out := map[string]any{"@odata.context": s.context(r, "users('"+url.PathEscape(c.mailbox)+"')/mailFolders"), "value": page}
	if end < len(names) {
		out["@odata.nextLink"] = nextPage(r, q, end, top)
	}
	writeJSON(w, 200, out)
	return nil
}

// getFolder: GET mailFolders/{id}.
func (s *Server) getFolder(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	name, e := s.lookupFolder(c.mailbox, c.segs[1])
	if e != nil {
		return e
	}
	writeJSON(w, 200, s.folderEntity(r, c, name))
	return nil
}

// readDisplayName reads {"displayName": ...} and checks it.
func readDisplayName(r *http.Request) (string, *gerr) {
	var in struct {
		DisplayName string `json:"displayName"`
	}
	if e := readJSON(r, &in); e != nil {
		return "", e
	}
	name := strings.TrimSpace(in.DisplayName)
	if name == "" || strings.ContainsRune(name, mailstore.Delim) {
		return "", errFolderName
	}
	return name, nil
}

// createFolder: POST mailFolders and POST mailFolders/{id}/childFolders {"displayName": ...} → 201
// (https://learn.microsoft.com/graph/api/mailfolder-post-childfolders). A sibling of the same name,
// in any case, is 409 ErrorFolderExists.
func (s *Server) createFolder(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	parent := rootFolder
	if len(c.segs) == 3 {
		var e *gerr
		if parent, e = s.lookupFolder(c.mailbox, c.segs[1]); e != nil {
			return e
		}
	}
	display, e := readDisplayName(r)
	if e != nil {
		return e
	}
	m := s.st.Ensure(c.mailbox)
	if sibling(m.Folders(), parent, display) {
		return errFolderExists
	}
	name := under(parent, display)
	if _, err := m.CreateFolder(name); err != nil {
		return storeFolderErr(err)
	}
	writeJSON(w, 201, s.folderEntity(r, c, name))
	return nil
}

// readDestination reads a move's or copy's {"destinationId": ...} and returns the folder it names.
func (s *Server) readDestination(r *http.Request, c *call) (string, *gerr) {
	var in struct {
		DestinationID string `json:"destinationId"`
	}
	if e := readJSON(r, &in); e != nil {
		return "", e
	}
	if in.DestinationID == "" {
		return "", errf(400, "ErrorInvalidRequest", "The destinationId parameter is required.")
	}
	return s.lookupFolder(c.mailbox, in.DestinationID)
}

// storeFolderErr is Graph's answer to a mailstore folder error.
func storeFolderErr(err error) *gerr {
	switch {
	case errors.Is(err, mailstore.ErrFolderExists):
		return errFolderExists
	case errors.Is(err, mailstore.ErrDefaultFolder):
		return errDefaultFolder
	case errors.Is(err, mailstore.ErrNoFolder):
		return errNotFound
	}
	return errFolderName
}

// changeableFolder looks up the folder a PATCH, move or DELETE names: not the root nor a default one.
func (s *Server) changeableFolder(c *call) (string, *gerr) {
	name, e := s.lookupFolder(c.mailbox, c.segs[1])
	if e != nil {
		return "", e
	}
	if name == rootFolder || slices.Contains(mailstore.DefaultFolders, name) {
		return "", errDefaultFolder
	}
	return name, nil
}

// relocate renames a folder (and its subfolders) to newName, refusing a sibling's name.
func (s *Server) relocate(c *call, name, newName string) *gerr {
	m := s.st.Ensure(c.mailbox)
	if name == newName {
		return nil
	}
	if strings.HasPrefix(newName, name+string(mailstore.Delim)) {
		// EWS's code for a failed move (ResponseCodeType, learn.microsoft.com/exchange/client-developer/web-service-reference/responsecode).
		return errf(400, "ErrorMoveCopyFailed", "A folder cannot be moved into itself or one of its subfolders.")
	}
	if slices.ContainsFunc(children(m.Folders(), parentOf(newName)), func(n string) bool {
		return n != name && strings.EqualFold(leaf(n), leaf(newName))
	}) {
		return errFolderExists
	}
	if err := m.RenameFolder(name, newName); err != nil {
		return storeFolderErr(err)
	}
	return nil
}

// patchFolder: PATCH mailFolders/{id} {"displayName": ...} renames the folder
// (https://learn.microsoft.com/graph/api/mailfolder-update): 200 with the folder; its id stays.
func (s *Server) patchFolder(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	name, e := s.changeableFolder(c)
	if e != nil {
		return e
	}
	display, e := readDisplayName(r)
	if e != nil {
		return e
	}
	return s.relocated(w, r, c, name, under(parentOf(name), display), 200)
}

// relocated renames or moves a folder and answers with it.
func (s *Server) relocated(w http.ResponseWriter, r *http.Request, c *call, name, newName string, status int) *gerr {
	if e := s.relocate(c, name, newName); e != nil {
		return e
	}
	writeJSON(w, status, s.folderEntity(r, c, newName))
	return nil
}

// moveFolder: POST mailFolders/{id}/move {"destinationId": ...} → 201 with the folder under its new
// parent (https://learn.microsoft.com/graph/api/mailfolder-move); its id stays.
func (s *Server) moveFolder(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	name, e := s.changeableFolder(c)
	if e != nil {
		return e
	}
	parent, e := s.readDestination(r, c)
	if e != nil {
		return e
	}
	return s.relocated(w, r, c, name, under(parent, leaf(name)), 201)
}

// deleteFolder: DELETE mailFolders/{id} → 204. Graph moves the folder, with its messages and
// subfolders, to Deleted Items (https://learn.microsoft.com/graph/api/mailfolder-delete: "the
// folder is moved to the Deleted Items folder"); one already there is removed for good. A name
// taken in Deleted Items gets a " (2)"-style suffix (what Exchange does then is unconfirmed).
func (s *Server) deleteFolder(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	name, e := s.changeableFolder(c)
	if e != nil {
		return e
	}
	m := s.st.Ensure(c.mailbox)
	if strings.HasPrefix(name, mailstore.DeletedItems+string(mailstore.Delim)) {
		if err := m.DeleteFolder(name); err != nil {
			return storeFolderErr(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	display, all := leaf(name), m.Folders()
	for n := 2; sibling(all, mailstore.DeletedItems, display); n++ {
		display = leaf(name) + " (" + strconv.Itoa(n) + ")"
	}
	if e := s.relocate(c, name, under(mailstore.DeletedItems, display)); e != nil {
		return e
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

package graph

// Delta queries of a folder's messages (https://learn.microsoft.com/graph/api/message-delta and
// https://learn.microsoft.com/graph/delta-query-messages), and of the mailbox's folders
// (https://learn.microsoft.com/graph/api/mailfolder-delta): a round of GETs that pages through what
// changed since the last round's @odata.deltaLink (everything, for the first round), each page
// pointing to the next with an @odata.nextLink ($skiptoken), the last with an @odata.deltaLink
// ($deltatoken). The tokens encode the round's query options ($select, $expand, changeType), so the
// links are followed as given.
//
// A token is a key into a bounded in-memory cache: Graph keeps Outlook delta tokens in a cache whose
// oldest entries are dropped when it fills (https://learn.microsoft.com/graph/delta-query-overview,
// "Token duration"), and so does the emulator; an unknown or dropped token is 410 Gone,
// syncStateNotFound.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const (
	// deltaPageSize is a delta page's size without Prefer: odata.maxpagesize. Graph's docs give none
	// for message delta; 10, its default for message lists, is what clients observe
	// (microsoftgraph/msgraph-sdk-java#536, alcionai/corso#2332).
	deltaPageSize = 10
	// maxDeltaPageSize bounds odata.maxpagesize. Graph documents no maximum for message delta; the
	// emulator takes message lists' documented $top range (1 to 1000,
	// https://learn.microsoft.com/graph/api/user-list-messages).
	maxDeltaPageSize = 1000
	// maxDeltaTokens is the size of the token cache; the oldest tokens go first.
	maxDeltaTokens = 2048
)

// errSyncState answers an unknown or expired token: 410 Gone, with a Location to start again from
// (delta-query-overview, "Synchronization reset"); the code and message are errors.md's
// (https://learn.microsoft.com/graph/errors#code-property).
var errSyncState = errf(http.StatusGone, "syncStateNotFound", "The sync state generation is not found. The delta token is expired and data must be synchronized again.")

// round is one round of a folder's delta query.
type round struct {
	mailbox, folderID string
	options           url.Values // $select, $expand, changeType
	items             []deltaItem
	// keys are the folder's messages and their changeKeys when the round began: the base of the
	// next round.
	keys map[string]string
}

// deltaItem is a message of a round: changed (shown as it is when its page is served) or removed.
type deltaItem struct {
	id      string
	removed string // "", or the @removed reason: "changed" (moved out) or "deleted" (gone)
}

// deltaToken is what a token names: a page of a round ($skiptoken) or a finished round ($deltatoken).
type deltaToken struct {
	r        *round
	pos      int
	finished bool
}

// deltas is the token cache.
type deltas struct {
	tokens map[string]deltaToken
	order  []string // oldest first
}

// putTokenLocked stores a token and returns its name; s.mu must be held.
func (s *Server) putTokenLocked(t deltaToken) string {
	name := randomID("", 24)
	if s.deltas.tokens == nil {
		s.deltas.tokens = map[string]deltaToken{}
	}
	s.deltas.tokens[name] = t
	s.deltas.order = append(s.deltas.order, name)
	if len(s.deltas.order) > maxDeltaTokens {
		delete(s.deltas.tokens, s.deltas.order[0])
		s.deltas.order = s.deltas.order[1:]
	}
	return name
}

func (s *Server) token(name string) (deltaToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.deltas.tokens[name]
	return t, ok
}

// messagesDelta: GET mailFolders/{id}/messages/delta.
func (s *Server) messagesDelta(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	name, e := s.lookupFolder(c.mailbox, c.segs[1])
	if e != nil {
		return e
	}
	tok, e := s.roundFor(w, r, c, s.folderID(c.mailbox, name), deltaOptions, func(opts url.Values, base map[string]string) *round {
		return s.newRound(c.mailbox, name, s.folderID(c.mailbox, name), opts, base)
	})
	if e != nil {
		return e
	}
	lq, e := parseListQuery(url.Values{"$select": tok.r.options["$select"], "$expand": tok.r.options["$expand"]})
	if e != nil {
		return e
	}
	return s.deltaPage(w, r, tok, "Collection(message)", func(it deltaItem) map[string]any { return s.deltaJSON(c.mailbox, name, it, &lq) })
}

// roundFor is the round a delta request continues (its $skiptoken or $deltatoken), or a new one
// from the request's options. scope names what the round tracks (a folder's id, or foldersScope);
// a token of another scope or mailbox is unknown. build makes a round from base (nil: the first).
func (s *Server) roundFor(w http.ResponseWriter, r *http.Request, c *call, scope string, options func(url.Values) (url.Values, *gerr),
	build func(opts url.Values, base map[string]string) *round) (deltaToken, *gerr) {
	q := r.URL.Query()
	if !q.Has("$skiptoken") && !q.Has("$deltatoken") {
		opts, e := options(q)
		if e != nil {
			return deltaToken{}, e
		}
		return deltaToken{r: build(opts, nil)}, nil
	}
	t, ok := s.token(q.Get("$skiptoken") + q.Get("$deltatoken"))
	if !ok || t.finished != q.Has("$deltatoken") || t.r.folderID != scope || !strings.EqualFold(t.r.mailbox, c.mailbox) {
		w.Header().Set("Location", "https://"+r.Host+r.URL.Path)
		return deltaToken{}, errSyncState
	}
	if t.finished {
		return deltaToken{r: build(t.r.options, t.r.keys)}, nil
	}
	return t, nil
}

// deltaPage answers with the token's page of its round and the link to the next page or round.
func (s *Server) deltaPage(w http.ResponseWriter, r *http.Request, tok deltaToken, context string, render func(deltaItem) map[string]any) *gerr {
	size := pageSize(r)
	end := min(len(tok.r.items), tok.pos+size)
	page := []map[string]any{}
	for _, it := range tok.r.items[tok.pos:end] {
		page = append(page, render(it))
	}
	out := map[string]any{"@odata.context": s.context(r, context), "value": page}
	s.mu.Lock()
	if end < len(tok.r.items) {
		out["@odata.nextLink"] = "https://" + r.Host + r.URL.Path + "?$skiptoken=" + s.putTokenLocked(deltaToken{r: tok.r, pos: end})
	} else {
		out["@odata.deltaLink"] = "https://" + r.Host + r.URL.Path + "?$deltatoken=" + s.putTokenLocked(deltaToken{r: tok.r, finished: true})
	}
	s.mu.Unlock()
	if size != deltaPageSize {
		w.Header().Add("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	}
	writeJSON(w, 200, out)
	return nil
}

// foldersScope is the scope of mailFolders/delta rounds.
const foldersScope = "mailFolders"

// foldersDelta: GET mailFolders/delta (https://learn.microsoft.com/graph/api/mailfolder-delta): every
// folder of the mailbox, child folders included, then those added, changed (name, parent or counts)
// and removed ("deleted": gone for good; a folder deleted to Deleted Items is a change of parent).
func (s *Server) foldersDelta(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	options := func(q url.Values) (url.Values, *gerr) {
		for k := range q {
			if k != "$select" {
				return nil, errUnsupported("the query option "+shown(k)+" in a folder delta query", "$select")
			}
		}
		return url.Values{"$select": q["$select"]}, nil
	}
	tok, e := s.roundFor(w, r, c, foldersScope, options, func(opts url.Values, base map[string]string) *round {
		return s.newFolderRound(c.mailbox, opts, base)
	})
	if e != nil {
		return e
	}
	var sel []string
	if v := tok.r.options.Get("$select"); v != "" {
		sel = strings.Split(v, ",")
	}
	return s.deltaPage(w, r, tok, "Collection(mailFolder)", func(it deltaItem) map[string]any {
		m := s.st.Ensure(c.mailbox)
		if f := m.FolderByID(it.id); it.removed == "" && f != nil {
			out := selectFields(s.folderJSON(c.mailbox, f.Name(), m.Folders()), sel)
			out["@odata.type"] = "#microsoft.graph.mailFolder"
			return out
		}
		return map[string]any{"@odata.type": "#microsoft.graph.mailFolder", "id": it.id, "@removed": map[string]string{"reason": "deleted"}}
	})
}

// newFolderRound lists the folders added or changed since base (nil: every folder) and those removed.
func (s *Server) newFolderRound(box string, opts url.Values, base map[string]string) *round {
	r := &round{mailbox: box, folderID: foldersScope, options: opts, keys: map[string]string{}}
	all := s.st.Ensure(box).Folders()
	for _, name := range all {
		f := s.folderJSON(box, name, all)
		id := f["id"].(string)
		key := fmt.Sprint(f["displayName"], "\x00", f["parentFolderId"], "\x00", f["childFolderCount"], "\x00", f["unreadItemCount"], "\x00", f["totalItemCount"])
		r.keys[id] = key
		if old, seen := base[id]; base == nil || !seen || old != key {
			r.items = append(r.items, deltaItem{id: id})
		}
	}
	for id := range base {
		if _, ok := r.keys[id]; !ok {
			r.items = append(r.items, deltaItem{id: id, removed: "deleted"})
		}
	}
	return r
}

// deltaOptions checks an initial delta request's query options and keeps those the round encodes.
func deltaOptions(q url.Values) (url.Values, *gerr) {
	for k := range q {
		if k != "$select" && k != "$expand" && k != "changeType" {
			return nil, errUnsupported("the query option "+shown(k)+" in a delta query", "$select, $expand and changeType")
		}
	}
	opts := url.Values{"$select": q["$select"], "$expand": q["$expand"]}
	if ct := strings.ToLower(q.Get("changeType")); ct != "" {
		if ct != "created" && ct != "updated" && ct != "deleted" {
			return nil, errf(400, "BadRequest", "changeType must be created, updated or deleted.")
		}
		opts.Set("changeType", ct)
	}
	if _, e := parseListQuery(url.Values{"$select": opts["$select"], "$expand": opts["$expand"]}); e != nil {
		return nil, e
	}
	return opts, nil
}

// pageSize is the request's Prefer: odata.maxpagesize, bounded, or the default.
func pageSize(r *http.Request) int {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "odata.maxpagesize") {
				if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n > 0 {
					return min(n, maxDeltaPageSize)
				}
			}
		}
	}
	return deltaPageSize
}

// newRound lists what changed in a folder since base (nil: the first round, every message).
func (s *Server) newRound(box, name, folderID string, opts url.Values, base map[string]string) *round {
	r := &round{mailbox: box, folderID: folderID, options: opts, keys: map[string]string{}}
	ct := opts.Get("changeType")
	for _, m := range s.messagesIn(box, name) {
		key := changeKey(m, s.meta.get(m.ID))
		r.keys[m.ID] = key
		old, seen := base[m.ID]
		switch {
		case base != nil && seen && old == key:
		case base != nil && seen && ct != "" && ct != "updated":
		case (base == nil || !seen) && ct != "" && ct != "created":
		default:
			r.items = append(r.items, deltaItem{id: m.ID})
		}
	}
	if ct != "" && ct != "deleted" {
		return r
	}
	for id := range base {
		if _, ok := r.keys[id]; ok {
			continue
		}
		reason := "deleted"
		if _, e := s.find(box, id); e == nil {
			reason = "changed"
		}
		r.items = append(r.items, deltaItem{id: id, removed: reason})
	}
	return r
}

// deltaJSON is one entry of a delta page: the message as it is now, or its removal.
func (s *Server) deltaJSON(box, folder string, it deltaItem, lq *listQuery) map[string]any {
	if it.removed == "" {
		if msg, e := s.find(box, it.id); e == nil && msg.Folder == folder {
			m := lq.shape(s.messageJSONOf(msg, lq.needsBody()), msg)
			m["@odata.type"] = "#microsoft.graph.message"
			return m
		}
		it.removed = "changed" // moved or deleted since the round began
		if _, e := s.find(box, it.id); e != nil {
			it.removed = "deleted"
		}
	}
	return map[string]any{"@odata.type": "#microsoft.graph.message", "id": it.id, "@removed": map[string]string{"reason": it.removed}}
}

package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// PATCH messages/{id}: the writable properties of Graph's message
// (https://learn.microsoft.com/graph/api/message-update). isRead and flag map to IMAP's \Seen and
// \Flagged, so a change shows over IMAP too; categories and importance are Graph's own. subject,
// body, from and the recipients change only on a draft.

// writableAlways are the properties PATCH changes on any message.
var writableAlways = []string{"isRead", "flag", "categories", "importance"}

// writableDraft are the properties PATCH changes on a draft only.
var writableDraft = []string{"subject", "body", "from", "toRecipients", "ccRecipients", "bccRecipients", "replyTo"}

// errNotDraft is Graph's answer to a change of a draft-only property of a sent or received
// message (observed: microsoftgraph/microsoft-graph-docs#17008).
var errNotDraft = errf(400, "ErrorInvalidPropertySet", "Message is not draft.")

// errUnknownProperty is Graph's answer to a body property the message type lacks (observed:
// microsoftgraph/msgraph-sdk-dotnet#270).
func errUnknownProperty(name string) *gerr {
	return errf(400, "RequestBodyRead", "The property '"+shown(name)+"' does not exist on type 'Microsoft.OutlookServices.Message'. Make sure to only use property names that are defined by the type or mark the type as open type.")
}

// patchIn is a PATCH body, each property decoded on its own.
type patchIn struct {
	isRead     *bool
	flag       string
	categories []string
	importance string
	changeKey  string                     // the version the client changes, if it says
	draft      map[string]json.RawMessage // draft-only properties, canonical names
}

// Bounds of what PATCH stores.
const (
	maxCategories   = 100
	maxCategoryName = 255
)

// parsePatch checks every property of a PATCH body before anything changes.
func parsePatch(raw map[string]json.RawMessage, isDraft bool) (patchIn, *gerr) {
	in := patchIn{draft: map[string]json.RawMessage{}}
	for k, v := range raw {
		if strings.HasPrefix(k, "@odata.") {
			continue // annotations clients echo back (@odata.etag, @odata.type)
		}
		p, ok := property(k)
		switch {
		case !ok:
			return in, errUnknownProperty(k)
		case p == "changeKey":
			if json.Unmarshal(v, &in.changeKey) != nil {
				return in, errBody("Cannot read the request body: changeKey must be a string.")
			}
			continue
		case containsFold(writableDraft, p):
			if !isDraft {
				return in, errNotDraft
			}
			in.draft[p] = v
			continue
		case !containsFold(writableAlways, p):
			// Graph: "Set action is invalid for property." (microsoftgraph/msgraph-sdk-dotnet#2408).
			return in, errf(400, "ErrorInvalidPropertySet", "Set action is invalid for property.")
		}
		if e := in.read(p, v); e != nil {
			return in, e
		}
	}
	return in, nil
}

// read decodes one always-writable property.
func (in *patchIn) read(p string, v json.RawMessage) *gerr {
	bad := func(what string) *gerr {
		return errBody("Cannot read the request body: " + p + " must be " + what + ".")
	}
	switch p {
	case "isRead":
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return bad("true or false")
		}
		in.isRead = &b
	case "importance":
		if json.Unmarshal(v, &in.importance) != nil || !containsFold([]string{"low", "normal", "high"}, in.importance) {
			return bad(`"low", "normal" or "high"`)
		}
		in.importance = strings.ToLower(in.importance)
	case "categories":
		if json.Unmarshal(v, &in.categories) != nil || len(in.categories) > maxCategories ||
			slices.ContainsFunc(in.categories, func(c string) bool { return c == "" || len(c) > maxCategoryName }) {
			return bad("a list of up to 100 category names of 1 to 255 bytes")
		}
		if in.categories == nil {
			in.categories = []string{}
		}
	case "flag":
		var f map[string]json.RawMessage
		if json.Unmarshal(v, &f) != nil {
			return bad(`an object such as {"flagStatus": "flagged"}`)
		}
		for k, fv := range f {
			if !strings.EqualFold(k, "flagStatus") {
				return errUnsupported("setting flag."+shown(k), "flag.flagStatus (notFlagged, flagged, complete)")
			}
			if json.Unmarshal(fv, &in.flag) != nil || !containsFold([]string{"notFlagged", "flagged", "complete"}, in.flag) {
				return bad(`a flag whose flagStatus is "notFlagged", "flagged" or "complete"`)
			}
		}
		if in.flag == "" {
			in.flag = "notFlagged"
		}
	}
	return nil
}

// patchMessage: PATCH messages/{id} → 200 with the changed message.
func (s *Server) patchMessage(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	var raw map[string]json.RawMessage
	if e := readJSON(r, &raw); e != nil {
		return e
	}
	msg, e := s.find(c.mailbox, c.segs[1])
	if e != nil {
		return e
	}
	_, isDraft := s.draftMessage(c.mailbox, msg.ID)
	in, e := parsePatch(raw, isDraft)
	if e != nil {
		return e
	}
	if e := s.checkVersion(r, msg, in.changeKey); e != nil {
		return e
	}
	if isDraft {
		if e := s.patchDraft(c, msg.ID, in); e != nil {
			return e
		}
	} else if e := s.patchStored(c, msg, in); e != nil {
		return e
	}
	s.meta.update(msg.ID, s.now(), func(m *itemMeta) {
		if in.categories != nil {
			m.categories = in.categories
		}
		if in.importance != "" {
			m.importance = in.importance
		}
		switch {
		case in.flag == "notFlagged":
			m.flag = ""
		case in.flag == "complete" || (in.flag == "flagged" && isDraft):
			m.flag = in.flag
		case in.flag == "flagged":
			m.flag = "" // \Flagged says it
		}
	})
	if msg, e = s.find(c.mailbox, msg.ID); e != nil {
		return e
	}
	s.writeEntity(w, r, c, 200, msg)
	return nil
}

// errConflict is Graph's answer when the change key a client sends is not the message's: Exchange's
// ErrorIrresolvableConflict, text observed (microsoftgraph/microsoft-graph-docs-contrib#7934); the
// status 412 (If-Match's Precondition Failed) is unconfirmed.
var errConflict = errf(412, "ErrorIrresolvableConflict", "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.")

// checkVersion refuses a change made against another version of the message: an If-Match header
// (an @odata.etag, or *) or a changeKey in the body that is not the message's current one.
func (s *Server) checkVersion(r *http.Request, msg mailstore.Message, bodyKey string) *gerr {
	key := changeKey(msg, s.meta.get(msg.ID))
	if bodyKey != "" && bodyKey != key {
		return errConflict
	}
	for _, v := range r.Header.Values("If-Match") {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag != "*" && strings.Trim(strings.TrimPrefix(tag, "W/"), `"`) != key {
				return errConflict
			}
		}
	}
	return nil
}

// patchStored applies isRead and flag to a stored message's IMAP flags.
func (s *Server) patchStored(c *call, msg mailstore.Message, in patchIn) *gerr {
	flags := slices.Clone(msg.Flags)
	set := func(flag string, on bool) {
		flags = slices.DeleteFunc(flags, func(f string) bool { return strings.EqualFold(f, flag) })
		if on {
			flags = append(flags, flag)
		}
	}
	if in.isRead != nil {
		set(mailstore.FlagSeen, *in.isRead)
	}
	if in.flag != "" {
		set(mailstore.FlagFlagged, in.flag == "flagged")
	}
	if err := s.st.SetFlags(c.mailbox, msg.Folder, msg.ID, flags); err != nil {
		return errNotFound
	}
	return nil
}

// patchDraft applies a PATCH to a Graph draft: its content, and importance (a header of it).
func (s *Server) patchDraft(c *call, id string, in patchIn) *gerr {
	if in.isRead != nil && !*in.isRead {
		return errUnsupported("marking a Graph draft unread", "isRead on received and sent messages")
	}
	d, e := s.lockedDraft(c, id)
	if e != nil {
		return e
	}
	defer s.mu.Unlock()
	m := d.msg
	// Each property decodes into a fresh value: decoding into the draft's slices would write
	// through to it before the change is checked.
	var fresh MessageIn
	targets := map[string]any{"subject": &fresh.Subject, "body": &fresh.Body, "from": &fresh.From, "toRecipients": &fresh.ToRecipients,
		"ccRecipients": &fresh.CcRecipients, "bccRecipients": &fresh.BccRecipients, "replyTo": &fresh.ReplyTo}
	for p, v := range in.draft {
		if err := json.Unmarshal(v, targets[p]); err != nil {
			return errBody("Cannot read the request body: " + jsonErrText(err))
		}
		switch p {
		case "subject":
			m.Subject = fresh.Subject
		case "body":
			m.Body = fresh.Body
		case "from":
			m.From = fresh.From
		case "toRecipients":
			m.ToRecipients = fresh.ToRecipients
		case "ccRecipients":
			m.CcRecipients = fresh.CcRecipients
		case "bccRecipients":
			m.BccRecipients = fresh.BccRecipients
		case "replyTo":
			m.ReplyTo = fresh.ReplyTo
		}
	}
	if in.importance != "" {
		m.Importance = in.importance
	}
	from := d.from
	if _, ok := in.draft["from"]; ok {
		from = s.sender(c, m.From)
	}
	if _, err := BuildMIME(&m, from, d.created, s.cfg.MessageIDHost, false); err != nil {
		var re *recipientError
		if errors.As(err, &re) {
			return errf(400, "ErrorInvalidRecipients", re.Error())
		}
		return errBody(err.Error())
	}
	d.msg, d.from, d.data = m, from, nil
	return nil
}

// writeEntity answers with one message, with its @odata.context as Graph gives single entities.
func (s *Server) writeEntity(w http.ResponseWriter, r *http.Request, c *call, status int, msg mailstore.Message) {
	m := s.messageJSON(msg)
	m["@odata.context"] = s.context(r, "users('"+url.PathEscape(c.mailbox)+"')/messages/$entity")
	w.Header().Set("ETag", fmt.Sprint(m["@odata.etag"])) // as Graph answers single messages
	writeJSON(w, status, m)
}

// ---- move and copy -----------------------------------------------------------------------------

// immutableIDs says whether the request asks for Graph's immutable ids (Prefer: IdType="ImmutableId",
// https://learn.microsoft.com/graph/outlook-immutable-id), which keep a message's id across moves.
func immutableIDs(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "IdType") && strings.EqualFold(strings.Trim(strings.TrimSpace(val), `"`), "ImmutableId") {
				return true
			}
		}
	}
	return false
}

// moveOrCopy reads {"destinationId": ...} and the message; Graph drafts stay where they are.
func (s *Server) moveOrCopy(r *http.Request, c *call) (mailstore.Message, string, *gerr) {
	dest, e := s.readDestination(r, c)
	if e != nil {
		return mailstore.Message{}, "", e
	}
	msg, e := s.find(c.mailbox, c.segs[1])
	if e != nil {
		return mailstore.Message{}, "", e
	}
	if _, draft := s.draftMessage(c.mailbox, msg.ID); draft {
		return mailstore.Message{}, "", errUnsupported("moving or copying a Graph draft", "sending or deleting it")
	}
	return msg, dest, nil
}

// move: POST messages/{id}/move → 201 with the moved message. Its id changes, as Graph's default
// ids do, unless the request prefers immutable ids.
func (s *Server) move(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	msg, dest, e := s.moveOrCopy(r, c)
	if e != nil {
		return e
	}
	var moved mailstore.Message
	var err error
	if immutableIDs(r) {
		moved, err = s.st.Move(c.mailbox, msg.Folder, dest, msg.ID)
	} else if moved, err = s.st.Append(c.mailbox, dest, msg.Data, msg.Flags, msg.Received); err == nil {
		// A new item in the destination, the old one gone: what a move is to a default id.
		s.meta.carry(msg.ID, moved.ID, true)
		_, err = s.st.Delete(c.mailbox, msg.Folder, msg.ID)
	}
	if err != nil {
		return errNotFound
	}
	s.meta.update(moved.ID, s.now(), func(*itemMeta) {})
	s.writeEntity(w, r, c, 201, moved)
	return nil
}

// copy: POST messages/{id}/copy → 201 with the copy, a new item with its own id (immutable or not).
func (s *Server) copy(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	msg, dest, e := s.moveOrCopy(r, c)
	if e != nil {
		return e
	}
	copied, err := s.st.Append(c.mailbox, dest, msg.Data, msg.Flags, msg.Received)
	if err != nil {
		return errNotFound
	}
	s.meta.carry(msg.ID, copied.ID, false)
	s.writeEntity(w, r, c, 201, copied)
	return nil
}

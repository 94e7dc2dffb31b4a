package graph

// Creating messages (https://learn.microsoft.com/graph/api/user-post-messages): POST messages (into
// Drafts) or POST mailFolders/{id}/messages, in JSON or, with Content-Type: text/plain, as base64
// MIME. Graph documents both as "Create a draft of a new message": the message is a draft (isDraft
// true, PidTagMessageFlags with mfUnsent). Only a JSON creation can set PidTagMessageFlags
// (singleValueExtendedProperties, "Integer 0x0E07"), and only then: once saved the flag cannot change
// ([MS-OXCMSG] 2.2.1.6, https://learn.microsoft.com/openspecs/exchange_server_protocols/ms-oxcmsg),
// and a MIME body has no room for it — a MIME message is always created a draft
// (Glen Scales, "Work around for importing Mime messages into Exchange Online using the Microsoft
// Graph", glenscales.substack.com). So the emulator:
//   - MIME: stores the bytes as given in the folder, flagged \Draft and \Seen (IMAP shows it; isDraft);
//   - JSON with PidTagMessageFlags without mfUnsent (0x8): stores the message built from the JSON in
//     the folder as a sent/received one, \Seen when mfRead (0x1) is set, received at
//     PidTagMessageDeliveryTime ("SystemTime 0x0E06") when given;
//   - other JSON: a Graph draft in Drafts, as before (elsewhere: refused as not implemented).

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// MAPI message flags ([MS-OXCMSG] 2.2.1.6 PidTagMessageFlags).
const (
	mfRead   = 0x1
	mfUnsent = 0x8
)

// createIn is a JSON creation: the message and the extended properties set with it.
type createIn struct {
	MessageIn
	Props []struct {
		ID    string `json:"id"`
		Value string `json:"value"`
	} `json:"singleValueExtendedProperties"`
}

// prop returns the value of the extended property id ("integer 0xe07" form), ok false if absent.
func (in *createIn) prop(id string) (string, bool) {
	for _, p := range in.Props {
		if n, ok := normPropID(p.ID); ok && n == id {
			return p.Value, true
		}
	}
	return "", false
}

// createMessage: POST messages and POST mailFolders/{id}/messages.
func (s *Server) createMessage(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	folder := mailstore.Drafts
	if len(c.segs) == 3 {
		var e *gerr
		if folder, e = s.lookupFolder(c.mailbox, c.segs[1]); e != nil {
			return e
		}
		if folder == rootFolder {
			return errNotFound
		}
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "text/plain" {
		data, _, e := readMIME(r)
		if e != nil {
			return e
		}
		return s.stored(w, r, c, folder, data, []string{mailstore.FlagDraft, mailstore.FlagSeen}, time.Time{})
	}
	var in createIn
	if e := readJSON(r, &in); e != nil {
		return e
	}
	flags, ok := in.prop("integer 0xe07")
	if !ok {
		if folder != mailstore.Drafts {
			return errUnsupported("creating a JSON draft outside Drafts", "POST messages, or PidTagMessageFlags (Integer 0x0E07) without mfUnsent in singleValueExtendedProperties")
		}
		return s.createDraft(w, r, c, in.MessageIn)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(flags), 0, 64)
	if err != nil {
		return errf(400, "ErrorInvalidExtendedPropertyValue", "The value of PidTagMessageFlags (Integer 0x0E07) is not an integer.")
	}
	if n&mfUnsent != 0 {
		return errUnsupported("creating a JSON draft outside the Graph drafts", "POST messages without PidTagMessageFlags")
	}
	var received time.Time
	if v, ok := in.prop("systemtime 0xe06"); ok {
		if received, err = time.Parse(time.RFC3339, strings.TrimSpace(v)); err != nil {
			return errf(400, "ErrorInvalidExtendedPropertyValue", "The value of PidTagMessageDeliveryTime (SystemTime 0x0E06) is not a date and time such as 2026-01-02T15:04:05Z.")
		}
	}
	built, err := BuildMIME(&in.MessageIn, s.sender(c, in.From), s.now(), s.cfg.MessageIDHost, false)
	if err != nil {
		var re *recipientError
		if errors.As(err, &re) {
			return errf(400, "ErrorInvalidRecipients", re.Error())
		}
		return errBody(err.Error())
	}
	var fl []string
	if n&mfRead != 0 {
		fl = append(fl, mailstore.FlagSeen)
	}
	return s.stored(w, r, c, folder, built.Data, fl, received)
}

// stored stores a created message in a folder and answers 201 with it.
func (s *Server) stored(w http.ResponseWriter, r *http.Request, c *call, folder string, data []byte, flags []string, received time.Time) *gerr {
	msg, err := s.st.Append(c.mailbox, folder, data, flags, received)
	if err != nil {
		return errNotFound
	}
	s.writeEntity(w, r, c, 201, msg)
	return nil
}

// permanentDelete: POST messages/{id}/permanentDelete → 204. The message is gone for good, not moved
// to Deleted Items or Recoverable Items (https://learn.microsoft.com/graph/api/message-permanentdelete).
func (s *Server) permanentDelete(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	id := c.segs[1]
	if !s.deleteDraft(c.mailbox, id) {
		msg, e := s.find(c.mailbox, id)
		if e != nil {
			return e
		}
		if n, _ := s.st.Delete(c.mailbox, msg.Folder, msg.ID); n == 0 {
			return errNotFound
		}
	}
	s.meta.drop(id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

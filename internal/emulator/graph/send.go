package graph

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// MaxMessage is the largest message the emulator sends (Graph's ceiling with a raised tenant limit;
// the default 35 MB limit is not enforced).
const MaxMessage = 150<<20 + 10<<20

// draft is a message created with POST messages, kept by the Graph server until it is sent or
// deleted. IMAP and POP3 do not see it (see docs/emulator.md).
type draft struct {
	id, mailbox string
	created     time.Time
	from        EmailAddress
	msg         MessageIn
	data        []byte // rendering, nil after a change
}

// session is an attachment upload session.
type session struct {
	token, draftID, mailbox string
	name, contentType       string
	size                    int
	expires                 time.Time
	data                    []byte
}

func randomID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) render(d *draft) []byte {
	if d.data == nil {
		b, err := BuildMIME(&d.msg, d.from, d.created, s.cfg.MessageIDHost, false)
		if err != nil {
			d.data = []byte("Subject: \r\n\r\n")
		} else {
			d.data = b.Data
		}
	}
	return d.data
}

func (s *Server) draftAsMessage(d *draft) mailstore.Message {
	return mailstore.Message{ID: d.id, Folder: mailstore.Drafts, FolderID: s.st.Ensure(d.mailbox).Folder(mailstore.Drafts).ID(), Received: d.created,
		Flags: []string{mailstore.FlagDraft, mailstore.FlagSeen}, Data: s.render(d)}
}

func (s *Server) draftMessages(box string) []mailstore.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mailstore.Message
	for _, d := range s.drafts {
		if strings.EqualFold(d.mailbox, box) {
			out = append(out, s.draftAsMessage(d))
		}
	}
	return out
}

func (s *Server) draftMessage(box, id string) (mailstore.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.drafts[id]; d != nil && strings.EqualFold(d.mailbox, box) {
		return s.draftAsMessage(d), true
	}
	return mailstore.Message{}, false
}

func (s *Server) deleteDraft(box, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.drafts[id]; d != nil && strings.EqualFold(d.mailbox, box) {
		delete(s.drafts, id)
		return true
	}
	return false
}

// sender is the From of a message the call sends: the message's from, else the mailbox.
func (s *Server) sender(c *call, from *Recipient) EmailAddress {
	if from != nil && from.EmailAddress.Address != "" {
		return from.EmailAddress
	}
	return EmailAddress{Name: s.displayName(c.mailbox), Address: c.mailbox}
}

var errSendAs = errf(403, "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.")

// validateAttachments checks attachments of a JSON request.
func validateAttachments(list []Attachment) *gerr {
	for _, a := range list {
		if a.ODataType != "" && !strings.EqualFold(a.ODataType, "#microsoft.graph.fileAttachment") {
			return errf(400, "ErrorInvalidRequest", "The emulator supports only #microsoft.graph.fileAttachment attachments.")
		}
		if strings.TrimSpace(a.Name) == "" {
			return errf(400, "ErrorInvalidRequest", "The attachment name is required.")
		}
	}
	return nil
}

// sendMail: POST sendMail, JSON {"message":..., "saveToSentItems":...} or a base64 MIME message
// (Content-Type: text/plain). 202 without a body.
func (s *Server) sendMail(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "text/plain" {
		return s.sendMIME(w, r, c)
	}
	var in SendMailIn
	if e := readJSON(r, &in); e != nil {
		return e
	}
	if in.Message == nil {
		return errf(400, "ErrorInvalidRequest", "The message parameter is required.")
	}
	save, err := in.save()
	if err != nil {
		return errBody("Cannot convert the literal to the expected type 'Edm.Boolean'.")
	}
	if e := validateAttachments(in.Message.Attachments); e != nil {
		return e
	}
	from := s.sender(c, in.Message.From)
	return s.submit(w, c, in.Message, from, save, "")
}

// submit builds, checks and delivers a message, then answers 202.
func (s *Server) submit(w http.ResponseWriter, c *call, m *MessageIn, from EmailAddress, save bool, draftID string) *gerr {
	if !exchange.CanSendAs(c.tok, c.mailbox, from.Address) {
		s.log.Info("graph: send-as refused", "mailbox", c.mailbox, "from", from.Address)
		return errSendAs
	}
	b, err := BuildMIME(m, from, s.now(), s.cfg.MessageIDHost, true)
	if err != nil {
		var re *recipientError
		if errors.As(err, &re) {
			return errf(400, "ErrorInvalidRecipients", re.Error())
		}
		return errBody(err.Error())
	}
	if len(b.Data) > MaxMessage {
		return errf(400, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.")
	}
	sent := ""
	if save {
		sent = c.mailbox
	}
	if draftID != "" && !s.deleteDraft(c.mailbox, draftID) {
		return errNotFound // sent meanwhile
	}
	s.meta.drop(draftID)
	delivered := exchange.Deliver(s.world(), s.st, s.cfg.Events, sent, b.Recipients, b.Data)
	s.log.Info("graph: message sent", "mailbox", c.mailbox, "recipients", len(b.Recipients), "delivered", len(delivered), "size", len(b.Data))
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// readMIME reads a base64 MIME request body (Content-Type: text/plain) and parses its header.
func readMIME(r *http.Request) ([]byte, *netmail.Message, *gerr) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if asMaxBytes(err, &mbe) {
			return nil, nil, errTooLarge
		}
		return nil, nil, errBody("The request body cannot be read.")
	}
	data, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, string(raw)))
	if err != nil || len(data) == 0 {
		return nil, nil, errf(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.") // observed
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, nil, errf(400, "ErrorMimeContentInvalid", "The MIME content is invalid.")
	}
	return data, msg, nil
}

// sendMIME is sendMail with a base64 MIME body.
func (s *Server) sendMIME(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	data, msg, e := readMIME(r)
	if e != nil {
		return e
	}
	var rcpts []string
	for _, k := range []string{"To", "Cc", "Bcc"} {
		if msg.Header.Get(k) == "" {
			continue
		}
		list, err := msg.Header.AddressList(k)
		if err != nil {
			return errf(400, "ErrorInvalidRecipients", "At least one recipient isn't valid., Recipient '"+clean(msg.Header.Get(k))+"' is not resolved. All recipients must be resolved before a message can be submitted.")
		}
		for _, a := range list {
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(rcpts) == 0 {
		return errf(400, "ErrorInvalidRecipients", (&recipientError{}).Error())
	}
	froms, _ := msg.Header.AddressList("From")
	if len(froms) == 0 {
		data = append([]byte("From: "+c.mailbox+"\r\n"), data...)
	}
	for _, f := range froms {
		if !exchange.CanSendAs(c.tok, c.mailbox, f.Address) {
			return errSendAs
		}
	}
	data = stripHeader(data, "Bcc")
	delivered := exchange.Deliver(s.world(), s.st, s.cfg.Events, c.mailbox, rcpts, data)
	s.log.Info("graph: MIME message sent", "mailbox", c.mailbox, "recipients", len(rcpts), "delivered", len(delivered), "size", len(data))
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// stripHeader removes a header field (and its continuation lines) from a message's header section.
func stripHeader(data []byte, name string) []byte {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	sep := "\r\n"
	if end < 0 {
		if end = bytes.Index(data, []byte("\n\n")); end < 0 {
			return data
		}
		sep = "\n"
	}
	lines := strings.Split(string(data[:end]), sep)
	var out []string
	skipping := false
	for _, l := range lines {
		if skipping && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) {
			continue
		}
		k, _, _ := strings.Cut(l, ":")
		skipping = strings.EqualFold(strings.TrimSpace(k), name) && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t")
		if !skipping {
			out = append(out, l)
		}
	}
	return append([]byte(strings.Join(out, sep)), data[end:]...)
}

// createDraft: POST messages (JSON) → 201 with the draft, which the Graph server keeps.
func (s *Server) createDraft(w http.ResponseWriter, r *http.Request, c *call, in MessageIn) *gerr {
	if e := validateAttachments(in.Attachments); e != nil {
		return e
	}
	d := &draft{id: randomID("AAMk", 24), mailbox: c.mailbox, created: s.now(), from: s.sender(c, in.From), msg: in}
	if _, err := BuildMIME(&d.msg, d.from, d.created, s.cfg.MessageIDHost, false); err != nil {
		var re *recipientError
		if errors.As(err, &re) {
			return errf(400, "ErrorInvalidRecipients", re.Error())
		}
		return errBody(err.Error())
	}
	s.mu.Lock()
	s.drafts[d.id] = d
	msg := s.draftAsMessage(d)
	s.mu.Unlock()
	s.writeEntity(w, r, c, 201, msg)
	return nil
}

// lockedDraft returns the call's draft with s.mu held, or an error (unlocked).
func (s *Server) lockedDraft(c *call, id string) (*draft, *gerr) {
	s.mu.Lock()
	if d := s.drafts[id]; d != nil && strings.EqualFold(d.mailbox, c.mailbox) {
		return d, nil
	}
	s.mu.Unlock()
	if _, err := s.st.Find(c.mailbox, id); err == nil {
		return nil, errf(400, "ErrorInvalidRequest", "The emulator changes only drafts created through Graph (POST messages).")
	}
	return nil, errNotFound
}

// addAttachment: POST messages/{id}/attachments (a fileAttachment with contentBytes) → 201.
func (s *Server) addAttachment(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	var in Attachment
	if e := readJSON(r, &in); e != nil {
		return e
	}
	if e := validateAttachments([]Attachment{in}); e != nil {
		return e
	}
	d, e := s.lockedDraft(c, c.segs[1])
	if e != nil {
		return e
	}
	in.Size = len(in.ContentBytes)
	in.ODataType = "#microsoft.graph.fileAttachment"
	d.msg.Attachments = append(d.msg.Attachments, in)
	d.data = nil
	in.ID = attachmentID(d.id, len(d.msg.Attachments)-1)
	s.mu.Unlock()
	in.ContentBytes = nil
	writeJSON(w, 201, in)
	return nil
}

// createUploadSession: POST messages/{id}/attachments/createUploadSession
// {"AttachmentItem":{"attachmentType":"file","name":...,"size":...}} → 201 with uploadUrl.
func (s *Server) createUploadSession(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	var in struct {
		AttachmentItem *struct {
			AttachmentType string `json:"attachmentType"`
			Name           string `json:"name"`
			Size           int64  `json:"size"`
			ContentType    string `json:"contentType"`
		} `json:"AttachmentItem"`
	}
	if e := readJSON(r, &in); e != nil {
		return e
	}
	it := in.AttachmentItem
	switch {
	case it == nil:
		return errf(400, "ErrorInvalidRequest", "The AttachmentItem parameter is required.")
	case it.AttachmentType != "" && !strings.EqualFold(it.AttachmentType, "file"):
		return errf(400, "ErrorInvalidRequest", "The emulator supports attachmentType file only.")
	case strings.TrimSpace(it.Name) == "":
		return errf(400, "ErrorInvalidRequest", "The attachment name is required.")
	case it.Size <= 0 || it.Size > MaxAttachment:
		return errf(400, "ErrorAttachmentSizeLimitExceeded", "The attachment size must be between 1 byte and 150 MB.")
	}
	d, e := s.lockedDraft(c, c.segs[1])
	if e != nil {
		return e
	}
	sess := &session{token: randomID("", 32), draftID: d.id, mailbox: d.mailbox, name: it.Name, contentType: it.ContentType,
		size: int(it.Size), expires: s.now().Add(uploadLifetime)}
	s.sessions[sess.token] = sess
	s.mu.Unlock()
	uploadURL := "https://" + r.Host + "/api/v2.0/Users('" + url.PathEscape(c.mailbox) + "')/Messages('" + d.id + "')/AttachmentSessions('" +
		randomID("AAMk", 12) + "')?authtoken=" + sess.token
	writeJSON(w, 201, map[string]any{
		"@odata.context":     s.context(r, "microsoft.graph.uploadSession"),
		"uploadUrl":          uploadURL,
		"expirationDateTime": sess.expires.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"nextExpectedRanges": []string{"0-"},
	})
	return nil
}

// parseContentRange reads "bytes start-end/total".
func parseContentRange(v string) (start, end, total int, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.Atoi(a)
	end, err2 = strconv.Atoi(b)
	total, err3 = strconv.Atoi(tot)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || total <= end {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

// upload serves an upload session's URL: PUT chunks without Authorization (the URL's authtoken is
// the credential), DELETE to cancel.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("authtoken")
	s.mu.Lock()
	sess := s.sessions[tok]
	if sess != nil && s.now().After(sess.expires) {
		delete(s.sessions, tok)
		sess = nil
	}
	s.mu.Unlock()
	if tok == "" || sess == nil {
		s.writeErr(w, r, errf(404, "ErrorItemNotFound", "The upload session was not found or has expired."))
		return
	}
	switch r.Method {
	case http.MethodDelete:
		s.mu.Lock()
		delete(s.sessions, tok)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPut:
	default:
		s.writeErr(w, r, errf(405, "ErrorInvalidRequest", "Upload sessions take PUT (a chunk) and DELETE (cancel)."))
		return
	}
	start, end, total, ok := parseContentRange(r.Header.Get("Content-Range"))
	if !ok {
		s.writeErr(w, r, errf(400, "ErrorInvalidRequest", "The Content-Range header is missing or malformed; send bytes {start}-{end}/{total}."))
		return
	}
	if end-start+1 > MaxUploadChunk {
		s.writeErr(w, r, errf(413, "ErrorRequestEntityTooLarge", "A chunk must be smaller than 4 MB."))
		return
	}
	chunk, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxUploadChunk))
	if err != nil {
		s.writeErr(w, r, errf(400, "ErrorInvalidRequest", "The chunk cannot be read."))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[tok] != sess {
		s.writeErr(w, r, errf(404, "ErrorItemNotFound", "The upload session was not found or has expired."))
		return
	}
	switch {
	case total != sess.size:
		s.writeErr(w, r, errf(400, "ErrorInvalidRequest", "The total in Content-Range ("+strconv.Itoa(total)+") is not the attachment's size ("+strconv.Itoa(sess.size)+")."))
		return
	case start != len(sess.data):
		s.writeErr(w, r, errf(416, "ErrorInvalidRange", "The chunk does not start at the next expected byte ("+strconv.Itoa(len(sess.data))+")."))
		return
	case len(chunk) != end-start+1:
		s.writeErr(w, r, errf(400, "ErrorInvalidRequest", "The chunk's length is not the one its Content-Range announces."))
		return
	}
	sess.data = append(sess.data, chunk...)
	if len(sess.data) < sess.size {
		writeJSON(w, 200, map[string]any{
			"@odata.context":     "https://" + r.Host + "/api/v2.0/$metadata#Users('" + url.PathEscape(sess.mailbox) + "')/Messages('" + sess.draftID + "')/AttachmentSessions/$entity",
			"ExpirationDateTime": sess.expires.UTC().Format("2006-01-02T15:04:05.0000000Z"),
			"nextExpectedRanges": []string{strconv.Itoa(len(sess.data))},
		})
		return
	}
	delete(s.sessions, tok)
	d := s.drafts[sess.draftID]
	if d == nil {
		s.writeErr(w, r, errNotFound)
		return
	}
	d.msg.Attachments = append(d.msg.Attachments, Attachment{ODataType: "#microsoft.graph.fileAttachment", Name: sess.name,
		ContentType: sess.contentType, ContentBytes: sess.data, Size: len(sess.data)})
	d.data = nil
	w.Header().Set("Location", "https://"+r.Host+"/api/v2.0/Users('"+url.PathEscape(sess.mailbox)+"')/Messages('"+d.id+"')/Attachments('"+
		attachmentID(d.id, len(d.msg.Attachments)-1)+"')")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// sendDraft: POST messages/{id}/send → 202; the draft leaves Drafts, a copy goes to Sent Items.
func (s *Server) sendDraft(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	d, e := s.lockedDraft(c, c.segs[1])
	if e != nil {
		return e
	}
	m, from, id := d.msg, d.from, d.id
	s.mu.Unlock()
	return s.submit(w, c, &m, from, true, id)
}

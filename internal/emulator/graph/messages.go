package graph

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// ---- messages ----------------------------------------------------------------------------------

// messagesIn lists a folder's messages ("" = every folder), the Graph drafts included.
func (s *Server) messagesIn(box, folder string) []mailstore.Message {
	var out []mailstore.Message
	m := s.st.Ensure(box)
	for _, name := range m.Folders() {
		if folder != "" && name != folder {
			continue
		}
		list, _ := s.st.List(box, name)
		out = append(out, list...)
	}
	if folder == "" || folder == mailstore.Drafts {
		out = append(out, s.draftMessages(box)...)
	}
	return out
}

// find returns a message of the mailbox (stored or a Graph draft).
func (s *Server) find(box, id string) (mailstore.Message, *gerr) {
	if msg, ok := s.draftMessage(box, id); ok {
		return msg, nil
	}
	msg, err := s.st.Find(box, id)
	if err != nil {
		if !strings.HasPrefix(id, "AAMk") {
			return msg, errMalformedID
		}
		return msg, errNotFound
	}
	return msg, nil
}

const timeFormat = "2006-01-02T15:04:05Z"

// messageJSON is a message as Graph shows it.
func (s *Server) messageJSON(msg mailstore.Message) map[string]any { return s.messageJSONOf(msg, true) }

// messageJSONOf is messageJSON, reading only the header when body is false: then the body's
// properties (bodyProperties) are empty, for a query that does not show them.
func (s *Server) messageJSONOf(msg mailstore.Message, body bool) map[string]any {
	data := msg.Data
	if !body {
		data = headerOnly(data)
	}
	p := parseMIME(data)
	meta := s.meta.get(msg.ID)
	recv := msg.Received.UTC().Format(timeFormat)
	sent, modified := recv, recv
	if !p.date.IsZero() {
		sent = p.date.UTC().Format(timeFormat)
	}
	if !meta.modified.IsZero() {
		modified = meta.modified.UTC().Format(timeFormat)
	}
	importance := p.importance
	if meta.importance != "" {
		importance = meta.importance
	}
	categories := meta.categories
	if categories == nil {
		categories = []string{}
	}
	key := changeKey(msg, meta)
	isDraft := msg.HasFlag(mailstore.FlagDraft)
	out := map[string]any{
		"@odata.etag":                `W/"` + key + `"`,
		"id":                         msg.ID,
		"createdDateTime":            recv,
		"lastModifiedDateTime":       modified,
		"changeKey":                  key,
		"categories":                 categories,
		"receivedDateTime":           recv,
		"sentDateTime":               sent,
		"hasAttachments":             len(p.attachments) > 0 && slices.ContainsFunc(p.attachments, func(a Attachment) bool { return !a.IsInline }),
		"internetMessageId":          p.messageID,
		"subject":                    p.subject,
		"bodyPreview":                preview(p.text),
		"importance":                 importance,
		"parentFolderId":             msg.FolderID,
		"conversationId":             "AAQk" + msg.ID[min(4, len(msg.ID)):],
		"isDeliveryReceiptRequested": false,
		"isReadReceiptRequested":     false,
		"isRead":                     msg.HasFlag(mailstore.FlagSeen),
		"isDraft":                    isDraft,
		"inferenceClassification":    "focused",
		"webLink":                    "https://outlook.office365.com/owa/?ItemID=" + url.QueryEscape(msg.ID) + "&exvsurl=1&viewmodel=ReadMessageItem",
		"body":                       p.body,
		"uniqueBody":                 p.body,
		"sender":                     p.sender,
		"from":                       p.from,
		"toRecipients":               p.to,
		"ccRecipients":               p.cc,
		"bccRecipients":              p.bcc,
		"replyTo":                    p.reply,
		"flag":                       map[string]string{"flagStatus": flagStatus(msg, meta)},
	}
	if isDraft {
		delete(out, "receivedDateTime")
		out["sentDateTime"] = nil
	}
	return out
}

// selectFields keeps the $select'ed properties (canonical names) and id and @odata.etag, as Graph does.
func selectFields(m map[string]any, sel []string) map[string]any {
	if len(sel) == 0 {
		return m
	}
	out := map[string]any{"id": m["id"]}
	if e, ok := m["@odata.etag"]; ok {
		out["@odata.etag"] = e
	}
	for _, p := range sel {
		if v, ok := m[p]; ok {
			out[p] = v
		}
	}
	return out
}

// PidTagMessageSize as a Graph extended property. Graph v1.0 has no size property; clients ask for
// MAPI's PidTagMessageSize (property tag 0x0E080003, a PT_LONG) with
// $expand=singleValueExtendedProperties($filter=id eq 'Integer 0x0E08') and each message carries
// "singleValueExtendedProperties":[{"id":"Integer 0xe08","value":"1234"}]. See Microsoft's docs:
// https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get,
// https://learn.microsoft.com/graph/api/resources/extended-properties-overview and
// https://learn.microsoft.com/office/client-developer/outlook/mapi/pidtagmessagesize-canonical-property.
// The emulator serves this one property: the size of the stored MIME bytes (IMAP's RFC822.SIZE).
const sizePropertyID = "Integer 0xe08" // as Graph writes it back

// normPropID normalizes an extended property id "Type 0xTAG" (type case-insensitive, tag hex) to
// a comparable form (lower case, tag without leading zeros); ok false if it is not of that form.
func normPropID(id string) (string, bool) {
	typ, tag, ok := strings.Cut(strings.TrimSpace(id), " ")
	tag = strings.TrimSpace(tag)
	if !ok || typ == "" || len(tag) < 3 || !strings.EqualFold(tag[:2], "0x") {
		return "", false
	}
	n, err := strconv.ParseUint(tag[2:], 16, 16)
	if err != nil {
		return "", false
	}
	return strings.ToLower(typ) + " 0x" + strconv.FormatUint(n, 16), true
}

var errExpand = errf(400, "BadRequest", "Parsing OData Select and Expand failed: the emulator supports singleValueExtendedProperties($filter=id eq '{type} 0x{tag}' [or id eq ...]) only.")

// parseExtended reads singleValueExtendedProperties($filter=id eq '...' or id eq '...').
func parseExtended(v string) ([]string, *gerr) {
	v = strings.TrimSpace(v)
	const nav = "singlevalueextendedproperties("
	if len(v) <= len(nav) || !strings.EqualFold(v[:len(nav)], nav) || !strings.HasSuffix(v, ")") {
		return nil, errExpand
	}
	inner := strings.TrimSpace(v[len(nav) : len(v)-1])
	filter, ok := strings.CutPrefix(inner, "$filter=")
	if !ok {
		return nil, errExpand
	}
	var ids []string
	for _, term := range splitFold(filter, " or ") {
		f := strings.Fields(term)
		if len(f) < 3 || !strings.EqualFold(f[0], "id") || !strings.EqualFold(f[1], "eq") {
			return nil, errExpand
		}
		lit := strings.TrimSpace(strings.Join(f[2:], " "))
		if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
			return nil, errExpand
		}
		id, ok := normPropID(lit[1 : len(lit)-1])
		if !ok {
			return nil, errExpand
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// splitFold splits s around sep, case-insensitively.
func splitFold(s, sep string) []string {
	var out []string
	for {
		i := strings.Index(strings.ToLower(s), sep)
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = s[i+len(sep):]
	}
}

// withExtended adds the asked-for extended properties the emulator knows (PidTagMessageSize) to a
// message's JSON; a message without any of them has no singleValueExtendedProperties, as in Graph.
func withExtended(m map[string]any, msg mailstore.Message, props []string) map[string]any {
	var list []map[string]string
	for _, id := range props {
		if strings.EqualFold(id, sizePropertyID) {
			list = append(list, map[string]string{"id": sizePropertyID, "value": strconv.Itoa(msg.Size())})
		}
	}
	if len(list) > 0 {
		m["singleValueExtendedProperties"] = list
	}
	return m
}

// listMessages: GET messages and GET mailFolders/{id}/messages, newest first unless $orderby says
// otherwise, paged with $skip in @odata.nextLink.
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	folder := ""
	if len(c.segs) == 3 {
		var e *gerr
		if folder, e = s.lookupFolder(c.mailbox, c.segs[1]); e != nil {
			return e
		}
	}
	q := r.URL.Query()
	lq, e := parseListQuery(q)
	if e != nil {
		return e
	}
	var rows []row
	for _, m := range s.messagesIn(c.mailbox, folder) {
		rows = append(rows, row{m, s.messageJSONOf(m, lq.needsBody())})
	}
	rows = lq.apply(rows)
	page := []map[string]any{}
	end := min(len(rows), lq.skip+lq.top)
	for i := lq.skip; i < end; i++ {
		page = append(page, lq.shape(rows[i].json, rows[i].msg))
	}
	out := map[string]any{"@odata.context": s.context(r, "users('"+url.PathEscape(c.mailbox)+"')/messages"+lq.selected()), "value": page}
	// Graph gives @odata.count for messages whether or not ConsistencyLevel: eventual is sent (that
	// header governs directory objects): microsoftgraph/microsoft-graph-docs#17875, #3848.
	if lq.count {
		out["@odata.count"] = len(rows)
	}
	if end < len(rows) && lq.top > 0 {
		out["@odata.nextLink"] = nextPage(r, q, end, lq.top)
	}
	writeJSON(w, 200, out)
	return nil
}

// internetHeaders is a message's internetMessageHeaders: its header fields in order, unfolded, with
// their raw values. Graph returns them only on $select
// (https://learn.microsoft.com/graph/api/resources/message, internetMessageHeaders), and not for
// messages the mailbox wrote — drafts and the copies in Sent Items have none ("internet headers just
// do not exist on the copy in Sent Items", microsoftgraph/microsoft-graph-docs#2716); there the
// property is absent, as Graph leaves it.
func internetHeaders(msg mailstore.Message) []map[string]string {
	if msg.HasFlag(mailstore.FlagDraft) || msg.Folder == mailstore.SentItems {
		return nil
	}
	out := []map[string]string{}
	for _, line := range strings.Split(string(headerOnly(msg.Data)), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "":
		case (line[0] == ' ' || line[0] == '\t') && len(out) > 0:
			out[len(out)-1]["value"] += " " + strings.TrimSpace(line)
		default:
			if name, value, ok := strings.Cut(line, ":"); ok {
				out = append(out, map[string]string{"name": name, "value": strings.TrimSpace(value)})
			}
		}
	}
	return out
}

// headerOnly is the message's header section with the empty line that ends it: what parseMIME
// needs for the properties that come from the header, without reading (and copying) a large body.
func headerOnly(data []byte) []byte {
	end := len(data)
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := bytes.Index(data, []byte(sep)); i >= 0 && i+len(sep) < end {
			end = i + len(sep)
		}
	}
	return data[:end]
}

// bodyProperties are the message properties read from the body; the others come from the header.
var bodyProperties = []string{"body", "uniqueBody", "bodyPreview", "hasAttachments"}

// needsBody says whether a query's $select (none: every property) or $filter reads the body.
func (lq *listQuery) needsBody() bool {
	if len(lq.sel) == 0 || slices.ContainsFunc(lq.filter, func(c clause) bool { return containsFold(bodyProperties, c.prop) }) {
		return true
	}
	return slices.ContainsFunc(lq.sel, func(p string) bool { return containsFold(bodyProperties, p) })
}

// nextPage is a list's @odata.nextLink: the request's query with $skip and $top of the next page.
func nextPage(r *http.Request, q url.Values, skip, top int) string {
	q.Set("$skip", strconv.Itoa(skip))
	q.Set("$top", strconv.Itoa(top))
	return "https://" + r.Host + r.URL.Path + "?" + q.Encode()
}

// selected is how Graph's @odata.context names a $select: "(subject,isRead)", or "" without one.
func (lq *listQuery) selected() string {
	if len(lq.sel) == 0 {
		return ""
	}
	return "(" + strings.Join(lq.sel, ",") + ")"
}

// shape applies $select and $expand to a message's JSON.
func (lq *listQuery) shape(m map[string]any, msg mailstore.Message) map[string]any {
	m = withExtended(selectFields(m, lq.sel), msg, lq.props)
	if slices.Contains(lq.sel, "internetMessageHeaders") {
		if h := internetHeaders(msg); h != nil {
			m["internetMessageHeaders"] = h
		}
	}
	if lq.attachments {
		m["attachments"] = attachmentsOut(msg, true)
	}
	return m
}

// getMessage: GET messages/{id} ($select and $expand apply; list options are refused).
func (s *Server) getMessage(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	msg, e := s.find(c.mailbox, c.segs[1])
	if e != nil {
		return e
	}
	q := r.URL.Query()
	for _, k := range []string{"$filter", "$orderby", "$top", "$skip", "$count"} {
		if q.Has(k) {
			return errf(400, "BadRequest", "The query option "+k+" applies to a collection, not to one message.")
		}
	}
	lq, e := parseListQuery(q)
	if e != nil {
		return e
	}
	m := lq.shape(s.messageJSONOf(msg, lq.needsBody()), msg)
	m["@odata.context"] = s.context(r, "users('"+url.PathEscape(c.mailbox)+"')/messages"+lq.selected()+"/$entity")
	w.Header().Set("ETag", fmt.Sprint(m["@odata.etag"]))
	writeJSON(w, 200, m)
	return nil
}

// getMIME: GET messages/{id}/$value — the message's bytes.
func (s *Server) getMIME(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	msg, e := s.find(c.mailbox, c.segs[1])
	if e != nil {
		return e
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(msg.Data)))
	w.WriteHeader(200)
	_, _ = w.Write(msg.Data)
	return nil
}

// deleteMessage: DELETE messages/{id}. Graph moves it to Recoverable Items, out of every folder a
// client sees; the emulator removes it.
func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	id := c.segs[1]
	if s.deleteDraft(c.mailbox, id) {
		s.meta.drop(id)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	msg, e := s.find(c.mailbox, id)
	if e != nil {
		return e
	}
	if e := s.checkVersion(r, msg, ""); e != nil {
		return e
	}
	if n, _ := s.st.Delete(c.mailbox, msg.Folder, msg.ID); n == 0 {
		return errNotFound
	}
	s.meta.drop(msg.ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// attachmentID is an attachment's id: the message's id and the attachment's index.
func attachmentID(msgID string, i int) string {
	return msgID + "_" + base64.RawURLEncoding.EncodeToString([]byte("att"+strconv.Itoa(i)))
}

func attachmentsOut(msg mailstore.Message, withBytes bool) []Attachment {
	p := parseMIME(msg.Data)
	out := []Attachment{}
	for i, a := range p.attachments {
		a.ODataType = "#microsoft.graph.fileAttachment"
		a.ID = attachmentID(msg.ID, i)
		a.LastModifiedDateTime = msg.Received.UTC().Format(timeFormat)
		if !withBytes {
			a.ContentBytes = nil
		}
		out = append(out, a)
	}
	return out
}

// listAttachments: GET messages/{id}/attachments (with contentBytes, as Graph returns them).
func (s *Server) listAttachments(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	msg, e := s.find(c.mailbox, c.segs[1])
	if e != nil {
		return e
	}
	writeJSON(w, 200, map[string]any{"@odata.context": s.context(r, "users('"+url.PathEscape(c.mailbox)+"')/messages('"+msg.ID+"')/attachments"),
		"value": attachmentsOut(msg, true)})
	return nil
}

// getAttachment: GET messages/{id}/attachments/{aid}.
func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request, c *call) *gerr {
	msg, e := s.find(c.mailbox, c.segs[1])
	if e != nil {
		return e
	}
	for _, a := range attachmentsOut(msg, true) {
		if a.ID == c.segs[3] {
			// Attachment marshals to an object; its fields and @odata.context make the entity.
			b, _ := json.Marshal(a)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			m["@odata.context"] = s.context(r, "users('"+url.PathEscape(c.mailbox)+"')/messages('"+msg.ID+"')/attachments/$entity")
			writeJSON(w, 200, m)
			return nil
		}
	}
	return errNotFound
}

func asMaxBytes(err error, target **http.MaxBytesError) bool { return errors.As(err, target) }

// jsonErrText describes a JSON decoding error without echoing the body.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "invalid JSON at offset " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "property " + te.Field + " cannot be a " + te.Value
	case strings.Contains(err.Error(), "base64"):
		return "an attachment's contentBytes is not base64"
	}
	return "invalid JSON"
}

package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Address is an email address with an optional display name.
type Address struct {
	Name    string
	Address string
}

func (a Address) String() string {
	if a.Name == "" {
		return a.Address
	}
	return fmt.Sprintf("%q <%s>", a.Name, a.Address)
}

// Attachment is a file attachment.
type Attachment struct {
	ID          string
	Name        string
	ContentType string
	Size        int
	IsInline    bool
	Content     []byte
	// Reader, if set, gives the content (Size bytes) instead of Content: SendMail uploads it
	// through an upload session a chunk at a time, never holding it whole (a file, say). Meant for
	// attachments of 3 MB or more, which Graph takes only that way.
	Reader io.ReaderAt
}

// size is the attachment's length: Size for one read from Reader.
func (a Attachment) size() int {
	if a.Reader != nil {
		return a.Size
	}
	return len(a.Content)
}

// large says whether the attachment goes through an upload session.
func (a Attachment) large() bool { return a.Reader != nil || len(a.Content) >= largeAttachment }

// Message is a mail message: what SendMail sends, what GetMessage and ListMessages read.
type Message struct {
	ID                string
	Subject           string
	From              *Address // sending: nil means the mailbox
	To, Cc, Bcc       []Address
	Body              string
	HTML              bool
	Attachments       []Attachment // sending; GetMessage leaves it empty (see Attachments)
	BodyPreview       string
	InternetMessageID string
	ParentFolderID    string
	Received          time.Time
	IsRead            bool
	IsDraft           bool
	HasAttachments    bool
	// Size is the message's size in bytes (PidTagMessageSize, see sizeExpand); 0 if Graph gave none.
	Size int64
	// DontSaveToSentItems: SendMail keeps no copy in Sent Items.
	DontSaveToSentItems bool
	// Flagged is flag.flagStatus == "flagged".
	Flagged bool
	// Headers are internetMessageHeaders, when asked for ($select) and Graph has them.
	Headers []Header
	// Sent is sentDateTime.
	Sent time.Time
	// ChangeKey changes with every change to the message.
	ChangeKey string
}

// Header is one of a message's internet headers, as Graph's internetMessageHeaders gives it.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Folder is a mail folder.
type Folder struct {
	ID               string `json:"id"`
	DisplayName      string `json:"displayName"`
	ParentFolderID   string `json:"parentFolderId"`
	ChildFolderCount int    `json:"childFolderCount"`
	UnreadItemCount  int    `json:"unreadItemCount"`
	TotalItemCount   int    `json:"totalItemCount"`
	// WellKnownName is, for AllFolders, the folder's well-known name (inbox, sentitems, drafts,
	// deleteditems, junkemail, archive), or "" for others.
	WellKnownName string `json:"-"`
}

// ---- wire types --------------------------------------------------------------------------------

type wireAddress struct {
	EmailAddress struct {
		Name    string `json:"name,omitempty"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

type wireBody struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

type wireAttachment struct {
	ODataType    string `json:"@odata.type,omitempty"`
	ID           string `json:"id,omitempty"`
	Name         string `json:"name"`
	ContentType  string `json:"contentType,omitempty"`
	Size         int    `json:"size,omitempty"`
	IsInline     bool   `json:"isInline"`
	ContentBytes []byte `json:"contentBytes,omitempty"`
}

type wireMessage struct {
	ID                string           `json:"id,omitempty"`
	Subject           string           `json:"subject"`
	Body              *wireBody        `json:"body,omitempty"`
	From              *wireAddress     `json:"from,omitempty"`
	ToRecipients      []wireAddress    `json:"toRecipients"`
	CcRecipients      []wireAddress    `json:"ccRecipients,omitempty"`
	BccRecipients     []wireAddress    `json:"bccRecipients,omitempty"`
	Attachments       []wireAttachment `json:"attachments,omitempty"`
	BodyPreview       string           `json:"bodyPreview,omitempty"`
	InternetMessageID string           `json:"internetMessageId,omitempty"`
	ParentFolderID    string           `json:"parentFolderId,omitempty"`
	ReceivedDateTime  string           `json:"receivedDateTime,omitempty"`
	IsRead            bool             `json:"isRead,omitempty"`
	IsDraft           bool             `json:"isDraft,omitempty"`
	HasAttachments    bool             `json:"hasAttachments,omitempty"`
	// Read only: decoded, never sent (wire leaves them empty).
	Flag                   *wireFlag `json:"flag,omitempty"`
	InternetMessageHeaders []Header  `json:"internetMessageHeaders,omitempty"`
	SentDateTime           string    `json:"sentDateTime,omitempty"`
	ChangeKey              string    `json:"changeKey,omitempty"`
	// Extended MAPI properties asked for with $expand (sizeExpand); never sent.
	SingleValueExtendedProperties []wireExtendedProperty `json:"singleValueExtendedProperties,omitempty"`
}

// wireFlag is a message's followupFlag; only its status is read.
type wireFlag struct {
	FlagStatus string `json:"flagStatus"`
}

// wireExtendedProperty is a singleValueLegacyExtendedProperty: {"id":"Integer 0xe08","value":"1234"}.
type wireExtendedProperty struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// Graph v1.0 has no message size property. It exposes MAPI's PidTagMessageSize (tag 0x0E08, type
// PT_LONG) as an extended property, asked for with $expand; each message then carries
// "singleValueExtendedProperties":[{"id":"Integer 0xe08","value":"1234"}] (Graph writes the tag in
// lower case without its leading zero). See Microsoft's docs:
// https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get (Get
// singleValueLegacyExtendedProperty, "$expand=singleValueExtendedProperties($filter=id eq '{id}')"),
// https://learn.microsoft.com/graph/api/resources/extended-properties-overview (id formats
// "{type} {proptag}") and
// https://learn.microsoft.com/office/client-developer/outlook/mapi/pidtagmessagesize-canonical-property
// (PidTagMessageSize, property tag 0x0E080003).
const (
	sizePropertyID = "Integer 0x0E08"
	sizeExpand     = "singleValueExtendedProperties($filter=id eq '" + sizePropertyID + "')"
)

// isSizeProperty says whether an extended property id names PidTagMessageSize ("Integer 0xe08",
// "Integer 0x0E08", any case).
func isSizeProperty(id string) bool {
	typ, tag, ok := strings.Cut(strings.TrimSpace(id), " ")
	if !ok || !strings.EqualFold(typ, "Integer") {
		return false
	}
	tag = strings.TrimSpace(tag)
	if len(tag) < 3 || !strings.EqualFold(tag[:2], "0x") {
		return false
	}
	n, err := strconv.ParseUint(tag[2:], 16, 32)
	return err == nil && n == 0x0E08
}

// size reads PidTagMessageSize from the expanded extended properties (0 if absent or unreadable).
func (w wireMessage) size() int64 {
	for _, p := range w.SingleValueExtendedProperties {
		if isSizeProperty(p.ID) {
			if n, err := strconv.ParseInt(strings.TrimSpace(p.Value), 10, 64); err == nil && n >= 0 {
				return n
			}
		}
	}
	return 0
}

func toWire(list []Address) []wireAddress {
	out := make([]wireAddress, 0, len(list))
	for _, a := range list {
		var w wireAddress
		w.EmailAddress.Name, w.EmailAddress.Address = a.Name, a.Address
		out = append(out, w)
	}
	return out
}

func fromWire(list []wireAddress) []Address {
	var out []Address
	for _, w := range list {
		out = append(out, Address{Name: w.EmailAddress.Name, Address: w.EmailAddress.Address})
	}
	return out
}

func attachmentToWire(a Attachment) wireAttachment {
	return wireAttachment{ODataType: "#microsoft.graph.fileAttachment", Name: a.Name, ContentType: a.ContentType,
		IsInline: a.IsInline, ContentBytes: a.Content}
}

func (m *Message) wire(withAttachments bool) wireMessage {
	w := wireMessage{Subject: m.Subject, ToRecipients: toWire(m.To), CcRecipients: toWire(m.Cc), BccRecipients: toWire(m.Bcc)}
	w.Body = &wireBody{ContentType: "text", Content: m.Body}
	if m.HTML {
		w.Body.ContentType = "html"
	}
	if m.From != nil {
		w.From = &toWire([]Address{*m.From})[0]
	}
	if withAttachments {
		for _, a := range m.Attachments {
			w.Attachments = append(w.Attachments, attachmentToWire(a))
		}
	}
	return w
}

func (w wireMessage) message() *Message {
	m := &Message{ID: w.ID, Subject: w.Subject, To: fromWire(w.ToRecipients), Cc: fromWire(w.CcRecipients),
		Bcc: fromWire(w.BccRecipients), BodyPreview: w.BodyPreview, InternetMessageID: w.InternetMessageID,
		ParentFolderID: w.ParentFolderID, IsRead: w.IsRead, IsDraft: w.IsDraft, HasAttachments: w.HasAttachments,
		Size: w.size(), Headers: w.InternetMessageHeaders, ChangeKey: w.ChangeKey,
		Flagged: w.Flag != nil && strings.EqualFold(w.Flag.FlagStatus, "flagged")}
	if w.Body != nil {
		m.Body, m.HTML = w.Body.Content, strings.EqualFold(w.Body.ContentType, "html")
	}
	if w.From != nil {
		m.From = &Address{Name: w.From.EmailAddress.Name, Address: w.From.EmailAddress.Address}
	}
	if t, err := time.Parse(time.RFC3339, w.ReceivedDateTime); err == nil {
		m.Received = t
	}
	if t, err := time.Parse(time.RFC3339, w.SentDateTime); err == nil {
		m.Sent = t
	}
	return m
}

// ---- sending -----------------------------------------------------------------------------------

// largeAttachment is the size from which an attachment goes through an upload session (Graph: 3 MB).
const largeAttachment = 3 << 20

// inlineBudget is the total size of attachments sendMail carries inline (its request must stay under
// Graph's 4 MB once base64-encoded).
const inlineBudget = 2<<20 + 512<<10

// uploadChunk is the size of an upload session's chunks (Graph: less than 4 MB each).
const uploadChunk = 3 << 20

// SendMail sends m from the mailbox. Small attachments travel inline in one sendMail request; when
// an attachment reaches 3 MB (or they all exceed what one request may carry) it creates a
// draft, adds the small attachments, uploads the large ones through upload sessions, and sends the
// draft. A draft left by a failure is deleted (best effort).
func (c *Client) SendMail(ctx context.Context, m *Message) error {
	total, large := 0, false
	for _, a := range m.Attachments {
		total += a.size()
		large = large || a.large()
	}
	if !large && total <= inlineBudget {
		w := m.wire(true)
		return c.call(ctx, "POST", "/sendMail", map[string]any{"message": w, "saveToSentItems": !m.DontSaveToSentItems}, nil)
	}
	if m.DontSaveToSentItems {
		return errors.New("graph: a message with large attachments is sent from a draft, which always leaves a copy in Sent Items")
	}
	var draft wireMessage
	w := m.wire(false)
	if err := c.call(ctx, "POST", "/messages", w, &draft); err != nil {
		return err
	}
	if draft.ID == "" {
		return errors.New("graph: the draft was created without an id")
	}
	if err := c.fillDraft(ctx, draft.ID, m.Attachments); err != nil {
		_ = c.Delete(context.WithoutCancel(ctx), draft.ID)
		return err
	}
	if err := c.call(ctx, "POST", "/messages/"+url.PathEscape(draft.ID)+"/send", nil, nil); err != nil {
		_ = c.Delete(context.WithoutCancel(ctx), draft.ID)
		return err
	}
	return nil
}

// maxMIMERequest is the largest sendMail request in MIME format: Graph's 4 MB request limit, which the
// base64 encoding of the message must fit (a message of about 3 MB).
const maxMIMERequest = 4 << 20

// SendMIME sends a ready-made RFC 5322 message (raw, CRLF line ends) from the mailbox through
// sendMail in MIME format: the message base64-encoded, Content-Type text/plain (Microsoft's
// user-sendmail documentation, "Example 4: Send a new message using MIME format"). Graph takes the
// recipients from the message's To, Cc and Bcc headers (and removes Bcc), the sender from From, and
// keeps a copy in Sent Items. It answers 400 ErrorMimeContentInvalidBase64String to a body that is
// not base64 and 400 ErrorInvalidRecipients to a message without recipients. Retries are SendMail's.
func (c *Client) SendMIME(ctx context.Context, raw []byte) error {
	if len(raw) == 0 {
		return errors.New("graph: the MIME message is empty")
	}
	body := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(body, raw)
	if len(body) > maxMIMERequest {
		return fmt.Errorf("graph: the message is %d bytes, too large for sendMail in MIME format (Graph takes at most %d bytes once base64-encoded, a message of about 3 MB)", len(raw), maxMIMERequest)
	}
	_, _, err := c.do(ctx, request{method: "POST", url: c.root + c.prefix + "/sendMail", body: body, contentType: "text/plain"})
	return err
}

func (c *Client) fillDraft(ctx context.Context, id string, atts []Attachment) error {
	var total, sent int64
	for _, a := range atts {
		if a.large() {
			total += int64(a.size())
		}
	}
	for _, a := range atts {
		if !a.large() {
			if err := c.call(ctx, "POST", "/messages/"+url.PathEscape(id)+"/attachments", attachmentToWire(a), nil); err != nil {
				return err
			}
			continue
		}
		if err := c.upload(ctx, id, a, &sent, total); err != nil {
			return err
		}
	}
	return nil
}

// upload sends one attachment through an upload session.
func (c *Client) upload(ctx context.Context, id string, a Attachment, sent *int64, total int64) error {
	item := map[string]any{"attachmentType": "file", "name": a.Name, "size": a.size()}
	if a.ContentType != "" {
		item["contentType"] = a.ContentType
	}
	if a.IsInline {
		item["isInline"] = true
	}
	var sess struct {
		UploadURL string `json:"uploadUrl"`
	}
	if err := c.call(ctx, "POST", "/messages/"+url.PathEscape(id)+"/attachments/createUploadSession",
		map[string]any{"AttachmentItem": item}, &sess); err != nil {
		return err
	}
	if sess.UploadURL == "" {
		return errors.New("graph: the upload session has no uploadUrl")
	}
	n := a.size()
	var buf []byte // a chunk read from a.Reader
	for start := 0; start < n; {
		end := min(start+uploadChunk, n)
		chunk, err := a.chunk(&buf, start, end)
		if err != nil {
			return fmt.Errorf("graph: reading %s to upload: %w", a.Name, err)
		}
		_, body, err := c.do(ctx, request{method: "PUT", url: sess.UploadURL, body: chunk, noAuth: true,
			contentType: "application/octet-stream",
			header:      map[string]string{"Content-Range": "bytes " + strconv.Itoa(start) + "-" + strconv.Itoa(end-1) + "/" + strconv.Itoa(n)}})
		if err != nil {
			return fmt.Errorf("graph: uploading %s: %w", a.Name, err)
		}
		*sent += int64(end - start)
		if c.Progress != nil {
			c.Progress(*sent, total)
		}
		if end == n {
			break
		}
		// The server says where to go on (nextExpectedRanges ["N-"] or ["N"]).
		var next struct {
			Next []string `json:"nextExpectedRanges"`
		}
		start = end
		if json.Unmarshal(body, &next) == nil && len(next.Next) > 0 {
			if v, err := strconv.Atoi(strings.SplitN(next.Next[0], "-", 2)[0]); err == nil && v >= 0 && v <= n {
				start = v
			}
		}
	}
	return nil
}

// maxWhole bounds the answers read whole that carry a message's content (GetMIME, Attachments): a
// 150 MB message, base64-encoded, with room to spare.
const maxWhole = 256 << 20

// chunk is the content from start to end, read into *buf when it comes from a.Reader.
func (a Attachment) chunk(buf *[]byte, start, end int) ([]byte, error) {
	if a.Reader == nil {
		return a.Content[start:end], nil
	}
	if cap(*buf) < end-start {
		*buf = make([]byte, uploadChunk)
	}
	b := (*buf)[:end-start]
	n, err := a.Reader.ReadAt(b, int64(start))
	if n == len(b) {
		return b, nil // a full read, even with io.EOF
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// ---- reading -----------------------------------------------------------------------------------

// ListOptions select messages.
type ListOptions struct {
	Top    int      // page size ($top); 0: Graph's default (10)
	Limit  int      // at most this many messages in all; 0: every one
	Unread bool     // only unread messages ($filter=isRead eq false)
	Select []string // properties to return ($select); nil: all
}

// folderPath is the path of a folder: a well-known name (inbox, archive, ...) or an id.
func folderPath(folder string) string {
	if folder == "" {
		return "/messages"
	}
	return "/mailFolders/" + url.PathEscape(folder) + "/messages"
}

// ListMessages lists a folder's messages (folder "" lists the whole mailbox), newest first,
// following @odata.nextLink. Each message's Size is asked for (PidTagMessageSize, see sizeExpand).
func (c *Client) ListMessages(ctx context.Context, folder string, opts ListOptions) ([]*Message, error) {
	q := url.Values{"$expand": {sizeExpand}}
	if opts.Top > 0 {
		q.Set("$top", strconv.Itoa(opts.Top))
	}
	if opts.Unread {
		q.Set("$filter", "isRead eq false")
	}
	if len(opts.Select) > 0 {
		q.Set("$select", strings.Join(opts.Select, ","))
	}
	next := c.root + c.prefix + folderPath(folder)
	if len(q) > 0 {
		next += "?" + encodeQuery(q)
	}
	var out []*Message
	pages := pager{root: c.root}
	for next != "" {
		_, body, err := c.do(ctx, request{method: "GET", url: next})
		if err != nil {
			return nil, err
		}
		var page struct {
			Value    []wireMessage `json:"value"`
			NextLink string        `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("graph: unreadable message list: %w", err)
		}
		for _, w := range page.Value {
			out = append(out, w.message())
			if opts.Limit > 0 && len(out) >= opts.Limit {
				return out, nil
			}
		}
		if page.NextLink != "" {
			if err := pages.follow(page.NextLink); err != nil {
				return nil, err
			}
		}
		next = page.NextLink
	}
	return out, nil
}

// encodeQuery encodes OData query options with spaces as %20 (url.Values.Encode writes +, which
// OData reads as a literal plus sign).
func encodeQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}

// sameOrigin says whether a next link is on the API's host (the token must not go elsewhere).
func sameOrigin(link, root string) bool {
	a, err1 := url.Parse(link)
	b, err2 := url.Parse(root)
	return err1 == nil && err2 == nil && a.Scheme == b.Scheme && strings.EqualFold(a.Host, b.Host)
}

// GetMessage reads one message, its Size included (PidTagMessageSize, see sizeExpand).
func (c *Client) GetMessage(ctx context.Context, id string) (*Message, error) {
	var w wireMessage
	q := url.Values{"$expand": {sizeExpand}}
	if err := c.call(ctx, "GET", "/messages/"+url.PathEscape(id)+"?"+encodeQuery(q), nil, &w); err != nil {
		return nil, err
	}
	return w.message(), nil
}

// GetMIME reads a message's MIME bytes ($value) whole, up to 256 MB (a 150 MB message with its
// attachments base64-encoded); OpenMIME streams them.
func (c *Client) GetMIME(ctx context.Context, id string) ([]byte, error) {
	_, body, err := c.do(ctx, request{method: "GET", url: c.mimeURL(id), limit: maxWhole})
	return body, err
}

// Attachments reads a message's attachments with their content (up to 256 MB in all).
func (c *Client) Attachments(ctx context.Context, id string) ([]Attachment, error) {
	var page struct {
		Value []wireAttachment `json:"value"`
	}
	_, body, err := c.do(ctx, request{method: "GET", url: c.root + c.prefix + "/messages/" + url.PathEscape(id) + "/attachments", limit: maxWhole})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("graph: unreadable attachment list: %w", err)
	}
	var out []Attachment
	for _, w := range page.Value {
		out = append(out, Attachment{ID: w.ID, Name: w.Name, ContentType: w.ContentType, Size: w.Size, IsInline: w.IsInline, Content: w.ContentBytes})
	}
	return out, nil
}

// Move moves a message to a folder (a well-known name such as archive, or an id) and returns it.
func (c *Client) Move(ctx context.Context, id, destFolder string) (*Message, error) {
	return c.relocate(ctx, id, "move", destFolder)
}

// Delete deletes a message.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/messages/"+url.PathEscape(id), nil, nil)
}

// MarkRead sets a message's read state.
func (c *Client) MarkRead(ctx context.Context, id string, read bool) error {
	return c.call(ctx, "PATCH", "/messages/"+url.PathEscape(id), map[string]bool{"isRead": read}, nil)
}

// Folders lists the mailbox's top-level folders.
func (c *Client) Folders(ctx context.Context) ([]Folder, error) {
	var page struct {
		Value []Folder `json:"value"`
	}
	if err := c.call(ctx, "GET", "/mailFolders", nil, &page); err != nil {
		return nil, err
	}
	return page.Value, nil
}

// CreateFolder creates a top-level folder.
func (c *Client) CreateFolder(ctx context.Context, name string) (*Folder, error) {
	var f Folder
	if err := c.call(ctx, "POST", "/mailFolders", map[string]string{"displayName": name}, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

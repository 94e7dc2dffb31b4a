package mail

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/imap"
)

// IMAPReader reads a mailbox over an authenticated go-imap v2 client (imap.Dial).
//
// Its ids are "UIDVALIDITY.UID.FOLDER" with the folder in unpadded base64url: stable as long as the
// folder's UIDVALIDITY is, self-contained (Move and Delete need no folder), and safe in a shell.
// A bare UID is accepted too, in the folder Get is given (or the inbox), without the UIDVALIDITY check.
// Get fetches BODY.PEEK[]: reading a message does not mark it read. Delete sets \Deleted and expunges
// that one message (UID EXPUNGE): it is gone, not moved to Deleted Items.
type IMAPReader struct {
	C        *imapclient.Client // authenticated (imap.Dial)
	Progress Progress           // for Get; nil: none
}

type imapID struct {
	validity uint32 // 0: not checked
	uid      goimap.UID
	folder   string
}

func (id imapID) String() string {
	return fmt.Sprintf("%d.%d.%s", id.validity, id.uid, base64.RawURLEncoding.EncodeToString([]byte(id.folder)))
}

// CheckIMAPID reports, without connecting, whether id is in the form IMAPReader's Get, Move and
// Delete take: UIDVALIDITY.UID.FOLDER as its List gives it, or a bare UID. A malformed id is an error
// matching ErrBadID that names it; a well-formed one may still name no message.
func CheckIMAPID(id string) error {
	_, err := parseIMAPID(id, "")
	return err
}

func parseIMAPID(s, folder string) (imapID, error) {
	bad := &badIDError{fmt.Sprintf("%q is not an IMAP message id (UIDVALIDITY.UID.FOLDER as List gives it, or a bare UID)", s)}
	parts := strings.Split(s, ".")
	switch len(parts) {
	case 1:
		uid, err := strconv.ParseUint(s, 10, 32)
		if err != nil || uid == 0 {
			return imapID{}, bad
		}
		return imapID{uid: goimap.UID(uid), folder: folderOrInbox(folder)}, nil
	case 3:
		v, err1 := strconv.ParseUint(parts[0], 10, 32)
		uid, err2 := strconv.ParseUint(parts[1], 10, 32)
		f, err3 := base64.RawURLEncoding.DecodeString(parts[2])
		if err1 != nil || err2 != nil || err3 != nil || uid == 0 || len(f) == 0 {
			return imapID{}, bad
		}
		return imapID{validity: uint32(v), uid: goimap.UID(uid), folder: string(f)}, nil
	}
	return imapID{}, bad
}

func folderOrInbox(f string) string {
	if f == "" {
		return "INBOX"
	}
	return f
}

// imapErr wraps a refusal with the server's words; an error without them (the connection) as it is.
func imapErr(what string, err error) error {
	if e := imap.NewError(what, err); e.Server != "" {
		return e
	}
	return fmt.Errorf("IMAP %s: %w", what, err)
}

// Folders lists every folder with its message and unread counts (STATUS; 0 where the server will not say).
func (r *IMAPReader) Folders(ctx context.Context) ([]Folder, error) {
	list, err := r.C.List("", "*", nil).Collect()
	if err != nil {
		return nil, imapErr("LIST", err)
	}
	var out []Folder
	for _, l := range list {
		if slices.Contains(l.Attrs, goimap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, goimap.MailboxAttrNonExistent) {
			continue
		}
		f := Folder{Name: l.Mailbox, Role: role(l.Mailbox, l.Attrs)}
		if st, err := r.C.Status(l.Mailbox, &goimap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait(); err == nil {
			if st.NumMessages != nil {
				f.Total = int(*st.NumMessages)
			}
			if st.NumUnseen != nil {
				f.Unread = int(*st.NumUnseen)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func role(name string, attrs []goimap.MailboxAttr) string {
	if strings.EqualFold(name, "INBOX") {
		return "inbox"
	}
	for _, a := range attrs {
		switch a {
		case goimap.MailboxAttrSent:
			return "sent"
		case goimap.MailboxAttrDrafts:
			return "drafts"
		case goimap.MailboxAttrTrash:
			return "trash"
		case goimap.MailboxAttrJunk:
			return "junk"
		case goimap.MailboxAttrArchive:
			return "archive"
		}
	}
	return ""
}

// open selects a folder (read-only unless write) and returns its UIDVALIDITY.
func (r *IMAPReader) open(folder string, write bool) (uint32, error) {
	sel, err := r.C.Select(folder, &goimap.SelectOptions{ReadOnly: !write}).Wait()
	if err != nil {
		return 0, imapErr("SELECT "+folder, err)
	}
	return sel.UIDValidity, nil
}

// List returns the newest messages of a folder, newest (highest UID) first.
func (r *IMAPReader) List(ctx context.Context, folder string, limit int, unseen bool) ([]Summary, error) {
	folder = folderOrInbox(folder)
	validity, err := r.open(folder, false)
	if err != nil {
		return nil, err
	}
	crit := &goimap.SearchCriteria{}
	if unseen {
		crit.NotFlag = []goimap.Flag{goimap.FlagSeen}
	}
	sd, err := r.C.UIDSearch(crit, nil).Wait()
	if err != nil {
		return nil, imapErr("UID SEARCH", err)
	}
	uids := sd.AllUIDs()
	slices.Sort(uids)
	if limit > 0 && len(uids) > limit {
		uids = uids[len(uids)-limit:]
	}
	if len(uids) == 0 {
		return []Summary{}, nil
	}
	msgs, err := r.C.Fetch(goimap.UIDSetNum(uids...), &goimap.FetchOptions{
		UID: true, Envelope: true, Flags: true, RFC822Size: true, InternalDate: true,
		BodyStructure: &goimap.FetchItemBodyStructure{Extended: true},
	}).Collect()
	if err != nil {
		return nil, imapErr("FETCH", err)
	}
	out := make([]Summary, 0, len(msgs))
	for _, m := range msgs {
		s := Summary{
			ID:     imapID{validity: validity, uid: m.UID, folder: folder}.String(),
			Folder: folder, Size: m.RFC822Size, Date: m.InternalDate,
			Unread: !slices.Contains(m.Flags, goimap.FlagSeen),
		}
		if e := m.Envelope; e != nil {
			s.Subject = e.Subject
			if !e.Date.IsZero() {
				s.Date = e.Date
			}
			if len(e.From) > 0 {
				s.From = imapAddr(e.From[0])
			}
			for _, a := range e.To {
				s.To = append(s.To, imapAddr(a))
			}
		}
		if m.BodyStructure != nil {
			m.BodyStructure.Walk(func(_ []int, p goimap.BodyStructure) bool {
				if d := p.Disposition(); d != nil && strings.EqualFold(d.Value, "attachment") {
					s.HasAttachments = true
				}
				if sp, ok := p.(*goimap.BodyStructureSinglePart); ok && sp.Filename() != "" {
					s.HasAttachments = true
				}
				return !s.HasAttachments
			})
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Summary) int { return strings.Compare(uidOf(b.ID), uidOf(a.ID)) })
	return out, nil
}

// uidOf sorts ids by UID: zero-padded so that strings compare as numbers.
func uidOf(id string) string {
	p, _ := parseIMAPID(id, "")
	return fmt.Sprintf("%010d", p.uid)
}

func imapAddr(a goimap.Address) string {
	addr := a.Addr()
	if a.Name == "" {
		return addr
	}
	return a.Name + " <" + addr + ">"
}

// resolve selects the id's folder and checks its UIDVALIDITY.
func (r *IMAPReader) resolve(s, folder string, write bool) (imapID, error) {
	id, err := parseIMAPID(s, folder)
	if err != nil {
		return id, err
	}
	v, err := r.open(id.folder, write)
	if err != nil {
		return id, err
	}
	if id.validity != 0 && v != id.validity {
		return id, fmt.Errorf("%w: message id %s is from an earlier state of folder %q (its UIDVALIDITY changed); list it again", ErrNotFound, s, id.folder)
	}
	return id, nil
}

// Get fetches a whole message without marking it read.
func (r *IMAPReader) Get(ctx context.Context, s, folder string) (*Message, error) {
	id, err := r.resolve(s, folder, false)
	if err != nil {
		return nil, err
	}
	cmd := r.C.Fetch(goimap.UIDSetNum(id.uid), &goimap.FetchOptions{
		UID: true, Flags: true, RFC822Size: true, InternalDate: true,
		BodySection: []*goimap.FetchItemBodySection{{Peek: true}},
	})
	defer cmd.Close()
	var (
		raw    []byte
		found  bool
		size   int64
		unread = true
		date   imapclient.FetchItemDataInternalDate
	)
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		for item := m.Next(); item != nil; item = m.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				found = found || it.UID == id.uid
			case imapclient.FetchItemDataRFC822Size:
				size = it.Size
			case imapclient.FetchItemDataFlags:
				unread = !slices.Contains(it.Flags, goimap.FlagSeen)
			case imapclient.FetchItemDataInternalDate:
				date.Time = it.Time
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				var buf bytes.Buffer
				total := size
				if total == 0 {
					total = it.Literal.Size()
				}
				if _, err := io.Copy(&buf, &progressReader{r: it.Literal, total: total, fn: r.Progress}); err != nil {
					return nil, imapErr("FETCH", err)
				}
				raw = buf.Bytes()
				found = true
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, imapErr("UID FETCH", err)
	}
	if !found || raw == nil {
		return nil, fmt.Errorf("%w: %s in folder %q", ErrNotFound, s, id.folder)
	}
	msg, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	msg.ID, msg.Folder, msg.Unread = id.String(), id.folder, unread
	if id.validity == 0 {
		msg.ID = strconv.FormatUint(uint64(id.uid), 10)
	}
	if msg.Date.IsZero() {
		msg.Date = date.Time
	}
	return msg, nil
}

// Move moves a message with MOVE (RFC 6851) and returns its id in the destination when the server
// says its new UID (UIDPLUS).
func (r *IMAPReader) Move(ctx context.Context, s, folder string) (string, error) {
	id, err := r.resolve(s, "", true)
	if err != nil {
		return "", err
	}
	if err := r.exists(id); err != nil {
		return "", err
	}
	md, err := r.C.Move(goimap.UIDSetNum(id.uid), folder).Wait()
	if err != nil {
		return "", imapErr("UID MOVE to "+folder, err)
	}
	if md != nil && md.DestUIDs != nil {
		if set, ok := md.DestUIDs.(goimap.UIDSet); ok {
			if uids, ok := set.Nums(); ok && len(uids) == 1 {
				return imapID{validity: md.UIDValidity, uid: uids[0], folder: folder}.String(), nil
			}
		}
	}
	return "", nil
}

// exists checks that the UID is in the selected folder (UID commands on a missing UID do nothing, silently).
func (r *IMAPReader) exists(id imapID) error {
	sd, err := r.C.UIDSearch(&goimap.SearchCriteria{UID: []goimap.UIDSet{goimap.UIDSetNum(id.uid)}}, nil).Wait()
	if err != nil {
		return imapErr("UID SEARCH", err)
	}
	if len(sd.AllUIDs()) == 0 {
		return fmt.Errorf("%w: UID %d in folder %q", ErrNotFound, id.uid, id.folder)
	}
	return nil
}

// Delete sets \Deleted on the message and expunges it alone (UID EXPUNGE, RFC 4315).
func (r *IMAPReader) Delete(ctx context.Context, s string) error {
	id, err := r.resolve(s, "", true)
	if err != nil {
		return err
	}
	if err := r.exists(id); err != nil {
		return err
	}
	set := goimap.UIDSetNum(id.uid)
	if err := r.C.Store(set, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
		return imapErr("UID STORE", err)
	}
	if err := r.C.UIDExpunge(set).Close(); err != nil {
		return imapErr("UID EXPUNGE", err)
	}
	return nil
}

// Close logs out.
func (r *IMAPReader) Close() error {
	err := r.C.Logout().Wait()
	r.C.Close()
	return err
}

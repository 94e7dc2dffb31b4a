package imapgw

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/graph"
)

// delim separates the levels of a folder path, as gateway.FolderInfo names folders.
const delim = '/'

// session is one connection's IMAP session over a gateway.Mailbox.
type session struct {
	srv  *Server
	conn *imapserver.Conn
	h    *gateway.Handoff

	// ctx ends when the session closes, so that a Graph call in flight (or an IDLE's wait) stops.
	ctx    context.Context
	cancel context.CancelFunc
	closed sync.Once

	mbox *gateway.Mailbox

	// mu guards sel: IDLE applies updates from its own goroutine, and Close may come while it runs.
	mu  sync.Mutex
	sel *selection
}

var (
	_ imapserver.Session            = (*session)(nil)
	_ imapserver.SessionNamespace   = (*session)(nil)
	_ imapserver.SessionMove        = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func newSession(srv *Server, c *imapserver.Conn, h *gateway.Handoff) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{srv: srv, conn: c, h: h, ctx: ctx, cancel: cancel}
}

func (s *session) Close() error {
	s.closed.Do(func() {
		s.cancel()
		if s.h.Closed != nil {
			s.h.Closed()
		}
	})
	return nil
}

func (s *session) Login(username, password string) error {
	ctx, cancel := s.op()
	defer cancel()
	if s.mbox != nil {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Already logged in."}
	}
	m, err := s.h.Login(ctx, username, password)
	if err != nil {
		le := gateway.AsLoginError(err)
		code := imap.ResponseCodeAuthenticationFailed
		if le.Temporary {
			code = imap.ResponseCodeUnavailable
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: le.Msg}
	}
	s.mbox = m
	return nil
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}}, nil
}

// AppendLimit is what APPEND can store: Graph creates a message from MIME only up to
// graph.MaxCreateMIME, and the gateway takes no more than MaxMessage. imapserver refuses a larger
// literal before the program sends it.
func (s *session) AppendLimit() uint32 {
	return uint32(min(s.srv.o.Gateway.MaxMessage, graph.MaxCreateMIME, 1<<32-1))
}

// Subscriptions: Graph keeps none, so every folder is subscribed and these change nothing.
func (s *session) Subscribe(mailbox string) error   { return nil }
func (s *session) Unsubscribe(mailbox string) error { return nil }

// specialUse maps gateway.FolderInfo.SpecialUse to LIST's attribute.
var specialUse = map[string]imap.MailboxAttr{
	`\Sent`:    imap.MailboxAttrSent,
	`\Drafts`:  imap.MailboxAttrDrafts,
	`\Trash`:   imap.MailboxAttrTrash,
	`\Junk`:    imap.MailboxAttrJunk,
	`\Archive`: imap.MailboxAttrArchive,
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	ctx, cancel := s.op()
	defer cancel()
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	folders, err := s.mbox.Folders(ctx)
	if err != nil {
		return s.fail("list the folders", err)
	}
	sort.SliceStable(folders, func(i, j int) bool { // INBOX first, then by name
		return folders[i].Name == "INBOX" || folders[j].Name != "INBOX" && folders[i].Name < folders[j].Name
	})
	for _, f := range folders {
		if !matchAny(f.Name, ref, patterns) {
			continue
		}
		if options != nil && options.SelectSpecialUse && f.SpecialUse == "" {
			continue
		}
		d := &imap.ListData{Mailbox: f.Name, Delim: delim}
		if f.HasChildren {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasChildren)
		} else {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if a, ok := specialUse[f.SpecialUse]; ok {
			d.Attrs = append(d.Attrs, a)
		}
		if options != nil && options.SelectSubscribed || options != nil && options.ReturnSubscribed {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
		}
		if err := w.WriteList(d); err != nil {
			return err
		}
	}
	return nil
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if matchList(name, ref, p) {
			return true
		}
		// INBOX matches in any case, and so do the names under it (as SELECT inbox/x finds INBOX/x).
		if strings.EqualFold(name, "INBOX") && matchList(name, ref, strings.ToUpper(p)) {
			return true
		}
		if matchList(name, inboxUpper(ref), inboxUpper(p)) {
			return true
		}
	}
	return false
}

// inboxUpper spells a reference's or pattern's leading "inbox/", in any case, as "INBOX/".
func inboxUpper(s string) string {
	const inbox = "INBOX"
	if len(s) > len(inbox) && strings.EqualFold(s[:len(inbox)], inbox) && s[len(inbox)] == delim {
		return inbox + s[len(inbox):]
	}
	return s
}

// matchList is imapserver.MatchList (RFC 3501 6.3.8: the reference, then the pattern, in which "*"
// matches anything and "%" anything but the delimiter) without its backtracking, which is
// exponential in the pattern's wildcards: a program's LIST "" "a*a*a*a*a*a*a*a*a*a*a*a*b" against
// a long folder name would hold a core for hours.
func matchList(name, ref, pattern string) bool {
	d := string(delim)
	if strings.HasPrefix(pattern, d) {
		ref, pattern = "", pattern[len(d):]
	}
	if ref != "" {
		if !strings.HasSuffix(ref, d) {
			ref += d
		}
		var ok bool
		if name, ok = strings.CutPrefix(name, ref); !ok {
			return false
		}
	}
	return matchPattern(name, pattern)
}

// matchPattern matches name against a LIST pattern in O(len(name)·len(pattern)) time: m[j] says
// whether pattern[:j] matches the part of name read so far.
func matchPattern(name, pattern string) bool {
	m := make([]bool, len(pattern)+1)
	next := make([]bool, len(pattern)+1)
	m[0] = true
	for j := 1; j <= len(pattern); j++ {
		m[j] = m[j-1] && (pattern[j-1] == '*' || pattern[j-1] == '%')
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		next[0] = false
		for j := 1; j <= len(pattern); j++ {
			switch p := pattern[j-1]; p {
			case '*':
				next[j] = next[j-1] || m[j]
			case '%':
				next[j] = next[j-1] || m[j] && c != delim
			default:
				next[j] = m[j-1] && c == p
			}
		}
		m, next = next, m
	}
	return m[len(pattern)]
}

func (s *session) Create(mailbox string, options *imap.CreateOptions) error {
	ctx, cancel := s.op()
	defer cancel()
	name := strings.TrimSuffix(mailbox, string(delim))
	if strings.EqualFold(name, "INBOX") {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "INBOX always exists."}
	}
	if err := s.mbox.CreateFolder(ctx, name); err != nil {
		return s.fail("create the folder", err)
	}
	return nil
}

func (s *session) Delete(mailbox string) error {
	ctx, cancel := s.op()
	defer cancel()
	if strings.EqualFold(mailbox, "INBOX") {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "INBOX cannot be deleted."}
	}
	if err := s.mbox.DeleteFolder(ctx, mailbox); err != nil {
		return s.fail("delete the folder", err)
	}
	return nil
}

func (s *session) Rename(mailbox, newName string, options *imap.RenameOptions) error {
	ctx, cancel := s.op()
	defer cancel()
	if strings.EqualFold(mailbox, "INBOX") {
		// RFC 3501 6.3.5 moves INBOX's messages to the new folder; Graph cannot rename the Inbox.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "INBOX cannot be renamed through the gateway."}
	}
	if err := s.mbox.RenameFolder(ctx, mailbox, strings.TrimSuffix(newName, string(delim))); err != nil {
		return s.fail("rename the folder", err)
	}
	return nil
}

// listFolder opens a folder and its listing, no older than the poll interval (SELECT, EXAMINE,
// STATUS); its error is the program's answer.
func (s *session) listFolder(ctx context.Context, mailbox string) (*gateway.Folder, *gateway.View, error) {
	f, err := s.mbox.Folder(ctx, mailbox)
	if err != nil {
		return nil, nil, s.fail("open the folder", err)
	}
	v, err := f.Sync(ctx, s.srv.o.Gateway.PollInterval)
	if err != nil {
		return nil, nil, s.fail("list the folder", err)
	}
	return f, v, nil
}

func (s *session) Status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	ctx, cancel := s.op()
	defer cancel()
	f, v, err := s.listFolder(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	d := &imap.StatusData{Mailbox: f.Info.Name}
	n := uint32(len(v.Messages))
	if options.NumMessages {
		d.NumMessages = &n
	}
	if options.UIDNext {
		d.UIDNext = imap.UID(v.UIDNext)
	}
	if options.UIDValidity {
		d.UIDValidity = v.UIDValidity
	}
	if options.NumUnseen {
		var u uint32
		for _, m := range v.Messages {
			if !m.IsRead {
				u++
			}
		}
		d.NumUnseen = &u
	}
	if options.NumRecent {
		var zero uint32
		d.NumRecent = &zero
	}
	return d, nil
}

// fail turns a gateway or Graph error into the NO the program is shown, and logs it. The texts
// name what failed and what to do; they never carry message content.
func (s *session) fail(what string, err error) error {
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		return ie
	case errors.Is(err, gateway.ErrNoFolder):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such folder."}
	case errors.Is(err, gateway.ErrHasChildren):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeHasChildren,
			Text: "The folder has child folders; delete them first."}
	case errors.Is(err, gateway.ErrFolderExists):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "A folder of that name exists."}
	case errors.Is(err, gateway.ErrTooBig):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "The message is larger than the gateway accepts."}
	case errors.Is(err, context.Canceled) && s.ctx.Err() != nil:
		return &imap.Error{Type: imap.StatusResponseTypeBye, Text: "The session is closing."}
	}
	s.srv.o.Log.Warn("imap gateway: could not "+what, "mailbox", s.mbox.Address, "err", err)
	var ge *graph.Error
	if errors.As(err, &ge) {
		switch {
		case ge.Status == 429 || ge.Status >= 500:
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
				Text: "Microsoft Graph is busy or failing; try again later."}
		case ge.Status == 403 || ge.Status == 401:
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm,
				Text: "Microsoft Graph refused the request; the proxy's log says why."}
		case ge.Status == 404:
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
				Text: "Microsoft Graph no longer has it; NOOP shows the folder as it is now."}
		}
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug,
		Text: "Could not " + what + " through Microsoft Graph; the proxy's log says why."}
}

func isNoFolder(err error) bool { return errors.Is(err, gateway.ErrNoFolder) }

// Append stores the message through Folder.Append; imapserver has already refused one larger than
// AppendLimit (MaxMessage).
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	ctx, cancel := s.op()
	defer cancel()
	f, err := s.mbox.Folder(ctx, mailbox)
	if err != nil {
		if isNoFolder(err) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such folder."}
		}
		return nil, s.fail("open the folder", err)
	}
	var read, flagged bool
	for _, fl := range options.Flags {
		switch canonFlag(fl) {
		case string(imap.FlagSeen):
			read = true
		case string(imap.FlagFlagged):
			flagged = true
		}
	}
	uid, err := f.Append(ctx, r, r.Size(), read, flagged, options.Time)
	if err != nil {
		return nil, s.fail("store the message", err)
	}
	validity, err := f.UIDValidity(ctx)
	if err != nil {
		return nil, s.fail("read the folder's UIDVALIDITY", err)
	}
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: validity}, nil
}

// opTimeout bounds one command's Graph calls: long enough to wait out Graph's throttling
// (Retry-After) and to move a 150 MB message, short enough that a stuck call ends.
const opTimeout = 5 * time.Minute

// op is the context of one command's Graph calls; it also ends when the session does.
func (s *session) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, opTimeout)
}

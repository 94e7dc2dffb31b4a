package mail

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailoauth/mailoauth/pop3"
)

// POPReader reads the inbox over an authenticated POP3 session (pop3.Dial). Its ids are the server's
// UIDLs. POP3 knows one folder and no read state: other folders, unseen and Move are ErrNotSupported.
// Listing reads each listed message's header with TOP where the server offers it, else downloads the
// message, so keep the limit small. Delete marks the message; Close (QUIT) commits it, as POP3 does.
type POPReader struct {
	C        *pop3.Client // authenticated (pop3.Dial)
	Progress Progress     // for Get; POP3 has no streaming, so it is told once the message is in
	list     []pop3.Message
}

func inboxOnly(folder string) error {
	if folder != "" && !strings.EqualFold(folder, "INBOX") {
		return fmt.Errorf("folder %q: POP3 reads only the inbox: %w", folder, ErrNotSupported)
	}
	return nil
}

func (r *POPReader) messages() ([]pop3.Message, error) {
	if r.list == nil {
		l, err := r.C.List()
		if err != nil {
			return nil, err
		}
		r.list = l
		if r.list == nil {
			r.list = []pop3.Message{}
		}
	}
	return r.list, nil
}

func (r *POPReader) find(id string) (pop3.Message, error) {
	msgs, err := r.messages()
	if err != nil {
		return pop3.Message{}, err
	}
	for _, m := range msgs {
		if m.UID == id && id != "" {
			return m, nil
		}
	}
	return pop3.Message{}, fmt.Errorf("%w: no message with UIDL %q in the POP3 inbox", ErrNotFound, id)
}

// Folders is the inbox alone.
func (r *POPReader) Folders(ctx context.Context) ([]Folder, error) {
	n, _, err := r.C.Stat()
	if err != nil {
		return nil, err
	}
	return []Folder{{Name: "INBOX", Role: "inbox", Total: n}}, nil
}

// List returns the newest messages of the inbox (the last in POP3's order), newest first.
func (r *POPReader) List(ctx context.Context, folder string, limit int, unseen bool) ([]Summary, error) {
	if err := inboxOnly(folder); err != nil {
		return nil, err
	}
	if unseen {
		return nil, fmt.Errorf("POP3 keeps no read state, so it cannot list unread messages only: %w", ErrNotSupported)
	}
	msgs, err := r.messages()
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for i := len(msgs) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		m := msgs[i]
		if m.UID == "" {
			return nil, fmt.Errorf("the POP3 server has no UIDL, so its messages have no stable ids: %w", ErrNotSupported)
		}
		s := Summary{ID: m.UID, Folder: "INBOX", Size: m.Size, Unread: true}
		if r.C.HasCapability("TOP") {
			// The header is enough for a listing: TOP n 0 instead of downloading the whole message.
			head, err := r.C.Top(m.Number, 0)
			if err != nil {
				return nil, err
			}
			if h, err := parseHeader(head); err == nil {
				h.ID, h.Folder, h.Size, h.Unread = s.ID, s.Folder, s.Size, true
				s = h
			}
		} else {
			raw, err := r.C.Retr(m.Number)
			if err != nil {
				return nil, err
			}
			if p, err := Parse(raw); err == nil {
				p.Summary.ID, p.Summary.Folder, p.Summary.Size, p.Summary.Unread = s.ID, s.Folder, s.Size, true
				s = p.Summary
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Get retrieves a message by UIDL.
func (r *POPReader) Get(ctx context.Context, id, folder string) (*Message, error) {
	if err := inboxOnly(folder); err != nil {
		return nil, err
	}
	m, err := r.find(id)
	if err != nil {
		return nil, err
	}
	raw, err := r.C.Retr(m.Number)
	if err != nil {
		return nil, err
	}
	if r.Progress != nil {
		r.Progress(int64(len(raw)), m.Size)
	}
	msg, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	msg.ID, msg.Folder, msg.Unread = id, "INBOX", true
	return msg, nil
}

// Move is not POP3's.
func (r *POPReader) Move(ctx context.Context, id, folder string) (string, error) {
	return "", fmt.Errorf("move: POP3 has no folders: %w", ErrNotSupported)
}

// Delete marks a message for deletion; Close commits it.
func (r *POPReader) Delete(ctx context.Context, id string) error {
	m, err := r.find(id)
	if err != nil {
		return err
	}
	return r.C.Dele(m.Number)
}

// Close ends the session with QUIT, which commits deletions.
func (r *POPReader) Close() error { return r.C.Quit() }

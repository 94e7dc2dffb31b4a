package mail

import (
	"context"
	"errors"
	"io"
)

// Reader reads a mailbox, whatever the protocol. IDs are the transport's own: a message listed by one
// Reader is named by its ID to Get, Move and Delete of a Reader of the same kind on the same mailbox.
type Reader interface {
	// Folders lists the mailbox's folders.
	Folders(ctx context.Context) ([]Folder, error)
	// List returns the newest limit messages of a folder ("" is the inbox), newest first; limit <= 0
	// means all; unseen keeps only unread messages.
	List(ctx context.Context, folder string, limit int, unseen bool) ([]Summary, error)
	// Get returns a whole message. folder is used only when the id does not name its folder.
	Get(ctx context.Context, id, folder string) (*Message, error)
	// Move moves a message to another folder and returns its id there ("" when the server does not say).
	Move(ctx context.Context, id, folder string) (string, error)
	// Delete deletes a message.
	Delete(ctx context.Context, id string) error
	// Close ends the session.
	Close() error
}

// Envelope is who a message is sent from and to, as SMTP's MAIL FROM and RCPT TO (or Graph's
// recipients) say it: Bcc recipients are here and not in the message.
type Envelope struct {
	From string
	To   []string
}

// Progress is told how many bytes of a transfer are done, and of how many (0: unknown).
type Progress func(done, total int64)

// ErrNotSupported is an operation the transport cannot do (move over POP3, folders other than the inbox).
var ErrNotSupported = errors.New("not supported by this protocol")

// ErrNotFound is an id that names no message (any more).
var ErrNotFound = errors.New("no such message")

// ErrBadID is an id that is not in the transport's form at all: a mistake in the caller's input,
// told apart from ErrNotFound because no server was asked.
var ErrBadID = errors.New("not a message id")

// badIDError says which id was malformed and how, and matches ErrBadID.
type badIDError struct{ msg string }

func (e *badIDError) Error() string        { return e.msg }
func (e *badIDError) Is(target error) bool { return target == ErrBadID }

// progressWriter reports what passes through it.
type progressWriter struct {
	w     io.Writer
	done  int64
	total int64
	fn    Progress
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
	return n, err
}

// progressReader reports what is read through it.
type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	fn    Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.fn != nil && n > 0 {
		p.fn(p.done, p.total)
	}
	return n, err
}

package imapgw

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/mailoauth/mailoauth/gateway"
)

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	sel := s.selected()
	for _, it := range sel.resolve(numSet) {
		if err := s.fetchOne(w, sel, it, options); err != nil {
			return err
		}
	}
	return nil
}

// fromHeader: the section is the top-level header (or some of its fields), which
// gateway.Message.Header holds without fetching the MIME.
func fromHeader(bs *imap.FetchItemBodySection) bool {
	return len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader
}

// needsMIME: what o asks for needs the whole MIME, not only the header section.
func needsMIME(o *imap.FetchOptions) bool {
	if o.BodyStructure != nil || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		return true
	}
	for _, bs := range o.BodySection {
		if !fromHeader(bs) {
			return true
		}
	}
	return false
}

// needsHeader: what o asks for reads the header section.
func needsHeader(o *imap.FetchOptions) bool {
	if o.Envelope {
		return true
	}
	for _, bs := range o.BodySection {
		if fromHeader(bs) {
			return true
		}
	}
	return false
}

// setsSeen: RFC 3501 6.4.5, a body section fetched without PEEK sets \Seen.
func setsSeen(o *imap.FetchOptions) bool {
	for _, bs := range o.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range o.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// fetchOne writes one message's FETCH response. Everything that can fail at Graph (the MIME, the
// \Seen update) happens before the response starts, so that a failure is a clean NO.
func (s *session) fetchOne(w *imapserver.FetchWriter, sel *selection, it item, o *imap.FetchOptions) error {
	ctx, cancel := s.op()
	defer cancel()
	m := it.m
	flags := o.Flags
	if !sel.readOnly && !m.IsRead && setsSeen(o) {
		read := true
		if err := sel.f.SetFlags(ctx, []string{m.ID}, &read, nil); err != nil {
			return s.fail("mark the message \\Seen", err)
		}
		s.mu.Lock()
		m.IsRead = true
		s.mu.Unlock()
		flags = true
	}
	var sp *spooled
	if needsMIME(o) {
		var err error
		if sp, err = spool(ctx, sel.f, m.ID, spoolLimit(s.srv.o.Gateway.MaxMessage, m.Size)); err != nil {
			return s.fail("read the message", err)
		}
		defer sp.close()
	}
	header := m.Header
	if sp != nil {
		// The MIME is here anyway: its own header, so that BODY[HEADER] and BODY[TEXT] of one
		// FETCH make BODY[] (Graph's internetMessageHeaders come unfolded).
		header = sp.header
	} else if len(header) == 0 && needsHeader(o) {
		var err error
		if header, err = mimeHeader(ctx, sel.f, m.ID); err != nil {
			return s.fail("read the message's header", err)
		}
	}

	lits, err := sections(o.BodySection, header, sp)
	if err != nil {
		return s.fail("read the message", err)
	}
	defer closeAll(lits)

	rw := w.CreateMessage(it.seq)
	rw.WriteUID(imap.UID(m.UID))
	if flags {
		s.mu.Lock()
		fl := flagsOf(m, sel.deleted[m.UID])
		s.mu.Unlock()
		rw.WriteFlags(fl)
	}
	if o.InternalDate {
		rw.WriteInternalDate(m.Received)
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if o.Envelope {
		h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(header)))
		rw.WriteEnvelope(imapserver.ExtractEnvelope(h))
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(bodyStructure(sp.reader()))
	}
	for i, bs := range o.BodySection {
		if err := writeLiteral(rw.WriteBodySection(bs, lits[i].size), lits[i].r); err != nil {
			return err
		}
	}
	for _, bs := range o.BinarySection {
		b := imapserver.ExtractBinarySection(sp.reader(), bs)
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(b))), bytes.NewReader(b)); err != nil {
			return err
		}
	}
	for _, bs := range o.BinarySectionSize {
		rw.WriteBinarySectionSize(bs, imapserver.ExtractBinarySectionSize(sp.reader(), bs))
	}
	return rw.Close()
}

// literal is a body section ready to be written: its length is known before its bytes.
type literal struct {
	r    io.Reader
	size int64
	f    *tempFile // a part's own spool file, closed after the FETCH
}

// sections prepares o's BODY[...] items, before the FETCH response starts (so that a failure is a
// clean NO): the whole message and its TEXT are streamed from the spool file, the top header from
// header, a part's body (BODY[1.2], what mail programs open attachments with) from a spool file
// of its own; a part's HEADER, MIME or TEXT through imapserver's extraction, which holds that
// section in memory (they are small but for TEXT of an attached message).
func sections(l []*imap.FetchItemBodySection, header []byte, sp *spooled) ([]literal, error) {
	out := make([]literal, 0, len(l))
	for _, bs := range l {
		var lit literal
		switch {
		case fromHeader(bs):
			b := imapserver.ExtractBodySection(bytes.NewReader(header), bs)
			lit.r, lit.size = bytes.NewReader(b), int64(len(b))
		case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone:
			lit.r, lit.size = partial(sp.f, 0, sp.size, bs.Partial)
		case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierText:
			hl := int64(len(sp.header))
			lit.r, lit.size = partial(sp.f, hl, sp.size-hl, bs.Partial)
		case bs.Specifier == imap.PartSpecifierNone:
			f, n, err := spoolPart(sp, bs.Part)
			if err != nil {
				closeAll(out)
				return nil, err
			}
			lit.f = f
			lit.r, lit.size = partial(f, 0, n, bs.Partial)
		default:
			b := imapserver.ExtractBodySection(sp.reader(), bs)
			lit.r, lit.size = bytes.NewReader(b), int64(len(b))
		}
		out = append(out, lit)
	}
	return out, nil
}

func closeAll(l []literal) {
	for _, lit := range l {
		if lit.f != nil {
			lit.f.Close()
		}
	}
}

// partial returns the bytes [off, off+n) of f, cut to <start.count> when the program asked.
func partial(f io.ReaderAt, off, n int64, p *imap.SectionPartial) (io.Reader, int64) {
	if p != nil {
		start := min(p.Offset, n)
		n = min(n-start, p.Size)
		off += start
	}
	return io.NewSectionReader(f, off, n), n
}

func writeLiteral(wc io.WriteCloser, r io.Reader) error {
	_, err := io.Copy(wc, r)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// spooled is a message's MIME in a private temporary file: a literal's length must be written
// before its bytes, and a whole message must not sit in memory.
type spooled struct {
	f      *tempFile
	size   int64
	header []byte // the header section, with the empty line after it
}

// spoolSlack is what Graph may send past spoolLimit's estimate before the spool gives up.
const spoolSlack = 1 << 20

// spoolLimit bounds what is copied of a message's MIME from Graph: an upstream that never ends
// must not fill the disk. Graph's size (PidTagMessageSize) counts attachments in binary and the
// MIME carries them in base64, a third more with line ends, so the bound is half as much again as
// the larger of maxMessage and the size; and since that size comes from Graph too, it counts at
// most as Exchange Online's largest message (gateway.DefaultMaxMessage, 150 MB).
func spoolLimit(maxMessage, size int64) int64 {
	return max(maxMessage, min(size, gateway.DefaultMaxMessage))*3/2 + spoolSlack
}

func spool(ctx context.Context, f *gateway.Folder, id string, limit int64) (*spooled, error) {
	body, err := f.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	tmp, err := newTempFile()
	if err != nil {
		return nil, err
	}
	sp := &spooled{f: tmp}
	if sp.size, err = io.Copy(tmp, io.LimitReader(body, limit+1)); err != nil {
		tmp.Close()
		return nil, err
	}
	if sp.size > limit {
		tmp.Close()
		return nil, fmt.Errorf("graph sent more than %d bytes for a message of %d", limit, sp.size)
	}
	if sp.header, err = readHeader(io.NewSectionReader(tmp, 0, sp.size)); err != nil {
		tmp.Close()
		return nil, err
	}
	return sp, nil
}

// tempFile is a private (0600) temporary file, removed at once where the system allows it (a
// crash then leaves no message on disk), else when closed.
type tempFile struct {
	*os.File
	removed bool
}

func newTempFile() (*tempFile, error) {
	f, err := os.CreateTemp("", "mailoauth-imap-*")
	if err != nil {
		return nil, err
	}
	return &tempFile{File: f, removed: os.Remove(f.Name()) == nil}, nil
}

func (t *tempFile) Close() error {
	err := t.File.Close()
	if !t.removed {
		os.Remove(t.Name())
	}
	return err
}

func (sp *spooled) reader() io.Reader { return io.NewSectionReader(sp.f, 0, sp.size) }

func (sp *spooled) close() { sp.f.Close() }

// mimeHeader reads a message's header section from its MIME, for a message Graph gave no
// internetMessageHeaders for (a draft, a message created from MIME); the rest is not read. What it
// reads is kept in the folder's listing (Folder.KeepHeader): each such header is read once, not at
// every FETCH and SEARCH of every session.
func mimeHeader(ctx context.Context, f *gateway.Folder, id string) ([]byte, error) {
	if h := f.Header(id); h != nil { // read before, by this session or another
		return h, nil
	}
	body, err := f.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	h, err := readHeader(body)
	if err == nil {
		f.KeepHeader(id, h)
	}
	return h, err
}

// readHeader returns the header section of a message: the lines up to and including the first
// empty one (all of it if there is none). A header line is bounded so that a message without
// line ends cannot make it hold the whole message.
func readHeader(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var h []byte
	for len(h) < 8<<20 {
		line, err := br.ReadSlice('\n')
		h = append(h, line...)
		if err == io.EOF {
			return h, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return nil, err
		}
		if err == nil && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			return h, nil
		}
	}
	return h, nil
}

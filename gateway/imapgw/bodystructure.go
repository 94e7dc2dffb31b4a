package imapgw

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// bodyStructure is BODYSTRUCTURE read in one pass, counting each part's bytes and lines rather
// than holding them (imapserver.ExtractBodyStructure reads each leaf part into memory, and a
// message's one part may be its 50 MB attachment).
func bodyStructure(r io.Reader) imap.BodyStructure {
	br := bufio.NewReader(r)
	h, _ := textproto.ReadHeader(br)
	return structureOf(h, br)
}

func structureOf(raw textproto.Header, r io.Reader) imap.BodyStructure {
	header := gomessage.Header{Header: raw}
	mediaType, params, _ := header.ContentType()
	if mediaType == "" {
		mediaType, params = "text/plain", map[string]string{"charset": "us-ascii"} // RFC 2045 5.2
	}
	primary, sub, _ := strings.Cut(mediaType, "/")
	if primary == "multipart" {
		bs := &imap.BodyStructureMultiPart{Subtype: sub}
		mr := textproto.NewMultipartReader(r, params["boundary"])
		for {
			part, _ := mr.NextPart()
			if part == nil {
				break
			}
			bs.Children = append(bs.Children, structureOf(part.Header, part))
		}
		if len(bs.Children) == 0 { // imapserver cannot write a multipart without children
			bs.Children = []imap.BodyStructure{&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain",
				Extended: &imap.BodyStructureSinglePartExt{}}}
		}
		bs.Extended = &imap.BodyStructureMultiPartExt{
			Params:      params,
			Disposition: disposition(header),
			Language:    language(header),
			Location:    header.Get("Content-Location"),
		}
		return bs
	}
	var c counter
	bs := &imap.BodyStructureSinglePart{
		Type:        primary,
		Subtype:     sub,
		Params:      params,
		ID:          header.Get("Content-Id"),
		Description: header.Get("Content-Description"),
		Encoding:    header.Get("Content-Transfer-Encoding"),
	}
	if mediaType == "message/rfc822" || mediaType == "message/global" {
		cbr := bufio.NewReader(io.TeeReader(r, &c))
		ch, _ := textproto.ReadHeader(cbr)
		child := &imap.BodyStructureMessageRFC822{
			Envelope:      imapserver.ExtractEnvelope(ch),
			BodyStructure: structureOf(ch, cbr),
		}
		io.Copy(io.Discard, cbr)
		child.NumLines = c.lines
		bs.MessageRFC822 = child
	} else {
		io.Copy(&c, r)
	}
	bs.Size = uint32(c.n)
	if primary == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: c.lines}
	}
	bs.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: disposition(header),
		Language:    language(header),
		Location:    header.Get("Content-Location"),
	}
	return bs
}

// counter counts bytes and lines written to it.
type counter struct{ n, lines int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

func disposition(h gomessage.Header) *imap.BodyStructureDisposition {
	d, params, err := h.ContentDisposition()
	if err != nil || d == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d, Params: params}
}

func language(h gomessage.Header) []string {
	v := h.Get("Content-Language")
	if v == "" {
		return nil
	}
	var l []string
	for _, s := range strings.Split(v, ",") {
		l = append(l, strings.TrimSpace(s))
	}
	return l
}

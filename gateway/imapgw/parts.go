package imapgw

import (
	"bufio"
	"io"
	"strings"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// spoolPart copies the body of the part at path (BODY[path]) from the message's spool file to a
// file of its own, so that its length is known before it is written, without holding it. A path
// that names no part gives an empty body, as imapserver's extraction does.
func spoolPart(sp *spooled, path []int) (*tempFile, int64, error) {
	f, err := newTempFile()
	if err != nil {
		return nil, 0, err
	}
	var n int64
	if body := findPart(sp.reader(), path); body != nil {
		if n, err = io.Copy(f, body); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	return f, n, nil
}

// findPart walks the message in r to the part at path, reading only up to it; nil when there is
// no such part. The numbering is RFC 3501 6.4.5's, as imapserver's (unexported) findMessagePart
// does it: part 1 of a single-part message is its body, and a message/rfc822 part's numbers go on
// into the message it holds.
func findPart(r io.Reader, path []int) io.Reader {
	br := bufio.NewReader(r)
	header, err := textproto.ReadHeader(br)
	if err != nil {
		return nil
	}
	var body io.Reader = br
	top := gomessage.Header{Header: header}
	if mt, _, _ := top.ContentType(); !strings.HasPrefix(mt, "multipart/") && len(path) > 0 && path[0] == 1 {
		path = path[1:]
	}
	var parent string
	for _, n := range path {
		header, body = openEnclosed(header, body, parent)
		h := gomessage.Header{Header: header}
		mt, params, _ := h.ContentType()
		if !strings.HasPrefix(mt, "multipart/") {
			if n != 1 {
				return nil
			}
			continue
		}
		mr := textproto.NewMultipartReader(body, params["boundary"])
		var p *textproto.Part
		for j := 1; j <= n; j++ {
			if p, err = mr.NextPart(); err != nil {
				return nil
			}
		}
		parent, header, body = mt, p.Header, p
	}
	return body
}

// openEnclosed steps into a message/rfc822 part (a multipart/digest's parts are such by default).
func openEnclosed(header textproto.Header, body io.Reader, parent string) (textproto.Header, io.Reader) {
	h := gomessage.Header{Header: header}
	mt, _, _ := h.ContentType()
	if !h.Has("Content-Type") && parent == "multipart/digest" {
		mt = "message/rfc822"
	}
	if mt == "message/rfc822" || mt == "message/global" {
		br := bufio.NewReader(body)
		header, _ = textproto.ReadHeader(br)
		return header, br
	}
	return header, body
}

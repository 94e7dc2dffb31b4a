package graph

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
)

// mimeURL is a message's MIME content.
func (c *Client) mimeURL(id string) string {
	return c.root + c.prefix + "/messages/" + url.PathEscape(id) + "/$value"
}

// OpenMIME streams a message's MIME ($value); size is its Content-Length, -1 if Graph gave none.
// Nothing is buffered: the caller reads (and bounds) what it needs, and must Close body, which
// holds one of the client's Limiter slots until then.
func (c *Client) OpenMIME(ctx context.Context, id string) (body io.ReadCloser, size int64, err error) {
	resp, release, err := c.send(ctx, request{method: "GET", url: c.mimeURL(id)})
	if err != nil {
		return nil, -1, err
	}
	return &streamBody{r: resp.Body, release: release}, resp.ContentLength, nil
}

// streamBody is a streamed answer whose Close gives back the request's Limiter slot.
type streamBody struct {
	r       io.Reader
	release func()
}

func (b *streamBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *streamBody) Close() error               { b.release(); return nil }

// MaxCreateMIME is the largest message CreateFromMIME creates (3 MB): Graph takes a request body of
// at most 4 MB (https://learn.microsoft.com/graph/api/user-post-messages, "Create a message in MIME format";
// https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits), which the base64
// encoding of the message must fit.
const MaxCreateMIME = 4 << 20 / 4 * 3

// ErrMIMETooLarge is a message too large to create from its MIME in one request (Graph's 4 MB
// request limit, base64 included: a message of 3 MB).
var ErrMIMETooLarge = errors.New("graph: the message is larger than the 3 MB Graph creates from MIME in one request (4 MB base64-encoded)")

// CreateFromMIME stores a message from its MIME (raw RFC 5322, CRLF line ends) in a folder (a
// well-known name or an id; "" is Drafts, Graph's default) and returns it: POST .../messages with
// the MIME base64-encoded as text/plain. size is the MIME's length, or -1 if unknown. A message
// larger than 3 MB fails with ErrMIMETooLarge before anything is sent (Graph would answer 413
// Request Entity Too Large): Graph has no upload session for MIME, and rebuilding the message from
// its parts would change its bytes.
//
// Graph documents the call as creating a draft: the message is a draft (isDraft true,
// PidTagMessageFlags with mfUnsent) whatever folder it is created in. Only a JSON creation can set
// PidTagMessageFlags, and only then ([MS-OXCMSG] 2.2.1.6): a MIME body has no room for it.
//
// The MIME is read once (at most 3 MB are kept) and encoded as it is sent, so that a retry can send
// it again.
func (c *Client) CreateFromMIME(ctx context.Context, folder string, mime io.Reader, size int64) (*Message, error) {
	if size > MaxCreateMIME {
		return nil, fmt.Errorf("%w: it is %d bytes", ErrMIMETooLarge, size)
	}
	raw, err := io.ReadAll(io.LimitReader(mime, MaxCreateMIME+1))
	if err != nil {
		return nil, fmt.Errorf("graph: reading the message to create: %w", err)
	}
	switch {
	case len(raw) > MaxCreateMIME:
		return nil, ErrMIMETooLarge
	case len(raw) == 0:
		return nil, errors.New("graph: the MIME message to create is empty")
	case size >= 0 && int64(len(raw)) != size:
		return nil, fmt.Errorf("graph: the MIME message to create has %d bytes, not the %d its size says", len(raw), size)
	}
	path := "/messages"
	if folder != "" {
		path = "/mailFolders/" + url.PathEscape(folder) + "/messages"
	}
	rq := request{method: "POST", url: c.root + c.prefix + path, contentType: "text/plain",
		length: int64(base64.StdEncoding.EncodedLen(len(raw))), stream: func() (io.Reader, error) { return encoding(raw), nil }}
	_, body, err := c.do(ctx, rq)
	if err != nil {
		return nil, err
	}
	return decodeMessage(body, "created message")
}

// encoding streams raw base64-encoded, without a second copy of it in memory. The transport closes
// the pipe when it is done with the request, which ends the goroutine.
func encoding(raw []byte) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		enc := base64.NewEncoder(base64.StdEncoding, pw)
		_, err := io.Copy(enc, bytes.NewReader(raw))
		if err == nil {
			err = enc.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

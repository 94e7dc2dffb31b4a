package graph

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestSendMIMEFromStreamsLargeAttachments: a 24 MB attachment goes up from a temporary file a chunk
// at a time, whole and in order, and sending it allocates less than the attachment (a run that holds
// it in memory allocates twice its size).
func TestSendMIMEFromStreamsLargeAttachments(t *testing.T) {
	blob := make([]byte, 24<<20)
	rand.Read(blob)
	var mime bytes.Buffer
	mime.WriteString("From: a@b.c\r\nTo: d@b.c\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n--b\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Disposition: attachment; filename=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(blob)
	for len(enc) > 76 {
		mime.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	mime.WriteString(enc + "\r\n--b--\r\n")

	var mu sync.Mutex
	var uploaded int64
	var sum hash.Hash = sha256.New()
	sent := false
	var url string
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/messages"):
			w.WriteHeader(201)
			io.WriteString(w, `{"id":"draft1"}`)
		case strings.HasSuffix(r.URL.Path, "/createUploadSession"):
			w.WriteHeader(201)
			io.WriteString(w, `{"uploadUrl":"`+url+`/upload?authtoken=x"}`)
		case r.URL.Path == "/upload":
			mu.Lock()
			n, _ := io.Copy(sum, r.Body)
			uploaded += n
			done := uploaded == int64(len(blob))
			next := uploaded
			mu.Unlock()
			if done {
				w.WriteHeader(201)
				return
			}
			fmt.Fprintf(w, `{"nextExpectedRanges":["%d-"]}`, next)
		case strings.HasSuffix(r.URL.Path, "/send"):
			mu.Lock()
			sent = true
			mu.Unlock()
			w.WriteHeader(202)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(400)
		}
	})
	defer srv.Close()
	url = srv.URL

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := c.SendMIMEFrom(context.Background(), bytes.NewReader(mime.Bytes()), int64(mime.Len()), MIMEOptions{}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	want := sha256.Sum256(blob)
	if !sent || uploaded != int64(len(blob)) || !bytes.Equal(sum.Sum(nil), want[:]) {
		t.Fatalf("sent %v, uploaded %d of %d bytes, same content %v", sent, uploaded, len(blob), bytes.Equal(sum.Sum(nil), want[:]))
	}
	// Not a tight bound: the race detector's runtime drops sync.Pool's buffers, which then are
	// allocated again (about 10 MB here without it, 21 MB with it).
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("sending allocated %d MB for a %d MB attachment", alloc>>20, len(blob)>>20)
	if alloc > uint64(len(blob)) {
		t.Errorf("sending allocated %d MB for a %d MB attachment: more than the attachment", alloc>>20, len(blob)>>20)
	}
}

// TestBodyPartBounded: a text part too large to be a message's body in a Graph request goes as an
// attachment, spilled to a file like one, and reading the message allocates less than the part.
func TestBodyPartBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@b.c\r\nTo: d@e.f\r\nSubject: big text\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\n")
	line := strings.Repeat("y", 76) + "\r\n"
	for b.Len() < 30<<20 {
		b.WriteString(line)
	}
	b.WriteString("--X--\r\n")
	mime := b.String()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, done, err := parseMIME(strings.NewReader(mime), true)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if m.Body != "" || len(m.Attachments) != 1 || m.Attachments[0].Name != "body.txt" || m.Attachments[0].Reader == nil || m.Attachments[0].Size < 29<<20 {
		t.Fatalf("body %d bytes, attachments %+v", len(m.Body), m.Attachments)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("reading a 30 MB text part allocated %d MB", alloc>>20)
	// About 11 MB here, 22 MB under the race detector; kept whole it is three times the part.
	if alloc > 29<<20 {
		t.Errorf("reading a 30 MB text part allocated %d MB: more than the part", alloc>>20)
	}
}

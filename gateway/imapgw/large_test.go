package imapgw_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// bigMessage is a message of about size bytes: a base64 attachment, as a scanner's PDF is.
func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Scanner <scanner@contoso.test>\r\nTo: alice@contoso.test\r\nSubject: big scan\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe scan.\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=scan.pdf\r\nContent-Disposition: attachment; filename=scan.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	line := []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5, 0x5A, 0x0F}, 19)) + "\r\n") // 78 bytes
	for b.Len() < size {
		b.Write(line)
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

// streamBody fetches BODY.PEEK[] of seq and hashes it as it arrives, never holding it whole.
func streamBody(t testing.TB, c *imapclient.Client, seq uint32) (sum [32]byte, n int64) {
	t.Helper()
	cmd := c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	defer cmd.Close()
	msg := cmd.Next()
	if msg == nil {
		t.Fatalf("FETCH %d: no message (%v)", seq, cmd.Close())
	}
	h := sha256.New()
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
			var err error
			if n, err = io.Copy(h, bs.Literal); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, n
}

func TestLargeFetchStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 50 MB")
	}
	// No refresh of the listing while measuring: the emulator's Graph builds each message's JSON
	// from its MIME, in this same process.
	v := newEnvPoll(t, time.Hour)
	data := bigMessage(50 << 20)
	want := sha256.Sum256(data)
	if _, err := v.lab.E.Store.Append(v.address, mailstore.Inbox, data, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	data = nil // the store keeps its copy
	c := v.dial(nil)
	selectBox(t, c, "INBOX", true)

	var (
		sum [32]byte
		n   int64
		bs  []*imapclient.FetchMessageBuffer
	)
	grew := heapGrowth(func() {
		sum, n = streamBody(t, c, 1)
		bs = fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	})
	if mp, ok := bs[0].BodyStructure.(*imap.BodyStructureMultiPart); !ok || len(mp.Children) != 2 ||
		mp.Children[1].(*imap.BodyStructureSinglePart).Size < 49<<20 {
		t.Errorf("BODYSTRUCTURE of the 50 MB message: %#v", bs[0].BodyStructure)
	}
	if sum != want {
		t.Fatalf("BODY[] of the 50 MB message (%d bytes) differs from the stored message", n)
	}
	t.Logf("50 MB message: heap in use grew by at most %.1f MB during the fetch of BODY[] and BODYSTRUCTURE", float64(grew)/(1<<20))
	if grew > 12<<20 {
		t.Errorf("the heap grew by %.1f MB while a 50 MB message went through; it must be streamed", float64(grew)/(1<<20))
	}
}

// heapGrowth is how much the heap in use grew, at its peak, while fn ran. HeapInuse counts garbage
// not yet collected too: a low GOGC collects it promptly, so that what is measured is what fn
// holds (under -race every copy buffer is garbage).
func heapGrowth(fn func()) int64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	fn()
	close(stop)
	<-sampled
	return int64(peak) - int64(base)
}

// Mail programs open an attachment as its part (BODY.PEEK[2]), not as BODY[]: that streams too,
// or a few sessions opening large attachments hold them all in memory (found in review).
func TestLargePartFetchStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 40 MB")
	}
	v := newEnvPoll(t, time.Hour)
	data := bigMessage(40 << 20)
	at := bytes.Index(data, []byte("base64\r\n\r\n")) + len("base64\r\n\r\n")
	want := sha256.Sum256(data[at : len(data)-len("\r\n--b1--\r\n")])
	if _, err := v.lab.E.Store.Append(v.address, mailstore.Inbox, data, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	data = nil
	c := v.dial(nil)
	selectBox(t, c, "INBOX", true)
	var (
		sum [32]byte
		n   int64
	)
	grew := heapGrowth(func() {
		cmd := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Part: []int{2}, Peek: true}}})
		defer cmd.Close()
		if msg := cmd.Next(); msg != nil {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
					h := sha256.New()
					n, _ = io.Copy(h, bs.Literal)
					copy(sum[:], h.Sum(nil))
				}
			}
		}
		if err := cmd.Close(); err != nil {
			t.Errorf("FETCH BODY.PEEK[2]: %v", err)
		}
	})
	if sum != want {
		t.Fatalf("BODY.PEEK[2] (%d bytes) is not the attachment's body", n)
	}
	t.Logf("40 MB attachment: heap in use grew by at most %.1f MB during FETCH BODY.PEEK[2]", float64(grew)/(1<<20))
	if grew > 12<<20 {
		t.Errorf("the heap grew by %.1f MB while a 40 MB part went through; it must be streamed", float64(grew)/(1<<20))
	}
}

// BenchmarkFetch compares FETCH BODY.PEEK[] through the gateway with reading the same MIME from
// Graph directly ($value), both against the in-process emulator over loopback.
func BenchmarkFetch(b *testing.B) {
	v := newEnvPoll(b, time.Hour)
	data := bigMessage(8 << 20)
	m, err := v.lab.E.Store.Append(v.address, mailstore.Inbox, data, nil, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	c := v.dial(nil)
	selectBox(b, c, "INBOX", true)
	direct := graph.ClientFor(v.account, v.address, graph.NewLimiter(0))
	var gw, gr time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, n := streamBody(b, c, 1); n != int64(len(data)) {
			b.Fatalf("gateway gave %d bytes of %d", n, len(data))
		}
		gw += time.Since(start)
		start = time.Now()
		body, _, err := direct.OpenMIME(context.Background(), m.ID)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, body)
		body.Close()
		if err != nil || n != int64(len(data)) {
			b.Fatalf("Graph gave %d bytes of %d: %v", n, len(data), err)
		}
		gr += time.Since(start)
	}
	mb := float64(len(data)) * float64(b.N) / (1 << 20)
	b.ReportMetric(mb/gw.Seconds(), "gateway-MB/s")
	b.ReportMetric(mb/gr.Seconds(), "graph-MB/s")
	b.ReportMetric(gr.Seconds()/gw.Seconds(), "gateway/graph")
}

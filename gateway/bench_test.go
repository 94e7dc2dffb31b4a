package gateway_test

import (
	"testing"

	"github.com/mailoauth/mailoauth/gateway"
)

// BenchmarkListing is the cost of listing a 1,000-message folder with its headers: Graph requests
// and time of a first Sync (a new process: in-memory or file UIDs) and of a Sync with nothing new.
// Run: go test -run '^$' -bench Listing -benchtime 20x ./gateway/
func BenchmarkListing(b *testing.B) {
	l := newLab(b)
	l.deliver(b, "INBOX", numbered("bench", 1000)...)
	first := func(b *testing.B, uids func() gateway.UIDStore) {
		var requests int64
		for b.Loop() {
			b.StopTimer()
			mb := gateway.NewMailboxes(uids(), gateway.Options{}).Open("daemon", l.address, l.client())
			f := folder(b, mb, "INBOX")
			b.StartTimer()
			requests += l.requests(func() {
				if v := syncNow(b, f); len(v.Messages) != 1000 {
					b.Fatalf("%d messages", len(v.Messages))
				}
			})
			mb.Close()
		}
		b.ReportMetric(float64(requests)/float64(b.N), "graph-requests/op")
	}
	b.Run("first/memory-uids", func(b *testing.B) { first(b, func() gateway.UIDStore { return nil }) })
	b.Run("first/file-uids", func(b *testing.B) {
		first(b, func() gateway.UIDStore { return gateway.NewFileUIDStore(b.TempDir()) })
	})
	b.Run("no-change", func(b *testing.B) {
		f := folder(b, l.open(b, gateway.Options{}), "INBOX")
		syncNow(b, f)
		var requests int64
		for b.Loop() {
			requests += l.requests(func() { syncNow(b, f) })
		}
		b.ReportMetric(float64(requests)/float64(b.N), "graph-requests/op")
	})
}

package imapgw

import (
	"testing"

	"github.com/mailoauth/mailoauth/gateway"
)

// The spool's bound takes a received message whole — its MIME carries the attachments Graph's size
// counts in binary as base64, a third more — and does not grow with a size Graph makes up.
func TestSpoolLimit(t *testing.T) {
	const mb = 1 << 20
	// A received 120 MB message (Graph's size) is about 165 MB of MIME; so is a 30 MB one 41 MB
	// where the operator lowered MaxMessage to 25 MB.
	for _, c := range []struct{ maxMessage, size, mime int64 }{
		{gateway.DefaultMaxMessage, 120 * mb, 165 * mb},
		{gateway.DefaultMaxMessage, 150 * mb, 205 * mb},
		{25 * mb, 30 * mb, 41 * mb},
	} {
		if l := spoolLimit(c.maxMessage, c.size); l < c.mime {
			t.Errorf("MaxMessage %d MB, Graph's size %d MB: the spool stops at %d MB, before the %d MB of MIME",
				c.maxMessage/mb, c.size/mb, l/mb, c.mime/mb)
		}
	}
	if l := spoolLimit(gateway.DefaultMaxMessage, 1<<40); l > 300*mb {
		t.Errorf("Graph saying a message has 1 TB lets the spool write %d MB; want it bounded as for 150 MB", l/mb)
	}
}

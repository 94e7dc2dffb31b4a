package imapgw_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Messages Graph gives no internetMessageHeaders for (Sent Items copies, drafts, every message a
// program APPENDed: mbsync's uploads) have their header read from their MIME, one Graph request
// each; it must not be read again at every FETCH or SEARCH: a client syncing such a folder of
// 5,000 messages would spend half the mailbox's 10-minute Graph budget each time.
func TestHeaderlessHeadersReadOnce(t *testing.T) {
	v := newEnvPoll(t, time.Hour)
	c := v.dial(nil)
	for i := range 20 {
		raw := message("appended "+strconv.Itoa(i), "body")
		ap := c.Append("INBOX", int64(len(raw)), nil)
		ap.Write(raw)
		ap.Close()
		if _, err := ap.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	selectBox(t, c, "INBOX", true)
	env := func() {
		msgs := fetchAll(t, c, imap.SeqSet{{Start: 1, Stop: 20}}, &imap.FetchOptions{Envelope: true})
		if len(msgs) != 20 {
			t.Fatalf("FETCH 1:20 gave %d messages", len(msgs))
		}
		for _, m := range msgs {
			if m.Envelope == nil || !strings.HasPrefix(m.Envelope.Subject, "appended ") {
				t.Fatalf("ENVELOPE: %+v", m.Envelope)
			}
		}
	}
	env()
	before := v.lab.E.Graph.Requests()
	env()
	if _, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "appended 7"}}}, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if n := v.lab.E.Graph.Requests() - before; n > 2 {
		t.Errorf("a second FETCH ENVELOPE and a SEARCH SUBJECT of 20 appended messages cost %d Graph requests; want their headers read once", n)
	}
}

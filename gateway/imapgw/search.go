package imapgw

import (
	"bufio"
	"bytes"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/mailoauth/mailoauth/gateway"
)

// Search answers from the folder's listing and each message's header section: no key makes it
// read a message's MIME, so BODY and TEXT (which would read every message) are refused.
func (s *session) Search(kind imapserver.NumKind, c *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	if err := searchable(c); err != nil {
		return nil, err
	}
	ctx, cancel := s.op()
	defer cancel()
	sel := s.selected()
	q := &query{sel: sel, headers: map[int]gomessage.Header{}, header: func(m *gateway.Message) ([]byte, error) {
		if len(m.Header) > 0 {
			return m.Header, nil
		}
		return mimeHeader(ctx, sel.f, m.ID)
	}}
	var (
		seqs imap.SeqSet
		uids imap.UIDSet
	)
	for i := range sel.msgs {
		if q.err != nil {
			return nil, s.fail("read a message's header", q.err)
		}
		if q.match(i, c) {
			seqs.AddNum(uint32(i + 1))
			uids.AddNum(imap.UID(sel.msgs[i].UID))
		}
	}
	d := &imap.SearchData{All: seqs}
	if kind == imapserver.NumKindUID {
		d.All = uids
	}
	return d, nil
}

// searchable refuses the keys the gateway cannot answer from the listing and the headers.
func searchable(c *imap.SearchCriteria) error {
	switch {
	case len(c.Body) > 0 || len(c.Text) > 0:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "SEARCH BODY and TEXT are not supported by the Graph gateway; search the headers (FROM, TO, SUBJECT, HEADER) instead."}
	case c.ModSeq != nil:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "SEARCH MODSEQ needs CONDSTORE, which the Graph gateway does not offer."}
	}
	for i := range c.Not {
		if err := searchable(&c.Not[i]); err != nil {
			return err
		}
	}
	for i := range c.Or {
		if err := searchable(&c.Or[i][0]); err != nil {
			return err
		}
		if err := searchable(&c.Or[i][1]); err != nil {
			return err
		}
	}
	return nil
}

type query struct {
	sel     *selection
	header  func(*gateway.Message) ([]byte, error)
	headers map[int]gomessage.Header // parsed once per search
	err     error                    // the first failure to read a header
}

// parsed returns message i's header, read from its MIME if Graph gave none.
func (q *query) parsed(i int) gomessage.Header {
	h, ok := q.headers[i]
	if !ok {
		b, err := q.header(&q.sel.msgs[i])
		if err != nil && q.err == nil {
			q.err = err
		}
		raw, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(b)))
		h = gomessage.Header{Header: raw}
		q.headers[i] = h
	}
	return h
}

func (q *query) match(i int, c *imap.SearchCriteria) bool {
	m := &q.sel.msgs[i]
	return q.matchNums(i, m, c) && matchFlags(m, q.sel.deleted[m.UID], c) && matchDates(m.Received, c.Since, c.Before) &&
		(c.Larger == 0 || m.Size > c.Larger) && (c.Smaller == 0 || m.Size < c.Smaller) &&
		q.matchSent(i, c) && q.matchHeaders(i, c) && q.matchLogic(i, c)
}

func (q *query) matchNums(i int, m *gateway.Message, c *imap.SearchCriteria) bool {
	n := uint32(len(q.sel.msgs))
	for _, set := range c.SeqNum {
		set = append(imap.SeqSet(nil), set...)
		for j := range set {
			static(&set[j].Start, &set[j].Stop, n)
		}
		if !set.Contains(uint32(i + 1)) {
			return false
		}
	}
	var max uint32
	if n > 0 {
		max = q.sel.msgs[n-1].UID
	}
	for _, set := range c.UID {
		set = append(imap.UIDSet(nil), set...)
		for j := range set {
			static((*uint32)(&set[j].Start), (*uint32)(&set[j].Stop), max)
		}
		if !set.Contains(imap.UID(m.UID)) {
			return false
		}
	}
	return true
}

func (q *query) matchLogic(i int, c *imap.SearchCriteria) bool {
	for j := range c.Not {
		if q.match(i, &c.Not[j]) {
			return false
		}
	}
	for _, or := range c.Or {
		if !q.match(i, &or[0]) && !q.match(i, &or[1]) {
			return false
		}
	}
	return true
}

func hasFlag(m *gateway.Message, deleted bool, f imap.Flag) bool {
	for _, g := range flagsOf(m, deleted) {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

func matchFlags(m *gateway.Message, deleted bool, c *imap.SearchCriteria) bool {
	for _, f := range c.Flag {
		if !hasFlag(m, deleted, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(m, deleted, f) {
			return false
		}
	}
	return true
}

// matchDates compares dates only, as RFC 3501 6.4.4 says (SINCE: on or after; BEFORE: earlier).
func matchDates(t, since, before time.Time) bool {
	if t.IsZero() && (!since.IsZero() || !before.IsZero()) {
		return false
	}
	d := day(t)
	return (since.IsZero() || !d.Before(day(since))) && (before.IsZero() || d.Before(day(before)))
}

func day(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (q *query) matchSent(i int, c *imap.SearchCriteria) bool {
	if c.SentSince.IsZero() && c.SentBefore.IsZero() {
		return true
	}
	h := mail.Header{Header: q.parsed(i)}
	t, err := h.Date()
	if err != nil {
		return false
	}
	return matchDates(t, c.SentSince, c.SentBefore)
}

func (q *query) matchHeaders(i int, c *imap.SearchCriteria) bool {
	if len(c.Header) == 0 {
		return true
	}
	h := q.parsed(i)
	for _, f := range c.Header {
		if !h.Has(f.Key) {
			return false
		}
		if f.Value == "" {
			continue
		}
		found := false
		for _, raw := range h.Values(f.Key) {
			v := raw
			if dec, err := wordDecoder.DecodeHeader(raw); err == nil {
				v = dec
			}
			if strings.Contains(strings.ToLower(v), strings.ToLower(f.Value)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// wordDecoder decodes RFC 2047 words (UTF-8 and the charsets Go knows) so that SUBJECT matches
// what the user sees.
var wordDecoder = new(mime.WordDecoder)

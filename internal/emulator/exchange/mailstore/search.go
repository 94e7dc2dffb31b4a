package mailstore

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// SEARCH matching, after imapmemserver's message.search.

func envelope(data []byte) *imap.Envelope {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		return nil
	}
	return imapserver.ExtractEnvelope(h)
}

func entity(data []byte) *gomessage.Entity {
	e, _ := gomessage.Read(bytes.NewReader(data))
	if e == nil {
		e, _ = gomessage.New(gomessage.Header{}, bytes.NewReader(nil))
	}
	return e
}

func (m *message) match(seq uint32, c *imap.SearchCriteria) bool {
	for _, s := range c.SeqNum {
		if seq == 0 || !s.Contains(seq) {
			return false
		}
	}
	for _, u := range c.UID {
		if !u.Contains(m.uid) {
			return false
		}
	}
	if !matchDate(m.received, c.Since, c.Before) {
		return false
	}
	for _, f := range c.Flag {
		if _, ok := m.flags[canonicalFlag(f)]; !ok {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if _, ok := m.flags[canonicalFlag(f)]; ok {
			return false
		}
	}
	if c.Larger != 0 && int64(len(m.data)) <= c.Larger {
		return false
	}
	if c.Smaller != 0 && int64(len(m.data)) >= c.Smaller {
		return false
	}
	if len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		h := mail.Header{Header: entity(m.data).Header}
		for _, hc := range c.Header {
			if !matchFields(h.FieldsByKey(hc.Key), hc.Value) {
				return false
			}
		}
		if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
			t, err := h.Date()
			if err != nil || !matchDate(t, c.SentSince, c.SentBefore) {
				return false
			}
		}
	}
	for _, text := range c.Text {
		if !matchEntity(entity(m.data), text, true) {
			return false
		}
	}
	for _, body := range c.Body {
		if !matchEntity(entity(m.data), body, false) {
			return false
		}
	}
	for i := range c.Not {
		if m.match(seq, &c.Not[i]) {
			return false
		}
	}
	for i := range c.Or {
		if !m.match(seq, &c.Or[i][0]) && !m.match(seq, &c.Or[i][1]) {
			return false
		}
	}
	return true
}

// matchDate compares dates without time zones, as RFC 3501 requires.
func matchDate(t, since, before time.Time) bool {
	t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && t.Before(since) {
		return false
	}
	if !before.IsZero() && !t.Before(before) {
		return false
	}
	return true
}

func matchFields(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	pattern = strings.ToLower(pattern)
	for fields.Next() {
		v, _ := fields.Text()
		if strings.Contains(strings.ToLower(v), pattern) {
			return true
		}
	}
	return false
}

func matchEntity(e *gomessage.Entity, pattern string, withHeader bool) bool {
	if pattern == "" {
		return true
	}
	if withHeader && matchFields(e.Header.Fields(), pattern) {
		return true
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			part, err := mr.NextPart()
			if err != nil {
				return false
			}
			if matchEntity(part, pattern, withHeader) {
				return true
			}
		}
	}
	t, _, err := e.Header.ContentType()
	if err != nil && t == "" {
		t = "text/plain"
	}
	if !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	buf, err := io.ReadAll(io.LimitReader(e.Body, 32<<20))
	if err != nil {
		return false
	}
	return bytes.Contains(bytes.ToLower(buf), bytes.ToLower([]byte(pattern)))
}

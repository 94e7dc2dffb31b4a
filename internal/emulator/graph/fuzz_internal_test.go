package graph

import (
	"bytes"
	"encoding/json"
	"net/mail"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzSendMailJSON: any sendMail body either fails cleanly or becomes a message that parses, whose
// envelope is exactly its To+Cc+Bcc, whose header carries no Bcc and no injected field, and whose
// subject reads back.
func FuzzSendMailJSON(f *testing.F) {
	f.Add([]byte(`{"message":{"subject":"Grüße","body":{"contentType":"html","content":"<b>x</b>"},"toRecipients":[{"emailAddress":{"name":"Bob","address":"bob@contoso.test"}}],"bccRecipients":[{"emailAddress":{"address":"c@d.e"}}],"attachments":[{"@odata.type":"#microsoft.graph.fileAttachment","name":"été.txt","contentType":"text/plain","contentBytes":"aGVsbG8="}]},"saveToSentItems":"false"}`))
	f.Add([]byte(`{"message":{"subject":"a\r\nBcc: evil@x.y","toRecipients":[{"emailAddress":{"name":"x\r\nX-Evil: 1","address":"a@b.c"}}]}}`))
	f.Add([]byte(`{"message":{"toRecipients":[]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in SendMailIn
		if json.Unmarshal(body, &in) != nil || in.Message == nil {
			return
		}
		_, _ = in.save()
		b, err := BuildMIME(in.Message, EmailAddress{Name: "Alice", Address: "alice@contoso.test"}, time.Unix(0, 0), "host.test", true)
		if err != nil {
			return
		}
		want := len(in.Message.ToRecipients) + len(in.Message.CcRecipients) + len(in.Message.BccRecipients)
		if len(b.Recipients) != want || want == 0 {
			t.Fatalf("%d recipients, want %d", len(b.Recipients), want)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(b.Data))
		if err != nil {
			t.Fatalf("built message does not parse: %v\n%q", err, b.Data)
		}
		for k := range msg.Header {
			switch strings.ToLower(k) {
			case "from", "to", "cc", "reply-to", "subject", "date", "message-id", "mime-version", "content-type",
				"content-transfer-encoding", "importance":
			default:
				t.Fatalf("unexpected header %q in %q", k, b.Data)
			}
		}
		p := parseMIME(b.Data)
		norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
		if want := clean(in.Message.Subject); norm(p.subject) != norm(want) && strings.ToValidUTF8(want, "\uFFFD") == want {
			t.Fatalf("subject %q read back as %q", want, p.subject)
		}
		if len(p.attachments) != len(in.Message.Attachments) {
			t.Fatalf("%d attachments read back, %d sent", len(p.attachments), len(in.Message.Attachments))
		}
		for i, a := range in.Message.Attachments {
			if !bytes.Equal(p.attachments[i].ContentBytes, a.ContentBytes) {
				t.Fatalf("attachment %d differs", i)
			}
		}
	})
}

// FuzzRequestParsing: paths, Content-Range and list queries never panic, and accepted ranges are sane.
func FuzzRequestParsing(f *testing.F) {
	f.Add("/v1.0/users('alice@contoso.test')/messages/AAMk/attachments", "bytes 0-9/10", "isRead eq false")
	f.Add("/v1.0/me/mailFolders/inbox/messages", "bytes 5-3/2", "")
	f.Fuzz(func(t *testing.T, path, rng, filter string) {
		if rt, ok := parsePath(path); ok {
			if len(rt.segs) == 0 || (!rt.me && rt.user == "") {
				t.Fatalf("accepted %q as %+v", path, rt)
			}
			s := &Server{}
			s.handlerFor("GET", rt.segs)
		}
		if a, b, n, ok := parseContentRange(rng); ok && (a < 0 || b < a || n <= b) {
			t.Fatalf("range %q read as %d-%d/%d", rng, a, b, n)
		}
		_, _ = parseListQuery(map[string][]string{"$filter": {filter}, "$top": {filter}, "$select": {filter}, "$orderby": {filter}, "$expand": {filter}})
	})
}

// FuzzListQuery: any query options parse in bounded time and memory, into bounded results, and
// what is accepted re-checks (every clause has a supported operator, every selected property exists).
func FuzzListQuery(f *testing.F) {
	f.Add("isRead eq false and receivedDateTime ge 2026-01-01T00:00:00Z", "receivedDateTime desc", "subject,isRead", "attachments", "true")
	f.Add("startswith(subject,'it''s') and (from/emailAddress/address eq 'a@b.c')", "subject", "bogus", "singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')", "maybe")
	f.Add(strings.Repeat("(", 500)+strings.Repeat("isRead eq true and ", 200), strings.Repeat("subject,", 300), strings.Repeat("id,", 1000), strings.Repeat("attachments(", 300), "")
	f.Fuzz(func(t *testing.T, filter, orderby, sel, expand, count string) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		lq, e := parseListQuery(map[string][]string{"$filter": {filter}, "$orderby": {orderby}, "$select": {sel}, "$expand": {expand}, "$count": {count}, "$top": {count}})
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		in := len(filter) + len(orderby) + len(sel) + len(expand) + len(count)
		// Generous bounds: linear work in the input, never more than a few MB or a second.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(64*in+(1<<20)) {
			t.Fatalf("parsing %d bytes allocated %d bytes", in, grew)
		}
		if elapsed > time.Second {
			t.Fatalf("parsing %d bytes took %v", in, elapsed)
		}
		if e != nil {
			if e.status != 400 || e.message == "" {
				t.Fatalf("error %d %q", e.status, e.message)
			}
			return
		}
		if len(lq.filter) > maxClauses || len(lq.order) > maxOrderKeys || len(lq.sel) > len(strings.Split(sel, ",")) {
			t.Fatalf("unbounded result: %d clauses, %d keys, %d selected", len(lq.filter), len(lq.order), len(lq.sel))
		}
		for _, c := range lq.filter {
			if c.op != "startswith" && !slices.Contains(filterable[c.prop], c.op) {
				t.Fatalf("accepted %s %s", c.prop, c.op)
			}
		}
		for _, p := range lq.sel {
			if _, ok := property(p); !ok {
				t.Fatalf("selected %q", p)
			}
		}
	})
}

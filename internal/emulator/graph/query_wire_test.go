package graph_test

// OData query options of message lists, over raw HTTPS with net/http and encoding/json only.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// listed is a decoded message list.
type listed struct {
	Count *int   `json:"@odata.count"`
	Next  string `json:"@odata.nextLink"`
	Value []map[string]any
}

func (v *env) list(t *testing.T, tok, query string, hdr ...string) listed {
	t.Helper()
	a := v.do(t, "GET", "/users/bob@contoso.test/messages?"+query, tok, "", nil, hdr...)
	if a.Status != 200 {
		t.Fatalf("GET messages?%s: %d %s", query, a.Status, a.Body)
	}
	var l listed
	if err := json.Unmarshal(a.Body, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func subjects(l listed) string {
	var out []string
	for _, m := range l.Value {
		out = append(out, fmt.Sprint(m["subject"]))
	}
	return strings.Join(out, ",")
}

// q encodes a query's values (spaces as %20, as clients send them).
func q(kv ...string) string {
	vals := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		vals.Set(kv[i], kv[i+1])
	}
	return strings.ReplaceAll(vals.Encode(), "+", "%20")
}

// seeded is bob's Inbox: four messages received a day apart (m1 oldest), their Date headers in
// the opposite order, from different senders, one read, one with an attachment.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func seed(t *testing.T, v *env) {
	t.Helper()
	type m struct{ subject, from string }
	msgs := []m{{"Beta", "carol@fabrikam.test"}, {"alpha", "dave@fabrikam.test"}, {"Re: gamma", "carol@fabrikam.test"}, {"delta", "erin@fabrikam.test"}}
	for i, x := range msgs {
		date := base.AddDate(0, 0, 10-i).Format(time.RFC1123Z)
		body := "From: " + x.from + "\r\nTo: bob@contoso.test\r\nSubject: " + x.subject + "\r\nDate: " + date + "\r\n"
		if i == 3 {
			body += "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nfile body\r\n--b--\r\n"
		} else {
			body += "\r\nhello\r\n"
		}
		var flags []string
		if i == 1 {
			flags = []string{mailstore.FlagSeen}
		}
		if _, err := v.E.Store.Append(world.Bob, mailstore.Inbox, []byte(body), flags, base.AddDate(0, 0, i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWireOrderBy(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	seed(t, v)
	for _, c := range []struct{ orderby, want string }{
		{"", "delta,Re: gamma,alpha,Beta"}, // Graph's default: newest received first
		{"receivedDateTime desc", "delta,Re: gamma,alpha,Beta"},
		{"receivedDateTime asc", "Beta,alpha,Re: gamma,delta"},
		{"receivedDateTime", "Beta,alpha,Re: gamma,delta"}, // asc is OData's default
		{"sentDateTime desc", "Beta,alpha,Re: gamma,delta"},
		{"subject", "alpha,Beta,delta,Re: gamma"}, // case-insensitive
		{"SUBJECT desc", "Re: gamma,delta,Beta,alpha"},
	} {
		if got := subjects(v.list(t, tok, q("$orderby", c.orderby))); got != c.want {
			t.Errorf("$orderby=%q: %s, want %s", c.orderby, got, c.want)
		}
	}
	wantError(t, v.do(t, "GET", "/users/bob@contoso.test/messages?"+q("$orderby", "bogus desc"), tok, "", nil), 400, "RequestBroker--ParseUri")
	a := v.do(t, "GET", "/users/bob@contoso.test/messages?"+q("$orderby", "isRead"), tok, "", nil)
	wantError(t, a, 400, "BadRequest")
	if !strings.Contains(string(a.Body), "emulator does not support") {
		t.Errorf("unsupported $orderby: %s", a.Body)
	}
	wantError(t, v.do(t, "GET", "/users/bob@contoso.test/messages?"+q("$orderby", "subject sideways"), tok, "", nil), 400, "BadRequest")
}

// TestWireOrderByWithinOneSecond: receivedDateTime is shown to the second, but messages that arrive
// within one second still sort in the order they arrived, both ways (a test that delivers three
// messages and lists them oldest first must not see them shuffled).
func TestWireOrderByWithinOneSecond(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	for i, at := range []time.Time{base, base.Add(300 * time.Millisecond), base.Add(600 * time.Millisecond), base.Add(600 * time.Millisecond)} {
		body := fmt.Sprintf("From: carol@fabrikam.test\r\nTo: bob@contoso.test\r\nSubject: m%d\r\n\r\nhello\r\n", i+1)
		if _, err := v.E.Store.Append(world.Bob, mailstore.Inbox, []byte(body), nil, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ orderby, want string }{
		{"", "m4,m3,m2,m1"},
		{"receivedDateTime desc", "m4,m3,m2,m1"},
		{"receivedDateTime asc", "m1,m2,m3,m4"},
		{"subject desc,receivedDateTime asc", "m4,m3,m2,m1"},
	} {
		if got := subjects(v.list(t, tok, q("$orderby", c.orderby))); strings.ReplaceAll(got, " ", "") != c.want {
			t.Errorf("$orderby=%q: %s, want %s", c.orderby, got, c.want)
		}
	}
}
func TestWireFilter(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	seed(t, v)
	day := func(n int) string { return base.AddDate(0, 0, n).Format("2006-01-02T15:04:05Z") }
	for _, c := range []struct{ filter, want string }{
		{"isRead eq false", "delta,Re: gamma,Beta"},
		{"isRead eq true", "alpha"},
		{"isRead ne true", "delta,Re: gamma,Beta"},
		{"hasAttachments eq true", "delta"},
		{"receivedDateTime ge " + day(1) + " and receivedDateTime lt " + day(3), "Re: gamma,alpha"},
		{"receivedDateTime gt " + day(1), "delta,Re: gamma"},
		{"receivedDateTime le 2026-03-02T12:00:00Z", "alpha,Beta"},
		{"from/emailAddress/address eq 'CAROL@fabrikam.test'", "Re: gamma,Beta"},
		{"(from/emailAddress/address eq 'carol@fabrikam.test') and isRead eq false", "Re: gamma,Beta"},
		{"subject eq 'beta'", "Beta"},
		{"startswith(subject,'re:')", "Re: gamma"},
		{"startswith(subject,'nothing')", ""},
		{"subject eq 'it''s'", ""},
		{"importance eq 'normal' and hasAttachments eq false", "Re: gamma,alpha,Beta"},
	} {
		if got := subjects(v.list(t, tok, q("$filter", c.filter))); got != c.want {
			t.Errorf("$filter=%q: %q, want %q", c.filter, got, c.want)
		}
	}
	for _, c := range []struct{ filter, code, text string }{
		{"isJunk eq true", "RequestBroker--ParseUri", "Could not find a property named 'isJunk' on type 'microsoft.graph.message'."},
		{"isRead eq true or isRead eq false", "BadRequest", "emulator does not support"},
		{"bodyPreview eq 'x'", "BadRequest", "emulator does not support"},
		{"isRead eq 'yes'", "ErrorInvalidUrlQueryFilter", "invalid nodes"},
		{"receivedDateTime ge 'yesterday'", "ErrorInvalidUrlQueryFilter", "invalid nodes"},
		{"subject eq 'unclosed", "ErrorInvalidUrlQueryFilter", "invalid nodes"},
		{strings.Repeat("isRead eq true and ", 20) + "isRead eq true", "ErrorInvalidUrlQueryFilter", "clauses"},
	} {
		a := v.do(t, "GET", "/users/bob@contoso.test/messages?"+q("$filter", c.filter), tok, "", nil)
		wantError(t, a, 400, c.code)
		if !strings.Contains(string(a.Body), c.text) {
			t.Errorf("$filter=%q: %s, want %q", c.filter, a.Body, c.text)
		}
	}
	// $orderby's properties must open the $filter, in order (Graph's InefficientFilter).
	wantError(t, v.do(t, "GET", "/users/bob@contoso.test/messages?"+q("$filter", "isRead eq false", "$orderby", "receivedDateTime desc"), tok, "", nil), 400, "InefficientFilter")
	got := subjects(v.list(t, tok, q("$filter", "receivedDateTime ge 2026-01-01 and isRead eq false", "$orderby", "receivedDateTime asc")))
	if got != "Beta,Re: gamma,delta" {
		t.Errorf("filter and orderby: %s", got)
	}
	// Over the limit of what the emulator reads.
	wantError(t, v.do(t, "GET", "/users/bob@contoso.test/messages?"+q("$filter", "subject eq '"+strings.Repeat("x", 3000)+"'"), tok, "", nil), 400, "BadRequest")
}

func TestWireCountSelectExpand(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	seed(t, v)
	for _, hdr := range [][]string{{"ConsistencyLevel", "eventual"}, nil} {
		l := v.list(t, tok, q("$count", "true", "$top", "1", "$filter", "isRead eq false"), hdr...)
		if l.Count == nil || *l.Count != 3 || len(l.Value) != 1 || l.Next == "" {
			t.Errorf("$count with %v: count %v, %d values, next %q", hdr, l.Count, len(l.Value), l.Next)
		}
	}
	if l := v.list(t, tok, ""); l.Count != nil {
		t.Errorf("@odata.count without $count: %d", *l.Count)
	}
	wantError(t, v.do(t, "GET", "/users/bob@contoso.test/messages?$count=maybe", tok, "", nil), 400, "BadRequest")

	// $select keeps exactly what was asked, plus id and @odata.etag.
	l := v.list(t, tok, q("$select", "Subject,categories,isRead", "$top", "1"))
	var keys []string
	for k := range l.Value[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "@odata.etag,categories,id,isRead,subject" {
		t.Errorf("$select: %v", keys)
	}
	a := v.do(t, "GET", "/users/bob@contoso.test/messages?$select=subject,bogus", tok, "", nil)
	wantError(t, a, 400, "RequestBroker--ParseUri")
	if !strings.Contains(string(a.Body), "Could not find a property named 'bogus' on type 'microsoft.graph.message'.") {
		t.Errorf("$select=bogus: %s", a.Body)
	}
	a = v.do(t, "GET", "/users/bob@contoso.test/messages?$select=conversationIndex", tok, "", nil)
	wantError(t, a, 400, "BadRequest")
	if !strings.Contains(string(a.Body), "emulator does not support") {
		t.Errorf("$select of an unrendered property: %s", a.Body)
	}
	wantError(t, v.do(t, "GET", "/users/bob@contoso.test/messages?$search=%22hello%22", tok, "", nil), 400, "BadRequest")

	// $expand=attachments, in a list and on one message.
	l = v.list(t, tok, q("$filter", "hasAttachments eq true", "$expand", "attachments", "$select", "subject"))
	if len(l.Value) != 1 {
		t.Fatalf("%d messages", len(l.Value))
	}
	atts, _ := l.Value[0]["attachments"].([]any)
	if len(atts) != 1 || atts[0].(map[string]any)["name"] != "a.txt" || atts[0].(map[string]any)["contentBytes"] == nil {
		t.Fatalf("$expand=attachments: %v", l.Value[0])
	}
	a = v.do(t, "GET", "/users/bob@contoso.test/messages/"+l.Value[0]["id"].(string)+"?$expand=attachments", tok, "", nil)
	var one map[string]any
	json.Unmarshal(a.Body, &one)
	if a.Status != 200 || len(one["attachments"].([]any)) != 1 || !strings.HasSuffix(fmt.Sprint(one["@odata.context"]), "/messages/$entity") {
		t.Errorf("one message with $expand=attachments: %d %s", a.Status, a.Body)
	}
	wantError(t, v.do(t, "GET", "/users/bob@contoso.test/messages/"+l.Value[0]["id"].(string)+"?$top=1", tok, "", nil), 400, "BadRequest")
	att := decode(t, v.do(t, "GET", "/users/bob@contoso.test/messages/"+l.Value[0]["id"].(string)+"/attachments/"+atts[0].(map[string]any)["id"].(string), tok, "", nil))
	if att["name"] != "a.txt" || !strings.HasSuffix(fmt.Sprint(att["@odata.context"]), "/attachments/$entity") {
		t.Errorf("one attachment: %v", att)
	}
}

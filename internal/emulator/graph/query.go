package graph

// The OData query options of message lists ($top, $skip, $select, $filter, $orderby, $count,
// $expand). What the emulator accepts behaves as Graph v1.0 does; what it does not implement fails
// with Graph's error shape and a message that says so, never silently ignored.
//
// The parser is bounded: each option at most maxQueryOption bytes, at most maxClauses clauses and
// maxOrderKeys sort keys, no recursion beyond one level of parentheses.

import (
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

// Bounds of the query parser.
const (
	maxQueryOption = 2048 // bytes of one query option's value
	maxClauses     = 16   // clauses of a $filter joined by and
	maxOrderKeys   = 4    // keys of an $orderby
)

// messageProperties are the properties of Graph v1.0's message resource (structural, then
// navigation), as https://learn.microsoft.com/graph/api/resources/message lists them.
var messageProperties = []string{
	"bccRecipients", "body", "bodyPreview", "categories", "ccRecipients", "changeKey", "conversationId",
	"conversationIndex", "createdDateTime", "flag", "from", "hasAttachments", "id", "importance",
	"inferenceClassification", "internetMessageHeaders", "internetMessageId", "isDeliveryReceiptRequested",
	"isDraft", "isRead", "isReadReceiptRequested", "lastModifiedDateTime", "parentFolderId",
	"receivedDateTime", "replyTo", "sender", "sentDateTime", "subject", "toRecipients", "uniqueBody", "webLink",
	"attachments", "extensions", "multiValueExtendedProperties", "singleValueExtendedProperties",
}

// unrendered are the message properties the emulator does not produce: $select of them is refused.
var unrendered = []string{"conversationIndex", "attachments", "extensions",
	"multiValueExtendedProperties", "singleValueExtendedProperties"}

// property returns the canonical spelling of a message property (case-insensitive), ok false if
// Graph's message has no such property.
func property(name string) (string, bool) {
	for _, p := range messageProperties {
		if strings.EqualFold(p, name) {
			return p, true
		}
	}
	return "", false
}

// shown bounds user input echoed in an error message.
func shown(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}

// errNoProperty is Graph's answer to $select or $filter of a property the message type lacks:
// 400 RequestBroker--ParseUri "Could not find a property named 'isJunk' on type
// 'microsoft.graph.message'." (observed: wslyvh/paperweight#1, microsoftgraph/microsoft-graph-docs#2018).
func errNoProperty(name string) *gerr {
	return errf(400, "RequestBroker--ParseUri", "Could not find a property named '"+shown(name)+"' on type 'microsoft.graph.message'.")
}

// errUnsupported is the emulator's refusal of a valid request it does not implement.
func errUnsupported(what, supported string) *gerr {
	return errf(400, "BadRequest", "The emulator does not support "+what+"; it supports "+supported+".")
}

// errInvalidFilter is Graph's answer to a $filter it cannot read (code and text as Graph answers
// them for messages); the emulator adds what it supports.
func errInvalidFilter(why string) *gerr {
	return errf(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes: "+why+
		" (the emulator supports isRead, hasAttachments, receivedDateTime, sentDateTime, from/emailAddress/address, subject, importance and startswith(subject,'...'), joined by and).")
}

// errInefficientFilter is Graph's answer when $orderby's properties do not open the $filter in the
// same order (Microsoft Graph docs, "Update to filtering and sorting REST API"; observed in
// microsoftgraph/msgraph-sdk-dotnet#183 and mpalermiti/outlook-mcp#31).
var errInefficientFilter = errf(400, "InefficientFilter", "The restriction or sort order is too complex for this operation.")

// listQuery is a request's OData options.
type listQuery struct {
	top, skip   int
	sel         []string // canonical property names
	filter      []clause
	order       []orderKey
	count       bool
	attachments bool     // $expand=attachments
	props       []string // extended property ids asked for with $expand=singleValueExtendedProperties(...)
}

// clause is one comparison of a $filter.
type clause struct {
	prop string // canonical: isRead, hasAttachments, receivedDateTime, sentDateTime, from, subject, importance
	op   string // eq, ne, ge, gt, le, lt, startswith
	b    bool
	t    time.Time
	s    string
}

// orderKey is one key of an $orderby.
type orderKey struct {
	prop string // receivedDateTime, sentDateTime or subject
	desc bool
}

// supportedOptions are the system query options a message list reads.
var supportedOptions = []string{"$top", "$skip", "$select", "$filter", "$orderby", "$count", "$expand"}

// parseListQuery reads a message list's query options.
func parseListQuery(q url.Values) (listQuery, *gerr) {
	lq := listQuery{top: 10}
	for k := range q {
		if !strings.HasPrefix(k, "$") || containsFold(supportedOptions, k) {
			continue
		}
		if strings.EqualFold(k, "$search") {
			return lq, errUnsupported("$search", "$filter, $orderby, $select, $expand, $count, $top and $skip")
		}
		return lq, errf(400, "BadRequest", "The query parameter '"+shown(k)+"' is not supported.")
	}
	for _, k := range supportedOptions {
		if len(q.Get(k)) > maxQueryOption {
			return lq, errf(400, "BadRequest", "The "+k+" query option is longer than the emulator reads ("+strconv.Itoa(maxQueryOption)+" bytes); shorten it.")
		}
	}
	var e *gerr
	if v := q.Get("$expand"); v != "" {
		if e = lq.parseExpand(v); e != nil {
			return lq, e
		}
	}
	if lq.top, e = nonNegative(q, "$top", 10); e != nil {
		return lq, e
	}
	lq.top = min(lq.top, 1000)
	if lq.skip, e = nonNegative(q, "$skip", 0); e != nil {
		return lq, e
	}
	if lq.sel, e = parseSelect(q.Get("$select")); e != nil {
		return lq, e
	}
	if lq.order, e = parseOrderBy(q.Get("$orderby")); e != nil {
		return lq, e
	}
	if lq.filter, e = parseFilter(q.Get("$filter")); e != nil {
		return lq, e
	}
	if len(lq.filter) > 0 {
		for i, k := range lq.order {
			if i >= len(lq.filter) || lq.filter[i].prop != k.prop {
				return lq, errInefficientFilter
			}
		}
	}
	switch v := strings.ToLower(q.Get("$count")); v {
	case "", "false":
	case "true":
		lq.count = true
	default:
		return lq, errf(400, "BadRequest", "Invalid value '"+shown(q.Get("$count"))+"' for $count query option found. Valid values are 'true', 'false'.")
	}
	return lq, nil
}

// nonNegative reads $top or $skip.
func nonNegative(q url.Values, name string, def int) (int, *gerr) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errf(400, "BadRequest", "Invalid value '"+shown(v)+"' for "+name+" query option found. The "+name+" query option requires a non-negative integer value.")
	}
	return n, nil
}

// parseSelect validates $select against the message's properties.
func parseSelect(v string) ([]string, *gerr) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, ok := property(f)
		if !ok {
			return nil, errNoProperty(f)
		}
		if containsFold(unrendered, p) {
			return nil, errUnsupported("$select="+p, "$select of the message's structural properties other than conversationIndex, and $expand=attachments")
		}
		out = append(out, p)
	}
	return out, nil
}

// sortable are the properties $orderby takes.
var sortable = []string{"receivedDateTime", "sentDateTime", "subject"}

// parseOrderBy reads "prop [asc|desc], ...".
func parseOrderBy(v string) ([]orderKey, *gerr) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > maxOrderKeys {
		return nil, errUnsupported("more than "+strconv.Itoa(maxOrderKeys)+" $orderby keys", "up to "+strconv.Itoa(maxOrderKeys))
	}
	var out []orderKey
	for _, part := range parts {
		f := strings.Fields(part)
		if len(f) == 0 || len(f) > 2 {
			return nil, errf(400, "BadRequest", "Syntax error in $orderby '"+shown(part)+"': write a property, then asc or desc.")
		}
		p, ok := property(f[0])
		if !ok {
			return nil, errNoProperty(f[0])
		}
		if !containsFold(sortable, p) {
			return nil, errUnsupported("$orderby="+p, "$orderby of receivedDateTime, sentDateTime and subject")
		}
		k := orderKey{prop: p}
		if len(f) == 2 {
			switch strings.ToLower(f[1]) {
			case "asc":
			case "desc":
				k.desc = true
			default:
				return nil, errf(400, "BadRequest", "Syntax error in $orderby '"+shown(part)+"': write asc or desc after the property.")
			}
		}
		out = append(out, k)
	}
	return out, nil
}

// parseExpand reads $expand: attachments and singleValueExtendedProperties($filter=...), comma-separated.
func (lq *listQuery) parseExpand(v string) *gerr {
	for _, item := range splitTopLevel(v) {
		item = strings.TrimSpace(item)
		name, _, _ := strings.Cut(item, "(")
		p, ok := property(strings.TrimSpace(name))
		switch {
		case !ok:
			return errf(400, "BadRequest", "Parsing OData Select and Expand failed: Could not find a property named '"+shown(name)+"' on type 'microsoft.graph.message'.")
		case p == "attachments" && strings.EqualFold(item, "attachments"):
			lq.attachments = true
		case p == "singleValueExtendedProperties":
			props, e := parseExtended(item)
			if e != nil {
				return e
			}
			lq.props = append(lq.props, props...)
		default:
			return errUnsupported("$expand="+shown(item), "$expand=attachments and $expand=singleValueExtendedProperties($filter=id eq '{type} 0x{tag}')")
		}
	}
	return nil
}

// splitTopLevel splits s at the commas outside parentheses.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// ---- $filter -----------------------------------------------------------------------------------

// ftoken is a $filter token: a word, a quoted string (kind 's') or one of ( ) , .
type ftoken struct {
	kind byte // 'w', 's', '(', ')', ','
	text string
}

// lexFilter splits a $filter into tokens; at most limit of them.
func lexFilter(s string, limit int) ([]ftoken, *gerr) {
	var out []ftoken
	for i := 0; i < len(s); {
		if len(out) >= limit {
			return nil, errInvalidFilter("too many terms")
		}
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')' || c == ',':
			out = append(out, ftoken{kind: c})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, errInvalidFilter("a string is not closed with '")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' { // '' is a quote inside a string
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, ftoken{kind: 's', text: b.String()})
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t(),'", rune(s[j])) {
				j++
			}
			out = append(out, ftoken{kind: 'w', text: s[i:j]})
			i = j
		}
	}
	return out, nil
}

// parseFilter reads clauses joined by and, each optionally in parentheses.
func parseFilter(v string) ([]clause, *gerr) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	if !utf8.ValidString(v) {
		return nil, errInvalidFilter("it is not UTF-8")
	}
	toks, e := lexFilter(v, maxClauses*8)
	if e != nil {
		return nil, e
	}
	var out []clause
	for {
		if len(out) == maxClauses {
			return nil, errInvalidFilter("more than " + strconv.Itoa(maxClauses) + " clauses")
		}
		paren := len(toks) > 0 && toks[0].kind == '('
		if paren {
			toks = toks[1:]
		}
		c, rest, e := parseClause(toks)
		if e != nil {
			return nil, e
		}
		if paren {
			if len(rest) == 0 || rest[0].kind != ')' {
				return nil, errInvalidFilter("a parenthesis is not closed")
			}
			rest = rest[1:]
		}
		out = append(out, c)
		if len(rest) == 0 {
			return out, nil
		}
		if rest[0].kind != 'w' {
			return nil, errInvalidFilter("a clause ends unexpectedly")
		}
		switch strings.ToLower(rest[0].text) {
		case "and":
			toks = rest[1:]
		case "or", "not":
			return nil, errUnsupported("'"+strings.ToLower(rest[0].text)+"' in $filter", "clauses joined by and")
		default:
			return nil, errInvalidFilter("'" + shown(rest[0].text) + "' where and was expected")
		}
	}
}

// filterable maps the properties (and paths) a $filter compares to the operators each takes.
var filterable = map[string][]string{
	"isRead": {"eq", "ne"}, "hasAttachments": {"eq", "ne"},
	"receivedDateTime": {"eq", "ne", "ge", "gt", "le", "lt"}, "sentDateTime": {"eq", "ne", "ge", "gt", "le", "lt"},
	"from": {"eq"}, "subject": {"eq"}, "importance": {"eq", "ne"},
}

// parseClause reads "prop op literal" or "startswith(subject,'x')".
func parseClause(toks []ftoken) (clause, []ftoken, *gerr) {
	if len(toks) >= 6 && toks[0].kind == 'w' && strings.EqualFold(toks[0].text, "startswith") && toks[1].kind == '(' {
		if toks[2].kind != 'w' || toks[3].kind != ',' || toks[4].kind != 's' || toks[5].kind != ')' {
			return clause{}, nil, errInvalidFilter("startswith takes a property and a quoted string")
		}
		p, e := filterProperty(toks[2].text)
		if e != nil {
			return clause{}, nil, e
		}
		if p != "subject" {
			return clause{}, nil, errUnsupported("startswith("+p+",...)", "startswith(subject,'...')")
		}
		return clause{prop: p, op: "startswith", s: toks[4].text}, toks[6:], nil
	}
	if len(toks) < 3 || toks[0].kind != 'w' || toks[1].kind != 'w' {
		return clause{}, nil, errInvalidFilter("a clause is not property, operator, value")
	}
	p, e := filterProperty(toks[0].text)
	if e != nil {
		return clause{}, nil, e
	}
	op := strings.ToLower(toks[1].text)
	if !containsFold([]string{"eq", "ne", "ge", "gt", "le", "lt"}, op) {
		return clause{}, nil, errInvalidFilter("'" + shown(toks[1].text) + "' is not an operator")
	}
	if !containsFold(filterable[p], op) {
		return clause{}, nil, errUnsupported("'"+p+" "+op+"' in $filter", p+" with "+strings.Join(filterable[p], ", "))
	}
	c := clause{prop: p, op: op}
	lit := toks[2]
	switch p {
	case "isRead", "hasAttachments":
		if lit.kind != 'w' || (lit.text != "true" && lit.text != "false") {
			return clause{}, nil, errInvalidFilter(p + " compares with true or false")
		}
		c.b = lit.text == "true"
	case "receivedDateTime", "sentDateTime":
		t, ok := parseDateTime(lit)
		if !ok {
			return clause{}, nil, errInvalidFilter(p + " compares with an unquoted ISO 8601 date and time such as 2026-01-02T15:04:05Z")
		}
		c.t = t
	default:
		if lit.kind != 's' {
			return clause{}, nil, errInvalidFilter(p + " compares with a quoted string")
		}
		c.s = lit.text
	}
	return c, toks[3:], nil
}

// filterProperty reads a $filter operand: a message property or from/emailAddress/address.
func filterProperty(name string) (string, *gerr) {
	head, rest, path := strings.Cut(name, "/")
	p, ok := property(head)
	if !ok {
		return "", errNoProperty(head)
	}
	if path {
		if p == "from" && strings.EqualFold(rest, "emailAddress/address") {
			return "from", nil
		}
		return "", errUnsupported("$filter on "+shown(name), "from/emailAddress/address")
	}
	if _, ok := filterable[p]; !ok || p == "from" {
		return "", errUnsupported("$filter on "+p, "isRead, hasAttachments, receivedDateTime, sentDateTime, from/emailAddress/address, subject and importance")
	}
	return p, nil
}

// parseDateTime reads an OData DateTimeOffset literal (or a bare date, as Exchange accepts).
func parseDateTime(t ftoken) (time.Time, bool) {
	if t.kind != 'w' {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if v, err := time.Parse(layout, t.text); err == nil {
			return v.UTC(), true
		}
	}
	return time.Time{}, false
}

// ---- evaluation --------------------------------------------------------------------------------

// matches says whether a message (as messageJSON shows it) satisfies every clause. String
// comparisons are case-insensitive, as Exchange's are.
func (c clause) matches(m map[string]any) bool {
	switch c.prop {
	case "isRead", "hasAttachments":
		v, _ := m[c.prop].(bool)
		return (v == c.b) == (c.op == "eq")
	case "receivedDateTime", "sentDateTime":
		s, ok := m[c.prop].(string)
		if !ok {
			return false // a draft has neither
		}
		t, err := time.Parse(timeFormat, s)
		if err != nil {
			return false
		}
		return compareOp(t.Compare(c.t), c.op)
	case "from":
		r, _ := m["from"].(*Recipient)
		return r != nil && strings.EqualFold(r.EmailAddress.Address, c.s)
	case "subject":
		s, _ := m["subject"].(string)
		if c.op == "startswith" {
			return len(s) >= len(c.s) && strings.EqualFold(s[:len(c.s)], c.s)
		}
		return strings.EqualFold(s, c.s)
	case "importance":
		s, _ := m["importance"].(string)
		return strings.EqualFold(s, c.s) == (c.op == "eq")
	}
	return false
}

func compareOp(cmp int, op string) bool {
	switch op {
	case "eq":
		return cmp == 0
	case "ne":
		return cmp != 0
	case "ge":
		return cmp >= 0
	case "gt":
		return cmp > 0
	case "le":
		return cmp <= 0
	default:
		return cmp < 0
	}
}

// row is a listed message and its JSON.
type row struct {
	msg  mailstore.Message
	json map[string]any
}

// apply filters and sorts rows: by $orderby, then (as Graph's default) newest received first.
func (lq *listQuery) apply(rows []row) []row {
	out := rows[:0]
	for _, r := range rows {
		ok := true
		for _, c := range lq.filter {
			if ok = c.matches(r.json); !ok {
				break
			}
		}
		if ok {
			out = append(out, r)
		}
	}
	keys := append(slices.Clone(lq.order), orderKey{prop: "receivedDateTime", desc: true})
	// Messages received at the same instant keep their order of arrival, in the direction the first
	// receivedDateTime key asks for.
	arrivalDesc := keys[slices.IndexFunc(keys, func(k orderKey) bool { return k.prop == "receivedDateTime" })].desc
	sort.SliceStable(out, func(i, j int) bool {
		for _, k := range keys {
			if c := compareKey(out[i], out[j], k.prop); c != 0 {
				return (c < 0) != k.desc
			}
		}
		return (out[i].msg.UID < out[j].msg.UID) != arrivalDesc
	})
	return out
}

// compareKey compares two rows by a sortable property. receivedDateTime compares the stored time, not
// the JSON's whole seconds, so that messages received within one second keep their order.
func compareKey(x, y row, prop string) int {
	a, _ := x.json[prop].(string)
	b, _ := y.json[prop].(string)
	switch {
	case prop == "receivedDateTime" && a != "" && b != "":
		return x.msg.Received.Compare(y.msg.Received)
	case prop == "subject":
		a, b = strings.ToLower(a), strings.ToLower(b)
	}
	return strings.Compare(a, b)
}

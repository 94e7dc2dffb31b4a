package events

import (
	"fmt"
	"net/url"
	"strings"
)

// Kinds lists every Kind, in the order of a typical exchange: tokens, logins, deliveries.
func Kinds() []Kind {
	return []Kind{TokenIssued, TokenRefused, AuthAccepted, AuthRefused, MessageDelivered}
}

// Protocols lists the values of Event.Protocol.
func Protocols() []string { return []string{"identity", "imap", "pop", "smtp", "graph"} }

// Filter selects events. Empty fields match anything; a set field must match exactly, except User
// and ClientID, which compare case-insensitively as addresses and GUIDs do.
type Filter struct {
	Kinds    []Kind // any of these (none: every kind)
	Protocol string
	User     string
	App      string
	ClientID string
	Mailbox  string
}

// Match reports whether e passes f.
func (f Filter) Match(e Event) bool {
	if len(f.Kinds) > 0 {
		found := false
		for _, k := range f.Kinds {
			found = found || k == e.Kind
		}
		if !found {
			return false
		}
	}
	return (f.Protocol == "" || f.Protocol == e.Protocol) &&
		(f.User == "" || strings.EqualFold(f.User, e.User)) &&
		(f.App == "" || f.App == e.App) &&
		(f.ClientID == "" || strings.EqualFold(f.ClientID, e.ClientID)) &&
		(f.Mailbox == "" || strings.EqualFold(f.Mailbox, e.Mailbox))
}

// ParseFilter reads a Filter from query parameters: kind (repeatable or a comma list), protocol,
// user, app, client_id and mailbox. An unknown kind or protocol is an error, so a typo does not
// silently match nothing. Other parameters are left to the caller.
func ParseFilter(q url.Values) (Filter, error) {
	f := Filter{
		Protocol: q.Get("protocol"), User: q.Get("user"), App: q.Get("app"),
		ClientID: q.Get("client_id"), Mailbox: q.Get("mailbox"),
	}
	for _, v := range q["kind"] {
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if !known(Kinds(), Kind(k)) {
				return Filter{}, fmt.Errorf("unknown event kind %q: use one of %s", k, list(Kinds()))
			}
			f.Kinds = append(f.Kinds, Kind(k))
		}
	}
	if f.Protocol != "" && !known(Protocols(), f.Protocol) {
		return Filter{}, fmt.Errorf("unknown protocol %q: use one of %s", f.Protocol, list(Protocols()))
	}
	return f, nil
}

func known[T comparable](all []T, v T) bool {
	for _, a := range all {
		if a == v {
			return true
		}
	}
	return false
}

func list[T ~string](all []T) string {
	s := make([]string, len(all))
	for i, a := range all {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

package exchange

import (
	"bytes"
	"net/mail"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// Recipient is what an address is to the emulated organisation.
type Recipient int

// Kinds of recipients.
const (
	// External: a domain of no tenant: accepted and dropped (the emulator sends nothing out).
	External Recipient = iota
	// Local: a user's or a shared mailbox of the World: delivered into its INBOX.
	Local
	// NotFound: a domain of a tenant, but no such mailbox: 550 5.1.10 RecipientNotFound.
	NotFound
)

// ResolveRecipient says what addr is: a mailbox of the World (returned as the World spells it), an
// unknown address in one of its domains, or an external address.
func ResolveRecipient(w *world.World, addr string) (Recipient, string) {
	t := w.TenantForUPN(addr)
	if t == nil {
		return External, ""
	}
	if u := t.User(addr); u != nil {
		return Local, u.UPN
	}
	if m := t.SharedMailbox(addr); m != nil {
		return Local, m.Address
	}
	return NotFound, ""
}

// Deliver puts a submitted message into the INBOX of every local recipient (once each) and, when
// sentItems names a mailbox, a copy (marked \Seen) into its Sent Items. The bytes are stored as
// given: Exchange would add Received and X-MS-Exchange-* headers; the emulator keeps the message
// byte-identical so that tests can compare what was sent with what is read. External recipients
// are dropped. Each delivery is recorded in ev. It returns the mailboxes delivered to.
func Deliver(w *world.World, st *mailstore.Store, ev *events.Log, sentItems string, rcpts []string, data []byte) []string {
	var delivered []string
	seen := map[string]bool{}
	for _, r := range rcpts {
		kind, box := ResolveRecipient(w, r)
		if kind != Local || seen[strings.ToLower(box)] {
			continue
		}
		seen[strings.ToLower(box)] = true
		st.Ensure(box)
		if _, err := st.Append(box, mailstore.Inbox, data, nil, time.Time{}); err == nil {
			delivered = append(delivered, box)
			ev.Add(events.Event{Kind: events.MessageDelivered, Mailbox: box, Size: len(data)})
		}
	}
	if sentItems != "" {
		st.Ensure(sentItems)
		st.Append(sentItems, mailstore.SentItems, data, []string{mailstore.FlagSeen}, time.Time{})
	}
	return delivered
}

// CanSendAs says whether the principal of tok, authenticated for mailbox, may send as addr: a
// delegated token as its own user (and as a shared mailbox whose SendAs lists the user); an app-only
// token as the mailbox it authenticated for (its service principal holds FullAccess there).
// FullAccess alone does not grant send-as, as in Exchange (Add-RecipientPermission -AccessRights
// SendAs does). SMTP checks it at the end of DATA; Graph's sendMail will too.
func CanSendAs(tok *Token, mailbox, addr string) bool {
	if tok == nil {
		return false
	}
	if tok.AppOnly {
		return mailbox != "" && strings.EqualFold(addr, mailbox)
	}
	if strings.EqualFold(addr, tok.UPN) {
		return true
	}
	if m := tok.Tenant.SharedMailbox(addr); m != nil {
		return hasFold(m.SendAs, tok.UPN)
	}
	return false
}

// Principal is the name Exchange's SendAsDenied text gives the sender: the user of a delegated token,
// the mailbox of an app-only one.
func (d Decision) Principal() string {
	if d.Token != nil && !d.Token.AppOnly {
		return d.Token.UPN
	}
	return d.Mailbox
}

// headerSenders are the addresses of a message's From and Sender header fields.
func headerSenders(data []byte) []string {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(data)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(append(append([]byte(nil), data[:end]...), "\r\n\r\n"...)))
	if err != nil {
		return nil
	}
	var out []string
	for _, k := range []string{"From", "Sender"} {
		if list, err := msg.Header.AddressList(k); err == nil {
			for _, a := range list {
				out = append(out, a.Address)
			}
		}
	}
	return out
}

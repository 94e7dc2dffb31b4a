// Package gateway is the Graph gateway's core: a mail program's IMAP, POP3 or SMTP session carried
// out through Microsoft Graph for one mailbox, for tenants where Exchange Online's own IMAP, POP and
// SMTP AUTH are turned off. The protocol servers live in the subpackages (imapgw on go-imap's
// imapserver, smtpgw on go-smtp's server, pop3gw by hand: no maintained Go POP3 server exists); this
// package holds what they share: the hand-off of a connection from the proxy (Listener, Handoff), the
// login error a program is shown (LoginError), and the mailbox model (Mailbox, Folder, Message) with
// UIDs that stay the same across sessions, restarts and replicas (UIDStore).
//
// The proxy accepts the connection, applies its bounds before login and its password check, and
// hands the connection here; the gateway never sees a password hash, and never asks for a token
// itself except through the graph.Client it was given.
//
// What it must never do: log or answer with a token, a password or message content; make more than
// Graph's concurrent-request limit per mailbox (graph.Limiter); lose a message when Graph throttles or
// fails (an operation either completes or the program is told it did not); hand out one UID to two
// messages of a folder within one UIDVALIDITY.
package gateway

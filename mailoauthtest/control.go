package mailoauthtest

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// AddUser adds a user with a mailbox to the tenant that owns the domain of u.Address, while the
// Server runs: they can sign in and receive mail at once. As in Exchange Online, no app's existing
// permissions extend to the new mailbox (the default world's daemon opens alice's and bob's only).
// Password "" is the address's local part followed by "-password".
func (s *Server) AddUser(u User) error {
	addr, err := mail.ParseAddress(u.Address)
	if err != nil || addr.Name != "" || addr.Address != u.Address {
		return fmt.Errorf("mailoauthtest: AddUser: User.Address %q is not a plain address such as carol@contoso.test", u.Address)
	}
	local, _, _ := strings.Cut(u.Address, "@")
	if u.Password == "" {
		u.Password = local + "-password"
	}
	err = s.e.Live.Update(func(w *world.World) error {
		t := w.TenantForUPN(u.Address)
		if t == nil {
			return fmt.Errorf("mailoauthtest: AddUser: no tenant of this world has the domain of %s: use one of %s", u.Address, strings.Join(domains(w), ", "))
		}
		if t.User(u.Address) != nil || t.SharedMailbox(u.Address) != nil {
			return fmt.Errorf("mailoauthtest: AddUser: %s already has a mailbox: remove it first or choose another address", u.Address)
		}
		t.Users = append(t.Users, &world.User{UPN: u.Address, Password: u.Password, DisplayName: u.DisplayName})
		return nil
	})
	if err != nil {
		return err
	}
	s.e.Store.Ensure(u.Address)
	return nil
}

// RemoveUser deletes a user and the permissions others had on their mailbox, while the Server runs:
// from then on they cannot sign in, their refresh tokens and unexpired access tokens are refused, and
// mail to them is refused as to an unknown recipient. What their mailbox held stays readable with
// Messages.
func (s *Server) RemoveUser(address string) error {
	return s.e.Live.Update(func(w *world.World) error {
		t := w.TenantForUPN(address)
		if t == nil || t.User(address) == nil {
			return fmt.Errorf("mailoauthtest: RemoveUser: %s is no user of this world", address)
		}
		same := func(a string) bool { return strings.EqualFold(a, address) }
		t.Users = slices.DeleteFunc(t.Users, func(u *world.User) bool { return same(u.UPN) })
		for _, m := range t.SharedMailboxes {
			m.FullAccess = slices.DeleteFunc(m.FullAccess, same)
			m.SendAs = slices.DeleteFunc(m.SendAs, same)
		}
		for _, sp := range t.ServicePrincipals {
			sp.FullAccess = slices.DeleteFunc(sp.FullAccess, same)
		}
		return nil
	})
}

func domains(w *world.World) []string {
	var out []string
	for _, t := range w.Tenants {
		out = append(out, t.Domains...)
	}
	return out
}

// Fault makes an endpoint of the Server fail, for a test of a program's retries and error handling.
// It applies to the matching requests (HTTP) or commands (mail) that arrive after it is added: the
// first After go through, the next Times fail (0: every one), each as the fields say.
type Fault struct {
	// Endpoint is what fails: the identity platform's "token", "devicecode", "authorize",
	// "discovery" or "keys", "graph", "*" (every HTTP endpoint), or the mail servers' "imap", "pop"
	// or "smtp".
	Endpoint string
	After    int
	Times    int
	Latency  time.Duration // added before answering (or failing)
	// Status answers an HTTP request with this status and an Entra- or Graph-style error body.
	Status int
	// Drop closes the connection without an answer.
	Drop bool
	// Reply answers a mail command with this line instead, e.g. "421 4.3.2 Service not available"
	// (SMTP), "-ERR [SYS/TEMP] try later" (POP3), "NO try later" or "* BYE going away" (IMAP).
	Reply string
	// DisconnectAfter closes a mail connection once the server has written this many bytes to it.
	DisconnectAfter int
}

// faultEndpoints are the values of Fault.Endpoint.
var faultEndpoints = []string{"token", "devicecode", "authorize", "discovery", "keys", "graph", "*", "imap", "pop", "smtp"}

// AddFault makes the Server fail as f says, from now on, until ClearFaults or Reset.
func (s *Server) AddFault(f Fault) error {
	if !slices.Contains(faultEndpoints, f.Endpoint) {
		return fmt.Errorf("mailoauthtest: AddFault: Fault.Endpoint %q is none of %s", f.Endpoint, strings.Join(faultEndpoints, ", "))
	}
	wf := world.Fault{Endpoint: f.Endpoint, After: f.After, Times: f.Times, Latency: f.Latency, Status: f.Status,
		Drop: f.Drop, Reply: f.Reply, DisconnectAfter: f.DisconnectAfter}
	mail := wf.IsMail()
	switch {
	case f.After < 0 || f.Times < 0 || f.Latency < 0 || f.DisconnectAfter < 0:
		return fmt.Errorf("mailoauthtest: AddFault: After, Times, Latency and DisconnectAfter must not be negative")
	case mail && f.Status != 0:
		return fmt.Errorf("mailoauthtest: AddFault: Fault.Status is for HTTP endpoints; a mail server's fault takes Reply, Drop or DisconnectAfter")
	case !mail && (f.Reply != "" || f.DisconnectAfter != 0):
		return fmt.Errorf("mailoauthtest: AddFault: Fault.Reply and DisconnectAfter are for the imap, pop and smtp endpoints; an HTTP fault takes Status or Drop")
	case f.Status == 0 && !f.Drop && f.Reply == "" && f.DisconnectAfter == 0 && f.Latency == 0:
		return fmt.Errorf("mailoauthtest: AddFault: the fault does nothing: set Status, Drop, Reply, DisconnectAfter or Latency")
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("mailoauthtest: AddFault: Fault.Status %d is not an HTTP error status (400-599)", f.Status)
	}
	return s.e.Live.Update(func(w *world.World) error {
		w.Faults = append(w.Faults, wf)
		return nil
	})
}

// ClearFaults removes every fault: those added with AddFault and those of the scenario.
func (s *Server) ClearFaults() {
	_ = s.e.Live.Update(func(w *world.World) error {
		w.Faults = nil
		return nil
	})
}

// Reset puts the organisation back as Start made it: users, apps, permissions and faults. It does
// not empty mailboxes, nor forget events.
func (s *Server) Reset() { s.e.Live.Reset() }

package world

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Live is the World that running servers answer from while it changes at runtime (the control API
// adds users, sets faults, ...). Readers take a snapshot with Load — one atomic load, so a request sees
// one consistent World and never a half-made change — and must treat it as read-only. Writers call
// Update, which edits a deep copy and publishes it whole: no lock is held while servers read, and a
// request that began before an Update finishes with the World it started with.
type Live struct {
	cur   atomic.Pointer[World]
	mu    sync.Mutex // serialises Update
	newID func() string
	gen   atomic.Uint64
	// initial is the World as it was first published, for Reset.
	initial *World
}

// NewLive publishes w, which must be resolved and must not be modified afterwards except through
// Update. newID makes the object ids of what later Updates add (nil: NewID).
func NewLive(w *World, newID func() string) *Live {
	if newID == nil {
		newID = NewID
	}
	l := &Live{newID: newID, initial: w.Clone()}
	l.cur.Store(w)
	return l
}

// Load returns the current World. The caller must not modify it.
func (l *Live) Load() *World { return l.cur.Load() }

// Generation counts the Updates published so far (0 before the first), so a caller can tell that the
// World changed since it last looked.
func (l *Live) Generation() uint64 { return l.gen.Load() }

// Update applies f to a copy of the current World, resolves it and publishes it. When f or Resolve
// fails nothing is published and the error is returned.
func (l *Live) Update(f func(w *World) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := l.cur.Load().Clone()
	if err := f(next); err != nil {
		return err
	}
	if err := next.Resolve(l.newID); err != nil {
		return err
	}
	l.cur.Store(next)
	l.gen.Add(1)
	return nil
}

// Reset publishes the World as NewLive was given it, undoing every Update. Its faults get new ids:
// the servers count a fault's requests by id, so each fires again as it did after start.
func (l *Live) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.initial.Clone()
	for i := range w.Faults {
		w.Faults[i].ID = l.newID()
	}
	l.cur.Store(w)
	l.gen.Add(1)
}

// Clone returns a deep copy of w: changing the copy (its tenants, users, apps, faults, ...) never
// changes w. Certificates are shared, being immutable once parsed.
func (w *World) Clone() *World {
	out := &World{
		Tokens:          w.Tokens,
		Faults:          slices.Clone(w.Faults),
		GraphThrottling: w.GraphThrottling,
		Accounts:        make([]AccountSpec, len(w.Accounts)),
	}
	for i, a := range w.Accounts {
		a.Protocols = slices.Clone(a.Protocols)
		out.Accounts[i] = a
	}
	for _, t := range w.Tenants {
		out.Tenants = append(out.Tenants, t.clone())
	}
	for _, a := range w.Apps {
		c := *a
		c.RedirectURIs = slices.Clone(a.RedirectURIs)
		c.Secrets = slices.Clone(a.Secrets)
		c.Certificates = slices.Clone(a.Certificates)
		c.Delegated = slices.Clone(a.Delegated)
		c.Application = slices.Clone(a.Application)
		out.Apps = append(out.Apps, &c)
	}
	return out
}

func (t *Tenant) clone() *Tenant {
	c := *t
	c.Domains = slices.Clone(t.Domains)
	c.EnterpriseApps = maps.Clone(t.EnterpriseApps)
	c.Users = make([]*User, len(t.Users))
	for i, u := range t.Users {
		cu := *u
		cu.Tenant = &c
		c.Users[i] = &cu
	}
	c.SharedMailboxes = make([]*SharedMailbox, len(t.SharedMailboxes))
	for i, m := range t.SharedMailboxes {
		cm := *m
		cm.FullAccess = slices.Clone(m.FullAccess)
		cm.SendAs = slices.Clone(m.SendAs)
		c.SharedMailboxes[i] = &cm
	}
	c.ServicePrincipals = make([]*ServicePrincipal, len(t.ServicePrincipals))
	for i, sp := range t.ServicePrincipals {
		csp := *sp
		csp.FullAccess = slices.Clone(sp.FullAccess)
		c.ServicePrincipals[i] = &csp
	}
	c.ApplicationAccessPolicies = make([]*ApplicationAccessPolicy, len(t.ApplicationAccessPolicies))
	for i, p := range t.ApplicationAccessPolicies {
		cp := *p
		cp.Mailboxes = slices.Clone(p.Mailboxes)
		c.ApplicationAccessPolicies[i] = &cp
	}
	return &c
}

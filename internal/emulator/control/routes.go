package control

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

func (a *api) routes(mux *http.ServeMux) {
	p := Prefix
	mux.HandleFunc("GET "+p+"world", a.getWorld)
	mux.HandleFunc("POST "+p+"reset", a.reset)

	mux.HandleFunc("PATCH "+p+"tenants/{tenant}", a.setTenant)
	mux.HandleFunc("POST "+p+"tenants/{tenant}/users", a.addUser)
	mux.HandleFunc("PATCH "+p+"tenants/{tenant}/users/{upn}", a.setUser)
	mux.HandleFunc("DELETE "+p+"tenants/{tenant}/users/{upn}", a.removeUser)
	mux.HandleFunc("POST "+p+"tenants/{tenant}/shared-mailboxes", a.addShared)
	mux.HandleFunc("DELETE "+p+"tenants/{tenant}/shared-mailboxes/{address}", a.removeShared)
	mux.HandleFunc("POST "+p+"tenants/{tenant}/exchange-service-principals", a.addServicePrincipal)

	mux.HandleFunc("POST "+p+"apps", a.addApp)
	mux.HandleFunc("PATCH "+p+"apps/{app}", a.setApp)
	mux.HandleFunc("DELETE "+p+"apps/{app}", a.removeApp)
	mux.HandleFunc("POST "+p+"apps/{app}/secrets", a.addSecret)
	mux.HandleFunc("DELETE "+p+"apps/{app}/secrets/{n}", a.removeSecret)
	mux.HandleFunc("POST "+p+"apps/{app}/certificates", a.addCertificate)
	mux.HandleFunc("DELETE "+p+"apps/{app}/certificates/{n}", a.removeCertificate)

	mux.HandleFunc("GET "+p+"faults", a.getFaults)
	mux.HandleFunc("POST "+p+"faults", a.addFault)
	mux.HandleFunc("DELETE "+p+"faults", a.clearFaults)
	mux.HandleFunc("DELETE "+p+"faults/{id}", a.removeFault)

	mux.HandleFunc("POST "+p+"mailboxes/{address}/messages", a.deliver)
	mux.Handle("GET "+p+"events", events.Handler(a.Events))
	mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no control endpoint "+r.Method+" "+r.URL.Path+"; docs/emulator.md lists them")
	})
}

func (a *api) getWorld(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, viewWorld(a.Live.Load()))
}

// reset publishes the World as the emulator started with it and empties every mailbox. Tokens
// already issued stay valid as long as what they name still exists.
func (a *api) reset(w http.ResponseWriter, r *http.Request) {
	a.Live.Reset()
	for _, addr := range a.Store.Addresses() {
		emptyMailbox(a.Store.Mailbox(addr))
	}
	for _, t := range a.Live.Load().Tenants {
		for _, u := range t.Users {
			a.Store.Ensure(u.UPN)
		}
		for _, m := range t.SharedMailboxes {
			a.Store.Ensure(m.Address)
		}
	}
	if a.OnReset != nil {
		a.OnReset()
	}
	a.Log.Info("control: reset to the scenario")
	w.WriteHeader(http.StatusNoContent)
}

// emptyMailbox removes every message, and the folders that are not default ones.
func emptyMailbox(m *mailstore.Mailbox) {
	if m == nil {
		return
	}
	for _, name := range m.Folders() {
		if err := m.DeleteFolder(name); err == nil {
			continue
		}
		if f := m.Folder(name); f != nil {
			var ids []string
			for _, msg := range f.Messages() {
				ids = append(ids, msg.ID)
			}
			f.Delete(ids...)
		}
	}
}

func (a *api) setTenant(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	if err := a.update(r, func(wd *world.World) error { return wd.SetTenant(r.PathValue("tenant"), keys) }); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) addUser(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	var upn string
	if err := a.update(r, func(wd *world.World) error {
		u, err := wd.AddUser(r.PathValue("tenant"), keys)
		if err == nil {
			upn = u.UPN
		}
		return err
	}); err != nil {
		fail(w, err)
		return
	}
	a.Store.Ensure(upn)
	// The published World has the ids Resolve gave.
	if t := a.Live.Load().Tenant(r.PathValue("tenant")); t != nil && t.User(upn) != nil {
		writeJSON(w, http.StatusCreated, viewUser(t.User(upn)))
		return
	}
	writeJSON(w, http.StatusCreated, userView{UPN: upn})
}

func (a *api) setUser(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	if err := a.update(r, func(wd *world.World) error {
		return wd.SetUser(r.PathValue("tenant"), r.PathValue("upn"), keys, a.Now())
	}); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeUser deletes the user from the directory; the mailbox's messages stay in the store, out of
// reach, as a deleted user's mailbox is in Exchange Online.
func (a *api) removeUser(w http.ResponseWriter, r *http.Request) {
	if err := a.update(r, func(wd *world.World) error { return wd.RemoveUser(r.PathValue("tenant"), r.PathValue("upn")) }); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) addShared(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	var addr string
	if err := a.update(r, func(wd *world.World) error {
		m, err := wd.AddSharedMailbox(r.PathValue("tenant"), keys)
		if err == nil {
			addr = m.Address
		}
		return err
	}); err != nil {
		fail(w, err)
		return
	}
	a.Store.Ensure(addr)
	if t := a.Live.Load().Tenant(r.PathValue("tenant")); t != nil && t.SharedMailbox(addr) != nil {
		writeJSON(w, http.StatusCreated, viewShared(t.SharedMailbox(addr)))
		return
	}
	writeJSON(w, http.StatusCreated, sharedView{Address: addr})
}

func (a *api) removeShared(w http.ResponseWriter, r *http.Request) {
	if err := a.update(r, func(wd *world.World) error {
		return wd.RemoveSharedMailbox(r.PathValue("tenant"), r.PathValue("address"))
	}); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) addServicePrincipal(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	if err := a.update(r, func(wd *world.World) error { return wd.AddServicePrincipal(r.PathValue("tenant"), keys) }); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// addApp registers an app: {"name": ..., scenario keys}. A confidential app is given a client
// secret (valid two years), returned once in "secret".
func (a *api) addApp(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	name, _, err := take[string](keys, "name")
	if err != nil || name == "" {
		writeError(w, http.StatusBadRequest, "missing `name`: name the app, e.g. {\"name\": \"tool\", \"public\": true}")
		return
	}
	var secret string
	if err := a.update(r, func(wd *world.World) error {
		app, err := wd.AddApp(name, keys)
		if err != nil {
			return err
		}
		if !app.Public {
			secret = a.NewSecret()
			app.Secrets = append(app.Secrets, world.Secret{Value: secret, Expires: a.Now().Add(2 * 365 * 24 * time.Hour)})
		}
		return nil
	}); err != nil {
		fail(w, err)
		return
	}
	view := appView{Name: name}
	if app := a.Live.Load().App(name); app != nil {
		view = viewApp(app)
	}
	view.Secret = secret
	writeJSON(w, http.StatusCreated, view)
}

func (a *api) setApp(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	if err := a.update(r, func(wd *world.World) error { return wd.SetApp(r.PathValue("app"), keys) }); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) removeApp(w http.ResponseWriter, r *http.Request) {
	if err := a.update(r, func(wd *world.World) error { return wd.RemoveApp(r.PathValue("app")) }); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// addSecret adds a client secret: {"expires": "RFC 3339"} or {} for two years. The value is in the
// answer, once.
func (a *api) addSecret(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	expires := a.Now().Add(2 * 365 * 24 * time.Hour)
	if s, set, err := take[string](keys, "expires"); err != nil || (set && s == "") {
		writeError(w, http.StatusBadRequest, "`expires` must be an RFC 3339 time, e.g. \"2027-01-01T00:00:00Z\"")
		return
	} else if set {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "`expires` must be an RFC 3339 time, e.g. \"2027-01-01T00:00:00Z\"")
			return
		}
		expires = t
	}
	for k := range keys {
		writeError(w, http.StatusBadRequest, "unknown key `"+k+"`: a secret takes only `expires`")
		return
	}
	value := a.NewSecret()
	var n int
	if err := a.update(r, func(wd *world.World) error {
		if err := wd.AddSecret(r.PathValue("app"), value, expires); err != nil {
			return err
		}
		n = len(wd.App(r.PathValue("app")).Secrets)
		return nil
	}); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, secretView{N: n, Hint: hint(value), Expires: expires.UTC(), Value: value})
}

func (a *api) removeSecret(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "name the secret by its number `n` as GET world lists it (1 for the first)")
		return
	}
	if err := a.update(r, func(wd *world.World) error { return wd.RemoveSecret(r.PathValue("app"), n) }); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// addCertificate registers the certificate in the body (PEM; only its public part is read) with an
// app, for client assertions.
func (a *api) addCertificate(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "the certificate is larger than 64 KiB; send one PEM certificate")
		return
	}
	var cert *x509.Certificate
	for rest := data; cert == nil; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert, err = x509.ParseCertificate(b.Bytes)
			if err != nil {
				writeError(w, http.StatusBadRequest, "the CERTIFICATE block does not parse as an X.509 certificate; send the app's certificate in PEM")
				return
			}
		}
	}
	if cert == nil {
		writeError(w, http.StatusBadRequest, "the body holds no PEM CERTIFICATE block; send the app's certificate (its private key stays with the client)")
		return
	}
	var n int
	if err := a.update(r, func(wd *world.World) error {
		if err := wd.AddCertificate(r.PathValue("app"), cert); err != nil {
			return err
		}
		n = len(wd.App(r.PathValue("app")).Certificates)
		return nil
	}); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, viewCert(n, cert))
}

func (a *api) removeCertificate(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "name the certificate by its number `n` as GET world lists it (1 for the first)")
		return
	}
	if err := a.update(r, func(wd *world.World) error { return wd.RemoveCertificate(r.PathValue("app"), n) }); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) getFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, viewWorld(a.Live.Load()).Faults)
}

func (a *api) addFault(w http.ResponseWriter, r *http.Request) {
	keys, ok := readKeys(w, r)
	if !ok {
		return
	}
	var f world.Fault
	if err := a.update(r, func(wd *world.World) error {
		var err error
		f, err = wd.AddFault(keys, world.NewID)
		return err
	}); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, viewFault(f))
}

func (a *api) clearFaults(w http.ResponseWriter, r *http.Request) {
	_ = a.update(r, func(wd *world.World) error { wd.Faults = nil; return nil })
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) removeFault(w http.ResponseWriter, r *http.Request) {
	if err := a.update(r, func(wd *world.World) error { return wd.RemoveFault(r.PathValue("id")) }); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deliver puts the body, an RFC 5322 message, into the mailbox's INBOX, as mail from outside would
// arrive (an event message.delivered is logged).
func (a *api) deliver(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	wd := a.Live.Load()
	if kind, _ := exchange.ResolveRecipient(wd, addr); kind != exchange.Local {
		writeError(w, http.StatusNotFound, "no mailbox "+addr+"; deliver to a user or shared mailbox of the World")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMessageBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "the message is larger than 35 MiB, Exchange Online's default limit")
		} else {
			writeError(w, http.StatusBadRequest, "the message could not be read")
		}
		return
	}
	if len(data) == 0 {
		writeError(w, http.StatusBadRequest, "the body is empty; send the RFC 5322 message itself")
		return
	}
	_, box := exchange.ResolveRecipient(wd, addr)
	a.Store.Ensure(box)
	m, err := a.Store.Append(box, mailstore.Inbox, data, nil, time.Time{})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the message could not be stored")
		return
	}
	a.Events.Add(events.Event{Kind: events.MessageDelivered, Mailbox: box, Size: len(data)})
	writeJSON(w, http.StatusCreated, map[string]string{"mailbox": box, "id": m.ID})
}

package world_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestRuntimeChangesFollowScenarioRules: what the control API adds is checked by the scenario
// parser's own rules, with messages naming the key, and applied only when valid.
func TestRuntimeChangesFollowScenarioRules(t *testing.T) {
	live := world.NewLive(resolved(t), nil)
	err := live.Update(func(w *world.World) error {
		_, err := w.AddUser("contoso", world.Keys{"upn": "carol@contoso.test", "smtp_auth": "off"})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "smtp_auth") || strings.Contains(err.Error(), "request:") {
		t.Fatalf("bad smtp_auth: %v", err)
	}
	if err := live.Update(func(w *world.World) error {
		_, err := w.AddUser("contoso", world.Keys{"upn": "carol@fabrikam.test"})
		return err
	}); err == nil || !strings.Contains(err.Error(), "not one of tenant contoso") {
		t.Fatalf("foreign domain: %v", err)
	}
	if err := live.Update(func(w *world.World) error {
		_, err := w.AddUser("contoso", world.Keys{"upn": "alice@contoso.test"})
		return err
	}); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("duplicate: %v", err)
	}
	if live.Load().Tenant("contoso").User("carol@contoso.test") != nil {
		t.Fatal("a refused change was published")
	}
	if err := live.Update(func(w *world.World) error {
		_, err := w.AddUser("contoso", world.Keys{"upn": "carol@contoso.test", "password": "pw", "imap_disabled": true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	u := live.Load().Tenant("contoso").User("carol@contoso.test")
	if u == nil || u.Password != "pw" || !u.Mailbox.IMAPDisabled || u.ObjectID == "" || u.Tenant == nil {
		t.Fatalf("carol = %+v", u)
	}
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	if err := live.Update(func(w *world.World) error {
		return w.SetUser("contoso", "carol@contoso.test", world.Keys{"imap_disabled": false, "revoke_sessions": true}, now)
	}); err != nil {
		t.Fatal(err)
	}
	u = live.Load().Tenant("contoso").User("carol@contoso.test")
	if u.Mailbox.IMAPDisabled || !u.RevokedBefore.After(now) || u.Password != "pw" {
		t.Fatalf("after SetUser: %+v", u)
	}
	err = live.Update(func(w *world.World) error { return w.RemoveUser("contoso", "nobody@contoso.test") })
	if !errors.Is(err, world.ErrNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
}

func TestRuntimeFaults(t *testing.T) {
	w := resolved(t)
	if _, err := w.AddFault(world.Keys{"endpoint": "smtp", "status": int64(503)}, world.NewID); err == nil || !strings.Contains(err.Error(), "reply") {
		t.Fatalf("mail fault with a status: %v", err)
	}
	if _, err := w.AddFault(world.Keys{"endpoint": "token", "reply": "x"}, world.NewID); err == nil {
		t.Fatal("HTTP fault with a reply was accepted")
	}
	f, err := w.AddFault(world.Keys{"endpoint": "smtp", "reply": "421 4.3.2 Service not available", "times": int64(1), "probability": 0.5, "seed": int64(7)}, world.NewID)
	if err != nil {
		t.Fatal(err)
	}
	if f.ID == "" || !f.IsMail() || f.Reply == "" || f.Times != 1 || f.Probability != 0.5 || f.Seed != 7 {
		t.Fatalf("fault = %+v", f)
	}
	if err := w.RemoveFault(f.ID); err != nil || len(w.Faults) != 0 {
		t.Fatalf("RemoveFault: %v, %d left", err, len(w.Faults))
	}
}

func TestRuntimeApps(t *testing.T) {
	w := resolved(t)
	a, err := w.AddApp("tool", world.Keys{"delegated": []any{"IMAP.AccessAsUser.All"}, "public": true})
	if err != nil {
		t.Fatal(err)
	}
	if a.Tenant != "contoso" || len(a.Delegated) != 1 || !a.Consented {
		t.Fatalf("app = %+v", a)
	}
	if _, err := w.AddApp("tool2", world.Keys{"delegated": []any{"IMAP.Nope"}}); err == nil || !strings.Contains(err.Error(), "IMAP.Nope") {
		t.Fatalf("unknown permission: %v", err)
	}
	if err := w.SetApp("daemon", world.Keys{"admin_consented": false}); err != nil || w.App("daemon").AdminConsented {
		t.Fatalf("SetApp: %v", err)
	}
	if err := w.SetTenant("contoso", world.Keys{"smtp_basic_auth": "retired"}); err != nil || !w.Tenant("contoso").SMTPBasicAuthRetired {
		t.Fatalf("SetTenant: %v", err)
	}
	if err := w.RemoveApp("daemon"); err != nil || w.App("daemon") != nil || w.Tenant("contoso").ServicePrincipal(&world.App{Name: "daemon"}) != nil {
		t.Fatalf("RemoveApp: %v", err)
	}
}

func resolved(t *testing.T) *world.World {
	t.Helper()
	w := world.Default()
	if err := w.Resolve(world.NewID); err != nil {
		t.Fatal(err)
	}
	return w
}

package world_test

import (
	"crypto/x509"
	"reflect"
	"sync"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestCloneSharesNothing walks a full World and its Clone side by side: no slice, map or pointer of the
// copy may alias the original's (but parsed certificates, which nothing modifies), so an Update can
// never change a World a request is still reading.
func TestCloneSharesNothing(t *testing.T) {
	w := world.Default()
	if err := w.Resolve(world.NewID); err != nil {
		t.Fatal(err)
	}
	w.Faults = append(w.Faults, world.Fault{Endpoint: "token", Status: 503})
	w.Tenants[0].SharedMailboxes = append(w.Tenants[0].SharedMailboxes, &world.SharedMailbox{Address: "s@x", FullAccess: []string{"a"}, SendAs: []string{"b"}})
	w.Tenants[0].ApplicationAccessPolicies = append(w.Tenants[0].ApplicationAccessPolicies, &world.ApplicationAccessPolicy{App: "a", Mailboxes: []string{"m"}})
	w.Apps[0].Secrets = append(w.Apps[0].Secrets, world.Secret{Value: "v"})
	c := w.Clone()
	if !reflect.DeepEqual(w, c) {
		t.Fatal("Clone is not equal to the original")
	}
	certType := reflect.TypeOf((*x509.Certificate)(nil))
	seen := map[uintptr]bool{}
	var walk func(path string, a, b reflect.Value)
	walk = func(path string, a, b reflect.Value) {
		switch a.Kind() {
		case reflect.Pointer:
			if a.IsNil() || a.Type() == certType {
				return
			}
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: the clone shares the original's pointer", path)
				return
			}
			if seen[a.Pointer()] { // User.Tenant points back up
				return
			}
			seen[a.Pointer()] = true
			walk(path, a.Elem(), b.Elem())
		case reflect.Slice:
			if a.Len() > 0 && a.Pointer() == b.Pointer() {
				t.Errorf("%s: the clone shares the original's slice", path)
			}
			for i := 0; i < a.Len(); i++ {
				walk(path+"[]", a.Index(i), b.Index(i))
			}
		case reflect.Map:
			if a.Len() > 0 && a.Pointer() == b.Pointer() {
				t.Errorf("%s: the clone shares the original's map", path)
			}
		case reflect.Struct:
			for i := 0; i < a.NumField(); i++ {
				walk(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
			}
		}
	}
	walk("World", reflect.ValueOf(w), reflect.ValueOf(c))
	if u := c.Tenants[0].Users[0]; u.Tenant != c.Tenants[0] {
		t.Error("a cloned user's Tenant is not the cloned tenant")
	}
}

// TestLiveUpdateWhileReading runs readers beside writers (under -race): each reader sees a whole
// World, an Update that fails publishes nothing, and Reset brings the first World back.
func TestLiveUpdateWhileReading(t *testing.T) {
	w := world.Default()
	if err := w.Resolve(world.NewID); err != nil {
		t.Fatal(err)
	}
	users := len(w.Tenants[0].Users)
	l := world.NewLive(w, nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cur := l.Load()
				for _, u := range cur.Tenants[0].Users {
					if u.Tenant != cur.Tenants[0] || u.ObjectID == "" {
						t.Error("a reader saw a user not linked to its tenant or without an object id")
						return
					}
				}
			}
		}()
	}
	for i := range 50 {
		if err := l.Update(func(w *world.World) error {
			w.Tenants[0].Users = append(w.Tenants[0].Users, &world.User{UPN: "u" + string(rune('a'+i%26)) + "@contoso.test"})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got := len(l.Load().Tenants[0].Users); got != users+50 {
		t.Fatalf("%d users after 50 additions to %d", got, users)
	}
	if l.Generation() != 50 {
		t.Errorf("Generation %d after 50 updates", l.Generation())
	}
	if err := l.Update(func(w *world.World) error {
		w.Apps = append(w.Apps, &world.App{Name: "bad", Tenant: "nowhere"})
		return nil
	}); err == nil {
		t.Fatal("an Update naming a tenant that does not exist was published")
	}
	if l.Load().App("bad") != nil {
		t.Fatal("a failed Update changed the World")
	}
	l.Reset()
	if got := len(l.Load().Tenants[0].Users); got != users {
		t.Fatalf("%d users after Reset, want %d", got, users)
	}
}

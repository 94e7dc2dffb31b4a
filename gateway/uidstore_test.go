package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/redistest"
)

const testMailbox = "Alice@Contoso.test"

// checkSharedStores runs the UID store's promises on two stores over one place (two processes, as
// far as the stores can tell): concurrent Assigns of overlapping ids agree, UIDs are unique and in
// the order given, a forgotten id never gets its UID back, and a new folder gets a new UIDVALIDITY.
func checkSharedStores(t *testing.T, a, b UIDStore) {
	ctx := context.Background()
	ids := make([]string, 60)
	for i := range ids {
		ids[i] = fmt.Sprintf("AAMkAG-immutable-%03d", i)
	}
	type result struct {
		validity uint32
		uids     map[string]uint32
	}
	results := make([]result, 8)
	var wg sync.WaitGroup
	for w := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if w%2 == 1 {
				s = b
			}
			r := result{uids: map[string]uint32{}}
			// Each worker asks for overlapping windows, in its own order.
			for start := w % 3; start < len(ids); start += 7 {
				batch := ids[start:min(start+10, len(ids))]
				v, uids, err := s.Assign(ctx, testMailbox, "folder-1", batch)
				if err != nil {
					t.Error(err)
					return
				}
				if len(uids) != len(batch) {
					t.Errorf("Assign gave %d UIDs for %d ids", len(uids), len(batch))
					return
				}
				r.validity = v
				for i, id := range batch {
					r.uids[id] = uids[i]
				}
			}
			results[w] = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Every id is known now: both stores give each its one UID.
	va, all, err := a.Assign(ctx, testMailbox, "folder-1", ids)
	if err != nil {
		t.Fatal(err)
	}
	vb, allB, err := b.Assign(ctx, strings.ToLower(testMailbox), "folder-1", ids)
	if err != nil {
		t.Fatal(err)
	}
	if va != vb || va == 0 {
		t.Fatalf("UIDVALIDITY %d and %d, want one, not 0", va, vb)
	}
	seen := map[uint32]string{}
	for i, id := range ids {
		if all[i] != allB[i] {
			t.Fatalf("%s: UID %d in one store, %d in the other", id, all[i], allB[i])
		}
		if other, dup := seen[all[i]]; dup {
			t.Fatalf("UID %d given to %s and %s", all[i], other, id)
		}
		seen[all[i]] = id
		for w, r := range results {
			if u, ok := r.uids[id]; ok && (u != all[i] || r.validity != va) {
				t.Fatalf("worker %d got UID %d/%d for %s, now %d/%d", w, r.validity, u, id, va, all[i])
			}
		}
	}
	if len(seen) != len(ids) {
		t.Fatalf("%d UIDs for %d ids", len(seen), len(ids))
	}

	// New ids get the next UIDs, in the order given.
	_, fresh, err := b.Assign(ctx, testMailbox, "folder-1", []string{"new-z", "new-a", ids[5]})
	if err != nil {
		t.Fatal(err)
	}
	if fresh[0] != uint32(len(ids))+1 || fresh[1] != fresh[0]+1 || fresh[2] != all[5] {
		t.Fatalf("new-z, new-a, known: UIDs %v, want %d, %d, %d", fresh, len(ids)+1, len(ids)+2, all[5])
	}

	// A forgotten id that comes back is a new message: a new UID, never its old one.
	if err := a.Forget(ctx, testMailbox, "folder-1", []string{ids[0], "new-a"}); err != nil {
		t.Fatal(err)
	}
	_, back, err := b.Assign(ctx, testMailbox, "folder-1", []string{ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	if back[0] <= fresh[1] {
		t.Fatalf("a forgotten id came back with UID %d, want one above %d", back[0], fresh[1])
	}
	// The next UID stays above every UID given, the forgotten ones included.
	for _, s := range []UIDStore{a, b} {
		n, err := s.(nextUIDer).nextUID(ctx, testMailbox, "folder-1")
		if err != nil || n != back[0]+1 {
			t.Fatalf("nextUID: %d, %v; want %d", n, err, back[0]+1)
		}
		if n, err := s.(nextUIDer).nextUID(ctx, testMailbox, "no-such-folder"); err != nil || n != 1 {
			t.Fatalf("nextUID of an unknown folder: %d, %v; want 1", n, err)
		}
	}
	if err := b.Forget(ctx, testMailbox, "never-assigned-folder", []string{"x"}); err != nil {
		t.Fatalf("Forget in an unknown folder: %v", err)
	}

	// Another folder (a folder deleted and made again has a new id) gets another UIDVALIDITY, even
	// within the same second; UIDs start at 1 there; another mailbox is apart.
	v2, u2, err := b.Assign(ctx, testMailbox, "folder-2", []string{ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	if v2 == va || u2[0] != 1 {
		t.Fatalf("folder-2: UIDVALIDITY %d (folder-1's %d), UID %d; want a new UIDVALIDITY and UID 1", v2, va, u2[0])
	}
	v3, _, err := a.Assign(ctx, testMailbox, "folder-3", nil)
	if err != nil || v3 == v2 || v3 == va {
		t.Fatalf("folder-3: UIDVALIDITY %d, %v; want one unlike %d and %d", v3, err, va, v2)
	}
	_, u4, err := a.Assign(ctx, "bob@contoso.test", "folder-1", []string{ids[9]})
	if err != nil || u4[0] != 1 {
		t.Fatalf("another mailbox's folder: UID %v, %v; want 1", u4, err)
	}
}

func TestFileUIDStoreSharedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uids")
	checkSharedStores(t, NewFileUIDStore(dir), NewFileUIDStore(dir))
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(strings.ToLower(path), "contoso") || strings.Contains(path, "folder-") {
			t.Errorf("%s names a mailbox or folder in clear", path)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFileUIDStoreRefusesDamagedFile(t *testing.T) {
	dir := t.TempDir()
	s := NewFileUIDStore(dir)
	ctx := context.Background()
	if _, _, err := s.Assign(ctx, testMailbox, "f", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, nameHash(testMailbox), nameHash("f"))
	if err := os.WriteFile(path, []byte("mailoauth-uids 1\nvalidity 7\nnext 2\nnot-a-number a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A damaged map must not be replaced by a new one: that would give the same UIDs to others.
	if _, _, err := s.Assign(ctx, testMailbox, "f", []string{"b"}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Assign over a damaged file: %v, want an error naming %s", err, path)
	}
}

func TestRedisUIDStoreShared(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	pass := filepath.Join(dir, "redis-password")
	if err := os.WriteFile(pass, []byte(srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Store{Backend: config.BackendRedis, URL: srv.URL(), Username: srv.User, PasswordFile: pass, Prefix: "test:"}
	a, ca, err := OpenUIDStore(c)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	b, cb, err := OpenUIDStore(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	checkSharedStores(t, a, b)

	// Keys are the prefix's, and name no mailbox in clear.
	keys, _, err := a.(*RedisUIDStore).c.Scan(context.Background(), 0, "*", 10000).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys written")
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "test:uid") || strings.Contains(strings.ToLower(k), "contoso") {
			t.Errorf("key %q: want the prefix test:uid and no address", k)
		}
	}
}

func TestOpenUIDStoreFileBesideTokens(t *testing.T) {
	dir := t.TempDir()
	s, closer, err := OpenUIDStore(config.Store{Path: filepath.Join(dir, "tokens.enc")})
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if _, _, err := s.Assign(context.Background(), testMailbox, "f", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "uids")); err != nil || !fi.IsDir() {
		t.Fatalf("no uids directory beside the token file: %v", err)
	}
}

func TestMemUIDStore(t *testing.T) {
	s := newMemUIDStore()
	checkSharedStores(t, s, s)
}

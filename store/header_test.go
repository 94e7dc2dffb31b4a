package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// TestFileHeaderBitFlipSaysDamaged (issue 13, 9b): a bit flipped anywhere in the header — magic,
// key-derivation parameters, salt, key check, nonce, checksum — reads as a damaged store, never as a
// wrong passphrase (which would send the user hunting for a passphrase that is right), and costs no
// key derivation. Nothing is overwritten: putting the byte back gives the entries back. A wrong
// passphrase still says so.
func TestFileHeaderBitFlipSaysDamaged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	a, _ := OpenFile(path, passphrase("right"))
	put(t, a, "work", "refresh-token-1")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(good, []byte(magic)) {
		t.Fatalf("a new store starts with %q, want %q", good[:len(magic)], magic)
	}
	ctx := context.Background()
	for i := range headerLen {
		bad := bytes.Clone(good)
		bad[i] ^= 1 << (i % 8)
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		s, _ := OpenFile(path, passphrase("right")) // a new process: nothing derived from the damaged header
		_, err := s.Load(ctx, "work")
		if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("header byte %d flipped: Load says %v; want a damaged store, not a wrong passphrase", i, err)
		}
		uerr := s.Update(ctx, "work", func([]byte) ([]byte, error) { return []byte("overwritten"), nil })
		if !errors.Is(uerr, ErrCorrupt) {
			t.Fatalf("header byte %d flipped: Update says %v", i, uerr)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, bad) {
			t.Fatalf("header byte %d flipped: the damaged file was overwritten", i)
		}
	}
	t.Logf("each of the %d header bytes flipped: damaged, file left as it was", headerLen)

	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Load(ctx, "work"); err != nil || string(got) != "refresh-token-1" {
		t.Fatalf("the repaired file reads %q, %v", got, err)
	}
	w, _ := OpenFile(path, passphrase("wrong"))
	_, err = w.Load(ctx, "work")
	if !errors.Is(err, ErrWrongKey) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

// TestFileVersion1StillRead: a store written before the header checksum opens with its passphrase, a
// wrong one says so, and the next write upgrades it to version 2 with every entry kept.
func TestFileVersion1StillRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	f, _ := OpenFile(path, passphrase("right"))
	if err := f.ensureDir(); err != nil {
		t.Fatal(err)
	}
	writeV1(t, f, map[string][]byte{"work": []byte("rt-work"), "home": []byte("rt-home")})
	ctx := context.Background()

	if _, err := (mustOpen(t, path, "wrong")).Load(ctx, "work"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("version 1 store, wrong passphrase: %v", err)
	}
	s := mustOpen(t, path, "right")
	if got, err := s.Load(ctx, "work"); err != nil || string(got) != "rt-work" {
		t.Fatalf("version 1 store reads %q, %v", got, err)
	}
	put(t, s, "work", "rt-work-2")
	raw, _ := os.ReadFile(path)
	if !bytes.HasPrefix(raw, []byte(magic)) {
		t.Fatalf("after a write the store starts with %q, want %q", raw[:len(magic)], magic)
	}
	for k, want := range map[string]string{"work": "rt-work-2", "home": "rt-home"} {
		if got, err := mustOpen(t, path, "right").Load(ctx, k); err != nil || string(got) != want {
			t.Fatalf("after the upgrade %s reads %q, %v; want %q", k, got, err, want)
		}
	}
}

func mustOpen(t *testing.T, path, pass string) *File {
	t.Helper()
	f, err := OpenFile(path, passphrase(pass))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// writeV1 writes entries as the store wrote them before version 2: magic MOSTORE1, no checksum, the
// header (without checksum) as the additional data.
func writeV1(t *testing.T, f *File, entries map[string][]byte) {
	t.Helper()
	h, err := f.newHeader()
	if err != nil {
		t.Fatal(err)
	}
	h.nonce = make([]byte, chacha20poly1305.NonceSizeX)
	_, _ = rand.Read(h.nonce)
	key, err := f.keys.Derive(h.Params)
	if err != nil {
		t.Fatal(err)
	}
	hdr := h.marshal()[:headerLen1]
	copy(hdr, magicV1)
	plain, _ := json.Marshal(map[string]any{"entries": entries})
	aead, _ := chacha20poly1305.NewX(key)
	if err := os.WriteFile(f.path, aead.Seal(hdr, h.nonce, plain, hdr), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A store written by a newer mailoauth (a later format) is not called damaged — that would tell the
// user to remove a store the newer binary reads — and is never overwritten.
func TestFileNewerFormatSaysUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	a, _ := OpenFile(path, passphrase("right"))
	put(t, a, "work", "refresh-token-1")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(magic)-1] = '3'
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, _ := OpenFile(path, passphrase("right"))
	_, err = s.Load(ctx, "work")
	if !errors.Is(err, ErrNewerFormat) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "upgrade this mailoauth") || strings.Contains(err.Error(), "remove") {
		t.Fatalf("Load of a format 3 store: %v; want ErrNewerFormat saying to upgrade, not to remove it", err)
	}
	if uerr := s.Update(ctx, "work", func([]byte) ([]byte, error) { return []byte("overwritten"), nil }); !errors.Is(uerr, ErrNewerFormat) {
		t.Fatalf("Update of a format 3 store: %v", uerr)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, data) {
		t.Fatal("a store in a newer format was overwritten")
	}
}

package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/store/internal/seal"
)

func passphrase(p string) KeySource {
	return KeySource{Passphrase: func() ([]byte, error) { return []byte(p), nil }}
}

var testKey = bytes.Repeat([]byte{7}, 32)

func rawKey() KeySource { return KeySource{Key: func() ([]byte, error) { return testKey, nil }} }

func put(t *testing.T, s Store, key, val string) {
	t.Helper()
	if err := s.Update(context.Background(), key, func([]byte) ([]byte, error) { return []byte(val), nil }); err != nil {
		t.Fatal(err)
	}
}

func TestFileRoundTripAcrossInstances(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "tokens")
	a, _ := OpenFile(path, passphrase("correct horse"))
	put(t, a, "work", "refresh-token-1")
	put(t, a, "home", "refresh-token-2")

	b, _ := OpenFile(path, passphrase("correct horse")) // another process, in effect
	got, err := b.Load(context.Background(), "work")
	if err != nil || string(got) != "refresh-token-1" {
		t.Fatalf("second instance read %q, %v", got, err)
	}
	keys, _ := b.Keys(context.Background())
	if strings.Join(keys, ",") != "home,work" {
		t.Fatalf("keys %v", keys)
	}
	if err := b.Update(context.Background(), "home", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Load(context.Background(), "home"); got != nil {
		t.Fatalf("deleted entry still there: %q", got)
	}
	st, _ := os.Stat(path)
	dst, _ := os.Stat(filepath.Dir(path))
	if st.Mode().Perm() != 0o600 || dst.Mode().Perm() != 0o700 {
		t.Fatalf("modes file %v dir %v, want 0600 and 0700", st.Mode().Perm(), dst.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("refresh-token")) {
		t.Fatal("a token is readable in clear in the store file")
	}
}

func TestFileWrongPassphraseOverwritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	a, _ := OpenFile(path, passphrase("right"))
	put(t, a, "work", "rt")
	before, _ := os.ReadFile(path)

	b, _ := OpenFile(path, passphrase("wrong"))
	_, err := b.Load(context.Background(), "work")
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load with a wrong passphrase: %v", err)
	}
	err = b.Update(context.Background(), "work", func([]byte) ([]byte, error) { return []byte("x"), nil })
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Update with a wrong passphrase: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("the store file changed after a refused update")
	}
}

func TestFileTamperedIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	a, _ := OpenFile(path, rawKey())
	put(t, a, "work", "rt")
	raw, _ := os.ReadFile(path)
	for name, mutate := range map[string]func([]byte) []byte{
		"flipped ciphertext byte": func(b []byte) []byte { b[len(b)-3] ^= 1; return b },
		"truncated":               func(b []byte) []byte { return b[:len(b)/2] },
		"not a store":             func([]byte) []byte { return []byte("hello") },
		"huge argon2 memory":      func(b []byte) []byte { b[8] = seal.KDFArgon2; b[13] = 0xff; return b },
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, mutate(bytes.Clone(raw)), 0o600); err != nil {
				t.Fatal(err)
			}
			b, _ := OpenFile(path, rawKey())
			_, err := b.Load(context.Background(), "work")
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("got %v, want a corrupt-store error", err)
			}
		})
	}
}

func TestFileKeyFileStoreRefusesPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	a, _ := OpenFile(path, rawKey())
	put(t, a, "work", "rt")
	b, _ := OpenFile(path, passphrase("x"))
	if _, err := b.Load(context.Background(), "work"); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "key_file") {
		t.Fatalf("got %v", err)
	}
}

func TestFilePassphraseAskedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	calls := 0
	s, _ := OpenFile(path, KeySource{Passphrase: func() ([]byte, error) { calls++; return []byte("p"), nil }})
	for i := range 3 {
		put(t, s, "k", strconv.Itoa(i))
		if _, err := s.Load(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("passphrase asked %d times, want once per process", calls)
	}
}

func TestFileConcurrentGoroutines(t *testing.T) {
	s, _ := OpenFile(filepath.Join(t.TempDir(), "tokens"), rawKey())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				put(t, s, fmt.Sprintf("g%d", i), strconv.Itoa(j))
			}
		}()
	}
	wg.Wait()
	keys, err := s.Keys(context.Background())
	if err != nil || len(keys) != 8 {
		t.Fatalf("keys %v, %v", keys, err)
	}
}

// The helper process: TestMain runs it when the test binary is re-executed with STORE_HELPER set.
func TestMain(m *testing.M) {
	switch os.Getenv("STORE_HELPER") {
	case "":
		os.Exit(m.Run())
	case "writer": // increments its own counter N times
		s, _ := OpenFile(os.Getenv("STORE_PATH"), rawKey())
		n, _ := strconv.Atoi(os.Getenv("STORE_N"))
		for range n {
			err := s.Update(context.Background(), os.Getenv("STORE_KEY"), func(old []byte) ([]byte, error) {
				v, _ := strconv.Atoi(string(old))
				return []byte(strconv.Itoa(v + 1)), nil
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		os.Exit(0)
	case "rotator": // writes ever-larger "refresh tokens", reporting each finished write
		s, _ := OpenFile(os.Getenv("STORE_PATH"), rawKey())
		for i := 1; ; i++ {
			pad := strings.Repeat("x", 2000+i%3000) // vary the size so writes take different times
			if err := s.Update(context.Background(), "acct", func([]byte) ([]byte, error) {
				return []byte(strconv.Itoa(i) + ":" + pad), nil
			}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println(i)
		}
	}
}

func helper(t *testing.T, mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"STORE_HELPER=" + mode}, env...)...)
	return cmd
}

func TestFileConcurrentProcessesKeepEveryWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	const procs, each = 4, 25
	var cmds []*exec.Cmd
	for i := range procs {
		c := helper(t, "writer", "STORE_PATH="+path, "STORE_N="+strconv.Itoa(each), "STORE_KEY=shared")
		if i%2 == 1 {
			c.Env = append(c.Env, "STORE_KEY=own"+strconv.Itoa(i))
		}
		var stderr bytes.Buffer
		c.Stderr = &stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("writer: %v: %s", err, c.Stderr)
		}
	}
	s, _ := OpenFile(path, rawKey())
	got, _ := s.Load(context.Background(), "shared")
	if string(got) != strconv.Itoa(each*procs/2) {
		t.Fatalf("shared counter %s, want %d: a concurrent write was lost", got, each*procs/2)
	}
	for _, k := range []string{"own1", "own3"} {
		if got, _ := s.Load(context.Background(), k); string(got) != strconv.Itoa(each) {
			t.Fatalf("%s = %s, want %d", k, got, each)
		}
	}
}

// TestFileSurvivesKillMidWrite kills a writing process at random moments: the store must always open,
// and hold the last write the process reported finished, or a later one.
func TestFileSurvivesKillMidWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for round := range rounds {
		c := helper(t, "rotator", "STORE_PATH="+path)
		out, _ := c.StdoutPipe()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		last := 0
		lines := make(chan int)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				n, _ := strconv.Atoi(sc.Text())
				lines <- n
			}
			close(lines)
		}()
		deadline := time.After(time.Duration(5+rand.IntN(60)) * time.Millisecond)
	wait:
		for {
			select {
			case n, ok := <-lines:
				if !ok {
					break wait
				}
				last = n
			case <-deadline:
				break wait
			}
		}
		_ = c.Process.Kill()
		for n := range lines { // lines reported before the kill still count
			last = n
		}
		_ = c.Wait()
		s, _ := OpenFile(path, rawKey())
		got, err := s.Load(context.Background(), "acct")
		if err != nil {
			t.Fatalf("round %d: store unreadable after kill: %v", round, err)
		}
		n := 0
		if got != nil {
			n, _ = strconv.Atoi(strings.SplitN(string(got), ":", 2)[0])
		}
		if n < last {
			t.Fatalf("round %d: store holds write %d, but write %d had finished", round, n, last)
		}
		// The next round's counter starts again at 1: start from an empty store.
		_ = os.Remove(path)
	}
}

func TestReadingAMissingStoreNeedsNoKey(t *testing.T) {
	asked := false
	s, _ := OpenFile(filepath.Join(t.TempDir(), "tokens"), KeySource{Passphrase: func() ([]byte, error) { asked = true; return nil, ErrNoKey }})
	if got, err := s.Load(context.Background(), "k"); got != nil || err != nil || asked {
		t.Fatalf("Load of a missing store: %q %v, passphrase asked: %v", got, err, asked)
	}
}

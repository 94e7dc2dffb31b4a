//go:build unix

package store

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// The crash test (issue 8): writer processes rotate "refresh tokens" in one file store while
// the test SIGKILLs them at random moments, many of them inside the locked write (after the read,
// in the temporary file's write, between fsync and rename), and restarts them. After every kill a
// fresh instance opens the store as a new process would and checks that it decrypts and that no
// entry is older than the newest write a writer reported finished. docs/reliability.md tells more.
//
// MAILOAUTH_CRASH_KILLS sets the number of kills (default 300; -short 60), MAILOAUTH_CRASH_WRITERS
// the number of concurrent writers (default 3).

// Environment of a writer process: TestCrashHelper is a writer when crashWriterEnv is set.
const (
	crashWriterEnv = "MAILOAUTH_CRASH_WRITER" // the writer's slot number
	crashStoreEnv  = "MAILOAUTH_CRASH_STORE"  // the store's path
	crashKeyEnv    = "MAILOAUTH_CRASH_KEY"    // its key file
	crashShared    = "account/shared"         // the entry every writer rotates
)

// TestCrashHelper is the writer process of TestFileCrashSafety; run any other way it does nothing.
// It alternates between the shared entry and its own, each time storing the entry's counter plus one
// followed by a few KB of padding (the size of an MSAL cache blob), and reports on file descriptor 3
// "L key n" from inside Update (it holds the lock) and "D key n" once Update returned: n is finished.
func TestCrashHelper(t *testing.T) {
	slot := os.Getenv(crashWriterEnv)
	if slot == "" {
		return
	}
	reports := os.NewFile(3, "reports")
	report := func(format string, args ...any) {
		// One write(2) per line: once it returns, the line is in the pipe and outlives this process.
		// A failed write means the test is gone: stop, so that no writer outlives it.
		if _, err := fmt.Fprintf(reports, format+"\n", args...); err != nil {
			os.Exit(3)
		}
	}
	st, err := Open(config.Store{Path: os.Getenv(crashStoreEnv), KeyFile: os.Getenv(crashKeyEnv)}, nil)
	if err != nil {
		report("E %v", err)
		os.Exit(1)
	}
	pad := make([]byte, 6000)
	for i := range pad {
		pad[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."[rand.IntN(65)]
	}
	own := "account/w" + slot
	for i := 0; ; i++ {
		key := crashShared
		if i%2 == 1 {
			key = own
		}
		var n int
		err := st.Update(context.Background(), key, func(old []byte) ([]byte, error) {
			n = crashCounter(old) + 1
			report("L %s %d", key, n)
			return fmt.Appendf(nil, "%d:%s", n, pad[:2000+rand.IntN(len(pad)-2000)]), nil
		})
		if err != nil {
			report("E %v", err)
			os.Exit(1)
		}
		report("D %s %d", key, n)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // let the others take the lock
	}
}

// crashCounter reads the counter at the start of an entry; 0 for none.
func crashCounter(v []byte) int {
	s, _, _ := strings.Cut(string(v), ":")
	n, _ := strconv.Atoi(s)
	return n
}

// crashWriter is one running writer process, as the test sees it.
type crashWriter struct {
	slot     int
	cmd      *exec.Cmd
	stderr   strings.Builder
	done     chan struct{} // closed when its reports pipe reached EOF (the process is dead)
	inLock   chan struct{} // signalled on each "L" report
	finished chan struct{} // signalled on each "D" report

	// Guarded by crashState.mu.
	last     byte      // kind of the last report: 'L', 'D' or 0 for none yet
	lockedAt time.Time // when the last "L" arrived
}

// crashState is what the test learned from every writer's reports.
type crashState struct {
	mu        sync.Mutex
	finished  map[string]int              // entry -> highest counter a writer reported finished
	committed map[string]map[int]struct{} // entry -> every counter reported finished
	writes    int                         // finished writes reported
	writeTime time.Duration               // moving average of the time from "L" to "D"
	failures  []string                    // what writers reported as errors, or a lost update
}

func (s *crashState) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, fmt.Sprintf(format, args...))
}

// read consumes one writer's reports until it dies.
func (s *crashState) read(w *crashWriter, r *os.File) {
	defer close(w.done)
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		kind, rest, _ := strings.Cut(line, " ")
		if kind == "E" {
			s.fail("writer %d: %s", w.slot, rest)
			continue
		}
		key, num, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(num)
		if err != nil || (kind != "L" && kind != "D") {
			s.fail("writer %d: unexpected report %q", w.slot, line)
			continue
		}
		s.mu.Lock()
		w.last = kind[0]
		sig := w.inLock
		if kind == "L" {
			w.lockedAt = time.Now()
		} else {
			sig = w.finished
			s.writes++
			s.writeTime = (s.writeTime*15 + time.Since(w.lockedAt)) / 16
			if _, dup := s.committed[key][n]; dup {
				// Every Update adds one to what it read under the lock, so two finished writes of
				// one value mean one of them overwrote the other without having read it.
				s.failures = append(s.failures, fmt.Sprintf("%s = %d was reported finished twice: a write was lost", key, n))
			}
			if s.committed[key] == nil {
				s.committed[key] = map[int]struct{}{}
			}
			s.committed[key][n] = struct{}{}
			s.finished[key] = max(s.finished[key], n)
		}
		s.mu.Unlock()
		select {
		case sig <- struct{}{}:
		default:
		}
	}
}

func TestFileCrashSafety(t *testing.T) {
	kills, writers := 300, 3
	if testing.Short() {
		kills = 60
	}
	if v, err := strconv.Atoi(os.Getenv("MAILOAUTH_CRASH_KILLS")); err == nil && v > 0 {
		kills = v
	}
	if v, err := strconv.Atoi(os.Getenv("MAILOAUTH_CRASH_WRITERS")); err == nil && v > 0 {
		writers = v
	}
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "state")
	path := filepath.Join(storeDir, "tokens")
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(testKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// How a new process opens the store: through the configuration, with the key file (the
	// passphrase mode differs only in how the key is had; argon2id per writer start would make
	// hundreds of restarts slow).
	conf := config.Store{Path: path, KeyFile: keyFile}

	state := &crashState{finished: map[string]int{}, committed: map[string]map[int]struct{}{}, writeTime: 2 * time.Millisecond}
	start := func(slot int) *crashWriter {
		t.Helper()
		r, wr, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w := &crashWriter{slot: slot, done: make(chan struct{}), inLock: make(chan struct{}, 1), finished: make(chan struct{}, 1)}
		w.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
		w.cmd.Env = append(os.Environ(), crashWriterEnv+"="+strconv.Itoa(slot), crashStoreEnv+"="+path, crashKeyEnv+"="+keyFile)
		w.cmd.ExtraFiles = []*os.File{wr}
		w.cmd.Stderr = &w.stderr
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wr.Close() // the child holds the only write end: EOF tells the test it died
		go state.read(w, r)
		return w
	}
	running := make([]*crashWriter, writers)
	for i := range running {
		running[i] = start(i)
	}
	t.Cleanup(func() { // whatever happens, no writer outlives the test
		for _, w := range running {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
		}
	})
	kill := func(w *crashWriter) {
		t.Helper()
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		err := w.cmd.Wait()
		if ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("writer %d ended before it was killed: %v\n%s", w.slot, err, w.stderr.String())
		}
		<-w.done // all its reports are in
	}

	var (
		inLock   int // kills that landed while the writer held the lock, inside Update
		maxTemps int // most temporary files seen at once
		withTemp int // checks that found one: a writer was killed between creating it and the rename
		temp     = regexp.MustCompile(`^\.tokens\.tmp-[0-9]+$`)
		began    = time.Now()
	)
	// check opens the store afresh, as a new process would, and compares it with what the writers
	// reported finished before the check began.
	check := func(when string) {
		t.Helper()
		state.mu.Lock()
		failures := state.failures
		want := map[string]int{crashShared: 0} // it opens even before the first write finished
		for k, v := range state.finished {
			want[k] = v
		}
		state.mu.Unlock()
		if len(failures) > 0 {
			t.Fatalf("%s: %s", when, strings.Join(failures, "; "))
		}
		st, err := Open(conf, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A lock left held by a killed writer would hang here: the kernel must have released it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for key, n := range want {
			got, err := st.Load(ctx, key)
			if err != nil {
				t.Fatalf("%s: the store does not open: %v", when, err)
			}
			if have := crashCounter(got); have < n {
				t.Fatalf("%s: %s holds write %d, but write %d had finished: a finished write was lost", when, key, have, n)
			}
		}
		ents, err := os.ReadDir(storeDir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		temps := 0
		for _, e := range ents {
			if temp.MatchString(e.Name()) {
				temps++
			}
		}
		maxTemps = max(maxTemps, temps)
		if temps > 0 {
			withTemp++
		}
		// Each kill inside a write can leave its temporary file; the next write must clear them, or
		// they pile up for ever. One writer holds the lock at a time, and every few kills one waits
		// for a finished write, so a handful at most.
		if temps > writers+3 {
			t.Fatalf("%s: %d temporary files in %s: killed writers' temporary files are never removed", when, temps, storeDir)
		}
	}

	// waitFor waits for a signal from a writer: a writer that cannot get on (a lock nobody releases)
	// fails the test instead of hanging it.
	waitFor := func(w *crashWriter, sig chan struct{}, what string) {
		t.Helper()
		select {
		case <-sig:
		case <-w.done:
			t.Fatalf("writer %d died while the test waited for %s: %s", w.slot, what, w.stderr.String())
		case <-time.After(60 * time.Second):
			t.Fatalf("writer %d: no %s in 60s: is the lock held by a dead process?", w.slot, what)
		}
	}

	for k := range kills {
		i := rand.IntN(writers)
		w := running[i]
		state.mu.Lock()
		wt := state.writeTime
		state.mu.Unlock()
		switch p := rand.IntN(100); {
		case p < 55: // inside the locked write: after the read, in the temporary file, at fsync or rename
			select { // drop a stale signal: wait for the next time it takes the lock
			case <-w.inLock:
			default:
			}
			waitFor(w, w.inLock, "locked write")
			time.Sleep(rand.N(wt + wt/4 + time.Microsecond))
		case p < 85: // anywhere in its loop, once it has shown it can write (after a kill, too)
			waitFor(w, w.finished, "finished write")
			time.Sleep(rand.N(20 * time.Millisecond))
		default: // anywhere, starting up included
			time.Sleep(rand.N(30 * time.Millisecond))
		}
		kill(w)
		state.mu.Lock()
		if w.last == 'L' {
			inLock++
		}
		state.mu.Unlock()
		check(fmt.Sprintf("after kill %d (writer %d)", k+1, w.slot))
		running[i] = start(i)
	}
	// Every writer that is running now gets on: the locks of all the killed ones were released.
	for _, w := range running {
		waitFor(w, w.finished, "finished write")
	}
	for _, w := range running {
		kill(w)
	}
	check("after the last kill")

	// A new process writes once more: it gets the lock and clears what dead writers left behind.
	st, err := Open(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var before int
	if err := st.Update(ctx, crashShared, func(old []byte) ([]byte, error) {
		before = crashCounter(old)
		return fmt.Appendf(nil, "%d:", before+1), nil
	}); err != nil {
		t.Fatalf("writing after the last kill: %v", err)
	}
	if got, err := st.Load(ctx, crashShared); err != nil || crashCounter(got) != before+1 {
		t.Fatalf("after the last write: %q, %v", got, err)
	}
	ents, _ := os.ReadDir(storeDir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "tokens tokens.lock" {
		t.Fatalf("after a write, the store's directory holds %v; want only the store and its lock file", names)
	}
	state.mu.Lock()
	defer state.mu.Unlock()
	t.Logf("%d kills (%d inside the locked write), %d writers, %d writes confirmed, %d checks found a temporary file (at most %d at once), %s",
		kills+writers, inLock, writers, state.writes, withTemp, maxTemps, time.Since(began).Round(100*time.Millisecond))
}

package proxy

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/passhash"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := passhash.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// verifyAll runs n verifies of (hash, password) at once and returns their answers.
func verifyAll(v *verifier, n int, hash, password string) []bool {
	out := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ok, err := v.verify(context.Background(), hash, password)
			out[i] = ok && err == nil
		})
	}
	wg.Wait()
	return out
}

// TestVerifySingleFlight: 200 logins checking the same (hash, password) at once — programs
// reconnecting after a restart — cost one argon2id derivation, not one each.
func TestVerifySingleFlight(t *testing.T) {
	v := newVerifier(0, 0)
	hash := mustHash(t, "s3cret")
	for i, ok := range verifyAll(v, 200, hash, "s3cret") {
		if !ok {
			t.Fatalf("verify %d refused the right password", i)
		}
	}
	if n := v.derivations.Load(); n != 1 {
		t.Fatalf("%d argon2id derivations for 200 concurrent checks of one password, want 1", n)
	}
}

// blockDerive makes v's derivations wait for release; started receives each one's password.
func blockDerive(v *verifier) (started chan string, release chan struct{}) {
	started, release = make(chan string, 100), make(chan struct{})
	derive := v.derive
	v.derive = func(hash, password string) ([]byte, []byte, error) {
		started <- password
		<-release
		return derive(hash, password)
	}
	return started, release
}

// waitWaiters waits until n verifies wait for the check of (hash, password).
func waitWaiters(t *testing.T, v *verifier, hash, password string, n int) {
	t.Helper()
	key := string(v.mac(hash, password))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		v.mu.Lock()
		f := v.inflight[key]
		got := 0
		if f != nil {
			got = f.waiters
		}
		v.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d verifies wait for the check, want %d", got, n)
		}
	}
}

// TestVerifySharesAFailureButNeverCachesIt: the same wrong password sent by 50 logins at once is
// checked once and refused for all of them; sent again afterwards it is checked again (a failure is
// never remembered), and another wrong password is a check of its own.
func TestVerifySharesAFailureButNeverCachesIt(t *testing.T) {
	v := newVerifier(0, 0)
	hash := mustHash(t, "s3cret")
	started, release := blockDerive(v)
	done := make(chan []bool)
	go func() { done <- verifyAll(v, 50, hash, "wrong") }()
	<-started
	waitWaiters(t, v, hash, "wrong", 50)
	close(release)
	for i, ok := range <-done {
		if ok {
			t.Fatalf("verify %d accepted a wrong password", i)
		}
	}
	if n := v.derivations.Load(); n != 1 {
		t.Fatalf("%d argon2id derivations for 50 concurrent checks of one wrong password, want 1", n)
	}
	if ok, _ := v.verify(context.Background(), hash, "wrong"); ok {
		t.Fatal("a wrong password was accepted")
	}
	if ok, _ := v.verify(context.Background(), hash, "wrong-too"); ok {
		t.Fatal("a wrong password was accepted")
	}
	if n := v.derivations.Load(); n != 3 {
		t.Fatalf("%d derivations after two more wrong passwords, want 3: a failure must never be cached", n)
	}
	// An unknown user (no hash) costs a derivation too, and is refused.
	if ok, _ := v.verify(context.Background(), "", "s3cret"); ok || v.derivations.Load() != 4 {
		t.Fatalf("unknown user: ok=%v after %d derivations, want a refusal after 4", ok, v.derivations.Load())
	}
}

// TestVerifyWaiterLeaving: a login whose deadline passes while the check it shares waits for its turn
// gets its context's error; the others sharing the check still get its answer, and different
// passwords still queue for the CPUs one derivation each.
func TestVerifyWaiterLeaving(t *testing.T) {
	v := newVerifier(0, 0)
	hash := mustHash(t, "s3cret")
	started, release := blockDerive(v)
	// Hold every CPU's turn with checks of other passwords.
	var busy sync.WaitGroup
	for i := range cap(v.sem) {
		busy.Go(func() { _, _ = v.verify(context.Background(), hash, "other-"+string(rune('a'+i))) })
		<-started
	}
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error)
	go func() { _, err := v.verify(ctx, hash, "s3cret"); left <- err }()
	stayed := make(chan bool)
	go func() { ok, _ := v.verify(context.Background(), hash, "s3cret"); stayed <- ok }()
	waitWaiters(t, v, hash, "s3cret", 2)
	cancel()
	if err := <-left; err != context.Canceled {
		t.Fatalf("a login whose context ended in the queue got %v, want context.Canceled", err)
	}
	close(release)
	if !<-stayed {
		t.Fatal("the login still waiting was refused after another one sharing its check left")
	}
	busy.Wait()
	if n, want := v.derivations.Load(), int64(cap(v.sem))+1; n != want {
		t.Fatalf("%d derivations, want %d (one per distinct password)", n, want)
	}
}

// TestPenalties: the answer to failures from one source waits 2 s, then twice as long each time, up
// to 15 s; another source starts at 2 s; a right password, or 15 quiet minutes, start the source
// again; a negative delay is none.
func TestPenalties(t *testing.T) {
	p := newPenalties(0, 0)
	now := time.Unix(1e9, 0)
	var got []time.Duration
	for range 6 {
		got = append(got, p.failed("192.0.2.1", now))
		now = now.Add(time.Second)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second, 15 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("delays for six failures from one source: %v, want %v", got, want)
	}
	if d := p.failed("192.0.2.2", now); d != 2*time.Second {
		t.Fatalf("another source's first failure waits %v, want 2s", d)
	}
	p.succeeded("192.0.2.1")
	if d := p.failed("192.0.2.1", now); d != 2*time.Second {
		t.Fatalf("a failure after a success waits %v, want 2s", d)
	}
	p.failed("192.0.2.1", now)
	if d := p.failed("192.0.2.1", now.Add(penaltyForget+time.Second)); d != 2*time.Second {
		t.Fatalf("a failure after %v without one waits %v, want 2s", penaltyForget, d)
	}
	if d := newPenalties(-1, 0).failed("192.0.2.1", now); d != 0 {
		t.Fatalf("a negative FailureDelay still delays by %v", d)
	}
	small := newPenalties(10*time.Millisecond, 25*time.Millisecond)
	for i, want := range []time.Duration{10, 20, 25, 25} {
		if d := small.failed("s", now); d != want*time.Millisecond {
			t.Fatalf("failure %d with 10 ms doubling to 25 ms: %v, want %v ms", i+1, d, want)
		}
	}
}

// TestPenaltiesBounded: failures from ever new addresses (a botnet, or an IPv6 host rotating its
// addresses) do not grow the table beyond maxPenaltySources, nor the heap beyond what that holds.
func TestPenaltiesBounded(t *testing.T) {
	p := newPenalties(0, 0)
	now := time.Unix(1e9, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	addr := func(i int) string { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String() }
	const n = 5 * maxPenaltySources
	for i := range n {
		p.failed(addr(i), now.Add(time.Duration(i)*time.Millisecond))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := len(p.sources); n > maxPenaltySources {
		t.Fatalf("%d sources remembered, want at most %d", n, maxPenaltySources)
	}
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	if grew > 8<<20 {
		t.Fatalf("the heap grew by %d bytes for %d sources, want under 8 MiB", grew, n)
	}
	t.Logf("%d sources failed, %d remembered, heap +%d KiB", n, len(p.sources), grew>>10)
	// The newest source is still counted: eviction takes the oldest.
	if d := p.failed(addr(n-1), now.Add(n*time.Millisecond)); d != 4*time.Second {
		t.Fatalf("the newest source's second failure waits %v, want 4s", d)
	}
}

// TestSourceOf: failures are counted per IPv4 address and per IPv6 /64; the log has the address.
func TestSourceOf(t *testing.T) {
	for _, tc := range []struct{ addr, ip, key string }{
		{"203.0.113.5:40000", "203.0.113.5", "203.0.113.5"},
		{"[::ffff:203.0.113.5]:40000", "203.0.113.5", "203.0.113.5"},
		{"[2001:db8:1:2:a:b:c:d]:993", "2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::ffff]:993", "2001:db8:1:2::ffff", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:993", "fe80::1", "fe80::/64"},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		ip, key := sourceOf(net.TCPAddrFromAddrPort(ap))
		if ip != tc.ip || key != tc.key {
			t.Errorf("sourceOf(%s) = %s, %s; want %s, %s", tc.addr, ip, key, tc.ip, tc.key)
		}
	}
}

package proxy

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailoauth/mailoauth/internal/passhash"
)

// verifier checks local passwords. argon2id is slow on purpose, so three things keep a busy proxy
// fast and safe: at most GOMAXPROCS derivations run at once (a flood of logins queues instead of
// exhausting memory); logins checking the same (hash, password) at once share one derivation (a
// burst of programs reconnecting after a restart pays for argon2id once, not once each); and a
// successful pair is remembered, so a program that logs in every minute pays for argon2id once.
// Pairs are known by an HMAC under a per-process random key, never by the password. A failure is
// shared only by the logins that waited for that same check and is never remembered: every later
// wrong guess costs a full derivation, and an unknown user costs the same as a known one, so that
// user names cannot be told apart by timing. Repeated failures from one source are slowed down
// (penalties, below).
type verifier struct {
	sem chan struct{}
	key [32]byte
	// derive is passhash.Key; derivations counts its calls (tests count argon2id runs with it).
	derive      func(hash, password string) (got, want []byte, err error)
	derivations atomic.Int64
	penalties   *penalties

	mu       sync.Mutex
	good     map[string][]byte  // hash string → HMAC(key, hash || password) of the last password that matched
	inflight map[string]*flight // HMAC(key, hash || password) → the check under way for that pair
}

// flight is one derivation that every login checking the same pair meanwhile waits for.
type flight struct {
	done    chan struct{} // closed once ok is set
	ok      bool
	waiters int  // logins waiting for it; when the last one leaves before it started, it is called off
	started bool // it holds a CPU's turn: it finishes, and whoever still waits takes its answer
	cancel  context.CancelFunc
}

// newVerifier returns a verifier whose failure delay starts at delay and doubles up to maxDelay
// (zero: the defaults; a negative delay: none).
func newVerifier(delay, maxDelay time.Duration) *verifier {
	v := &verifier{
		sem:       make(chan struct{}, runtime.GOMAXPROCS(0)),
		derive:    passhash.Key,
		penalties: newPenalties(delay, maxDelay),
		good:      map[string][]byte{},
		inflight:  map[string]*flight{},
	}
	if _, err := rand.Read(v.key[:]); err != nil {
		panic("proxy: no randomness: " + err.Error())
	}
	return v
}

func (v *verifier) mac(hash, password string) []byte {
	m := hmac.New(sha256.New, v.key[:])
	m.Write([]byte(hash))
	m.Write([]byte{0})
	m.Write([]byte(password))
	return m.Sum(nil)
}

// verify reports whether password matches hash. hash == "" (unknown user) always fails, after the
// same work as a real check. err is ctx's when it ended while the check waited for its turn.
func (v *verifier) verify(ctx context.Context, hash, password string) (bool, error) {
	sum := v.mac(hash, password)
	v.mu.Lock()
	if hash != "" && hmac.Equal(v.good[hash], sum) {
		v.mu.Unlock()
		return true, nil
	}
	f := v.inflight[string(sum)]
	if f == nil {
		// Not its caller's context: whoever of the waiters is still there when the check's turn
		// comes takes its answer.
		fctx, cancel := context.WithCancel(context.Background())
		f = &flight{done: make(chan struct{}), cancel: cancel}
		v.inflight[string(sum)] = f
		go v.run(fctx, f, string(sum), hash, password)
	}
	f.waiters++
	v.mu.Unlock()
	return v.wait(ctx, f, string(sum))
}

// run waits for a CPU's turn (unless every waiter left first), derives, and answers f's waiters.
func (v *verifier) run(ctx context.Context, f *flight, sum, hash, password string) {
	defer f.cancel()
	ok := false
	select {
	case v.sem <- struct{}{}:
		v.mu.Lock()
		f.started = true
		v.mu.Unlock()
		ok = v.check(hash, password)
		<-v.sem
	case <-ctx.Done():
	}
	v.mu.Lock()
	if v.inflight[sum] == f {
		delete(v.inflight, sum) // from now on the pair is checked anew, or found in good
	}
	if ok {
		if len(v.good) > 100_000 { // bounded: reloads with ever new hashes cannot grow it without end
			clear(v.good)
		}
		v.good[hash] = []byte(sum)
	}
	f.ok = ok
	v.mu.Unlock()
	close(f.done)
}

// wait waits for f's answer, or for ctx while f has not started yet.
func (v *verifier) wait(ctx context.Context, f *flight, sum string) (bool, error) {
	select {
	case <-f.done:
		return f.ok, nil
	case <-ctx.Done():
	}
	v.mu.Lock()
	if f.started { // one derivation away: take its answer, as a login already in its turn does
		v.mu.Unlock()
		<-f.done
		return f.ok, nil
	}
	if f.waiters--; f.waiters == 0 {
		// Nobody waits any more: call the check off, and let no later login join the dead flight.
		delete(v.inflight, sum)
		f.cancel()
	}
	v.mu.Unlock()
	return false, ctx.Err()
}

func (v *verifier) check(hash, password string) bool {
	v.derivations.Add(1)
	got, want, err := v.derive(hash, password)
	return err == nil && hash != "" && subtle.ConstantTimeCompare(got, want) == 1
}

// Failure delays, as Dovecot's auth penalty has them (auth-penalty.h: 2 s doubling to 15 s): long
// enough that a program guessing over one connection makes a few guesses a minute, short enough that
// a person who mistyped is not left waiting, and well inside the login timeout (2 minutes).
const (
	defaultFailureDelay    = 2 * time.Second
	defaultFailureDelayMax = 15 * time.Second
	// A source that has not failed for this long starts again from the first delay.
	penaltyForget = 15 * time.Minute
	// At most this many sources are remembered (about 100 bytes each): a flood from ever new
	// addresses forgets the oldest instead of growing the table.
	maxPenaltySources = 10_000
)

// penalties slows down repeated wrong passwords (and unknown users, and malformed user names) from
// one source, before the work: a login from a source that has failed waits for the check in flight
// from that source, if any, and then until delay after the source's last failure — twice as long
// for each further failure, up to max — before its password is checked. A source so has at most one
// argon2id derivation under way, and at most one every max, however many connections it opens: a
// guesser cannot take the CPUs' turns from other sources' logins. As in Dovecot's auth_penalty,
// the delay comes before the check, and a source without failures is neither delayed nor held to
// one check at a time. A source that gets a password right, or has not failed for penaltyForget,
// starts again.
type penalties struct {
	delay, max time.Duration // delay < 0: no delay
	mu         sync.Mutex
	sources    map[string]*list.Element // by sourceOf's key, into order
	order      list.List                // of *penalty, the latest failure first
}

type penalty struct {
	source   string
	failures int
	last     time.Time
	turn     chan struct{} // holds a value while one of the source's logins is checked; made on first use
}

func newPenalties(delay, maxDelay time.Duration) *penalties {
	if delay == 0 {
		delay = defaultFailureDelay
	}
	if maxDelay == 0 {
		maxDelay = max(defaultFailureDelayMax, delay)
	}
	return &penalties{delay: delay, max: maxDelay, sources: map[string]*list.Element{}}
}

// failed records a failure from source at now and returns how long to hold its answer back.
func (p *penalties) failed(source string, now time.Time) time.Duration {
	if p.delay < 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Forget what is old, and make room by forgetting the source that failed longest ago.
	for back := p.order.Back(); back != nil && (now.Sub(back.Value.(*penalty).last) > penaltyForget || p.order.Len() >= maxPenaltySources); back = p.order.Back() {
		if back.Value.(*penalty).source == source {
			break // about to be counted again
		}
		delete(p.sources, back.Value.(*penalty).source)
		p.order.Remove(back)
	}
	var e *penalty
	if el := p.sources[source]; el != nil {
		e = el.Value.(*penalty)
		p.order.MoveToFront(el)
	} else {
		e = &penalty{source: source}
		p.sources[source] = p.order.PushFront(e)
	}
	if now.Sub(e.last) > penaltyForget {
		e.failures = 0
	}
	e.failures++
	e.last = now
	return p.delayFor(e.failures)
}

// delayFor is how long a source with n failures waits after its last one.
func (p *penalties) delayFor(n int) time.Duration {
	d := p.delay
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	return min(d, p.max)
}

// errSessionClosed is what awaiting a turn returns when the session closed first.
var errSessionClosed = errors.New("the session closed")

// turn is a login's permission to have its password checked; done must be called once the
// outcome is recorded (failed or succeeded), so that the source's next login takes its turn.
type turn struct {
	p      *penalties
	source string
	held   chan struct{} // nil: the source had no failures, nothing to give back
}

// await waits until source may have a password checked: at once if it has no failures; otherwise
// for its turn and then until its delay after its last failure has passed. err is ctx's, or
// errSessionClosed, if that ended first.
func (p *penalties) await(ctx context.Context, closed <-chan struct{}, source string) (*turn, error) {
	t := &turn{p: p, source: source}
	p.mu.Lock()
	var slot chan struct{}
	if el := p.sources[source]; el != nil && time.Since(el.Value.(*penalty).last) <= penaltyForget {
		e := el.Value.(*penalty)
		if e.turn == nil { // most sources of a flood from ever new addresses never come back
			e.turn = make(chan struct{}, 1)
		}
		slot = e.turn
	}
	p.mu.Unlock()
	if slot == nil {
		return t, nil
	}
	select {
	case slot <- struct{}{}:
		t.held = slot
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-closed:
		return nil, errSessionClosed
	}
	if err := wait(ctx, closed, p.wait(source, time.Now())); err != nil {
		t.done()
		return nil, err
	}
	return t, nil
}

// wait is how long source must still wait at now: its delay after its last failure, if it has any.
func (p *penalties) wait(source string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := p.sources[source]
	if el == nil {
		return 0 // it got a password right meanwhile
	}
	e := el.Value.(*penalty)
	if now.Sub(e.last) > penaltyForget {
		return 0
	}
	return p.delayFor(e.failures) - now.Sub(e.last)
}

// wait waits for d, or until ctx ends or closed is closed.
func wait(ctx context.Context, closed <-chan struct{}, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closed:
		return errSessionClosed
	}
}

// failed records that the login's check failed and returns how long the source's next login
// will wait.
func (t *turn) failed(now time.Time) time.Duration {
	defer t.done()
	return t.p.failed(t.source, now)
}

// succeeded forgets the source's failures and gives the turn back.
func (t *turn) succeeded() {
	defer t.done()
	t.p.succeeded(t.source)
}

func (t *turn) done() {
	if t.held != nil {
		<-t.held
		t.held = nil
	}
}

// succeeded forgets source's failures: whoever is there knows a password. This is a deliberate
// trade-off, as in Dovecot: a person behind the same address as a guesser (a NAT) is not kept
// waiting for ever once they log in; the price is that a guesser who knows one password of this
// proxy can reset its own delay between guesses — fail2ban on the refusals' log lines, which
// a success does not erase, is the defence against that.
func (p *penalties) succeeded(source string) {
	p.mu.Lock()
	if el := p.sources[source]; el != nil {
		delete(p.sources, source)
		p.order.Remove(el)
	}
	p.mu.Unlock()
}

// sourceOf is the IP address a connection comes from, as logged, and the key its failures are
// counted under: the address for IPv4, its /64 for IPv6 (one host can use every address of its
// /64, so counting per address would not slow it down).
func sourceOf(a net.Addr) (ip, key string) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String(), a.String()
	}
	addr := ap.Addr().Unmap().WithZone("")
	if addr.Is4() {
		return addr.String(), addr.String()
	}
	prefix, _ := addr.Prefix(64)
	return addr.String(), prefix.String()
}

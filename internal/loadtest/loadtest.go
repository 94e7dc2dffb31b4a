// Package loadtest drives a mailoauth proxy (or any IMAP/POP3/SMTP server that takes a user name and
// a password) with many concurrent sessions, as issue 8 and SPEC §10 ask: it ramps up N sessions,
// each logs in with the password, holds its connection doing a little periodic work (IMAP NOOP and
// SELECT, POP3 STAT and NOOP, SMTP NOOP and RSET), then logs out; and it reports failures by kind,
// login and command latency percentiles, CPU time and memory.
//
// Run drives an address it is given; StartLab runs the emulator and the proxy in this process for it
// (what `go run ./internal/cmd/proxyload` does by default). The sessions are raw protocol lines, not a
// client library's, so that a session costs the harness a goroutine, a socket and a 1 KiB buffer, and
// what is measured is the proxy's cost rather than a client's.
package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is what Run drives.
type Config struct {
	// Addrs are the listeners by protocol (IMAP, POP, SMTP).
	Addrs map[string]string
	// Protocols is the mix: session i speaks Protocols[i % len]. Default: every protocol in Addrs.
	Protocols []string
	// User and Password are what every session logs in with.
	User, Password string
	// TLS, when set, makes every connection implicit TLS with it; nil is clear text (a loopback
	// listener with local_tls = "none").
	TLS *tls.Config
	// Sessions is how many sessions to open.
	Sessions int
	// Ramp spreads the sessions' starts evenly over this long (0: all at once).
	Ramp time.Duration
	// Hold is how long every session stays open after the ramp, and after all have logged in.
	Hold time.Duration
	// Interval is the time between a session's periodic commands (default 1 s; the first comes at a
	// random point of the first interval, so that the commands are spread).
	Interval time.Duration
	// Timeout bounds every exchange: connect, greeting, login, each command (default 1 minute).
	Timeout time.Duration
	// LoggingIn, when not 0, is how many sessions may be connecting and logging in at once; a
	// session whose start comes while that many are, waits for one of them to finish. 0: no limit,
	// every session starts on its ramp slot (a burst as programs make it).
	LoggingIn int
	// ProxyPID, when not 0, is the proxy's process (when it runs apart from the harness): its CPU
	// time and RSS are reported too, from /proc.
	ProxyPID int
	// InProcess says that the proxy (and its upstream) run in this process, so that this process's
	// figures include them; it only changes what the report says.
	InProcess bool
	// Sessions, when set, is how many sessions the proxy counts: before measuring memory Run waits
	// (up to 10 s) until it counts every session that logged in. Only for an in-process proxy.
	ProxySessions func() int
}

// Latency is a summary of durations.
type Latency struct {
	Count              int
	P50, P90, P99, Max time.Duration
}

func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return Latency{Count: len(ds), P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: ds[len(ds)-1]}
}

func (l Latency) String() string {
	if l.Count == 0 {
		return "none"
	}
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }
	return fmt.Sprintf("n=%d p50=%sms p90=%sms p99=%sms max=%sms", l.Count, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max))
}

// Memory is memory in bytes before the ramp and while every session is held.
type Memory struct {
	Before, Held, Peak float64
}

// PerSession is the growth while held, per session held.
func (m Memory) PerSession(n int) float64 {
	if n == 0 {
		return 0
	}
	return (m.Held - m.Before) / float64(n)
}

// Report is what Run measured.
type Report struct {
	Config Config
	// Opened is how many sessions logged in; Held is how many were open at once at the peak.
	Opened, Held int
	// Failures counts failed sessions by "protocol kind" (e.g. "imap login"); Examples are the first
	// few errors.
	Failures map[string]int
	Examples []string
	// Login is connect + greeting + login → OK; Command is one periodic command's round trip.
	Login, Command map[string]Latency // by protocol, and "all"
	// AllOpen is how long from the first start until every session had logged in (or failed).
	AllOpen time.Duration
	Wall    time.Duration
	// CPU is this process's CPU time over the run (user + system, getrusage).
	CPU time.Duration
	// GoMem is this process's Go heap + stacks after a collection; RSS its resident set.
	GoMem, RSS Memory
	// ProxyCPU and ProxyRSS are the proxy process's when Config.ProxyPID is set.
	ProxyCPU time.Duration
	ProxyRSS Memory
}

// Failed is the number of sessions that failed.
func (r *Report) Failed() int {
	n := 0
	for _, v := range r.Failures {
		n += v
	}
	return n
}

// Run opens cfg.Sessions sessions and reports. It returns an error only when cfg is unusable or ctx
// ends; failed sessions are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Sessions <= 0 {
		return nil, errors.New("loadtest: no sessions to open")
	}
	if len(cfg.Protocols) == 0 {
		cfg.Protocols = slices.Sorted(maps.Keys(cfg.Addrs))
	}
	if len(cfg.Protocols) == 0 {
		return nil, errors.New("loadtest: no address to connect to")
	}
	for _, p := range cfg.Protocols {
		if p != IMAP && p != POP && p != SMTP {
			return nil, fmt.Errorf("loadtest: unknown protocol %q (imap, pop, smtp)", p)
		}
		if cfg.Addrs[p] == "" {
			return nil, fmt.Errorf("loadtest: no address for %s", p)
		}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	pid := ""
	if cfg.ProxyPID != 0 {
		pid = strconv.Itoa(cfg.ProxyPID)
	}

	r := &Report{Config: cfg, Failures: map[string]int{}}
	var (
		mu       sync.Mutex
		logins   = map[string][]time.Duration{}
		commands = map[string][]time.Duration{}
		active   atomic.Int64
		opened   atomic.Int64
	)
	failed := func(err error) {
		kind := "other"
		var se *SessionError
		if errors.As(err, &se) {
			kind = se.Protocol + " " + se.Kind
		}
		mu.Lock()
		defer mu.Unlock()
		r.Failures[kind]++
		if len(r.Examples) < 8 {
			r.Examples = append(r.Examples, err.Error())
		}
	}

	r.GoMem.Before, r.RSS.Before = GoMemory(), RSS()
	if pid != "" {
		r.ProxyRSS.Before = procRSS(pid)
	}
	cpu0, proxyCPU0 := CPUTime(), time.Duration(0)
	if pid != "" {
		proxyCPU0 = procCPU(pid)
	}
	start := time.Now()

	// Peaks, sampled.
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	var peakHeld int64
	sample := func() {
		mu.Lock()
		defer mu.Unlock()
		peakHeld = max(peakHeld, active.Load())
		r.RSS.Peak = max(r.RSS.Peak, RSS())
		if pid != "" {
			r.ProxyRSS.Peak = max(r.ProxyRSS.Peak, procRSS(pid))
		}
	}
	sampler.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				sample()
			}
		}
	})

	release := make(chan struct{})
	var loggedIn, done sync.WaitGroup
	var loggingIn chan struct{}
	if cfg.LoggingIn > 0 {
		loggingIn = make(chan struct{}, cfg.LoggingIn)
	}
	session := func(i int) {
		proto := cfg.Protocols[i%len(cfg.Protocols)]
		if loggingIn != nil {
			loggingIn <- struct{}{}
		}
		t0 := time.Now()
		c, err := Dial(proto, cfg.Addrs[proto], cfg.TLS, cfg.User, cfg.Password, cfg.Timeout)
		d := time.Since(t0)
		if loggingIn != nil {
			<-loggingIn
		}
		if err != nil {
			failed(err)
			loggedIn.Done()
			return
		}
		mu.Lock()
		logins[proto] = append(logins[proto], d)
		mu.Unlock()
		opened.Add(1)
		active.Add(1)
		defer active.Add(-1)
		loggedIn.Done()
		var mine []time.Duration
		defer func() {
			mu.Lock()
			commands[proto] = append(commands[proto], mine...)
			mu.Unlock()
		}()
		timer := time.NewTimer(rand.N(cfg.Interval))
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				c.Close()
				return
			case <-release:
				if err := c.Logout(); err != nil {
					failed(fail(proto, KindLogout, err))
				}
				return
			case <-timer.C:
				t0 := time.Now()
				if err := c.Work(); err != nil {
					c.Close()
					failed(fail(proto, KindCommand, err))
					return
				}
				mine = append(mine, time.Since(t0))
				timer.Reset(cfg.Interval)
			}
		}
	}

	loggedIn.Add(cfg.Sessions)
	launched := 0
launch:
	for i := range cfg.Sessions {
		if cfg.Ramp > 0 {
			at := start.Add(cfg.Ramp * time.Duration(i) / time.Duration(cfg.Sessions))
			select {
			case <-ctx.Done():
				break launch
			case <-time.After(time.Until(at)):
			}
		}
		done.Go(func() { session(i) })
		launched++
	}
	loggedIn.Add(launched - cfg.Sessions)
	allLoggedIn := make(chan struct{})
	go func() { loggedIn.Wait(); close(allLoggedIn) }()
	select {
	case <-allLoggedIn:
	case <-ctx.Done():
	}
	r.AllOpen = time.Since(start)
	if cfg.ProxySessions != nil {
		for deadline := time.Now().Add(10 * time.Second); int64(cfg.ProxySessions()) < opened.Load() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Memory while every session that logged in is held.
	sample()
	r.GoMem.Held, r.RSS.Held = GoMemory(), RSS()
	if pid != "" {
		r.ProxyRSS.Held = procRSS(pid)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(start.Add(cfg.Ramp + cfg.Hold))):
	}
	if r.AllOpen > cfg.Ramp { // the logins took longer than the ramp: hold everyone for Hold anyway
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(start.Add(r.AllOpen + cfg.Hold))):
		}
	}
	close(release)
	done.Wait()
	close(stopSampling)
	sampler.Wait()

	r.Wall = time.Since(start)
	r.CPU = CPUTime() - cpu0
	if pid != "" {
		r.ProxyCPU = procCPU(pid) - proxyCPU0
	}
	r.Opened, r.Held = int(opened.Load()), int(peakHeld)
	r.Login, r.Command = map[string]Latency{}, map[string]Latency{}
	var allLogins, allCommands []time.Duration
	for _, p := range cfg.Protocols {
		if _, ok := r.Login[p]; ok {
			continue
		}
		allLogins = append(allLogins, logins[p]...)
		allCommands = append(allCommands, commands[p]...)
		r.Login[p], r.Command[p] = summarize(logins[p]), summarize(commands[p])
	}
	r.Login["all"], r.Command["all"] = summarize(allLogins), summarize(allCommands)
	if launched < cfg.Sessions {
		r.Failures["not started"] = cfg.Sessions - launched
	}
	return r, ctx.Err()
}

// Write prints the report for a person.
func (r *Report) Write(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "sessions: %d (%s), ramp %s, held %s, a command every %s\n",
		c.Sessions, strings.Join(c.Protocols, "/"), c.Ramp, c.Hold, c.Interval)
	fmt.Fprintf(w, "opened: %d; open at once (peak): %d; all logged in after %s; wall %s\n",
		r.Opened, r.Held, r.AllOpen.Round(time.Millisecond), r.Wall.Round(time.Millisecond))
	fmt.Fprintf(w, "failures: %d\n", r.Failed())
	for _, k := range slices.Sorted(maps.Keys(r.Failures)) {
		fmt.Fprintf(w, "  %-16s %d\n", k, r.Failures[k])
	}
	for _, e := range r.Examples {
		fmt.Fprintf(w, "  e.g. %s\n", e)
	}
	keys := append(slices.Clone(uniq(c.Protocols)), "all")
	fmt.Fprintln(w, "login latency (connect + greeting + login → OK):")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-5s %s\n", k, r.Login[k])
	}
	fmt.Fprintln(w, "command latency (one periodic command's round trip):")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-5s %s\n", k, r.Command[k])
	}
	who := "this process (the harness's clients)"
	if c.InProcess {
		who = "this process (clients + proxy + emulator)"
	}
	fmt.Fprintf(w, "CPU, %s: %s (%.0f%% of one core over the run)\n", who, r.CPU.Round(time.Millisecond), pct(r.CPU, r.Wall))
	mb := func(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) + " MiB" }
	kb := func(b float64) string { return strconv.FormatFloat(b/1000, 'f', 1, 64) + " KB" }
	fmt.Fprintf(w, "memory, %s, with %d sessions held:\n", who, r.Opened)
	fmt.Fprintf(w, "  Go heap+stacks %s → %s (%s per session)\n", mb(r.GoMem.Before), mb(r.GoMem.Held), kb(r.GoMem.PerSession(r.Opened)))
	fmt.Fprintf(w, "  RSS            %s → %s (%s per session), peak %s\n", mb(r.RSS.Before), mb(r.RSS.Held), kb(r.RSS.PerSession(r.Opened)), mb(r.RSS.Peak))
	if c.ProxyPID != 0 {
		fmt.Fprintf(w, "proxy process %d: CPU %s (%.0f%% of one core); RSS %s → %s (%s per session), peak %s\n",
			c.ProxyPID, r.ProxyCPU.Round(time.Millisecond), pct(r.ProxyCPU, r.Wall),
			mb(r.ProxyRSS.Before), mb(r.ProxyRSS.Held), kb(r.ProxyRSS.PerSession(r.Opened)), mb(r.ProxyRSS.Peak))
	}
}

func pct(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func uniq(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

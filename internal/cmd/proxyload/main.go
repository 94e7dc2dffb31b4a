// Command proxyload is the proxy's load harness (issue 8, SPEC §10): it opens many concurrent
// sessions through the proxy — each logs in with the password, holds its connection with a command
// now and then, and logs out — and prints failures, latency percentiles, CPU time and memory.
//
// By default it starts the emulator and the proxy in its own process (nothing to set up):
//
//	go run ./internal/cmd/proxyload -sessions 2000 -ramp 10s -hold 30s
//
// or it drives a proxy that runs elsewhere (then -proxy-pid adds that process's CPU and RSS):
//
//	MAILOAUTH_LOAD_PASSWORD=... go run ./internal/cmd/proxyload \
//	    -addr imap=127.0.0.1:1143,pop=127.0.0.1:1110,smtp=127.0.0.1:1587 \
//	    -user alice@contoso.test -password-env MAILOAUTH_LOAD_PASSWORD -proxy-pid 12345
//
// It lives under internal/ because it is a tool for developing and sizing mailoauth, not part of what
// users install (`go install .../cmd/...`); the code is in internal/loadtest, which its test runs in
// CI at a small scale. Exit status: 0 when no session failed, 1 when some did, 2 on bad usage.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mailoauth/mailoauth/internal/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxyload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      loadtest.Config
		addrs    = fs.String("addr", "", "an external proxy's listeners, `proto=host:port,...` (imap, pop, smtp); default: start the emulator and a proxy in this process")
		mix      = fs.String("protocols", "imap,pop,smtp", "the protocol mix: session i speaks the i-th (mod the list), e.g. imap,imap,smtp")
		user     = fs.String("user", "", "the user name to log in with (external proxy)")
		passEnv  = fs.String("password-env", "", "the environment variable holding the password (external proxy)")
		useTLS   = fs.Bool("tls", false, "implicit TLS to the listeners (external proxy with local_tls = \"implicit\")")
		caFile   = fs.String("ca-file", "", "with -tls: PEM file of the CA that signed the proxy's certificate (default: the system's)")
		verbose  = fs.Bool("v", false, "the in-process emulator's and proxy's logs on stderr")
		proxyPID = fs.Int("proxy-pid", 0, "the external proxy's process id: report its CPU time and RSS too (Linux /proc)")
	)
	fs.IntVar(&cfg.Sessions, "sessions", 2000, "sessions to open")
	fs.DurationVar(&cfg.Ramp, "ramp", 10*time.Second, "spread the sessions' starts over this long")
	fs.DurationVar(&cfg.Hold, "hold", 30*time.Second, "hold every session this long after the ramp")
	fs.DurationVar(&cfg.Interval, "interval", 5*time.Second, "time between a session's commands")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Minute, "bound on each exchange (connect, login, a command)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "proxyload: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() != 0 {
		return usage("unexpected arguments %q", fs.Args())
	}
	for _, p := range strings.Split(*mix, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Protocols = append(cfg.Protocols, p)
		}
	}
	if *addrs == "" {
		if *user != "" || *passEnv != "" || *useTLS || *proxyPID != 0 {
			return usage("-user, -password-env, -tls and -proxy-pid are for an external proxy (-addr)")
		}
		var logs io.Writer
		if *verbose {
			logs = stderr
		}
		lab, err := loadtest.StartLab(ctx, loadtest.LabOptions{Log: logs})
		if err != nil {
			fmt.Fprintf(stderr, "proxyload: %v\n", err)
			return 1
		}
		defer lab.Close()
		cfg.Addrs, cfg.User, cfg.Password = lab.Addrs, lab.User, lab.Password
		cfg.InProcess, cfg.ProxySessions = true, lab.Proxy.Sessions
		fmt.Fprintf(stdout, "in-process emulator and proxy: %v\n", lab.Addrs)
	} else {
		cfg.Addrs = map[string]string{}
		for _, kv := range strings.Split(*addrs, ",") {
			p, a, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || a == "" {
				return usage("-addr wants proto=host:port, got %q", kv)
			}
			cfg.Addrs[p] = a
		}
		if *user == "" || *passEnv == "" {
			return usage("an external proxy needs -user and -password-env")
		}
		if cfg.Password = os.Getenv(*passEnv); cfg.Password == "" {
			return usage("the environment variable %s is empty", *passEnv)
		}
		cfg.User, cfg.ProxyPID = *user, *proxyPID
		if *useTLS {
			cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
			if *caFile != "" {
				pem, err := os.ReadFile(*caFile)
				if err != nil {
					return usage("%v", err)
				}
				cfg.TLS.RootCAs = x509.NewCertPool()
				if !cfg.TLS.RootCAs.AppendCertsFromPEM(pem) {
					return usage("%s holds no PEM certificate", *caFile)
				}
			}
		}
	}
	r, err := loadtest.Run(ctx, cfg)
	if r != nil {
		r.Write(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "proxyload: %v\n", err)
		return 1
	}
	if r.Failed() > 0 {
		return 1
	}
	return 0
}

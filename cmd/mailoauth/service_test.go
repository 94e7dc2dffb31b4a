package main

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// commandLineAccepted fails the test unless this CLI's cobra commands parse argv (the arguments
// after the program's path) as they would when run: the command exists, every flag exists and
// takes its value, no stray argument. It returns the command's flags, parsed.
func commandLineAccepted(t *testing.T, what string, argv []string) func(name string) string {
	t.Helper()
	root := (&app{}).rootCommand()
	cmd, rest, err := root.Find(argv)
	if err == nil {
		err = cmd.ParseFlags(rest)
	}
	if err == nil {
		err = cmd.ValidateArgs(cmd.Flags().Args())
	}
	if err == nil && cmd == root {
		err = errors.New("it names no command")
	}
	if err != nil {
		t.Fatalf("%s: mailoauth %s is not a command line this CLI takes: %v", what, strings.Join(argv, " "), err)
	}
	return func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
}

// plistValue reads one property-list value (the element start has been read): string, integer,
// true/false, array or dict, as Go strings, int64s, bools, []any and map[string]any.
func plistValue(d *xml.Decoder, start xml.StartElement) (any, error) {
	switch start.Name.Local {
	case "string", "integer":
		var s string
		if err := d.DecodeElement(&s, &start); err != nil {
			return nil, err
		}
		if start.Name.Local == "integer" {
			var n int64
			_, err := fmt.Sscan(s, &n)
			return n, err
		}
		return s, nil
	case "true", "false":
		return start.Name.Local == "true", d.Skip()
	case "array", "dict":
		var list []any
		dict := map[string]any{}
		key := ""
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, err
			}
			switch tok := tok.(type) {
			case xml.EndElement:
				if start.Name.Local == "array" {
					return list, nil
				}
				return dict, nil
			case xml.StartElement:
				if tok.Name.Local == "key" {
					if err := d.DecodeElement(&key, &tok); err != nil {
						return nil, err
					}
					continue
				}
				v, err := plistValue(d, tok)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
				dict[key] = v
			}
		}
	}
	return nil, fmt.Errorf("unexpected <%s> in the property list", start.Name.Local)
}

func readPlist(t *testing.T, path string) map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%s: no <plist><dict>: %v", path, err)
		}
		if s, ok := tok.(xml.StartElement); ok && s.Name.Local == "dict" {
			v, err := plistValue(d, s)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return v.(map[string]any)
		}
	}
}

// TestLaunchdPlist: contrib/launchd's property list runs a command line this CLI takes, with a
// configuration that works (run for real with --check), as a user other than root, restarted on
// failure, and its drain ends before launchd's ExitTimeOut would kill the sessions.
func TestLaunchdPlist(t *testing.T) {
	const path = "../../contrib/launchd/com.mailoauth.proxy.plist"
	p := readPlist(t, path)
	if p["Label"] != "com.mailoauth.proxy" || p["RunAtLoad"] != true {
		t.Errorf("Label %v, RunAtLoad %v: want com.mailoauth.proxy (the file's name), true", p["Label"], p["RunAtLoad"])
	}
	if ka, ok := p["KeepAlive"].(map[string]any); !ok || ka["SuccessfulExit"] != false {
		t.Errorf("KeepAlive %v: want a restart after a failure (SuccessfulExit false)", p["KeepAlive"])
	}
	if u, _ := p["UserName"].(string); u == "" || u == "root" {
		t.Errorf("UserName %q: the proxy must not run as root", u)
	}
	for _, k := range []string{"StandardOutPath", "StandardErrorPath", "WorkingDirectory"} {
		if s, _ := p[k].(string); !filepath.IsAbs(s) {
			t.Errorf("%s %q: want an absolute path", k, s)
		}
	}
	var argv []string
	for _, v := range p["ProgramArguments"].([]any) {
		argv = append(argv, v.(string))
	}
	if len(argv) < 2 || !filepath.IsAbs(argv[0]) || filepath.Base(argv[0]) != "mailoauth" {
		t.Fatalf("ProgramArguments %q: want the absolute path of mailoauth, then its arguments", argv)
	}
	flag := commandLineAccepted(t, path, argv[1:])
	drain, err := time.ParseDuration(flag("drain"))
	if err != nil {
		t.Fatal(err)
	}
	if exit, _ := p["ExitTimeOut"].(int64); time.Duration(exit)*time.Second < drain+5*time.Second {
		t.Errorf("ExitTimeOut %ds: launchd would kill the proxy before its --drain %v ends", exit, drain)
	}

	// The same command line, on the emulator's configuration, with --check: a flag that parses but
	// does the wrong thing (the path in the wrong place, say) fails here.
	_, cfg := startEmulator(t, emulator.Options{})
	conf := flag("config")
	if !filepath.IsAbs(conf) {
		t.Fatalf("--config %q: a daemon needs an absolute path", conf)
	}
	args := append(strings.Fields(strings.ReplaceAll(strings.Join(argv[1:], " "), conf, cfg)), "--check")
	if code, out, errs := runCLI(t, context.Background(), args...); code != exitOK || !strings.Contains(out, "is valid") {
		t.Fatalf("the plist's command line with --check: exit %d\n%s%s", code, out, errs)
	}
}

// TestSystemdUnitFlags: every command line of contrib/systemd's unit parses, and the drain ends
// before systemd's TimeoutStopSec (proxy_test.go runs them with --check).
func TestSystemdUnitFlags(t *testing.T) {
	const path = "../../contrib/systemd/mailoauth-proxy.service"
	unit, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^(ExecStart(?:Pre)?)=(\S+) (.*)$`).FindAllStringSubmatch(string(unit), -1)
	stop := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)$`).FindStringSubmatch(string(unit))
	if len(lines) != 2 || stop == nil {
		t.Fatalf("%s: want ExecStartPre, ExecStart and TimeoutStopSec", path)
	}
	for _, m := range lines {
		flag := commandLineAccepted(t, path+" "+m[1], strings.Fields(m[3]))
		if m[1] != "ExecStart" {
			continue
		}
		drain, _ := time.ParseDuration(flag("drain"))
		if limit, _ := time.ParseDuration(stop[1] + "s"); limit < drain+5*time.Second {
			t.Errorf("TimeoutStopSec=%s: systemd would kill the proxy before its --drain %v ends", stop[1], drain)
		}
	}
}

// TestServiceSpec: install-service's command line is one this CLI takes, runs the proxy with
// --service, and names the configuration by absolute path, given relative or not.
func TestServiceSpec(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{})
	t.Chdir(filepath.Dir(cfg))
	a := &app{configPath: filepath.Base(cfg)}
	spec, err := a.serviceSpec(defaultServiceName, 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	flag := commandLineAccepted(t, "the Windows service", spec.Args)
	if flag("config") != cfg || flag("service") != "true" || flag("drain") != "45s" {
		t.Errorf("the service's command line %q: want --config %s --service --drain 45s", spec.Args, cfg)
	}
	if len(spec.Restart) == 0 || spec.Restart[0] <= 0 {
		t.Errorf("recovery actions %v: want a restart after a failure", spec.Restart)
	}

	if _, err := a.serviceSpec(`a\b`, time.Second); exitCode(err) != exitUsage {
		t.Errorf("a name with a backslash: %v, want a usage error", err)
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	noProxy := filepath.Join(t.TempDir(), "noproxy.toml")
	if err := os.WriteFile(noProxy, text[:strings.Index(string(text), "[proxy]")], 0o600); err != nil {
		t.Fatal(err)
	}
	a.configPath = noProxy
	if _, err := a.serviceSpec(defaultServiceName, time.Second); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "[[proxy.listener]]") {
		t.Errorf("a configuration without a proxy: %v, want a usage error naming [[proxy.listener]]", err)
	}
}

// TestServiceCommandsOutsideWindows: elsewhere, the Windows service commands say where the OS's own
// service files are, exit 2, and stay out of help.
func TestServiceCommandsOutsideWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("these commands work on Windows")
	}
	ctx := context.Background()
	for _, argv := range [][]string{{"proxy", "install-service"}, {"proxy", "uninstall-service"}, {"proxy", "--service"}} {
		code, out, errs := runCLI(t, ctx, argv...)
		if code != exitUsage || out != "" || !strings.Contains(errs, "Windows") || !strings.Contains(errs, "contrib/systemd/mailoauth-proxy.service") {
			t.Errorf("%v: exit %d, stderr %q: want 2 and where the service files are", argv, code, errs)
		}
	}
	if _, out, _ := runCLI(t, ctx, "proxy", "--help"); strings.Contains(out, "install-service") || strings.Contains(out, "--service") {
		t.Errorf("proxy --help shows the Windows service commands:\n%s", out)
	}
}

// TestRunAsService drives the real proxy as the service manager would: running only once it
// listens; Interrogate repeats the state; ParamChange reloads the configuration; Stop reports
// the drain's wait, refuses new connections at once, lets an open session finish its commands, and
// ends the service when the drain is over.
func TestRunAsService(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	var logs syncBuffer
	a := &app{configPath: cfg, stdin: strings.NewReader(""), stdout: io.Discard, stderr: &logs, logLevel: "info"}
	if err := a.setupLogging(); err != nil {
		t.Fatal(err)
	}
	const drain = 2 * time.Second
	requests := make(chan serviceControl)
	reports := make(chan serviceStatus, 10)
	done := make(chan error, 1)
	go func() {
		done <- runAsService(context.Background(), requests, func(c serviceControl) serviceControl { return c },
			func(s serviceStatus) { reports <- s }, drain,
			func(ctx context.Context, h proxyHooks) error { return a.runProxy(ctx, false, drain, h) })
	}()
	t.Cleanup(func() {
		select {
		case requests <- controlStop:
		case <-done:
		}
	})
	next := func(want serviceState) serviceStatus {
		t.Helper()
		select {
		case s := <-reports:
			if s.State != want {
				t.Fatalf("reported %v, want %v\n%s", s.State, want, logs.String())
			}
			return s
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("the service ended (%v) before reporting %v\n%s", err, want, logs.String())
		case <-time.After(time.Minute):
			t.Fatalf("no report of %v within a minute\n%s", want, logs.String())
		}
		return serviceStatus{}
	}
	if s := next(serviceStarting); s.WaitHint <= 0 {
		t.Errorf("starting with no wait hint")
	}
	next(serviceRunning)

	addr := e.ProxyAddrs["imap"]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("running, but the IMAP listener refuses: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	command := func(tag, cmd string) string {
		t.Helper()
		fmt.Fprintf(c, "%s %s\r\n", tag, cmd)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, tag+" ") {
				return l
			}
		}
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	if l := command("a", fmt.Sprintf("LOGIN %q %q", world.Alice, emulator.ProxyPassword)); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("login through the service: %q\n%s", l, logs.String())
	}

	requests <- controlInterrogate
	next(serviceRunning)

	requests <- controlReload
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), "configuration reloaded"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ParamChange did not reload the configuration:\n%s", logs.String())
		}
	}

	requests <- controlStop
	if s := next(serviceStopping); s.WaitHint < drain {
		t.Errorf("stopping with wait hint %v, shorter than the drain %v", s.WaitHint, drain)
	}
	// Shutdown's Stop closes the listener before it starts draining; dial until refused.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		n, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		n.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts a minute after Stop")
		}
	}
	if l := command("b", "NOOP"); !strings.HasPrefix(l, "b OK") {
		t.Fatalf("the open session stopped working during the drain: %q", l)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("the service ended with %v", err)
		}
	case <-time.After(drain + time.Minute):
		t.Fatalf("the service did not end after its drain\n%s", logs.String())
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("the session was not closed at the end of the drain: %v", err)
	}
}

// TestRunAsServiceStartFailure: a proxy that cannot start ends the service with its error (exit 2
// for a configuration without a proxy, so the manager records a failure), never reporting running.
func TestRunAsServiceStartFailure(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{})
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, text[:strings.Index(string(text), "[proxy]")], 0o600); err != nil {
		t.Fatal(err)
	}
	a := &app{configPath: cfg, stderr: io.Discard, logLevel: "info"}
	if err := a.setupLogging(); err != nil {
		t.Fatal(err)
	}
	var states []serviceState
	err = runAsService(context.Background(), make(chan serviceControl), func(c serviceControl) serviceControl { return c },
		func(s serviceStatus) { states = append(states, s.State) }, time.Second,
		func(ctx context.Context, h proxyHooks) error { return a.runProxy(ctx, false, time.Second, h) })
	if exitCode(err) != exitUsage || len(states) != 1 || states[0] != serviceStarting {
		t.Fatalf("got %v after reporting %v; want a usage error after reporting only starting", err, states)
	}
}

type fakeEventLog struct{ events []string }

func (f *fakeEventLog) add(kind string, eid uint32, msg string) error {
	f.events = append(f.events, fmt.Sprintf("%s %d %s", kind, eid, msg))
	return nil
}
func (f *fakeEventLog) Info(eid uint32, msg string) error    { return f.add("info", eid, msg) }
func (f *fakeEventLog) Warning(eid uint32, msg string) error { return f.add("warning", eid, msg) }
func (f *fakeEventLog) Error(eid uint32, msg string) error   { return f.add("error", eid, msg) }

// TestEventLogger: each record is one event at its severity, with its attributes and without the
// time; records below the level are left out.
func TestEventLogger(t *testing.T) {
	var sink fakeEventLog
	log := eventLogger(&sink, slog.LevelInfo).With("component", "proxy")
	log.Debug("not shown")
	log.Info("listening", "addr", "127.0.0.1:1143")
	log.Warn("slow")
	log.Error("reload failed", "err", errors.New("bad file"))
	want := []string{
		`info 1 level=INFO msg=listening component=proxy addr=127.0.0.1:1143`,
		`warning 1 level=WARN msg=slow component=proxy`,
		`error 1 level=ERROR msg="reload failed" component=proxy err="bad file"`,
	}
	if strings.Join(sink.events, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(sink.events, "\n"), strings.Join(want, "\n"))
	}
}

package main

// The proxy as a Windows service: what does not depend on Windows lives here, so it is tested on
// every OS — how the service manager's requests drive the proxy (runAsService), the service's
// definition and command line (serviceSpec), and logging to the Event Log (eventLogger). The
// svc, mgr and eventlog calls are in service_windows.go; elsewhere service_other.go says the
// commands are for Windows.

//lint:file-ignore U1000 service_windows.go uses these; elsewhere only the tests do, which run them on every OS.

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// defaultServiceName is the Windows service's name unless install-service is given --name.
const defaultServiceName = "mailoauth-proxy"

// proxyHooks lets a service manager follow and steer runProxy; the zero value is a proxy on its own.
type proxyHooks struct {
	// Ready, if set, is called once the listeners (and the admin endpoint) are open.
	Ready func()
	// Reload, if set, applies the configuration again on each receive, as SIGHUP does.
	Reload <-chan struct{}
}

func (h proxyHooks) ready() {
	if h.Ready != nil {
		h.Ready()
	}
}

// serviceControl is a service manager's request, whatever the OS calls it.
type serviceControl int

const (
	controlInterrogate serviceControl = iota // report the current state again
	controlStop                              // Stop or Shutdown: drain and exit
	controlReload                            // ParamChange: reload the configuration
	controlIgnore                            // anything else
)

// serviceState is what the service reports to its manager.
type serviceState int

const (
	serviceStarting serviceState = iota // loading the configuration, opening listeners
	serviceRunning                      // accepting connections
	serviceStopping                     // draining open sessions
)

func (s serviceState) String() string {
	return [...]string{"starting", "running", "stopping"}[s]
}

// serviceStatus is one report to the service manager. WaitHint says how long the pending state
// may last before the manager should consider the service hung.
type serviceStatus struct {
	State    serviceState
	WaitHint time.Duration
}

// startHint bounds loading the configuration, opening the token store and binding the listeners.
const startHint = 30 * time.Second

// stopGrace is added to the drain in the stop hint: closing the sessions left at its end.
const stopGrace = 10 * time.Second

// runAsService runs proxy under a service manager until proxy returns, which it does when its
// context ends — on a Stop or Shutdown request (after the drain) or when ctx ends — or when it
// fails to start. Each request read from requests is classified by kind; states are reported
// through report, never concurrently, starting with serviceStarting. Its result is proxy's.
func runAsService[R any](ctx context.Context, requests <-chan R, kind func(R) serviceControl, report func(serviceStatus), drain time.Duration, proxy func(context.Context, proxyHooks) error) error {
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan struct{})
	var once sync.Once
	reload := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- proxy(pctx, proxyHooks{Ready: func() { once.Do(func() { close(ready) }) }, Reload: reload})
	}()
	status := serviceStatus{State: serviceStarting, WaitHint: startHint}
	report(status)
	for {
		select {
		case <-ready:
			ready = nil
			if status.State == serviceStarting {
				status = serviceStatus{State: serviceRunning}
				report(status)
			}
		case r := <-requests:
			switch kind(r) {
			case controlInterrogate:
				report(status)
			case controlStop:
				if status.State != serviceStopping {
					status = serviceStatus{State: serviceStopping, WaitHint: drain + stopGrace}
					report(status)
					stop()
				}
			case controlReload:
				select {
				case reload <- struct{}{}:
				default: // one is pending already: it will read the file as it is now
				}
			}
		case err := <-done:
			return err
		}
	}
}

// serviceSpec is the Windows service install-service creates.
type serviceSpec struct {
	Name, DisplayName, Description string
	// Args follow the executable on the service's command line.
	Args []string
	// Restart lists the delays before restarting after the first, second and later failures;
	// a failure is a crash or a non-zero exit, and the count starts again after ResetAfter.
	Restart    []time.Duration
	ResetAfter time.Duration
}

// serviceSpec defines the service for the configuration --config names, which must hold a [proxy]
// section: its command line names the file by absolute path, as a service starts in the system
// directory, and runs the proxy with --service and the given drain.
func (a *app) serviceSpec(name string, drain time.Duration) (serviceSpec, error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return serviceSpec{}, usagef("--name %q is not a service name; give a name without slashes, such as %s", name, defaultServiceName)
	}
	cfg, err := a.proxyConfig()
	if err != nil {
		return serviceSpec{}, err
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return serviceSpec{}, fmt.Errorf("cannot make the configuration path %s absolute: %w", cfg.Path, err)
	}
	return serviceSpec{
		Name:        name,
		DisplayName: "mailoauth proxy (" + name + ")",
		Description: "Lets password-only mail programs use Exchange Online over OAuth 2.0; configuration " + abs,
		Args:        []string{"--config", abs, "proxy", "--service", "--drain", drain.String()},
		Restart:     []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute},
		ResetAfter:  24 * time.Hour,
	}, nil
}

// addServiceFlag adds proxy's --service, shown in help on Windows only.
func addServiceFlag(cmd *cobra.Command, service *bool) {
	cmd.Flags().BoolVar(service, "service", false, "run under the Windows service manager (install-service sets this up)")
	if runtime.GOOS != "windows" {
		_ = cmd.Flags().MarkHidden("service")
	}
}

func (a *app) installServiceCommand() *cobra.Command {
	var name string
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "install-service",
		Short: "Install the proxy as a Windows service, for the configuration --config names",
		Long: `Creates a Windows service (administrators only) that runs "mailoauth proxy --service" with this
configuration's absolute path, starts automatically after boot, restarts after a failure (5 s,
30 s, then 2 min), and logs to the Windows Event Log under its name. The service runs as
LocalSystem: keep the token store in a file (backend = "file" with passphrase_file or key_file),
as LocalSystem's Credential Manager is not yours (docs/service.md). Start it with
"sc.exe start NAME"; "sc.exe control NAME paramchange" reloads the configuration.
On Linux and macOS, use contrib/systemd or contrib/launchd instead.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.installService(name, drain)
		},
	}
	cmd.Flags().StringVar(&name, "name", defaultServiceName, "the service's name")
	cmd.Flags().DurationVar(&drain, "drain", 30*time.Second, "how long open sessions may go on when the service stops")
	cmd.Hidden = runtime.GOOS != "windows"
	return cmd
}

func (a *app) uninstallServiceCommand() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "uninstall-service",
		Short: "Stop and remove the Windows service install-service created",
		Long: `Stops the service (letting its sessions drain), deletes it and its Event Log source.
The configuration and the token store are left as they are.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.uninstallService(name)
		},
	}
	cmd.Flags().StringVar(&name, "name", defaultServiceName, "the service's name")
	cmd.Hidden = runtime.GOOS != "windows"
	return cmd
}

// eventID is the Event Log's event id for every record: the source is registered as EventCreate,
// which takes ids 1 to 1000 and shows the message as written.
const eventID = 1

// eventSink is the Windows Event Log as eventlog.Log writes to it.
type eventSink interface {
	Info(eid uint32, msg string) error
	Warning(eid uint32, msg string) error
	Error(eid uint32, msg string) error
}

// eventLogger logs to sink as the text handler logs to stderr, one event per record at its
// severity, without the time (the Event Log stamps each event itself).
func eventLogger(sink eventSink, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(eventWriter{sink}, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// eventWriter takes the text handler's output, which is one Write per record starting with its
// level, since the time is left out.
type eventWriter struct{ sink eventSink }

func (w eventWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	write := w.sink.Info
	switch {
	case strings.HasPrefix(msg, "level=ERROR"):
		write = w.sink.Error
	case strings.HasPrefix(msg, "level=WARN"):
		write = w.sink.Warning
	}
	if err := write(eventID, msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

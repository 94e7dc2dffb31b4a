//go:build windows

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// runProxyService runs the proxy under the service control manager, which must have started this
// process (install-service sets that up).
func (a *app) runProxyService(ctx context.Context, checkOnly bool, drain time.Duration) error {
	if checkOnly {
		return a.runProxy(ctx, true, drain, proxyHooks{})
	}
	isService, err := svc.IsWindowsService()
	if err != nil {
		return fmt.Errorf("cannot tell whether the service manager started this process: %w", err)
	}
	if !isService {
		return usagef("proxy --service is for the Windows service manager, which starts it after install-service; in a console, run mailoauth proxy without --service")
	}
	h := &serviceHandler{a: a, ctx: ctx, drain: drain}
	// The name is the manager's business for a service in its own process: Execute learns the
	// installed one from its arguments.
	if err := svc.Run(defaultServiceName, h); err != nil {
		return fmt.Errorf("the service manager did not run the service: %w", err)
	}
	return h.err
}

// serviceHandler is the proxy as svc.Handler: runAsService with the manager's requests.
type serviceHandler struct {
	a     *app
	ctx   context.Context
	drain time.Duration
	err   error
}

func (h *serviceHandler) Execute(args []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	name := defaultServiceName
	if len(args) > 0 {
		name = args[0]
	}
	if elog, err := eventlog.Open(name); err == nil {
		defer elog.Close()
		var level slog.Level
		_ = level.UnmarshalText([]byte(h.a.logLevel)) // checked by setupLogging already
		h.a.log = eventLogger(elog, level)
	}
	report := func(st serviceStatus) {
		out := svc.Status{WaitHint: uint32(st.WaitHint / time.Millisecond)}
		switch st.State {
		case serviceStarting:
			out.State = svc.StartPending
		case serviceRunning:
			out.State = svc.Running
			out.Accepts = svc.AcceptStop | svc.AcceptShutdown | svc.AcceptParamChange
		case serviceStopping:
			out.State = svc.StopPending
		}
		s <- out
	}
	kind := func(c svc.ChangeRequest) serviceControl {
		switch c.Cmd {
		case svc.Interrogate:
			return controlInterrogate
		case svc.Stop, svc.Shutdown:
			return controlStop
		case svc.ParamChange:
			return controlReload
		}
		return controlIgnore
	}
	h.err = runAsService(h.ctx, r, kind, report, h.drain, func(ctx context.Context, hooks proxyHooks) error {
		return h.a.runProxy(ctx, false, h.drain, hooks)
	})
	if h.err != nil {
		h.a.log.Error("the proxy stopped", "err", h.err)
		// A service-specific exit code, so the manager counts a failure and restarts the service.
		return true, uint32(exitCode(h.err))
	}
	return false, 0
}

func (a *app) installService(name string, drain time.Duration) error {
	spec, err := a.serviceSpec(name, drain)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this program's path for the service's command line: %w", err)
	}
	m, err := connectServiceManager()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	s, err := m.CreateService(spec.Name, exe, mgr.Config{
		DisplayName:      spec.DisplayName,
		Description:      spec.Description,
		StartType:        mgr.StartAutomatic,
		DelayedAutoStart: true,            // after the network is up
		ErrorControl:     mgr.ErrorNormal, // a failure to start goes in the System log too
	}, spec.Args...)
	if errors.Is(err, windows.ERROR_SERVICE_EXISTS) {
		return usagef("a service named %s exists already; remove it with uninstall-service --name %s, or give another --name", spec.Name, spec.Name)
	}
	if err != nil {
		return fmt.Errorf("cannot create the service %s: %w", spec.Name, err)
	}
	defer s.Close()
	var actions []mgr.RecoveryAction
	for _, d := range spec.Restart {
		actions = append(actions, mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d})
	}
	err = s.SetRecoveryActions(actions, uint32(spec.ResetAfter/time.Second))
	if err == nil {
		// Exiting with an error is a failure too, not only a crash.
		err = s.SetRecoveryActionsOnNonCrashFailures(true)
	}
	if err == nil {
		err = eventlog.InstallAsEventCreate(spec.Name, eventlog.Error|eventlog.Warning|eventlog.Info)
	}
	if err != nil {
		_ = s.Delete()
		return fmt.Errorf("cannot set up the service %s (it was removed again): %w", spec.Name, err)
	}
	fmt.Fprintf(a.stdout, "installed the service %s: %s %s\nstart it with: sc.exe start %s\n", spec.Name, exe, windows.ComposeCommandLine(spec.Args), spec.Name)
	return nil
}

func (a *app) uninstallService(name string) error {
	m, err := connectServiceManager()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return usagef("there is no service named %s; give the --name it was installed with", name)
	}
	if err != nil {
		return fmt.Errorf("cannot open the service %s: %w", name, err)
	}
	defer s.Close()
	if err := stopService(s); err != nil {
		return fmt.Errorf("cannot stop the service %s: %w", name, err)
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("cannot delete the service %s: %w", name, err)
	}
	// The Event Log source goes too; its past events stay in the log.
	if err := eventlog.Remove(name); err != nil {
		a.log.Warn("the service's Event Log source was not removed", "name", name, "err", err)
	}
	fmt.Fprintf(a.stdout, "removed the service %s\n", name)
	return nil
}

func connectServiceManager() (*mgr.Mgr, error) {
	m, err := mgr.Connect()
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return nil, usagef("only an administrator may change services; run this from an elevated prompt")
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Windows service manager: %w", err)
	}
	return m, nil
}

// stopService asks a running service to stop and waits until it has, for as long as it says its
// drain may take.
func stopService(s *mgr.Service) error {
	st, err := s.Query()
	if err != nil {
		return err
	}
	if st.State == svc.Stopped {
		return nil
	}
	if st.State != svc.StopPending {
		if st, err = s.Control(svc.Stop); err != nil {
			return err
		}
	}
	// The service's wait hint is its drain (and more): wait that long, at least a minute.
	deadline := time.Now().Add(time.Minute)
	for st.State != svc.Stopped {
		if d := time.Now().Add(time.Duration(st.WaitHint)*time.Millisecond + stopGrace); d.After(deadline) {
			deadline = d
		}
		if time.Now().After(deadline) {
			return errors.New("it is still stopping; wait for it, then run uninstall-service again")
		}
		time.Sleep(250 * time.Millisecond) // the manager has no call to wait on: poll, as sc.exe does
		if st, err = s.Query(); err != nil {
			return err
		}
	}
	return nil
}

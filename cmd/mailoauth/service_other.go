//go:build !windows

package main

import (
	"context"
	"time"
)

// errNotWindows says where the proxy's service files are on this OS.
func errNotWindows(what string) error {
	return usagef("%s is for the Windows service manager; on Linux run the proxy with contrib/systemd/mailoauth-proxy.service, on macOS with contrib/launchd/com.mailoauth.proxy.plist (docs/service.md)", what)
}

func (a *app) runProxyService(context.Context, bool, time.Duration) error {
	return errNotWindows("proxy --service")
}

func (a *app) installService(string, time.Duration) error { return errNotWindows("install-service") }

func (a *app) uninstallService(string) error { return errNotWindows("uninstall-service") }

package loadtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/proxy"
)

// Lab is the emulator and a proxy in front of it, in this process: what a load run drives when no
// external proxy is given. It is the emulator's own configuration (`mailoauth emulator` writes the
// same): loopback listeners without local TLS for IMAP, POP3 and SMTP, and the local user User with
// Password mapped to the app-only account "daemon" (alice's mailbox, a client secret).
type Lab struct {
	Emulator *emulator.Emulator
	Proxy    *proxy.Server
	Dir      string
	Addrs    map[string]string // by protocol
	User     string
	Password string
	ownDir   bool
}

// LabOptions tune StartLab.
type LabOptions struct {
	// Dir receives the emulator's data (config, secrets); "" is a new temporary directory, removed
	// by Close.
	Dir string
	// Log receives the emulator's and the proxy's logs; nil discards them.
	Log io.Writer
	// Proxy tunes the proxy (its Log is the lab's): a test sending wrong passwords sets a short
	// FailureDelay, for instance.
	Proxy proxy.Options
}

// StartLab starts the emulator, writes its data, loads the configuration it wrote and starts the
// proxy on that configuration's [proxy] section.
func StartLab(ctx context.Context, o LabOptions) (_ *Lab, err error) {
	log := slog.New(slog.DiscardHandler)
	if o.Log != nil {
		log = slog.New(slog.NewTextHandler(o.Log, nil))
	}
	l := &Lab{Dir: o.Dir, Password: emulator.ProxyPassword}
	if l.Dir == "" {
		if l.Dir, err = os.MkdirTemp("", "mailoauth-load-"); err != nil {
			return nil, err
		}
		l.ownDir = true
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.Emulator, err = emulator.Start(ctx, emulator.Options{Log: log.With("component", "emulator")}); err != nil {
		return nil, err
	}
	if err := l.Emulator.WriteData(l.Dir); err != nil {
		return nil, err
	}
	cfg, err := config.Load(filepath.Join(l.Dir, emulator.ConfigName))
	if err != nil {
		return nil, err
	}
	if cfg.Proxy == nil || len(cfg.Proxy.Users) != 1 {
		return nil, errors.New("loadtest: the emulator's configuration has no proxy user")
	}
	for u := range cfg.Proxy.Users {
		l.User = u
	}
	// The splice's load: the listeners via Graph (the gateway) are left out.
	cfg.Proxy.Listeners = slices.DeleteFunc(cfg.Proxy.Listeners, func(l config.Listener) bool { return l.Via != "" })
	mgr := auth.New(cfg, auth.Options{Log: log.With("component", "auth")})
	popts := o.Proxy
	popts.Log = log.With("component", "proxy")
	if l.Proxy, err = proxy.New(cfg.Proxy, mgr, popts); err != nil {
		return nil, err
	}
	if err := l.Proxy.Start(); err != nil {
		return nil, err
	}
	l.Addrs = map[string]string{}
	for k, a := range l.Proxy.Addrs() { // "protocol local_tls listen"; one listener per protocol
		proto, _, _ := strings.Cut(k, " ")
		l.Addrs[proto] = a
	}
	if len(l.Addrs) != 3 {
		return nil, errors.New("loadtest: the proxy did not bind a listener for each protocol")
	}
	return l, nil
}

// Close stops the proxy (cutting open sessions) and the emulator, and removes a temporary directory.
func (l *Lab) Close() {
	if l.Proxy != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.Proxy.Shutdown(ctx)
		cancel()
	}
	if l.Emulator != nil {
		_ = l.Emulator.Close()
	}
	if l.ownDir {
		_ = os.RemoveAll(l.Dir)
	}
}

// Package emulator is a local Microsoft 365: the identity platform (package identity), Exchange
// Online's IMAP, POP3 and SMTP (package exchange) and Microsoft Graph mail (package graph), all
// answering from one World (package world), over TLS from a CA it generates at each start.
//
// It is internal: package mailoauthtest is its public face, for the tests and examples of programs
// that use the library; `mailoauth emulator` and `mailoauth demo` run it as a command (WriteData
// writes the CA, the apps' credentials and a mailoauth.toml pointing at it); the module's own tests
// start it through internal/emulator/emulatortest. Of the library it uses only config (to describe
// its accounts) and sasl (to read logins), never auth, token or the mail clients, which it serves.
//
// It listens on loopback unless told otherwise and must never be mistaken for a real service:
// every certificate and token it makes is valid only against its own CA and keys, and mail stays in
// memory.
package emulator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/internal/emulator/control"
	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/graph"
	"github.com/mailoauth/mailoauth/internal/emulator/identity"
	"github.com/mailoauth/mailoauth/internal/emulator/webui"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// Options configure an emulator.
type Options struct {
	// Listen is the host (IP or name) to listen on; default 127.0.0.1. 0.0.0.0 or :: listens on every
	// interface, as in a container.
	Listen string
	// Advertise is the host name (or IP) clients reach the emulator by, as a CI service container's
	// name: its TLS certificate is issued for it, and the authority, MailAddrs and the written config
	// name it. Default: Listen, or localhost when Listen is every interface.
	Advertise string
	// Ports fixes servers' ports, by name: "identity", "graph" and MailAddrs' "imap", "imap-starttls",
	// "pop", "smtp"; and the loopback ports of the written config's proxy listeners: "proxy-imap",
	// "proxy-pop", "proxy-smtp" (ProxyAddrs) and "gateway-imap", "gateway-pop", "gateway-smtp"
	// (GatewayAddrs). A server not named takes a free port. A container publishes fixed ports.
	Ports map[string]int
	// World is the organisation to emulate; nil means world.Default().
	World *world.World
	// AutoApprove signs this user in and consents at once for interactive and device-code logins.
	AutoApprove string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives the emulator's logs (no secrets); nil discards them.
	Log *slog.Logger
}

// AppCredentials are the credentials the emulator generated for a confidential app.
type AppCredentials struct {
	Secret      string
	CertPEM     []byte // certificate and PKCS#8 private key
	PFX         []byte // the same, as a password-protected PKCS#12 file
	PFXPassword string
	Cert        *x509.Certificate
}

// Emulator is a running emulator.
type Emulator struct {
	// Live is the organisation the servers answer from; World returns it as it is now, and Live.Update
	// changes it while they run.
	Live     *world.Live
	Identity *identity.Server
	// Credentials holds, by app name, what was generated for each confidential app the World gave no
	// secret and no certificate, or the first secret the World gave it.
	Credentials map[string]*AppCredentials
	// Exchange is Exchange Online's IMAP, POP3 and SMTP servers; Store holds the mailboxes they serve.
	Exchange *exchange.Servers
	Store    *mailstore.Store
	// MailAddrs are the host:port addresses of the mail servers — "imap" (implicit TLS, as :993),
	// "imap-starttls" (STARTTLS, as :143), "pop" (implicit TLS, as :995), "smtp" (STARTTLS, as
	// submission :587) — and the Graph base URL ("graph"); the written config points at them.
	MailAddrs map[string]string
	// Events is the event log every server adds to.
	Events *events.Log
	// Graph is Microsoft Graph mail, served at MailAddrs["graph"] over the same Store.
	Graph *graph.Server
	// ProxyAddrs are free loopback addresses ("imap", "pop", "smtp") reserved for the [proxy]
	// listeners of the written config; `mailoauth proxy` binds them, the emulator does not.
	ProxyAddrs map[string]string
	// GatewayAddrs are the same for the written config's listeners via Graph (the Graph gateway: the
	// proxy serves IMAP, POP3 and SMTP itself and carries them out over Graph).
	GatewayAddrs map[string]string

	ca       *ca
	host     string
	identity string // https://host:port
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	once     sync.Once

	// proxyHash is ProxyPassword's hash for the written [proxy] section, made on first use: argon2id
	// costs a fifth of a second and 64 MiB, which a Server that writes no config never spends.
	proxyHash     string
	proxyHashErr  error
	proxyHashOnce sync.Once

	graphSrv  *http.Server
	graphDone chan struct{}

	controlToken string
}

// Start generates keys and certificates, builds the World, and serves the identity platform until ctx
// ends or Close is called.
func Start(ctx context.Context, opts Options) (*Emulator, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	host := opts.Listen
	if host == "" {
		host = "127.0.0.1"
	}
	adv := opts.Advertise
	if adv == "" {
		adv = host
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			adv = "localhost"
		}
	}
	w := opts.World
	if w == nil {
		w = world.Default()
	}
	if err := w.Resolve(world.NewID); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	e := &Emulator{Credentials: map[string]*AppCredentials{}, host: host, done: make(chan struct{})}
	var err error
	if e.ca, err = newCA(now()); err != nil {
		return nil, err
	}
	if err := e.generateCredentials(w, now()); err != nil {
		return nil, err
	}
	e.Live = world.NewLive(w, nil)
	e.Events = events.New(0, now, log)
	signKey, signCert, err := selfSigned("mailoauth emulator token signing", now(), 5*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	tlsCert, err := e.ca.serverCert(now(), host, adv)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if e.Identity, err = identity.New(identity.Config{
		World: e.Live, Events: e.Events, Key: signKey, Cert: signCert, AutoApprove: opts.AutoApprove, Now: opts.Now, Log: log, Client: client,
		CAPEM: e.ca.pem,
	}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(opts.Ports["identity"])))
	if err != nil {
		return nil, fmt.Errorf("emulator: listen on %s: %w", host, err)
	}
	e.ln = ln
	e.identity = "https://" + net.JoinHostPort(adv, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	e.Store = mailstore.New(now)
	if e.Exchange, err = exchange.Start(exchange.Config{
		World: e.Live, Events: e.Events, Store: e.Store, Keys: e.Identity, Host: host, Ports: opts.Ports, Now: now, Log: log,
		TLS: &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12},
	}); err != nil {
		ln.Close()
		return nil, fmt.Errorf("emulator: %w", err)
	}
	// Reserved once Exchange's listeners are bound, so that none of them can be handed the same port.
	if e.MailAddrs, err = reservePorts(host, opts.Ports); err != nil {
		ln.Close()
		e.Exchange.Close()
		return nil, err
	}
	e.ProxyAddrs, e.GatewayAddrs = map[string]string{}, map[string]string{}
	for _, p := range []string{"imap", "pop", "smtp"} {
		e.ProxyAddrs[p], e.GatewayAddrs[p] = e.MailAddrs["proxy-"+p], e.MailAddrs["gateway-"+p]
		delete(e.MailAddrs, "proxy-"+p)
		delete(e.MailAddrs, "gateway-"+p)
	}
	for k, v := range e.Exchange.Addrs() {
		_, port, _ := net.SplitHostPort(v)
		e.MailAddrs[k] = net.JoinHostPort(adv, port)
	}
	if err := e.startGraph(host, adv, opts.Ports["graph"], tlsCert, now, log); err != nil {
		ln.Close()
		e.Exchange.Close()
		return nil, err
	}
	e.controlToken = randomString(32)
	mux := http.NewServeMux()
	mux.Handle(control.Prefix, control.Handler(control.Config{
		Live: e.Live, Store: e.Store, Events: e.Events, Token: e.controlToken, NewSecret: clientSecret,
		UI: webui.Handler(webui.Config{Store: e.Store, World: e.Live, Events: e.Events}), OpenUI: e.WebPageOpen(), OnReset: e.Graph.Reset, Now: now, Log: log,
	}))
	mux.Handle("/", e.Identity.Handler())
	e.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(e.done)
		if err := e.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("emulator: identity server stopped", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			e.Close()
		case <-e.done:
		}
	}()
	log.Info("emulator: identity platform listening", "url", e.identity)
	return e, nil
}

// generateCredentials gives every confidential app without credentials a client secret and a
// certificate (PEM and PFX), as an admin would create them in the portal.
func (e *Emulator) generateCredentials(w *world.World, now time.Time) error {
	for _, app := range w.Apps {
		if app.Public {
			continue
		}
		if len(app.Secrets) > 0 || len(app.Certificates) > 0 {
			// The world brought its own credentials (an expired secret, say): write the first secret
			// out so accounts can use it, and generate nothing.
			if len(app.Secrets) > 0 {
				e.Credentials[app.Name] = &AppCredentials{Secret: app.Secrets[0].Value}
			}
			continue
		}
		key, cert, err := selfSigned(app.DisplayName, now, 365*24*time.Hour)
		if err != nil {
			return err
		}
		pass := randomString(18)
		pfx, err := pkcs12.Modern.Encode(key, cert, nil, pass)
		if err != nil {
			return fmt.Errorf("emulator: PFX for %s: %w", app.Name, err)
		}
		c := &AppCredentials{Secret: clientSecret(), CertPEM: certKeyPEM(cert, key), PFX: pfx, PFXPassword: pass, Cert: cert}
		app.Secrets = append(app.Secrets, world.Secret{Value: c.Secret, Expires: now.Add(2 * 365 * 24 * time.Hour)})
		app.Certificates = append(app.Certificates, cert)
		e.Credentials[app.Name] = c
	}
	return nil
}

// reservePorts picks free ports for the servers that later parts of the emulator serve (Graph), and
// for the written config's proxy listeners, unless fixed names their port. Those are on loopback
// whatever host the emulator listens on: the config refuses a plain-text proxy listener anywhere else.
func reservePorts(host string, fixed map[string]int) (map[string]string, error) {
	addrs := map[string]string{}
	// All stay open until every port is chosen: a port closed at once can be handed out again by
	// the next Listen, and two listeners would share it.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for _, p := range []string{"graph", "proxy-imap", "proxy-pop", "proxy-smtp", "gateway-imap", "gateway-pop", "gateway-smtp"} {
		h := host
		if p != "graph" {
			h = "127.0.0.1"
			// The emulator does not bind these, so a fixed one is only written down.
			if port := fixed[p]; port != 0 {
				addrs[p] = net.JoinHostPort(h, strconv.Itoa(port))
				continue
			}
		}
		l, err := net.Listen("tcp", net.JoinHostPort(h, "0"))
		if err != nil {
			return nil, fmt.Errorf("emulator: reserve a port on %s: %w", h, err)
		}
		held = append(held, l)
		addrs[p] = l.Addr().String()
	}
	addrs["graph"] = "https://" + addrs["graph"] + "/v1.0"
	return addrs, nil
}

// startGraph serves Graph mail on port (0: the reserved graph port, or, if it was taken meanwhile, a
// free one), and sets MailAddrs["graph"] to its URL on the advertised host.
func (e *Emulator) startGraph(host, adv string, port int, cert tls.Certificate, now func() time.Time, log *slog.Logger) error {
	e.Graph = graph.New(graph.Config{World: e.Live, Events: e.Events, Store: e.Store, Authorizer: e.Exchange.Authorizer,
		MessageIDHost: e.Exchange.ServerName(), Now: now, Log: log})
	hostport := strings.TrimSuffix(strings.TrimPrefix(e.MailAddrs["graph"], "https://"), "/v1.0")
	if port != 0 {
		hostport = net.JoinHostPort(host, strconv.Itoa(port))
	}
	gl, err := net.Listen("tcp", hostport)
	if err != nil && port == 0 {
		gl, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return fmt.Errorf("emulator: listen for Graph on %s: %w", host, err)
	}
	e.MailAddrs["graph"] = "https://" + net.JoinHostPort(adv, strconv.Itoa(gl.Addr().(*net.TCPAddr).Port)) + "/v1.0"
	e.graphSrv = &http.Server{
		Handler:           e.Graph.Handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // upload chunks
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	e.graphDone = make(chan struct{})
	go func() {
		defer close(e.graphDone)
		if err := e.graphSrv.ServeTLS(gl, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("emulator: Graph server stopped", "err", err)
		}
	}()
	log.Info("emulator: Graph mail listening", "url", e.MailAddrs["graph"])
	return nil
}

// World returns the organisation as it is now. The caller must not modify it: change it with
// Live.Update.
func (e *Emulator) World() *world.World { return e.Live.Load() }

// ControlURL is the control API's base URL (package control): the identity platform's address with
// control.Prefix.
func (e *Emulator) ControlURL() string { return e.identity + strings.TrimSuffix(control.Prefix, "/") }

// ControlToken authorises requests to the control API (Authorization: Bearer). WriteData writes it
// to the data directory's control-token file.
func (e *Emulator) ControlToken() string { return e.controlToken }

// WebPageOpen reports whether the web page (ControlURL + "/ui/") answers without the control token:
// only when the emulator listens on loopback; elsewhere it wants the token as a basic-auth password.
func (e *Emulator) WebPageOpen() bool { return isLoopback(e.host) }

// isLoopback reports whether host (a name or an IP) is only reachable from this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Authority is the identity platform's base URL, without a tenant (config key authority).
func (e *Emulator) Authority() string { return e.identity }

// TenantAuthority is the authority URL for a tenant, as MSAL takes it.
func (e *Emulator) TenantAuthority(tenant string) string { return e.identity + "/" + tenant }

// CAPEM is the PEM of the CA that signs the emulator's TLS certificates.
func (e *Emulator) CAPEM() []byte { return e.ca.pem }

// CAPool is a pool holding only the emulator's CA.
func (e *Emulator) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.ca.cert)
	return p
}

// HTTPClient is a client that trusts the emulator's CA and nothing else.
func (e *Emulator) HTTPClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.CAPool(), MinVersion: tls.VersionTLS12}},
	}
}

// Close stops the emulator and waits for its server to finish.
func (e *Emulator) Close() error {
	var err error
	e.once.Do(func() {
		// Requests under way get a moment to finish; then connections are closed. Waiting longer buys
		// nothing: an HTTP/2 client keeps its idle connection open, and net/http then waits a second
		// per connection after its GOAWAY, which made every test's emulator slow to stop.
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		errs := make(chan error, 2)
		for _, srv := range []*http.Server{e.srv, e.graphSrv} {
			go func() {
				err := srv.Shutdown(ctx)
				if errors.Is(err, context.DeadlineExceeded) {
					err = srv.Close()
				}
				errs <- err
			}()
		}
		err = errors.Join(<-errs, <-errs)
		<-e.done
		<-e.graphDone
		e.Exchange.Close()
	})
	return err
}

// Done is closed when the emulator has stopped.
func (e *Emulator) Done() <-chan struct{} { return e.done }

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// clientSecret looks like an Entra client secret value: three characters, "8Q~", then 34 more.
func clientSecret() string {
	s := randomString(30)
	return s[:3] + "8Q~" + s[3:37]
}

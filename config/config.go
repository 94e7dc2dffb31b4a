// Package config describes mailoauth accounts, the token store and the proxy, with their defaults
// and their validation. An Account says which app registration signs in whom, with which flow, for
// which protocols, and where its credentials are. It can be built in Go and completed by
// Account.Check, or read from a TOML file by Load: both apply the same defaults and the same rules
// (one implementation), and TOML is one way to fill the struct. Credentials are given as values
// (ClientSecret, ClientCertificate, PFX, RefreshToken, Password, RootCAs — fields a file cannot set)
// or as the name of an environment variable or a file holding them.
//
// Errors report every problem at once, as Errors of *Error, and implement ConfigError() bool (the
// CLI maps it to exit status 2). For an account built in code each names the Go field
// ("invalid Account.Flow \"devic\": use one of ..."); for a file, the table, the key, the line and
// the fix ("invalid flow `devic` in [accounts.work] at config.toml:7: use one of ..."). Loading a
// file is strict: problems of form (syntax, unknown keys, wrong types, keys written twice) come
// first, all together; once there are none, the rules are checked, all of them (a misspelt `flwo`
// is not also reported as a missing `flow`). Error is this package's own type, with the same fields
// as the internal decoder's, so that callers can name it (errors.As) while the decoder stays
// private; File.Path names the file, and each Error its line.
//
// Paths: in path-valued keys (store.path, passphrase_file, key_file, client_secret_file,
// certificate, certificate_password_file, refresh_token_file, password_file, ca_file, tls_cert,
// tls_key) a leading "~/" is the user's home directory, and a relative path is relative to the
// directory of the configuration file, not to the working directory: a cron job and a shell then
// read the same files, and a configuration directory can be moved or mounted as a whole. Load
// stores such paths absolute. docs/config.md describes the file.
//
// This package must never read the contents of a secret (a client secret file, a certificate,
// a refresh token, a password, a passphrase, or a value given in code): it checks only where
// secrets are to be found, that values have the right form, and that a file holding a secret is
// not readable by other users (by its mode, from os.Stat; Windows has no such mode). It must never
// put a secret's value, or the value of a key that may hold one by mistake (client_id, *_env,
// *_file, URLs), into an error message or a log; the secret types (Secret, SecretBytes) print
// redacted. The one exception is the path of an existing secret file that others can read, which
// the refusal names so that its chmod can be pasted. It never opens a network connection.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/tomlconf"
)

// Flows: how an account obtains its tokens.
const (
	FlowInteractive       = "interactive"        // public: browser, authorization code + PKCE
	FlowDevice            = "device"             // public: device code, for headless machines
	FlowClientCredentials = "client_credentials" // confidential: app-only, no user
	FlowAuthCodeWeb       = "auth_code_web"      // confidential: a web app acting for its users
	FlowRefreshToken      = "refresh_token"      // either: import a refresh token obtained elsewhere
	FlowPassword          = "password"           // public: ROPC, legacy migration only
)

// Protocols an account may be used for.
const (
	ProtocolIMAP  = "imap"
	ProtocolPOP   = "pop"
	ProtocolSMTP  = "smtp"
	ProtocolGraph = "graph"
)

// SASL mechanisms an account may use with the mail servers.
const (
	MechanismXOAUTH2     = "xoauth2"     // Exchange Online's, and the default
	MechanismOAUTHBEARER = "oauthbearer" // RFC 7628, offered by e.g. Dovecot
)

// Clouds: Microsoft's global cloud and the national clouds, which have their own hosts.
const (
	CloudGlobal          = "global"
	CloudUSGovernment    = "usgovernment"    // GCC High
	CloudUSGovernmentDoD = "usgovernmentdod" // DoD
	CloudChina           = "china"           // operated by 21Vianet
)

// Token store backends.
const (
	BackendFile    = "file"
	BackendKeyring = "keyring"
	BackendRedis   = "redis" // Redis 6 or later, or Valkey: a store shared by a fleet
)

// Local TLS modes of a proxy listener.
const (
	LocalTLSNone     = "none"
	LocalTLSImplicit = "implicit"
	LocalTLSStartTLS = "starttls"
)

// ViaGraph is a proxy listener's via: the proxy serves the protocol itself and carries it out with
// Microsoft Graph calls (the Graph gateway), instead of passing the session to the protocol's server.
const ViaGraph = "graph"

// Where the Graph gateway puts what POP3 DELE and IMAP EXPUNGE remove ([proxy.gateway] delete).
const (
	DeleteToDeletedItems = "deleted_items" // moved to Deleted Items, as Outlook does (default)
	DeletePermanently    = "permanent"     // deleted for good
)

// MinPollInterval is the shortest [proxy.gateway] poll_interval: polling Graph faster would spend the
// mailbox's request budget for little gain, and get the app throttled.
const MinPollInterval = 5 * time.Second

// Well-known tenants of the Microsoft identity platform.
const (
	TenantOrganizations = "organizations"
	TenantCommon        = "common"
	TenantConsumers     = "consumers"
)

var (
	flows     = []string{FlowInteractive, FlowDevice, FlowClientCredentials, FlowAuthCodeWeb, FlowRefreshToken, FlowPassword}
	protocols = []string{ProtocolIMAP, ProtocolPOP, ProtocolSMTP, ProtocolGraph}
	clouds    = []string{CloudGlobal, CloudUSGovernment, CloudUSGovernmentDoD, CloudChina}
	localTLS  = []string{LocalTLSNone, LocalTLSImplicit, LocalTLSStartTLS}
)

// DefaultProtocols returns what an account is used for when it does not say: imap and smtp.
func DefaultProtocols() []string { return []string{ProtocolIMAP, ProtocolSMTP} }

// File is a whole configuration file. It can be marshalled with go-toml
// (toml.Marshal(config.File{...})) and the result loads back to the same value.
type File struct {
	Store    Store               `toml:"store,omitempty"`
	Accounts map[string]*Account `toml:"accounts,omitempty"`
	Proxy    *Proxy              `toml:"proxy,omitempty"`
	Console  *Console            `toml:"console,omitempty"`

	// Path is the file this configuration was loaded from, as given to Load; messages name it.
	Path string `toml:"-"`

	pos *tomlconf.Positions
}

// Store configures the token store.
type Store struct {
	// Backend is "file" (default: one encrypted file), "keyring" (the OS keyring) or "redis" (a
	// Redis or Valkey server shared by several machines, values encrypted as the file's).
	Backend string `toml:"backend,omitempty"`
	// Path of the encrypted token file; default DefaultStorePath().
	Path string `toml:"path,omitempty"`
	// Where the file backend gets its key: at most one of these; with none, a passphrase is asked
	// for on the terminal.
	PassphraseEnv  string `toml:"passphrase_env,omitempty"`  // name of a variable holding the passphrase
	PassphraseFile string `toml:"passphrase_file,omitempty"` // file holding the passphrase
	KeyFile        string `toml:"key_file,omitempty"`        // file holding a raw key (containers)

	// The redis backend's server: URL is redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB] (TLS,
	// the certificate verified against CAFile's CAs, else the system's), without a password.
	URL    string `toml:"url,omitempty"`
	CAFile string `toml:"ca_file,omitempty"`
	// Username is a Redis 6 ACL user; its password comes from a variable or a file, at most one.
	Username     string `toml:"username,omitempty"`
	PasswordEnv  string `toml:"password_env,omitempty"`
	PasswordFile string `toml:"password_file,omitempty"`
	// Prefix starts the names of the keys the store writes; default "mailoauth:".
	Prefix string `toml:"prefix,omitempty"`
}

// Account is one account: which identity platform application signs in whom, with which flow, for
// which protocols, with which credentials. Build it in Go and call Check, or read it from an
// [accounts.NAME] table with Load; a field's toml tag is its key in the file, and the fields
// tagged "-" can be set only in code.
//
// Printing an Account (%v, %#v, JSON, slog) never shows a secret: the secret fields are redacted,
// ClientCertificate and RootCAs are left out of JSON, and the other fields hold no secret.
type Account struct {
	// Name is the table's name (accounts.NAME), filled in by Load; for an account built in code,
	// Check derives one when it is empty. It keys the account's tokens in the store.
	Name string `toml:"-"`

	Email     string   `toml:"email,omitempty"`     // the user's address (and SASL user name)
	Tenant    string   `toml:"tenant,omitempty"`    // GUID, domain, or organizations/common/consumers
	ClientID  string   `toml:"client_id,omitempty"` // the app registration's Application (client) ID
	Flow      string   `toml:"flow,omitempty"`      // one of the Flow* constants
	Protocols []string `toml:"protocols,omitempty"` // subset of imap, pop, smtp, graph

	// Client credential of a confidential client: exactly one of the secret's three sources, a
	// certificate file, or the values below. ClientSecret is a value in code; written inline in a
	// file, it is refused when others can read the file.
	ClientSecret            Secret `toml:"client_secret,omitempty"`
	ClientSecretEnv         string `toml:"client_secret_env,omitempty"`
	ClientSecretFile        string `toml:"client_secret_file,omitempty"`
	Certificate             string `toml:"certificate,omitempty"` // PEM (certificate + key) or PKCS#12 (.pfx/.p12)
	CertificatePasswordEnv  string `toml:"certificate_password_env,omitempty"`
	CertificatePasswordFile string `toml:"certificate_password_file,omitempty"`

	// Client credentials given as values, by a program rather than a file; each counts as one
	// client credential, like the keys above. ClientCertificate is a certificate (leaf first, then
	// its chain, as tls.X509KeyPair returns it) with an RSA private key (Entra accepts no other);
	// a key other than an *rsa.PrivateKey, such as one held in an HSM or a cloud KMS, only needs to
	// be a crypto.Signer. PFX is the content of a PKCS#12 (.pfx/.p12) file and PFXPassword its
	// password.
	ClientCertificate *tls.Certificate `toml:"-" json:"-"`
	PFX               SecretBytes      `toml:"-"`
	PFXPassword       Secret           `toml:"-"`

	// The refresh token to import (flow = "refresh_token"): exactly one of the value, the
	// variable, the file.
	RefreshToken     Secret `toml:"-"`
	RefreshTokenEnv  string `toml:"refresh_token_env,omitempty"`
	RefreshTokenFile string `toml:"refresh_token_file,omitempty"`

	// The user's password (flow = "password"): exactly one of the value, the variable, the file.
	Password     Secret `toml:"-"`
	PasswordEnv  string `toml:"password_env,omitempty"`
	PasswordFile string `toml:"password_file,omitempty"`

	Cloud     string   `toml:"cloud,omitempty"`      // one of the Cloud* constants; default global
	LoginHint string   `toml:"login_hint,omitempty"` // pre-fills the sign-in page
	Scopes    []string `toml:"scopes,omitempty"`     // overrides the scopes derived from Protocols
	Mailbox   string   `toml:"mailbox,omitempty"`    // the mailbox to open, if not the user's own
	Authority string   `toml:"authority,omitempty"`  // identity platform base URL, without tenant
	CAFile    string   `toml:"ca_file,omitempty"`    // an extra trusted CA (PEM)
	// RootCAs, when set, is the whole trust of the account's connections (identity platform,
	// Graph, mail servers), in place of the system's roots and CAFile, which must then be empty.
	RootCAs     *x509.CertPool `toml:"-" json:"-"`
	RedirectURI string         `toml:"redirect_uri,omitempty"` // auth_code_web (required), interactive (optional)
	// Mechanism is the SASL mechanism for the mail servers, one of the Mechanism* constants:
	// xoauth2 (default; Exchange Online offers only this) or oauthbearer (RFC 7628, e.g. Dovecot).
	Mechanism string `toml:"mechanism,omitempty"`

	// Server overrides; the defaults come from Cloud.
	IMAP  string `toml:"imap,omitempty"`  // host:port, implicit TLS
	POP   string `toml:"pop,omitempty"`   // host:port, implicit TLS
	SMTP  string `toml:"smtp,omitempty"`  // host:port, STARTTLS
	Graph string `toml:"graph,omitempty"` // https URL of the Graph API root, e.g. https://graph.microsoft.com/v1.0

	origin
}

// Proxy configures `mailoauth proxy`.
type Proxy struct {
	Listeners []Listener `toml:"listener,omitempty"`
	// Users maps the user name a local program sends to an account and the hash of the password
	// it must send.
	Users map[string]*ProxyUser `toml:"users,omitempty"`
	// Domains is a catch-all: any user name ending in @DOMAIN that is not in Users.
	Domains map[string]*ProxyDomain `toml:"domains,omitempty"`
	// Admin is the optional host:port of the metrics and health endpoint.
	Admin string `toml:"admin,omitempty"`
	// Limits on a session (Go durations such as "90s", "31m", "24h"); empty: the proxy's defaults.
	LoginTimeout string `toml:"login_timeout,omitempty"` // connect to upstream OK
	IdleTimeout  string `toml:"idle_timeout,omitempty"`  // no byte either way after login
	MaxSession   string `toml:"max_session,omitempty"`   // any session, however busy
	// Gateway tunes the listeners with via = "graph"; nil: the defaults.
	Gateway *Gateway `toml:"gateway,omitempty"`
}

// Gateway is [proxy.gateway]: how the Graph gateway (listeners with via = "graph") carries out what
// programs ask. Its methods give the defaults for what is not set, also on a nil *Gateway.
type Gateway struct {
	// SaveToSentItems keeps a copy of mail submitted over SMTP in Sent Items; default true.
	SaveToSentItems *bool `toml:"save_to_sent_items,omitempty"`
	// Delete is where POP3 DELE and IMAP EXPUNGE put messages: DeleteToDeletedItems (default) or
	// DeletePermanently.
	Delete string `toml:"delete,omitempty"`
	// PollInterval is how often, at most, a folder is asked for changes (IMAP IDLE and NOOP), as a Go
	// duration; default 30s, at least MinPollInterval.
	PollInterval string `toml:"poll_interval,omitempty"`
}

// SavesToSentItems reports whether submitted mail keeps a copy in Sent Items.
func (g *Gateway) SavesToSentItems() bool {
	return g == nil || g.SaveToSentItems == nil || *g.SaveToSentItems
}

// DeletesPermanently reports whether DELE and EXPUNGE delete for good.
func (g *Gateway) DeletesPermanently() bool { return g != nil && g.Delete == DeletePermanently }

// Poll returns PollInterval, or 30 seconds when it is not set. The file was validated, so it parses.
func (g *Gateway) Poll() time.Duration {
	if g == nil || g.PollInterval == "" {
		return 30 * time.Second
	}
	d, _ := time.ParseDuration(g.PollInterval)
	return d
}

// Timeouts returns the proxy's session limits; zero for those not set. The file was validated, so
// they parse.
func (p *Proxy) Timeouts() (login, idle, maxSession time.Duration) {
	parse := func(s string) time.Duration {
		d, _ := time.ParseDuration(s)
		return d
	}
	return parse(p.LoginTimeout), parse(p.IdleTimeout), parse(p.MaxSession)
}

// Console configures the web console: `mailoauth console` serves it on Listen, and `mailoauth proxy`
// on its [proxy] admin address when this section is present.
type Console struct {
	// Listen is the host:port of `mailoauth console`; default DefaultConsoleListen.
	Listen string `toml:"listen,omitempty"`
	// Auth is how a person logs in: ConsoleAuthPassword (default: the admin password, checked against
	// PasswordHash) or ConsoleAuthNone, which only a loopback address may use.
	Auth string `toml:"auth,omitempty"`
	// PasswordHash is the argon2id hash of the admin password ($argon2id$..., from `mailoauth proxy
	// hash-password`).
	PasswordHash string `toml:"password_hash,omitempty"`
	// TLSCert and TLSKey are a PEM certificate chain and its key; an address that is not loopback
	// needs them (the console's password and session cookie would cross the network in clear).
	TLSCert string `toml:"tls_cert,omitempty"`
	TLSKey  string `toml:"tls_key,omitempty"`
}

// The console's ways to log in ([console] auth).
const (
	ConsoleAuthPassword = "password"
	ConsoleAuthNone     = "none"
)

// DefaultConsoleListen is where `mailoauth console` listens when [console] listen is not set.
const DefaultConsoleListen = "127.0.0.1:8090"

// Listener is one [[proxy.listener]].
type Listener struct {
	Protocol string `toml:"protocol,omitempty"` // imap, pop or smtp
	Listen   string `toml:"listen,omitempty"`   // host:port; loopback unless LocalTLS is set
	Upstream string `toml:"upstream,omitempty"` // host:port; default from the account's cloud
	LocalTLS string `toml:"local_tls,omitempty"`
	TLSCert  string `toml:"tls_cert,omitempty"` // PEM, needed when LocalTLS is not "none"
	TLSKey   string `toml:"tls_key,omitempty"`
	// Via is "" (the protocol's own server: the session is passed to Exchange Online's IMAP, POP or
	// SMTP) or ViaGraph (the proxy serves the protocol itself over Microsoft Graph, for mailboxes
	// whose IMAP, POP or SMTP AUTH is turned off). A listener via Graph has no Upstream.
	Via string `toml:"via,omitempty"`
}

// ProxyUser maps a local user name to an account.
type ProxyUser struct {
	Account      string `toml:"account,omitempty"`
	PasswordHash string `toml:"password_hash,omitempty"` // $argon2id$..., from `mailoauth proxy hash-password`
}

// ProxyDomain maps every user of a domain to an account, with one shared local password.
type ProxyDomain struct {
	Account      string `toml:"account,omitempty"`
	PasswordHash string `toml:"password_hash,omitempty"`
}

// Secret is a secret written inline in the configuration. Its String, GoString, JSON and slog
// forms are redacted so that printing or logging an Account cannot reveal it; use string(s) where
// the value is really needed.
type Secret string

const redacted = "[redacted]"

// String returns a placeholder, never the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns a placeholder, never the secret (for %#v).
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// MarshalJSON writes a placeholder, never the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// LogValue logs a placeholder, never the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// SecretBytes is secret binary data given in code, such as a PFX file's content. Its String,
// GoString, JSON and slog forms are redacted like Secret's.
type SecretBytes []byte

// String returns a placeholder, never the data.
func (b SecretBytes) String() string { return Secret(b).String() }

// GoString returns a placeholder, never the data (for %#v).
func (b SecretBytes) GoString() string { return `config.SecretBytes("` + b.String() + `")` }

// MarshalJSON writes a placeholder, never the data.
func (b SecretBytes) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// LogValue logs a placeholder, never the data.
func (b SecretBytes) LogValue() slog.Value { return slog.StringValue(b.String()) }

// Names returns the account names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Accounts))
	for name := range f.Accounts {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Account returns the named account, or a configuration error listing the accounts there are. An
// account of a File built in code that has no Name takes name, as Load would have given it.
func (f *File) Account(name string) (*Account, error) {
	if a := f.Accounts[name]; a != nil {
		if a.Name == "" {
			a.Name = name
		}
		return a, nil
	}
	where := "the configuration"
	if f.Path != "" {
		where = f.Path
	}
	names := f.Names()
	if len(names) == 0 {
		return nil, &Error{
			Msg: fmt.Sprintf("no account `%s` in %s, which has no accounts", name, where),
			Fix: fmt.Sprintf("add an [accounts.%s] table (see docs/config.md)", tomlconf.FormatKey(name)),
		}
	}
	return nil, &Error{Msg: fmt.Sprintf("no account `%s` in %s; %s", name, where, knownAccounts(name, names))}
}

// knownAccounts lists the accounts for a name that is none of them, first with the one it is likely
// a typo of: the same suggestion an unknown config key gets.
func knownAccounts(name string, names []string) string {
	if near := tomlconf.Nearest(name, names); near != "" {
		return fmt.Sprintf("did you mean %q? Known accounts: %s", near, strings.Join(names, ", "))
	}
	return "known accounts: " + strings.Join(names, ", ")
}

// Public reports whether the account signs in as a public client, which holds no secret: the
// interactive, device and password flows, and the refresh_token flow without a client credential.
func (a *Account) Public() bool {
	switch a.Flow {
	case FlowInteractive, FlowDevice, FlowPassword:
		return true
	case FlowRefreshToken:
		return len(a.clientCredentials()) == 0
	}
	return false
}

// NeedsUser reports whether the flow signs in a user (delegated access) rather than the
// application alone: every flow but client_credentials.
func (a *Account) NeedsUser() bool {
	return a.Flow != FlowClientCredentials
}

// clientCredentials returns the keys of the client credentials the account sets.
func (a *Account) clientCredentials() []string {
	var set []string
	if a.ClientSecret != "" {
		set = append(set, "client_secret")
	}
	if a.ClientSecretEnv != "" {
		set = append(set, "client_secret_env")
	}
	if a.ClientSecretFile != "" {
		set = append(set, "client_secret_file")
	}
	if a.Certificate != "" {
		set = append(set, "certificate")
	}
	if a.ClientCertificate != nil {
		set = append(set, "client_certificate")
	}
	if len(a.PFX) > 0 {
		set = append(set, "pfx")
	}
	return set
}

func oneOf(list []string, v string) bool { return slices.Contains(list, v) }

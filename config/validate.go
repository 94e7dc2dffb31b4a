package config

import (
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"io/fs"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/tomlconf"
)

// validator collects every problem of a file, each placed at its line, or of an account built in
// code (code is set, pos is nil), each naming its Go field.
type validator struct {
	pos  *tomlconf.Positions
	file string
	mode fs.FileMode
	code bool
	errs tomlconf.Errors
}

func (v *validator) add(e *tomlconf.Error) { v.errs = append(v.errs, e) }

// key reports a problem with the key at path (placed at its table's header when not written), or
// with its Go field for an account built in code. msg and fix may name keys as {key} (see say).
func (v *validator) key(path []string, msg, fix string) {
	msg, fix = v.say(msg), v.say(fix)
	if v.code {
		v.add(&tomlconf.Error{Field: goField(path[len(path)-1]), Msg: msg, Fix: fix})
		return
	}
	v.add(v.pos.KeyError(path, msg, fix))
}

// keyRef is a key named in a message, with the backquotes around it if any.
var keyRef = regexp.MustCompile("`?\\{([a-z_]+)\\}`?")

// say renders the keys a message names as {key}: as the TOML key (keeping its backquotes) for a
// file, as the Go field ("Account.Flow") for an account built in code.
func (v *validator) say(s string) string {
	return keyRef.ReplaceAllStringFunc(s, func(m string) string {
		if v.code {
			return goField(keyRef.FindStringSubmatch(m)[1])
		}
		return strings.NewReplacer("{", "", "}", "").Replace(m)
	})
}

// either returns file's text for a file and code's for an account built in code.
func (v *validator) either(file, code string) string {
	if v.code {
		return code
	}
	return file
}

// show is the package's show, with Go's quotes for an account built in code.
func (v *validator) show(s string) string {
	if v.code && showable.MatchString(s) {
		return " " + strconv.Quote(s)
	}
	return show(s)
}

func (v *validator) sort() {
	sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
}

var (
	accountName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	guid        = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// A tenant name under a custom authority (the emulator's "contoso"): one URL path segment.
	pathSegment = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	// What show() is willing to repeat in a message.
	showable = regexp.MustCompile(`^[A-Za-z0-9._@+:\[\]-]{1,64}$`)
	// What a POSIX shell reads as one word without quotes.
	shellSafe = regexp.MustCompile(`^[A-Za-z0-9._/@%+=:,-]+$`)
)

// show quotes a value for a message if it looks like the short token it should be (a flow name,
// an address); otherwise it returns "" and the message does without it, because a long or odd
// value may be a secret pasted into the wrong key.
func show(s string) string {
	if showable.MatchString(s) {
		return " `" + s + "`"
	}
	return ""
}

func (v *validator) validate(f *File) {
	v.store(&f.Store)
	for _, name := range f.Names() {
		v.account(name, f.Accounts[name])
	}
	if f.Proxy != nil {
		v.proxy(f, f.Proxy)
	}
	if f.Console != nil {
		v.console(f, f.Console)
	}
}

// Rule 2: the token store.
func (v *validator) store(s *Store) {
	at := func(key string) []string { return []string{"store", key} }
	switch s.Backend {
	case BackendFile, BackendKeyring:
	case BackendRedis:
		v.redisStore(s)
	default:
		v.key(at("backend"), "invalid backend"+show(s.Backend),
			`use "file" (an encrypted file), "keyring" (the OS keyring) or "redis" (a Redis or Valkey server)`)
		return
	}
	if s.Backend != BackendRedis {
		for _, k := range []struct{ key, val string }{{"url", s.URL}, {"ca_file", s.CAFile}, {"username", s.Username}, {"password_env", s.PasswordEnv}, {"password_file", s.PasswordFile}, {"prefix", s.Prefix}} {
			if k.val != "" || v.pos.Has("store", k.key) {
				v.key(at(k.key), k.key+` is set, but backend is not "redis"`, `remove it, or set backend = "redis"`)
			}
		}
	}
	var sources []string
	for _, k := range []struct {
		key, val string
	}{{"passphrase_env", s.PassphraseEnv}, {"passphrase_file", s.PassphraseFile}, {"key_file", s.KeyFile}} {
		if k.val != "" || v.pos.Has("store", k.key) {
			sources = append(sources, k.key)
		}
	}
	if s.Backend == BackendKeyring {
		for _, k := range sources {
			v.key(at(k), k+` is set, but backend is "keyring"`,
				"remove it: the OS keyring protects the tokens itself, with no passphrase of ours")
		}
		return
	}
	if len(sources) > 1 {
		v.key(at(v.last([]string{"store"}, sources)), setTogether(sources),
			"keep one: the file backend takes its key from exactly one of passphrase_env, passphrase_file, key_file (or, with none, asks on the terminal)")
	}
	if s.PassphraseEnv != "" || v.pos.Has("store", "passphrase_env") {
		v.env(at("passphrase_env"), s.PassphraseEnv, "MAILOAUTH_PASSPHRASE", "passphrase")
	}
	for _, k := range []struct{ key, val string }{{"passphrase_file", s.PassphraseFile}, {"key_file", s.KeyFile}, {"path", s.Path}} {
		if k.val == "" && v.pos.Has("store", k.key) {
			v.key(at(k.key), "`"+k.key+"` is empty", "write a path, or remove the key")
		}
	}
	v.secretFile(at("passphrase_file"), s.PassphraseFile)
	v.secretFile(at("key_file"), s.KeyFile)
}

// redisStore checks the redis backend's keys (Rule 2).
func (v *validator) redisStore(s *Store) {
	at := func(key string) []string { return []string{"store", key} }
	u, err := url.Parse(s.URL)
	switch {
	case s.URL == "":
		v.key(at("url"), "missing `url`, which backend \"redis\" needs", `write the server's address, e.g. url = "rediss://redis.example.com:6379"`)
	case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "":
		v.key(at("url"), "`url` is not a redis:// or rediss:// URL", `write it as "redis://HOST:PORT" or, with TLS, "rediss://HOST:PORT"`)
	default:
		if _, ok := u.User.Password(); ok {
			v.key(at("url"), "`url` holds a password", "remove it from the URL and give it with password_env or password_file")
		}
		if u.RawQuery != "" || u.ForceQuery {
			// The store refuses them too: go-redis would read options such as skip_verify from them.
			v.key(at("url"), "`url` has query options (?...), which the token store does not take", "remove them: TLS is always verified, and the CA goes in ca_file")
		}
		if s.CAFile != "" && u.Scheme != "rediss" {
			v.key(at("ca_file"), "`ca_file` is set but `url` is redis://, without TLS", "use rediss:// so the server's certificate is checked against it")
		}
	}
	if s.PasswordEnv != "" && s.PasswordFile != "" {
		v.key(at("password_file"), setTogether([]string{"password_env", "password_file"}), "keep one: the Redis password comes from one place")
	}
	if s.PasswordEnv != "" || v.pos.Has("store", "password_env") {
		v.env(at("password_env"), s.PasswordEnv, "MAILOAUTH_REDIS_PASSWORD", "password")
	}
	v.secretFile(at("password_file"), s.PasswordFile)
}

// secretFile refuses a file holding a secret that other users can read, as Rule 15 refuses a
// secret written inline in a configuration they can read. It looks only at the file's mode
// (os.Stat), never at its content. A file that cannot be found or examined is left to be reported
// when the secret is read, as before; the path, which names an existing file, is then safe to
// repeat in the message (it is not a secret pasted into the wrong key).
func (v *validator) secretFile(path []string, name string) {
	if name == "" || runtime.GOOS == "windows" {
		// Windows has no Unix permission bits: access is by ACL, and Stat reports 0666 for any
		// writable file, so the mode says nothing about who can read it.
		return
	}
	info, err := os.Stat(name)
	if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o077 == 0 {
		return
	}
	key := "{" + path[len(path)-1] + "}"
	v.key(path, "the file in `"+key+"` can be read by other users", "run chmod 600 "+shellQuote(name))
	v.errs[len(v.errs)-1].Detail = fmt.Sprintf("and %s has mode %04o", name, info.Mode().Perm())
}

// shellQuote quotes p for a POSIX shell when it needs it, so that a suggested command can be pasted.
func shellQuote(p string) string {
	if shellSafe.MatchString(p) {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

// last returns the key of keys written last in the table at prefix, where a "both set" problem is
// best reported (the first one was fine until the second came).
func (v *validator) last(table []string, keys []string) string {
	best, line := keys[len(keys)-1], -1
	for _, k := range keys {
		path := append(append([]string{}, table...), k)
		if l := v.pos.Line(path...); l >= line {
			best, line = k, l
		}
	}
	return best
}

// env checks that a *_env key names an environment variable. The value is never shown: people put
// the secret itself there.
func (v *validator) env(path []string, name, example, what string) {
	if envName.MatchString(name) {
		return
	}
	key := "{" + path[len(path)-1] + "}"
	v.key(path, "`"+key+"` is not the name of an environment variable",
		fmt.Sprintf("write the name of the variable that holds the %s (letters, digits and _), e.g. %s = %q, never the %s itself",
			what, key, example, what))
}

// Rules 3-15: one account. Messages write a key as {key}: say renders it as the TOML key for a
// file and as the Go field for an account built in code.
func (v *validator) account(name string, a *Account) {
	table := []string{"accounts", name}
	at := func(key string) []string { return []string{"accounts", name, key} }
	has := func(key string) bool { return v.pos.Has("accounts", name, key) }

	// Rule 3.
	if !accountName.MatchString(name) {
		const fix = "use letters, digits, '.', '_' and '-', starting with a letter or digit: the name is typed on the command line (mailoauth login NAME)"
		if v.code {
			v.key(at("name"), "invalid {name}"+v.show(name), "use letters, digits, '.', '_' and '-', starting with a letter or digit, or leave it empty for a name derived from the account")
		} else {
			v.add(v.pos.TableError(table, "invalid account name"+show(name), fix))
		}
	}

	// Rule 4.
	flowOK := oneOf(flows, a.Flow)
	switch {
	case a.Flow == "" && !has("flow"):
		v.key(at("flow"), "missing `{flow}`", "set {flow} to one of "+strings.Join(flows, ", "))
	case !flowOK:
		v.key(at("flow"), "invalid {flow}"+v.show(a.Flow), "use one of "+strings.Join(flows, ", "))
	}

	// Rule 5.
	const clientIDFix = "set it to the Application (client) ID from the app registration's Overview page (a GUID such as 00000000-0000-0000-0000-000000000000)"
	switch {
	case a.ClientID == "" && !has("client_id"):
		v.key(at("client_id"), "missing `{client_id}`", clientIDFix)
	case !guid.MatchString(a.ClientID):
		v.key(at("client_id"), "`{client_id}` is not a GUID", clientIDFix)
	}

	v.tenant(name, a)

	// Rule 7.
	if has("protocols") && len(a.Protocols) == 0 {
		v.key(at("protocols"), "`{protocols}` is empty",
			`list at least one of imap, pop, smtp, graph, or remove the key for the default ["imap", "smtp"]`)
	}
	seen := map[string]bool{}
	for _, p := range a.Protocols {
		switch {
		case !oneOf(protocols, p):
			v.key(at("protocols"), "unknown protocol"+v.show(p), "use imap, pop, smtp or graph")
		case seen[p]:
			v.key(at("protocols"), "protocol"+v.show(p)+" is listed twice", "list each protocol once")
		}
		seen[p] = true
	}

	if flowOK {
		v.credentials(name, a)
	}

	// Rule 10.
	for _, k := range []struct{ key, val string }{{"email", a.Email}, {"mailbox", a.Mailbox}, {"login_hint", a.LoginHint}} {
		if (k.val != "" || has(k.key)) && !plainAddress(k.val) {
			v.key(at(k.key), "`{"+k.key+"}`"+v.show(k.val)+" is not a plain address",
				"write the address alone, e.g. {"+k.key+`} = "alice@contoso.com"`)
		}
	}

	// Rule 11.
	if !oneOf(clouds, a.Cloud) {
		v.key(at("cloud"), "unknown {cloud}"+v.show(a.Cloud),
			"use global, usgovernment (GCC High), usgovernmentdod (DoD) or china (21Vianet); GCC (moderate) tenants use global")
	}

	// The SASL mechanism for IMAP, POP3, SMTP and the proxy's upstream logins.
	if m := strings.ToLower(a.Mechanism); a.Mechanism != "" || has("mechanism") {
		if m != MechanismXOAUTH2 && m != MechanismOAUTHBEARER {
			v.key(at("mechanism"), "unknown {mechanism}"+v.show(a.Mechanism),
				"use xoauth2 (Exchange Online's) or oauthbearer (RFC 7628, e.g. Dovecot)"+v.either(", or remove the key for xoauth2", ""))
		} else {
			a.Mechanism = m
		}
	}

	// Rule 12.
	if a.Authority != "" || has("authority") {
		if problem, fix := checkAuthority(a.Authority); problem != "" {
			if v.code {
				fix = strings.TrimSuffix(fix, " =") // "the tenant goes in Account.Tenant", not "… Account.Tenant ="
			}
			v.key(at("authority"), problem, fix)
		} else {
			a.Authority = strings.TrimSuffix(a.Authority, "/")
		}
	}

	// Rule 13.
	for _, k := range []struct{ key, val, example string }{
		{"imap", a.IMAP, "outlook.office365.com:993"},
		{"pop", a.POP, "outlook.office365.com:995"},
		{"smtp", a.SMTP, "smtp.office365.com:587"},
	} {
		if k.val != "" || has(k.key) {
			if problem := checkHostPort(k.val, false); problem != "" {
				v.key(at(k.key), "`{"+k.key+"}` "+problem, fmt.Sprintf("write host:port, e.g. {%s} = %q", k.key, k.example))
			}
		}
	}
	if a.Graph != "" || has("graph") {
		if problem := checkHTTPS(a.Graph); problem != "" {
			v.key(at("graph"), "`{graph}` "+problem, `write the https URL of the Graph API root, e.g. {graph} = "https://graph.microsoft.com/v1.0"`)
		}
	}
	if a.CAFile == "" && has("ca_file") {
		v.key(at("ca_file"), "`{ca_file}` is empty", "write the path of a PEM file, or remove the key")
	}
	if a.RootCAs != nil && a.CAFile != "" {
		v.key(at("ca_file"), "{root_cas} and {ca_file} are both set",
			"keep one: {root_cas} replaces the system's roots, {ca_file} adds to them")
	}

	// Rule 14.
	if has("scopes") && len(a.Scopes) == 0 {
		v.key(at("scopes"), "`{scopes}` is empty", "remove the key to use the scopes that follow from protocols")
	}
	for _, s := range a.Scopes {
		switch {
		case strings.TrimSpace(s) == "":
			v.key(at("scopes"), "`{scopes}` has an empty entry", "remove the empty string")
		case strings.ContainsAny(s, " \t\r\n"):
			v.key(at("scopes"), "a scope in `{scopes}` contains a space", "list each scope as its own string")
		case a.Flow == FlowClientCredentials && !strings.HasSuffix(s, "/.default"):
			v.key(at("scopes"), "scope"+v.show(s)+" does not end in /.default",
				"the client_credentials flow takes only RESOURCE/.default scopes (Entra answers AADSTS1002012 otherwise), e.g. https://outlook.office365.com/.default")
		}
	}

	// Rule 15.
	if a.ClientSecret != "" && v.mode&0o077 != 0 {
		base := filepath.Base(v.file)
		e := v.pos.KeyError(at("client_secret"), "client_secret is written inline",
			"move the secret to client_secret_file (a file only you can read) or client_secret_env, or run chmod 600 "+shellQuote(v.file))
		e.Detail = fmt.Sprintf("and %s can be read by other users (mode %04o)", base, v.mode.Perm())
		v.add(e)
	}
}

// Rule 6: the tenant, and which tenants each flow can use.
func (v *validator) tenant(name string, a *Account) {
	path := []string{"accounts", name, "tenant"}
	has := v.pos.Has(path...)
	specific := "set {tenant} to your directory (tenant) ID or a verified domain such as contoso.onmicrosoft.com"
	wellKnown := a.Tenant == TenantCommon || a.Tenant == TenantOrganizations || a.Tenant == TenantConsumers

	if a.Tenant == "" && !has {
		if a.Flow == FlowClientCredentials || a.Flow == FlowAuthCodeWeb {
			v.key(path, "missing `{tenant}`", "the "+a.Flow+" flow needs a specific tenant: "+specific)
		}
		return
	}
	switch {
	case wellKnown, guid.MatchString(a.Tenant), domainName(a.Tenant):
	case a.Authority != "" && pathSegment.MatchString(a.Tenant):
		// A custom authority (the emulator, a test double) may name its tenants as it likes.
	default:
		fix := "use the directory (tenant) ID (a GUID), a verified domain such as contoso.onmicrosoft.com, or one of organizations, common, consumers"
		if label(a.Tenant) {
			fix = "did you mean " + a.Tenant + ".onmicrosoft.com? Otherwise " + fix
		}
		v.key(path, "invalid {tenant}"+v.show(a.Tenant), fix)
		return
	}
	switch {
	case wellKnown && (a.Flow == FlowClientCredentials || a.Flow == FlowAuthCodeWeb):
		v.key(path, "the "+a.Flow+" flow cannot use {tenant} = \""+a.Tenant+"\"",
			specific+": Entra issues no app-only token from common, organizations or consumers")
	case a.Flow == FlowPassword && (a.Tenant == TenantCommon || a.Tenant == TenantConsumers):
		v.key(path, "the password flow cannot use {tenant} = \""+a.Tenant+"\"",
			`use "organizations" or your own tenant: Entra accepts the password (ROPC) grant for work or school accounts only`)
	}
}

// Rules 8 and 9: what each flow needs, and what it must not have.
func (v *validator) credentials(name string, a *Account) {
	table := []string{"accounts", name}
	at := func(key string) []string { return []string{"accounts", name, key} }
	has := func(key string) bool { return v.pos.Has("accounts", name, key) }
	set := func(key, val string) bool { return val != "" || has(key) }

	creds := a.clientCredentials()
	for _, k := range []string{"client_secret", "client_secret_env", "client_secret_file", "certificate"} {
		if has(k) && !oneOf(creds, k) {
			creds = append(creds, k) // written, but empty: still a credential the user meant to give
		}
	}
	certPass := []string{}
	if set("certificate_password_env", a.CertificatePasswordEnv) {
		certPass = append(certPass, "certificate_password_env")
	}
	if set("certificate_password_file", a.CertificatePasswordFile) {
		certPass = append(certPass, "certificate_password_file")
	}
	if a.PFXPassword != "" {
		certPass = append(certPass, "pfx_password")
	}

	switch a.Flow {
	case FlowInteractive, FlowDevice, FlowPassword:
		for _, k := range append(creds, certPass...) {
			v.key(at(k), "{"+k+"} is set, but the "+a.Flow+" flow is a public client",
				"remove it: a public client must not send a secret; Entra answers AADSTS700025")
		}
		creds, certPass = nil, nil
	case FlowClientCredentials, FlowAuthCodeWeb:
		if len(creds) == 0 {
			v.key(at("client_secret_file"), "missing client credential", "the "+a.Flow+" flow is a confidential client: "+v.either(
				"set one of client_secret_file, client_secret_env, certificate (or client_secret, in a file only you can read)",
				"set one of {client_secret}, {client_certificate}, {pfx}, {client_secret_env}, {client_secret_file}, {certificate}"))
		}
	}
	if len(creds) > 1 {
		v.key(at(v.last(table, creds)), setTogether(braced(creds)),
			"keep exactly one client credential")
	}
	if oneOf(creds, "client_certificate") {
		if problem := certificateProblem(a.ClientCertificate); problem != "" {
			v.key(at("client_certificate"), "{client_certificate} "+problem,
				"build it with tls.X509KeyPair or tls.LoadX509KeyPair, or give the PEM file's path in {certificate}")
		}
	}
	for _, k := range certPass {
		switch {
		case k == "pfx_password" && len(a.PFX) == 0:
			v.key(at(k), "{pfx_password} is set without {pfx}", "remove it, or set {pfx} to the content of a PKCS#12 (.pfx) file")
		case k != "pfx_password" && !set("certificate", a.Certificate):
			v.key(at(k), "{"+k+"} is set without {certificate}",
				`remove it, or add {certificate} = "..." (a PEM or .pfx file)`)
		}
	}
	if oneOf(certPass, "certificate_password_env") && oneOf(certPass, "certificate_password_file") && set("certificate", a.Certificate) {
		v.key(at(v.last(table, []string{"certificate_password_env", "certificate_password_file"})),
			"{certificate_password_env} and {certificate_password_file} are both set", "keep one")
	}

	// Where the secrets come from: *_env names a variable, *_file a file.
	for _, k := range []struct{ key, val, example, what string }{
		{"client_secret_env", a.ClientSecretEnv, "MAILOAUTH_CLIENT_SECRET", "client secret"},
		{"certificate_password_env", a.CertificatePasswordEnv, "MAILOAUTH_CERT_PASSWORD", "certificate password"},
		{"refresh_token_env", a.RefreshTokenEnv, "MAILOAUTH_REFRESH_TOKEN", "refresh token"},
		{"password_env", a.PasswordEnv, "MAILOAUTH_PASSWORD", "password"},
	} {
		if set(k.key, k.val) {
			v.env(at(k.key), k.val, k.example, k.what)
		}
	}
	for _, k := range []struct{ key, val string }{
		{"client_secret_file", a.ClientSecretFile}, {"certificate", a.Certificate},
		{"certificate_password_file", a.CertificatePasswordFile}, {"refresh_token_file", a.RefreshTokenFile},
		{"password_file", a.PasswordFile},
	} {
		if k.val == "" && has(k.key) {
			v.key(at(k.key), "`{"+k.key+"}` is empty", "write a path, or remove the key")
		}
		// The certificate is a secret too: its PEM holds the private key, its PKCS#12 the same.
		v.secretFile(at(k.key), k.val)
	}
	if a.ClientSecret == "" && has("client_secret") {
		v.key(at("client_secret"), "`{client_secret}` is empty", "remove the key, or better use client_secret_file")
	}

	v.userSecret(table, a, FlowRefreshToken, "refresh token", []secretSource{
		{"refresh_token", string(a.RefreshToken)}, {"refresh_token_env", a.RefreshTokenEnv}, {"refresh_token_file", a.RefreshTokenFile}},
		v.either("the refresh_token flow imports a refresh token: set refresh_token_file or refresh_token_env to where it is",
			"the refresh_token flow imports a refresh token: set {refresh_token}, {refresh_token_env} or {refresh_token_file}"))

	// The user's password (ROPC).
	if a.Flow == FlowPassword && a.Email == "" && !has("email") {
		v.key(at("email"), "missing `{email}`", `the password flow signs in as this user: set {email} = "user@domain"`)
	}
	v.userSecret(table, a, FlowPassword, "password", []secretSource{
		{"password", string(a.Password)}, {"password_env", a.PasswordEnv}, {"password_file", a.PasswordFile}},
		v.either("the password flow needs the user's password: set password_file or password_env",
			"the password flow needs the user's password: set {password}, {password_env} or {password_file}"))

	// The redirect URI.
	switch a.Flow {
	case FlowAuthCodeWeb:
		switch {
		case a.RedirectURI == "" && !has("redirect_uri"):
			v.key(at("redirect_uri"), "missing `{redirect_uri}`",
				`set it to a redirect URI registered for the app (Authentication, platform Web), e.g. {redirect_uri} = "https://app.example.com/callback"`)
		case !webRedirect(a.RedirectURI):
			v.key(at("redirect_uri"), "`{redirect_uri}` must be an https URL (http only for localhost)",
				"write the redirect URI exactly as registered for the app, e.g. https://app.example.com/callback")
		}
	case FlowInteractive:
		if set("redirect_uri", a.RedirectURI) && !loopbackRedirect(a.RedirectURI) {
			v.key(at("redirect_uri"), "`{redirect_uri}` of the interactive flow must be http://localhost[:PORT]",
				"the browser comes back to mailoauth on this machine; register http://localhost for the app (Mobile and desktop applications) and "+
					v.either("remove the key", "leave it empty")+", or give a fixed port, e.g. http://localhost:8400")
		}
	default:
		if set("redirect_uri", a.RedirectURI) {
			v.key(at("redirect_uri"), "{redirect_uri} is only used by the interactive and auth_code_web flows", "remove it")
		}
	}

	// Rule 9: who is signed in, and which mailbox is opened.
	if a.Flow == FlowClientCredentials {
		if a.Mailbox == "" && !has("mailbox") {
			v.key(at("mailbox"), "missing `{mailbox}`",
				`the client_credentials flow signs in no user, so it must be told which mailbox to open: set {mailbox} = "user@domain"`)
		}
		if set("login_hint", a.LoginHint) {
			v.key(at("login_hint"), "{login_hint} is set, but the client_credentials flow signs in no user", "remove it")
		}
	}
}

// secretSource is one place a user's secret may come from: a value, a variable, a file.
type secretSource struct{ key, val string }

// userSecret checks the sources of a secret that only flow uses (the refresh token to import, the
// user's password): with that flow exactly one, with any other none.
func (v *validator) userSecret(table []string, a *Account, flow, what string, sources []secretSource, missingFix string) {
	name := table[len(table)-1]
	at := func(key string) []string { return []string{"accounts", name, key} }
	var set []string
	for _, s := range sources {
		if s.val != "" || v.pos.Has(at(s.key)...) {
			set = append(set, s.key)
		}
	}
	if a.Flow == flow {
		switch {
		case len(set) == 0:
			v.key(at(sources[len(sources)-1].key), "missing "+what, missingFix)
		case len(set) > 1:
			v.key(at(v.last(table, set)), setTogether(braced(set)), "keep one")
		}
		return
	}
	for _, k := range set {
		v.key(at(k), "{"+k+"} is only used by the "+flow+" flow, and this account's flow is \""+a.Flow+"\"",
			`remove it, or set {flow} = "`+flow+`"`)
	}
}

// certificateProblem returns what makes a certificate given in code unusable as a client
// credential, or "". It looks at the certificate's form only, never at the key's material.
func certificateProblem(c *tls.Certificate) string {
	switch {
	case len(c.Certificate) == 0:
		return "holds no certificate"
	case c.PrivateKey == nil:
		return "has no private key"
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return "has a private key that is not a crypto.Signer"
	}
	if _, ok := signer.Public().(*rsa.PublicKey); !ok {
		return "has a key that is not RSA, and Entra accepts only RSA client certificates"
	}
	return ""
}

// braced writes each key as {key}, for say.
func braced(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = "{" + k + "}"
	}
	return out
}

// Rule 16: the proxy.
func (v *validator) proxy(f *File, p *Proxy) {
	type addr struct {
		host, port string
		line       int
	}
	var bound []addr
	claim := func(path []string, hostport string) {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return
		}
		line := v.pos.Line(path...)
		for _, b := range bound {
			if b.port == port && (b.host == strings.ToLower(host) || wildcard(b.host) || wildcard(host)) {
				msg := "address `" + hostport + "` is used twice"
				if b.host != strings.ToLower(host) {
					msg = "address `" + hostport + "` overlaps `" + net.JoinHostPort(b.host, b.port) + "`, which listens on every interface"
					if !wildcard(b.host) {
						msg = "address `" + hostport + "` listens on every interface, and so overlaps `" + net.JoinHostPort(b.host, b.port) + "`"
					}
				}
				fix := "give each listener its own port"
				if b.line > 0 {
					fix = fmt.Sprintf("the other is at line %d; %s", b.line, fix)
				}
				v.key(path, msg, fix)
				return
			}
		}
		bound = append(bound, addr{strings.ToLower(host), port, line})
	}

	for i := range p.Listeners {
		l := &p.Listeners[i]
		idx := strconv.Itoa(i)
		at := func(key string) []string { return []string{"proxy", "listener", idx, key} }
		has := func(key string) bool { return v.pos.Has("proxy", "listener", idx, key) }

		switch {
		case l.Protocol == "" && !has("protocol"):
			v.key(at("protocol"), "missing `protocol`", "set protocol to imap, pop or smtp")
		case l.Protocol != ProtocolIMAP && l.Protocol != ProtocolPOP && l.Protocol != ProtocolSMTP:
			v.key(at("protocol"), "invalid protocol"+show(l.Protocol), "use imap, pop or smtp (TLS is chosen with local_tls)")
		}

		listenOK := false
		switch {
		case l.Listen == "" && !has("listen"):
			v.key(at("listen"), "missing `listen`", `set the local address, e.g. listen = "127.0.0.1:1993"`)
		default:
			if problem := checkHostPort(l.Listen, true); problem != "" {
				v.key(at("listen"), "`listen` "+problem, `write host:port, e.g. listen = "127.0.0.1:1993"`)
			} else {
				listenOK = true
				claim(at("listen"), l.Listen)
			}
		}
		switch {
		case l.Via != "" && l.Via != ViaGraph:
			v.key(at("via"), "invalid via"+show(l.Via), `use via = "graph" for the Graph gateway, or remove the key for the protocol's own server`)
		case l.Via == ViaGraph && (l.Upstream != "" || has("upstream")):
			v.key(at("upstream"), "`upstream` is set, but via is \"graph\"",
				`a listener via Graph talks to Microsoft Graph (the account's graph key), not to a mail server: remove upstream, or remove via to pass sessions to upstream`)
		case l.Upstream != "" || has("upstream"):
			if problem := checkHostPort(l.Upstream, false); problem != "" {
				v.key(at("upstream"), "`upstream` "+problem, `write host:port, e.g. upstream = "outlook.office365.com:993", or remove the key for the account's default`)
			}
		}

		if !oneOf(localTLS, l.LocalTLS) {
			v.key(at("local_tls"), "invalid local_tls"+show(l.LocalTLS), "use none, implicit or starttls")
			continue
		}
		if l.LocalTLS == LocalTLSNone {
			for _, k := range []struct{ key, val string }{{"tls_cert", l.TLSCert}, {"tls_key", l.TLSKey}} {
				if k.val != "" || has(k.key) {
					v.key(at(k.key), k.key+` is set, but local_tls is "none"`,
						`set local_tls = "implicit" or "starttls", or remove `+k.key)
				}
			}
			if listenOK && !loopback(l.Listen) {
				v.key(at("listen"), "`listen` address `"+l.Listen+"` is not loopback and local_tls is \"none\"",
					`passwords would cross the network in clear text: set local_tls = "implicit" or "starttls" with tls_cert and tls_key, or listen on 127.0.0.1`)
			}
			continue
		}
		for _, k := range []struct{ key, val string }{{"tls_cert", l.TLSCert}, {"tls_key", l.TLSKey}} {
			if k.val == "" {
				v.key(at(k.key), "missing `"+k.key+"`",
					`local_tls = "`+l.LocalTLS+`" needs a certificate and its key: set tls_cert and tls_key (PEM files)`)
			}
		}
		v.secretFile(at("tls_key"), l.TLSKey) // the private key; the certificate is public
	}

	if p.Admin != "" || v.pos.Has("proxy", "admin") {
		if problem := checkHostPort(p.Admin, true); problem != "" {
			v.key([]string{"proxy", "admin"}, "`admin` "+problem, `write host:port, e.g. admin = "127.0.0.1:9090"`)
		} else {
			claim([]string{"proxy", "admin"}, p.Admin)
		}
	}

	for _, k := range []struct{ key, val string }{{"login_timeout", p.LoginTimeout}, {"idle_timeout", p.IdleTimeout}, {"max_session", p.MaxSession}} {
		if k.val == "" && !v.pos.Has("proxy", k.key) {
			continue
		}
		if d, err := time.ParseDuration(k.val); err != nil || d <= 0 {
			v.key([]string{"proxy", k.key}, "`"+k.key+"`"+show(k.val)+" is not a positive duration",
				`write a Go duration, e.g. `+k.key+` = "30m" (units: s, m, h), or remove the key for the default`)
		}
	}

	v.gateway(p.Gateway)

	known := "known accounts: " + strings.Join(f.Names(), ", ")
	if len(f.Accounts) == 0 {
		known = "the file has no [accounts] yet"
	}
	entry := func(path []string, account, hash string) {
		at := func(key string) []string { return append(append([]string{}, path...), key) }
		switch {
		case account == "" && !v.pos.Has(at("account")...):
			v.key(at("account"), "missing `account`", "name the account this user's mail goes through; "+known)
		case f.Accounts[account] == nil && len(f.Accounts) == 0:
			v.key(at("account"), "no account"+show(account), known)
		case f.Accounts[account] == nil:
			v.key(at("account"), "no account"+show(account), knownAccounts(account, f.Names()))
		}
		switch {
		case hash == "" && !v.pos.Has(at("password_hash")...):
			v.key(at("password_hash"), "missing `password_hash`",
				"run `mailoauth proxy hash-password` and paste what it prints")
		case !strings.HasPrefix(hash, "$argon2id$"):
			v.key(at("password_hash"), "`password_hash` is not an argon2id hash",
				"run `mailoauth proxy hash-password` and paste what it prints (it starts with $argon2id$)")
		}
	}
	for _, user := range sortedKeys(p.Users) {
		path := []string{"proxy", "users", user}
		if user == "" {
			v.add(v.pos.TableError(path, "empty user name", "name the user as the local program sends it"))
		}
		u := p.Users[user]
		if u == nil {
			u = &ProxyUser{}
		}
		entry(path, u.Account, u.PasswordHash)
	}
	for _, domain := range sortedKeys(p.Domains) {
		path := []string{"proxy", "domains", domain}
		if !domainName(domain) {
			v.add(v.pos.TableError(path, "invalid domain"+show(domain), `write the domain alone, e.g. [proxy.domains."contoso.com"]`))
		}
		d := p.Domains[domain]
		if d == nil {
			d = &ProxyDomain{}
		}
		entry(path, d.Account, d.PasswordHash)
	}
}

// gateway checks [proxy.gateway].
func (v *validator) gateway(g *Gateway) {
	if g == nil {
		return
	}
	at := func(key string) []string { return []string{"proxy", "gateway", key} }
	if g.Delete != "" || v.pos.Has(at("delete")...) {
		if g.Delete != DeleteToDeletedItems && g.Delete != DeletePermanently {
			v.key(at("delete"), "invalid delete"+show(g.Delete), `use "deleted_items" (the default: deleted mail goes to Deleted Items) or "permanent"`)
		}
	}
	if g.PollInterval == "" && !v.pos.Has(at("poll_interval")...) {
		return
	}
	d, err := time.ParseDuration(g.PollInterval)
	switch {
	case err != nil || d <= 0:
		v.key(at("poll_interval"), "`poll_interval`"+show(g.PollInterval)+" is not a positive duration",
			`write a Go duration, e.g. poll_interval = "30s", or remove the key for the default (30s)`)
	case d < MinPollInterval:
		v.key(at("poll_interval"), "`poll_interval` "+g.PollInterval+" is shorter than "+MinPollInterval.String(),
			"polling Graph that often spends the mailbox's request budget and gets the app throttled: use at least "+MinPollInterval.String())
	}
}

// setTogether says that keys, which exclude each other, are set together.
func setTogether(keys []string) string {
	if len(keys) == 2 {
		return keys[0] + " and " + keys[1] + " are both set"
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " and " + keys[len(keys)-1] + " are all set"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// plainAddress reports whether s is a bare address, user@domain, without a display name.
func plainAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1
}

// domainName reports whether s is a DNS name of at least two labels.
func domainName(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	for _, l := range labels {
		if !label(l) {
			return false
		}
	}
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil // a numeric last label is an IP address, not a domain
}

// label reports whether s is one DNS label.
func label(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// checkHostPort returns what is wrong with a host:port address, or "". With emptyHost, ":993"
// (every interface) is allowed.
func checkHostPort(s string, emptyHost bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "is not host:port"
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "has no valid port (1-65535)"
	}
	switch {
	case host == "":
		if !emptyHost {
			return "has no host"
		}
	case validHost(host):
	default:
		return "has an invalid host"
	}
	return ""
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if !label(l) {
			return false
		}
	}
	return true
}

// wildcard reports whether a listen host means every interface.
func wildcard(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

// loopback reports whether a valid listen address only accepts connections from this machine.
func loopback(hostport string) bool {
	host, _, _ := net.SplitHostPort(hostport)
	return isLoopbackHost(host)
}

// checkAuthority returns what is wrong with an authority URL and how to fix it, or "". The URL is
// never repeated: it may carry credentials.
func checkAuthority(s string) (problem, fix string) {
	const base = `write the identity platform's base URL without the tenant, e.g. {authority} = "https://login.microsoftonline.com"`
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return "`{authority}` is not a URL", base
	case u.Scheme == "http":
		return "`{authority}` uses http", "use https: MSAL refuses an http authority (the emulator serves https)"
	case u.Scheme != "https":
		return "`{authority}` is not an https URL", base
	case u.User != nil:
		return "`{authority}` contains a user name or password", base
	case u.Path != "" && u.Path != "/":
		return "`{authority}` has a path", base + "; the tenant goes in {tenant} ="
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "`{authority}` has a query or fragment", base
	}
	return "", ""
}

// checkHTTPS returns what is wrong with an https URL, or "".
func checkHTTPS(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return "is not a URL"
	case u.Scheme != "https":
		return "must be an https URL"
	case u.User != nil:
		return "must not contain a user name or password"
	case u.RawQuery != "" || u.Fragment != "":
		return "must not have a query or fragment"
	}
	return ""
}

// webRedirect reports whether s is a redirect URI Entra accepts for a web app: https, or http on
// a loopback host.
func webRedirect(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return isLoopbackHost(u.Hostname())
	}
	return false
}

// loopbackRedirect reports whether s is a loopback redirect URI for the interactive flow.
func loopbackRedirect(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "http" && isLoopbackHost(u.Hostname()) && u.Fragment == "" && u.User == nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

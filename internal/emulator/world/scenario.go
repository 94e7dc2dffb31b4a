package world

// Scenario files (SPEC §6): a TOML description of a world other than the default one. The format is
// documented key by key in docs/scenarios.md; testdata/*.toml are its examples.
//
// Parsing is strict and complete: unknown keys and wrong types are reported by tomlconf, and every
// rule below is checked in one pass, each problem naming the table, the key, the line and the fix.
// Messages may repeat names (tenants, apps, accounts), addresses and permission names, which
// identify things; they never repeat a password, a secret's value, or a value that does not look
// like the short token it should be (see show).

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/tomlconf"
)

// maxScenarioSize bounds what LoadScenario reads: a scenario with hundreds of users is a few
// hundred kilobytes.
const maxScenarioSize = 4 << 20

// LoadScenario reads and parses the scenario file at path (see ParseScenario). A missing file is an
// error wrapping fs.ErrNotExist.
func LoadScenario(path string) (*World, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, scenarioReadError(path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, scenarioReadError(path, err)
	}
	if info.IsDir() {
		return nil, &tomlconf.Error{Msg: path + " is a directory, not a scenario file",
			Fix: "name the .toml file itself (docs/scenarios.md describes the format)"}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxScenarioSize+1))
	if err != nil {
		return nil, scenarioReadError(path, err)
	}
	if len(data) > maxScenarioSize {
		return nil, &tomlconf.Error{Msg: path + " is larger than 4 MiB, which no scenario file is",
			Fix: "check that --scenario names the right file"}
	}
	return ParseScenario(path, data)
}

func scenarioReadError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &tomlconf.Error{Msg: "no scenario file at " + path,
			Fix: "check the path given to --scenario (docs/scenarios.md describes the format)", Err: err}
	}
	reason := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		reason = pe.Err.Error()
	}
	return &tomlconf.Error{Msg: fmt.Sprintf("cannot read scenario file %s: %s", path, reason), Err: err}
}

// ParseScenario decodes and validates data, the content of the scenario file named file (used in
// messages only). The World it returns is complete but not resolved: tenant ids, object ids and
// client ids the file leaves out are empty, and the caller (emulator.Start) calls World.Resolve,
// which fills them; every rule Resolve checks has been checked here already, so Resolve cannot fail
// on a parsed scenario. Confidential apps the file gives no secret get their credentials from the
// emulator at start, as for the default world.
//
// Every error is a configuration error (ConfigError() bool): a *tomlconf.Error for a file that
// cannot be read or is not TOML, otherwise a tomlconf.Errors holding every problem found, in the
// order of their lines.
func ParseScenario(file string, data []byte) (*World, error) {
	var f scenarioFile
	pos, err := tomlconf.Decode(file, data, &f)
	if err != nil {
		return nil, err
	}
	p := &scenarioParser{pos: pos, f: &f, w: &World{}}
	p.parse()
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs
	}
	return p.w, nil
}

// The file's shape. Durations are strings (Go syntax, "90m", "2160h") parsed during validation, so
// that a bad one is reported with the others.
type scenarioFile struct {
	Tokens   *tokensTable             `toml:"tokens"`
	Tenants  map[string]*tenantTable  `toml:"tenants"`
	Apps     map[string]*appTable     `toml:"apps"`
	Accounts map[string]*accountTable `toml:"accounts"`
	Faults   []faultTable             `toml:"faults"`
	Graph    *graphTable              `toml:"graph"`
}

type graphTable struct {
	Throttling         *bool  `toml:"throttling"`
	ConcurrentRequests int    `toml:"concurrent_requests"`
	Requests           int    `toml:"requests"`
	Window             string `toml:"window"`
}

type tokensTable struct {
	AccessTokenLifetime        string `toml:"access_token_lifetime"`
	RefreshTokenInactivity     string `toml:"refresh_token_inactivity"`
	AuthorizationCodeLifetime  string `toml:"authorization_code_lifetime"`
	DeviceCodeLifetime         string `toml:"device_code_lifetime"`
	DevicePollInterval         string `toml:"device_poll_interval"`
	SlowDownBelow              string `toml:"slow_down_below"`
	RevokeRotatedRefreshTokens bool   `toml:"revoke_rotated_refresh_tokens"`
}

type tenantTable struct {
	ID                string         `toml:"id"`
	DisplayName       string         `toml:"display_name"`
	Domains           []string       `toml:"domains"`
	SMTPAuthDisabled  bool           `toml:"smtp_auth_disabled"`
	SMTPBasicAuth     string         `toml:"smtp_basic_auth"`
	Users             []userTable    `toml:"users"`
	SharedMailboxes   []sharedTable  `toml:"shared_mailboxes"`
	ServicePrincipals []servicePrTab `toml:"exchange_service_principals"`
	AccessPolicies    []accessPolTab `toml:"application_access_policies"`
}

type userTable struct {
	UPN           string    `toml:"upn"`
	Password      string    `toml:"password"`
	DisplayName   string    `toml:"display_name"`
	ObjectID      string    `toml:"object_id"`
	MFARequired   bool      `toml:"mfa_required"`
	IMAPDisabled  bool      `toml:"imap_disabled"`
	POPDisabled   bool      `toml:"pop_disabled"`
	SMTPAuth      string    `toml:"smtp_auth"`
	RESTDisabled  bool      `toml:"rest_disabled"`
	RevokedBefore time.Time `toml:"revoked_before"`
}

type sharedTable struct {
	Address      string   `toml:"address"`
	DisplayName  string   `toml:"display_name"`
	ObjectID     string   `toml:"object_id"`
	FullAccess   []string `toml:"full_access"`
	SendAs       []string `toml:"send_as"`
	IMAPDisabled bool     `toml:"imap_disabled"`
	POPDisabled  bool     `toml:"pop_disabled"`
	SMTPAuth     string   `toml:"smtp_auth"`
	RESTDisabled bool     `toml:"rest_disabled"`
}

type servicePrTab struct {
	App        string   `toml:"app"`
	FullAccess []string `toml:"full_access"`
}

type accessPolTab struct {
	App       string   `toml:"app"`
	Mailboxes []string `toml:"mailboxes"`
}

type appTable struct {
	ClientID               string        `toml:"client_id"`
	Tenant                 string        `toml:"tenant"`
	DisplayName            string        `toml:"display_name"`
	Public                 bool          `toml:"public"`
	MultiTenant            bool          `toml:"multi_tenant"`
	AllowPublicClientFlows bool          `toml:"allow_public_client_flows"`
	RedirectURIs           []string      `toml:"redirect_uris"`
	Delegated              []string      `toml:"delegated"`
	Application            []string      `toml:"application"`
	Consented              *bool         `toml:"consented"`
	AdminConsented         *bool         `toml:"admin_consented"`
	NoEnterpriseApp        bool          `toml:"no_enterprise_app"`
	Secrets                []secretTable `toml:"secrets"`
}

type secretTable struct {
	Value   string    `toml:"value"`
	Expires time.Time `toml:"expires"`
}

type accountTable struct {
	App        string   `toml:"app"`
	Flow       string   `toml:"flow"`
	Email      string   `toml:"email"`
	Mailbox    string   `toml:"mailbox"`
	Credential string   `toml:"credential"`
	Protocols  []string `toml:"protocols"`
}

type faultTable struct {
	Endpoint        string  `toml:"endpoint"`
	Status          int     `toml:"status"`
	Latency         string  `toml:"latency"`
	Drop            bool    `toml:"drop"`
	After           int     `toml:"after"`
	Times           int     `toml:"times"`
	Reply           string  `toml:"reply"`
	DisconnectAfter int     `toml:"disconnect_after"`
	Probability     float64 `toml:"probability"`
	Seed            int64   `toml:"seed"`
}

// Values the format accepts.
var (
	scenarioFlows       = []string{"interactive", "device", "client_credentials", "password", "refresh_token", "auth_code_web"}
	scenarioCredentials = []string{"secret", "pfx", "pem"}
	scenarioProtocols   = []string{"imap", "pop", "smtp", "graph"}
	faultEndpoints      = []string{"token", "devicecode", "authorize", "discovery", "keys", "graph", "*", "imap", "pop", "smtp"}
	reservedTenantNames = []string{"common", "organizations", "consumers"}
)

// exchangeShortNames are the permission names that, written without a resource, mean Exchange
// Online's (https://outlook.office.com); every other short name means Microsoft Graph's.
var exchangeShortNames = set("SMTP.Send", "IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "IMAP.AccessAsApp",
	"POP.AccessAsApp", "SMTP.SendAsApp", "full_access_as_app", "EWS.AccessAsUser.All")

// permissionSpelling is how Microsoft spells each permission name, so that a scenario writing
// "imap.accessasapp" still puts "IMAP.AccessAsApp" into tokens' roles.
var permissionSpelling = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "SMTP.Send", "EWS.AccessAsUser.All",
		"IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp", "full_access_as_app", "Mail.Read", "Mail.ReadBasic",
		"Mail.ReadWrite", "Mail.Send", "Mail.Read.Shared", "Mail.ReadWrite.Shared", "Mail.Send.Shared", "User.Read",
		"User.Read.All"} {
		m[strings.ToLower(n)] = n
	}
	return m
}()

var (
	guidRE        = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	nameRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`) // apps and accounts
	tenantNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	domainRE      = regexp.MustCompile(`^(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))+$`)
	localPartRE   = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+/=?^_{|}~.-]{1,64}$`)
	showableRE    = regexp.MustCompile(`^[A-Za-z0-9._@+:/*\[\]-]{1,100}$`)
	durationExmpl = `write a Go duration as a string, such as "90s", "15m", "1h30m" or "2160h" (units ms, s, m, h; there is no unit for days)`
)

// show quotes a value for a message if it looks like the short token it should be (a name, an
// address, a permission); otherwise it returns "" and the message does without it, because an odd
// value may be a secret written under the wrong key.
func show(s string) string {
	if showableRE.MatchString(s) {
		return " `" + s + "`"
	}
	return ""
}

func oneOf(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, v := range list {
		q[i] = `"` + v + `"`
	}
	return strings.Join(q, ", ")
}

func localPart(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	return addr[:at]
}

// mailboxRef is a mailbox of the world: a user's or a shared one.
type mailboxRef struct {
	tenant *Tenant
	user   *User // nil for a shared mailbox
	line   int
}

type scenarioParser struct {
	pos  *tomlconf.Positions
	f    *scenarioFile
	w    *World
	errs tomlconf.Errors

	tenantPaths map[*Tenant][]string
	mailboxes   map[string]mailboxRef // lower-case address -> mailbox
	objectIDs   map[string]int        // lower-case object id -> line first written
	apps        map[string]*App       // name -> app
	appSecrets  map[string]bool       // name -> the file gives it [[secrets]]
}

func (p *scenarioParser) key(path []string, msg, fix string) {
	p.errs = append(p.errs, p.pos.KeyError(path, msg, fix))
}

func (p *scenarioParser) table(path []string, msg, fix string) {
	p.errs = append(p.errs, p.pos.TableError(path, msg, fix))
}

func (p *scenarioParser) has(path ...string) bool { return p.pos.Has(path...) }

func join(base []string, more ...string) []string {
	return append(append(make([]string, 0, len(base)+len(more)), base...), more...)
}

// sortedNames returns a map's keys in the order the file writes them (then by name, for tables the
// file only implies), so that the World's order follows the file.
func sortedNames[V any](p *scenarioParser, prefix string, m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		li, lj := p.pos.Line(prefix, names[i]), p.pos.Line(prefix, names[j])
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	return names
}

func (p *scenarioParser) parse() {
	p.mailboxes = map[string]mailboxRef{}
	p.objectIDs = map[string]int{}
	p.apps = map[string]*App{}
	p.appSecrets = map[string]bool{}
	p.tenantPaths = map[*Tenant][]string{}

	p.tokens()
	p.tenants()
	p.appsTables()
	p.servicePrincipals()
	p.accessPolicies()
	p.accounts()
	p.faults()
	p.graph()
}

// graph reads [graph]: Graph's throttling, on by default with Graph's limits.
func (p *scenarioParser) graph() {
	g := p.f.Graph
	if g == nil {
		return
	}
	path := []string{"graph"}
	t := &p.w.GraphThrottling
	t.Off = g.Throttling != nil && !*g.Throttling
	if p.has(join(path, "concurrent_requests")...) && g.ConcurrentRequests < 1 {
		p.key(join(path, "concurrent_requests"), "`concurrent_requests` is less than 1", "write how many requests an app may have in flight on one mailbox (Graph: 4)")
	}
	if p.has(join(path, "requests")...) && g.Requests < 1 {
		p.key(join(path, "requests"), "`requests` is less than 1", "write an app's budget of requests to one mailbox per window (Graph: 10000)")
	}
	t.Concurrent, t.Requests = g.ConcurrentRequests, g.Requests
	t.Window = p.duration(join(path, "window"), g.Window, 0, time.Second, false)
}

// duration parses the duration at path; min is the smallest value allowed, whole asks for a whole
// number of seconds (values the identity platform announces as integers: expires_in, interval).
func (p *scenarioParser) duration(path []string, s string, def time.Duration, min time.Duration, whole bool) time.Duration {
	if !p.has(path...) {
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		p.key(path, "invalid duration"+show(s)+" in `"+path[len(path)-1]+"`", durationExmpl)
		return def
	}
	switch {
	case d < min && min == 0:
		p.key(path, "`"+path[len(path)-1]+"` is negative", "write 0s or a positive duration")
		return def
	case d < min:
		p.key(path, "`"+path[len(path)-1]+"` must be at least "+min.String(), "write a longer duration, or remove the key for the default")
		return def
	case whole && d%time.Second != 0:
		p.key(path, "`"+path[len(path)-1]+"` must be a whole number of seconds",
			"the identity platform announces it in whole seconds; write e.g. \"2s\" rather than \"1500ms\"")
		return def
	}
	return d
}

func (p *scenarioParser) tokens() {
	p.w.Tokens = DefaultLifetimes()
	t := p.f.Tokens
	if t == nil {
		return
	}
	at := func(k string) []string { return []string{"tokens", k} }
	l := &p.w.Tokens
	l.AccessToken = p.duration(at("access_token_lifetime"), t.AccessTokenLifetime, l.AccessToken, time.Second, true)
	l.RefreshTokenInactivity = p.duration(at("refresh_token_inactivity"), t.RefreshTokenInactivity, l.RefreshTokenInactivity, time.Second, false)
	l.AuthorizationCode = p.duration(at("authorization_code_lifetime"), t.AuthorizationCodeLifetime, l.AuthorizationCode, time.Second, false)
	l.DeviceCode = p.duration(at("device_code_lifetime"), t.DeviceCodeLifetime, l.DeviceCode, time.Second, true)
	l.DevicePollInterval = p.duration(at("device_poll_interval"), t.DevicePollInterval, l.DevicePollInterval, time.Second, true)
	l.SlowDownBelow = p.duration(at("slow_down_below"), t.SlowDownBelow, l.SlowDownBelow, 0, false)
	l.RevokeRotatedRefreshTokens = t.RevokeRotatedRefreshTokens
}

// objectID checks an optional object id and that no other object of the world has it.
func (p *scenarioParser) objectID(path []string, id string) {
	if !p.has(path...) {
		return
	}
	if !guidRE.MatchString(id) {
		p.key(path, "`object_id` is not a GUID", "write it as 8-4-4-4-12 hexadecimal digits, e.g. a11ce000-0000-4000-8000-00000000a11c, or remove the key for a generated one")
		return
	}
	if first, ok := p.objectIDs[strings.ToLower(id)]; ok {
		p.key(path, "object id "+id+" is used twice", fmt.Sprintf("it was first used at line %d; every user and shared mailbox needs its own", first))
		return
	}
	p.objectIDs[strings.ToLower(id)] = p.pos.Line(path...)
}

// address checks a mailbox address of tenant t and registers it; it returns false if the address
// is unusable.
func (p *scenarioParser) address(path []string, addr string, t *Tenant, tenantName string, user *User) bool {
	k := path[len(path)-1]
	if addr == "" {
		if p.has(path...) {
			p.key(path, "`"+k+"` is empty", "write an address such as alice@"+defaultDomainOf(t))
		} else {
			p.key(path, "missing `"+k+"`", "write an address such as alice@"+defaultDomainOf(t))
		}
		return false
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || !localPartRE.MatchString(addr[:at]) || !domainRE.MatchString(addr[at+1:]) {
		p.key(path, "`"+k+"`"+show(addr)+" is not an email address", "write it as name@domain, e.g. alice@"+defaultDomainOf(t))
		return false
	}
	if !tenantOwns(t, addr[at+1:]) {
		doms := append(append([]string{}, t.Domains...), t.Name+".onmicrosoft.com")
		p.key(path, "the domain of"+show(addr)+" is not one of tenant "+tenantName+"'s",
			"use one of "+strings.Join(doms, ", ")+", or add the domain to `domains` of [tenants."+tomlconf.FormatKey(tenantName)+"]")
		return false
	}
	if prev, ok := p.mailboxes[strings.ToLower(addr)]; ok {
		p.key(path, "address"+show(addr)+" is used twice", fmt.Sprintf("it was first used at line %d; every user and shared mailbox needs its own address", prev.line))
		return false
	}
	p.mailboxes[strings.ToLower(addr)] = mailboxRef{tenant: t, user: user, line: p.pos.Line(path...)}
	return true
}

func defaultDomainOf(t *Tenant) string {
	if len(t.Domains) > 0 {
		return t.Domains[0]
	}
	return t.Name + ".onmicrosoft.com"
}

func tenantOwns(t *Tenant, domain string) bool {
	if strings.EqualFold(domain, t.Name+".onmicrosoft.com") {
		return true
	}
	for _, d := range t.Domains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

func (p *scenarioParser) smtpAuth(path []string, v string) string {
	if !p.has(path...) {
		return ""
	}
	if v != "enabled" && v != "disabled" {
		p.key(path, "invalid smtp_auth"+show(v), `use "enabled" or "disabled", or remove the key to follow the tenant's smtp_auth_disabled`)
		return ""
	}
	return v
}

func (p *scenarioParser) tenants() {
	if len(p.f.Tenants) == 0 {
		p.errs = append(p.errs, &tomlconf.Error{File: p.pos.File(), Line: p.pos.Line("tenants"), Msg: "the scenario has no tenant",
			Fix: "add one, e.g. [tenants.contoso] with domains = [\"contoso.test\"] and a [[tenants.contoso.users]] table"})
		return
	}
	names := map[string]int{}   // lower-case name -> line
	ids := map[string]int{}     // lower-case id -> line
	domains := map[string]int{} // lower-case domain -> line
	type pending struct {
		t    *Tenant
		tt   *tenantTable
		path []string
	}
	var all []pending
	// Names, ids and domains of every tenant first: they decide where addresses belong.
	for _, name := range sortedNames(p, "tenants", p.f.Tenants) {
		tt := p.f.Tenants[name]
		if tt == nil {
			tt = &tenantTable{}
		}
		path := []string{"tenants", name}
		line := p.pos.Line(path...)
		switch {
		case name == "":
			p.table(path, "empty tenant name", "name the tenant, e.g. [tenants.contoso]")
		case !tenantNameRE.MatchString(name):
			p.table(path, "invalid tenant name"+show(name),
				"use letters, digits and hyphens only (it is also the tenant's domain NAME.onmicrosoft.com), e.g. [tenants.contoso]")
		case oneOf(reservedTenantNames, strings.ToLower(name)):
			p.table(path, "tenant name `"+name+"` is reserved",
				"common, organizations and consumers are the identity platform's own tenant names; choose another")
		case guidRE.MatchString(name):
			p.table(path, "tenant name `"+name+"` looks like a tenant id", "name the tenant with a word, and write its GUID as `id`")
		default:
			if first, ok := names[strings.ToLower(name)]; ok {
				p.table(path, "tenant name `"+name+"` is used twice",
					fmt.Sprintf("tenant names are compared without case, and the name was first used at line %d; rename one", first))
			}
		}
		names[strings.ToLower(name)] = line
		t := &Tenant{Name: name, DisplayName: tt.DisplayName, SMTPAuthDisabled: tt.SMTPAuthDisabled}
		switch tt.SMTPBasicAuth {
		case "", "disabled":
		case "retired":
			t.SMTPBasicAuthRetired = true
		default:
			p.key(join(path, "smtp_basic_auth"), "invalid smtp_basic_auth"+show(tt.SMTPBasicAuth),
				`use "disabled" (535 5.7.139, Exchange Online before December 2026) or "retired" (550 5.7.30)`)
		}
		if p.has(join(path, "id")...) {
			switch id := tt.ID; {
			case !guidRE.MatchString(id):
				p.key(join(path, "id"), "`id` is not a GUID", "write the tenant id as 8-4-4-4-12 hexadecimal digits, e.g. "+DefaultTenantID+", or remove the key for a generated one")
			case ids[strings.ToLower(id)] > 0:
				p.key(join(path, "id"), "tenant id "+id+" is used twice", fmt.Sprintf("it was first used at line %d; every tenant needs its own", ids[strings.ToLower(id)]))
			default:
				ids[strings.ToLower(id)] = p.pos.Line(join(path, "id")...)
				t.ID = id
			}
		}
		if p.has(join(path, "display_name")...) && strings.TrimSpace(tt.DisplayName) == "" {
			p.key(join(path, "display_name"), "`display_name` is empty", "write a name, or remove the key to use the tenant's name")
		}
		own := strings.ToLower(name) + ".onmicrosoft.com"
		domains[own] = line
		dpath := join(path, "domains")
		for i, d := range tt.Domains {
			ld := strings.ToLower(d)
			switch {
			case !domainRE.MatchString(d):
				p.key(dpath, fmt.Sprintf("element %d of `domains`%s is not a domain name", i+1, show(d)), "write a DNS name such as contoso.test")
				continue
			case ld == own:
				// Its own onmicrosoft.com domain, written out: harmless.
			case strings.HasSuffix(ld, ".onmicrosoft.com"):
				p.key(dpath, "domain "+d+" belongs to another tenant", "NAME.onmicrosoft.com is the domain of the tenant named NAME; remove it")
				continue
			case domains[ld] > 0:
				p.key(dpath, "domain "+d+" is listed twice", fmt.Sprintf("it was first listed at line %d; a domain belongs to one tenant, once", domains[ld]))
				continue
			}
			domains[ld] = p.pos.Line(dpath...)
			t.Domains = append(t.Domains, d)
		}
		all = append(all, pending{t, tt, path})
		p.tenantPaths[t] = path
		p.w.Tenants = append(p.w.Tenants, t)
	}

	// Then the mailboxes, then who has FullAccess to which.
	for _, pt := range all {
		t, tt, path := pt.t, pt.tt, pt.path
		for i, ut := range tt.Users {
			up := join(path, "users", strconv.Itoa(i))
			u := &User{DisplayName: ut.DisplayName, MFARequired: ut.MFARequired, RevokedBefore: ut.RevokedBefore,
				Mailbox: MailboxSettings{IMAPDisabled: ut.IMAPDisabled, POPDisabled: ut.POPDisabled, SMTPAuth: p.smtpAuth(join(up, "smtp_auth"), ut.SMTPAuth), RESTDisabled: ut.RESTDisabled}}
			if !p.address(join(up, "upn"), ut.UPN, t, t.Name, u) {
				continue
			}
			u.UPN = ut.UPN
			switch {
			case !p.has(join(up, "password")...):
				u.Password = localPart(ut.UPN) + "-password"
			case ut.Password == "":
				p.key(join(up, "password"), "`password` is empty",
					"write a password, or remove the key for the default (the UPN's part before @, then -password)")
			default:
				u.Password = ut.Password
			}
			if p.has(join(up, "display_name")...) && strings.TrimSpace(ut.DisplayName) == "" {
				p.key(join(up, "display_name"), "`display_name` is empty", "write a name, or remove the key to use the UPN's part before @")
			}
			p.objectID(join(up, "object_id"), ut.ObjectID)
			u.ObjectID = ut.ObjectID
			t.Users = append(t.Users, u)
		}
		for i, st := range tt.SharedMailboxes {
			sp := join(path, "shared_mailboxes", strconv.Itoa(i))
			m := &SharedMailbox{Address: st.Address, DisplayName: st.DisplayName, ObjectID: st.ObjectID,
				Mailbox: MailboxSettings{IMAPDisabled: st.IMAPDisabled, POPDisabled: st.POPDisabled, SMTPAuth: p.smtpAuth(join(sp, "smtp_auth"), st.SMTPAuth), RESTDisabled: st.RESTDisabled}}
			if !p.address(join(sp, "address"), st.Address, t, t.Name, nil) {
				continue
			}
			if m.DisplayName == "" {
				if p.has(join(sp, "display_name")...) {
					p.key(join(sp, "display_name"), "`display_name` is empty", "write a name, or remove the key to use the address's part before @")
				}
				m.DisplayName = localPart(st.Address)
			}
			p.objectID(join(sp, "object_id"), st.ObjectID)
			t.SharedMailboxes = append(t.SharedMailboxes, m)
		}
	}
	for _, pt := range all {
		t, tt, path := pt.t, pt.tt, pt.path
		for i, st := range tt.SharedMailboxes {
			fp := join(path, "shared_mailboxes", strconv.Itoa(i), "full_access")
			m := t.SharedMailbox(st.Address)
			if m == nil {
				continue // its address was refused
			}
			m.FullAccess = p.fullAccess(fp, st.FullAccess, t, true)
			m.SendAs = p.fullAccess(join(path, "shared_mailboxes", strconv.Itoa(i), "send_as"), st.SendAs, t, true)
		}
	}
}

// fullAccess checks a full_access (or send_as: the last element of path) list of tenant t: users
// only (usersOnly, a shared mailbox's delegates) or any mailbox (a service principal's).
func (p *scenarioParser) fullAccess(path []string, list []string, t *Tenant, usersOnly bool) []string {
	var out []string
	seen := map[string]bool{}
	what := "mailbox"
	if usersOnly {
		what = "user"
	}
	key, right := path[len(path)-1], "FullAccess"
	switch key {
	case "send_as":
		right = "SendAs"
	case "mailboxes":
		right = "access through an application access policy"
	}
	for i, a := range list {
		n := fmt.Sprintf("element %d of `%s`%s", i+1, key, show(a))
		ref, ok := p.mailboxes[strings.ToLower(a)]
		switch {
		case seen[strings.ToLower(a)]:
			p.key(path, n+" is listed twice", "remove one")
			continue
		case !ok:
			p.key(path, n+" is not a "+what+" of this scenario", "name a "+what+" of tenant "+t.Name+" by its address")
			continue
		case ref.tenant != t:
			p.key(path, n+" belongs to tenant "+ref.tenant.Name+", not "+t.Name,
				"Exchange grants "+right+" only within one organisation; name a "+what+" of tenant "+t.Name)
			continue
		case usersOnly && ref.user == nil:
			p.key(path, n+" is a shared mailbox", right+" on a shared mailbox is granted to users, who sign in; name a user")
			continue
		}
		seen[strings.ToLower(a)] = true
		out = append(out, a)
	}
	return out
}

// findTenant resolves a tenant reference as World.Tenant does (name, NAME.onmicrosoft.com, a
// domain, an id written in the file).
func (p *scenarioParser) findTenant(ref string) *Tenant {
	if ref == "" {
		return nil
	}
	return p.w.Tenant(ref)
}

func (p *scenarioParser) appsTables() {
	clientIDs := map[string]int{}
	for _, name := range sortedNames(p, "apps", p.f.Apps) {
		at := p.f.Apps[name]
		if at == nil {
			at = &appTable{}
		}
		path := []string{"apps", name}
		k := func(key string) []string { return join(path, key) }
		switch {
		case name == "":
			p.table(path, "empty app name", "name the app, e.g. [apps.desktop]")
		case !nameRE.MatchString(name):
			p.table(path, "invalid app name"+show(name), "use letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. [apps.daemon]")
		case guidRE.MatchString(name):
			p.table(path, "app name `"+name+"` looks like a client id", "name the app with a word, and write its GUID as `client_id`")
		}
		a := &App{Name: name, DisplayName: at.DisplayName, Public: at.Public, MultiTenant: at.MultiTenant,
			AllowPublicClientFlows: at.AllowPublicClientFlows}
		p.apps[name] = a
		p.w.Apps = append(p.w.Apps, a)

		if p.has(k("client_id")...) {
			switch id := at.ClientID; {
			case !guidRE.MatchString(id):
				p.key(k("client_id"), "`client_id` is not a GUID", "write it as 8-4-4-4-12 hexadecimal digits, e.g. "+DesktopClientID+", or remove the key for a generated one")
			case clientIDs[strings.ToLower(id)] > 0:
				p.key(k("client_id"), "client id "+id+" is used twice", fmt.Sprintf("it was first used at line %d; every app needs its own", clientIDs[strings.ToLower(id)]))
			default:
				clientIDs[strings.ToLower(id)] = p.pos.Line(k("client_id")...)
				a.ClientID = id
			}
		}
		if p.has(k("display_name")...) && strings.TrimSpace(at.DisplayName) == "" {
			p.key(k("display_name"), "`display_name` is empty", "write a name, or remove the key to use the app's name")
		}

		// The home tenant.
		switch {
		case at.Tenant == "" && !p.has(k("tenant")...) && len(p.w.Tenants) == 1:
			a.Tenant = p.w.Tenants[0].Name
		case at.Tenant == "":
			p.key(k("tenant"), "missing `tenant`", "name the tenant the app is registered in, e.g. tenant = \""+firstTenantName(p.w)+"\"")
		default:
			if t := p.findTenant(at.Tenant); t != nil {
				a.Tenant = t.Name
			} else {
				p.key(k("tenant"), "app "+name+" names tenant"+show(at.Tenant)+", which the scenario does not define",
					"use one of "+tenantNames(p.w)+" (the name of a [tenants.NAME] table)")
			}
		}

		// Redirect URIs: a public app without the key gets http://localhost, as the default desktop app.
		if at.Public && !p.has(k("redirect_uris")...) {
			a.RedirectURIs = []string{"http://localhost"}
		}
		seen := map[string]bool{}
		for i, u := range at.RedirectURIs {
			if msg, fix := checkRedirect(u); msg != "" {
				p.key(k("redirect_uris"), fmt.Sprintf("element %d of `redirect_uris`%s %s", i+1, show(u), msg), fix)
				continue
			}
			if seen[u] {
				p.key(k("redirect_uris"), fmt.Sprintf("element %d of `redirect_uris`%s is listed twice", i+1, show(u)), "remove one")
				continue
			}
			seen[u] = true
			a.RedirectURIs = append(a.RedirectURIs, u)
		}

		a.Delegated = p.permissions(k("delegated"), at.Delegated, false)
		a.Application = p.permissions(k("application"), at.Application, true)
		a.Consented = len(a.Delegated) > 0
		if at.Consented != nil {
			a.Consented = *at.Consented
		}
		a.AdminConsented = len(a.Application) > 0
		if at.AdminConsented != nil {
			a.AdminConsented = *at.AdminConsented
		}
		a.NoEnterpriseApp = at.NoEnterpriseApp

		p.appSecrets[name] = len(at.Secrets) > 0
		if at.Public && len(at.Secrets) > 0 {
			p.key(k("secrets"), "app "+name+" is public but has secrets",
				"a public client holds no secret (Entra answers AADSTS700025 when one is sent): remove the secrets, or remove public = true")
		} else {
			for i, s := range at.Secrets {
				sp := join(k("secrets"), strconv.Itoa(i))
				if s.Value == "" {
					if p.has(join(sp, "value")...) {
						p.key(join(sp, "value"), "`value` is empty", "write the secret's value")
					} else {
						p.key(join(sp, "value"), "missing `value`", "write the secret's value, e.g. value = \"daemon-secret\"")
					}
					continue
				}
				a.Secrets = append(a.Secrets, Secret(s))
			}
		}
	}
}

func firstTenantName(w *World) string {
	if len(w.Tenants) > 0 {
		return w.Tenants[0].Name
	}
	return "contoso"
}

func tenantNames(w *World) string {
	var n []string
	for _, t := range w.Tenants {
		n = append(n, t.Name)
	}
	if len(n) == 0 {
		return "a tenant defined by a [tenants.NAME] table"
	}
	return strings.Join(n, ", ")
}

// checkRedirect applies Entra's rules for redirect URIs: absolute, no fragment, https except for
// http on a loopback host; custom schemes (msal<client id>://auth) are allowed for public clients.
func checkRedirect(s string) (msg, fix string) {
	const fix0 = "write an absolute URI such as http://localhost or https://app.example.com/callback"
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "" && u.Path == "") {
		return "is not an absolute URI", fix0
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return "has a fragment", "remove the #...: Entra refuses redirect URIs with a fragment"
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return "has no host", fix0
		}
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "uses http on a host other than localhost", "use https, or http://localhost (Entra accepts http only for loopback)"
		}
	}
	return "", ""
}

// permissions checks and canonicalises a delegated (application false) or application permission
// list.
func (p *scenarioParser) permissions(path []string, list []string, application bool) []string {
	kind, other, otherKey := "delegated", "an application", "application"
	if application {
		kind, other, otherKey = "application", "a delegated", "delegated"
	}
	var out []string
	seen := map[string]bool{}
	for i, perm := range list {
		n := fmt.Sprintf("element %d of `%s`%s", i+1, path[len(path)-1], show(perm))
		full := perm
		if !strings.Contains(perm, "/") {
			if exchangeShortNames[strings.ToLower(perm)] {
				full = ExchangeResource + "/" + perm
			} else {
				full = GraphResource + "/" + perm
			}
		}
		canon, ok := CanonicalPermission(full, application)
		if !ok {
			r, _, name := SplitPermission(full)
			switch {
			case r == nil:
				p.key(path, n+" names an unknown resource",
					"write a short name (IMAP.AccessAsUser.All, Mail.Send) or a full one under "+ExchangeResource+"/ or "+GraphResource+"/")
			case name == ".default":
				p.key(path, n+" is not a permission", ".default is a scope that requests an app's registered permissions; list the permissions themselves")
			case (application && r.Delegated[strings.ToLower(name)]) || (!application && r.Application[strings.ToLower(name)]):
				p.key(path, n+" is "+other+" permission", "move it to `"+otherKey+"`")
			default:
				p.key(path, n+" is not a known "+kind+" permission of "+r.URI, "use one of "+knownPermissions(r, application))
			}
			continue
		}
		r, _, name := SplitPermission(canon)
		if s, ok := permissionSpelling[strings.ToLower(name)]; ok {
			canon = r.URI + "/" + s
		}
		if seen[strings.ToLower(canon)] {
			p.key(path, n+" is listed twice", "remove one (a short name and its full form are the same permission)")
			continue
		}
		seen[strings.ToLower(canon)] = true
		out = append(out, canon)
	}
	return out
}

func knownPermissions(r *Resource, application bool) string {
	m := r.Delegated
	if application {
		m = r.Application
	}
	var names []string
	for n := range m {
		if s, ok := permissionSpelling[n]; ok {
			n = s
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// appRef finds an app by name or client id, as World.App does.
func (p *scenarioParser) appRef(ref string) *App {
	if a := p.apps[ref]; a != nil {
		return a
	}
	for _, a := range p.w.Apps {
		if a.ClientID != "" && strings.EqualFold(a.ClientID, ref) {
			return a
		}
	}
	return nil
}

func (p *scenarioParser) appNames() string {
	var n []string
	for _, a := range p.w.Apps {
		n = append(n, a.Name)
	}
	if len(n) == 0 {
		return "an app defined by an [apps.NAME] table"
	}
	return strings.Join(n, ", ")
}

// eachTenant calls f for every tenant the file describes, with its table and its key path.
func (p *scenarioParser) eachTenant(f func(t *Tenant, tt *tenantTable, path []string)) {
	for _, t := range p.w.Tenants {
		if tt := p.f.Tenants[t.Name]; tt != nil {
			f(t, tt, p.tenantPaths[t])
		}
	}
}

func (p *scenarioParser) servicePrincipals() {
	p.eachTenant(func(t *Tenant, tt *tenantTable, path []string) {
		seen := map[*App]int{}
		for i, st := range tt.ServicePrincipals {
			sp := join(path, "exchange_service_principals", strconv.Itoa(i))
			a := p.tenantApp(join(sp, "app"), st.App, t, "exchange_service_principals", "service principal", seen,
				"the app registered in Exchange", "Exchange can register", "full_access")
			if a == nil {
				continue
			}
			t.ServicePrincipals = append(t.ServicePrincipals, &ServicePrincipal{
				App: a.Name, FullAccess: p.fullAccess(join(sp, "full_access"), st.FullAccess, t, false),
			})
		}
	})
}

// accessPolicies reads each tenant's [[application_access_policies]]: an app of the tenant and the
// mailboxes of the tenant it is restricted to.
func (p *scenarioParser) accessPolicies() {
	p.eachTenant(func(t *Tenant, tt *tenantTable, path []string) {
		seen := map[*App]int{}
		for i, pt := range tt.AccessPolicies {
			pp := join(path, "application_access_policies", strconv.Itoa(i))
			a := p.tenantApp(join(pp, "app"), pt.App, t, "application_access_policies", "application access policy", seen,
				"the app the policy restricts", "a policy can restrict", "mailboxes")
			if a == nil {
				continue
			}
			t.ApplicationAccessPolicies = append(t.ApplicationAccessPolicies, &ApplicationAccessPolicy{
				App: a.Name, Mailboxes: p.fullAccess(join(pp, "mailboxes"), pt.Mailboxes, t, false),
			})
		}
	})
}

// tenantApp checks the app a tenant's table names (an Exchange service principal, an application
// access policy): it is given, defined, usable in tenant t, and named by one such table only.
func (p *scenarioParser) tenantApp(ap []string, ref string, t *Tenant, table, what string, seen map[*App]int, whichApp, who, list string) *App {
	a := p.appRef(ref)
	switch {
	case ref == "":
		p.key(ap, "missing `app`", "name "+whichApp+", e.g. app = \"daemon\"")
		return nil
	case a == nil:
		p.key(ap, what+" names app"+show(ref)+", which the scenario does not define", "use one of "+p.appNames())
		return nil
	case a.Tenant != "" && a.Tenant != t.Name && !a.MultiTenant:
		p.key(ap, "app "+a.Name+" is registered in tenant "+a.Tenant+" and is not multi-tenant",
			strings.ToUpper(who[:1])+who[1:]+" only an app usable in tenant "+t.Name+": set multi_tenant = true on [apps."+tomlconf.FormatKey(a.Name)+"], or move this table to [[tenants."+tomlconf.FormatKey(a.Tenant)+"."+table+"]]")
		return nil
	case seen[a] > 0:
		plural := what + "s"
		if w, ok := strings.CutSuffix(what, "y"); ok {
			plural = w + "ies"
		}
		p.key(ap, "app "+a.Name+" has two "+plural+" in tenant "+t.Name,
			fmt.Sprintf("the first is at line %d; merge their %s lists", seen[a], list))
		return nil
	}
	seen[a] = p.pos.Line(ap...)
	return a
}

func (p *scenarioParser) accounts() {
	if p.f.Accounts == nil && !p.has("accounts") {
		p.deriveAccounts()
		return
	}
	for _, name := range sortedNames(p, "accounts", p.f.Accounts) {
		at := p.f.Accounts[name]
		if at == nil {
			at = &accountTable{}
		}
		path := []string{"accounts", name}
		k := func(key string) []string { return join(path, key) }
		if !nameRE.MatchString(name) {
			p.table(path, "invalid account name"+show(name), "use letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. [accounts.alice]")
		}
		acc := AccountSpec{Name: name, Flow: at.Flow, Email: at.Email, Mailbox: at.Mailbox, Credential: at.Credential}

		var a *App
		switch {
		case at.App == "":
			p.key(k("app"), "missing `app`", "name the app the account signs in with, e.g. app = \""+firstAppName(p.w)+"\"")
		default:
			if a = p.appRef(at.App); a == nil {
				p.key(k("app"), "account "+name+" names app"+show(at.App)+", which the scenario does not define", "use one of "+p.appNames())
			} else {
				acc.App = a.Name
			}
		}

		// The flow, and whether the app can use it.
		flowOK := a != nil || p.has(k("flow")...)
		switch {
		case !p.has(k("flow")...) && a == nil:
			// The flow follows the app, which is missing: reported above.
		case !p.has(k("flow")...):
			acc.Flow = "client_credentials"
			if a.Public {
				acc.Flow = "interactive"
			}
		case !oneOf(scenarioFlows, at.Flow):
			p.key(k("flow"), "invalid flow"+show(at.Flow), "use one of "+quoteList(scenarioFlows))
			flowOK = false
		case a == nil:
		case at.Flow == "interactive" && !a.Public:
			p.key(k("flow"), "the interactive flow needs a public app, and app "+a.Name+" is confidential",
				"set public = true on [apps."+tomlconf.FormatKey(a.Name)+"] (its authorization code is then redeemed without a secret), or use flow = \"auth_code_web\"")
		case (at.Flow == "device" || at.Flow == "password") && !a.HasPublicFlows():
			p.key(k("flow"), "the "+at.Flow+" flow needs a public app or allow_public_client_flows, and app "+a.Name+" has neither",
				"set allow_public_client_flows = true (or public = true) on [apps."+tomlconf.FormatKey(a.Name)+"]")
		case (at.Flow == "client_credentials" || at.Flow == "auth_code_web") && a.Public:
			p.key(k("flow"), "the "+at.Flow+" flow needs a confidential app, and app "+a.Name+" is public",
				"use an app without public = true, or a public-client flow (interactive, device)")
		}
		delegated := acc.Flow != "client_credentials"
		publicFlow := acc.Flow == "interactive" || acc.Flow == "device" || acc.Flow == "password"

		// Who signs in, and which mailbox is opened.
		switch {
		case !flowOK:
		case delegated && at.Email == "":
			p.key(k("email"), "missing `email`", "the "+acc.Flow+" flow signs a user in: set email to the UPN of a user of the scenario")
		case delegated:
			if ref, ok := p.mailboxes[strings.ToLower(at.Email)]; !ok || ref.user == nil {
				what := "a user of this scenario"
				if ok {
					what = "a user (it is a shared mailbox, which cannot sign in; open it with `mailbox`)"
				}
				p.key(k("email"), "`email`"+show(at.Email)+" is not "+what, "set email to the UPN of a [[tenants.NAME.users]] entry")
			}
		case p.has(k("email")...):
			p.key(k("email"), "email is set, but the client_credentials flow signs in no user", "remove it, and name the mailbox to open with `mailbox`")
		}
		switch {
		case !flowOK:
		case !delegated && at.Mailbox == "":
			p.key(k("mailbox"), "missing `mailbox`", "the client_credentials flow signs in no user: set mailbox to the address of the mailbox to open")
		case at.Mailbox != "" || p.has(k("mailbox")...):
			if _, ok := p.mailboxes[strings.ToLower(at.Mailbox)]; !ok {
				p.key(k("mailbox"), "`mailbox`"+show(at.Mailbox)+" is not a mailbox of this scenario", "name a user or a shared mailbox by its address")
			}
		}

		// The client credential written into the config.
		switch {
		case !flowOK || a == nil:
		case p.has(k("credential")...) && (a.Public || publicFlow):
			why := "app " + a.Name + " is public"
			if !a.Public {
				why = "the " + acc.Flow + " flow is a public client"
			}
			p.key(k("credential"), "credential is set, but "+why, "remove it: a public client sends no secret (Entra answers AADSTS700025)")
		case p.has(k("credential")...) && !oneOf(scenarioCredentials, at.Credential):
			p.key(k("credential"), "invalid credential"+show(at.Credential),
				`use "secret" (client_secret_file), "pfx" (a password-protected PKCS#12 file) or "pem" (certificate and key in one PEM file)`)
		case p.has(k("credential")...) && at.Credential != "secret" && p.appSecrets[a.Name]:
			p.key(k("credential"), "credential \""+at.Credential+"\" needs the certificate the emulator generates, and app "+a.Name+" has [[secrets]]",
				"the emulator generates a certificate only for a confidential app given no secret: use credential = \"secret\", or remove the app's secrets")
		case !p.has(k("credential")...) && !a.Public && !publicFlow:
			acc.Credential = "secret"
		}

		// Protocols.
		if p.has(k("protocols")...) {
			if len(at.Protocols) == 0 {
				p.key(k("protocols"), "`protocols` is empty", "list some of "+quoteList(scenarioProtocols)+", or remove the key for all of them")
			}
			seen := map[string]bool{}
			for i, pr := range at.Protocols {
				switch {
				case !oneOf(scenarioProtocols, pr):
					p.key(k("protocols"), fmt.Sprintf("element %d of `protocols`%s is not a protocol", i+1, show(pr)), "use "+quoteList(scenarioProtocols))
				case seen[pr]:
					p.key(k("protocols"), fmt.Sprintf("element %d of `protocols`%s is listed twice", i+1, show(pr)), "remove one")
				default:
					seen[pr] = true
					acc.Protocols = append(acc.Protocols, pr)
				}
			}
		}
		p.w.Accounts = append(p.w.Accounts, acc)
	}
}

func firstAppName(w *World) string {
	if len(w.Apps) > 0 {
		return w.Apps[0].Name
	}
	return "desktop"
}

// deriveAccounts gives a scenario without [accounts] one account per app: for a public app, an
// interactive account for the first user of its tenant, named after the user's part before @; for a
// confidential app, a client_credentials account with the secret, opening that user's mailbox, named
// after the app. A name already taken gets "-APP" appended, then a number. An app whose tenant has
// no user gets no account.
func (p *scenarioParser) deriveAccounts() {
	taken := map[string]bool{}
	unique := func(name, app string) string {
		if !taken[name] {
			return name
		}
		if n := name + "-" + app; !taken[n] {
			return n
		}
		for i := 2; ; i++ {
			if n := fmt.Sprintf("%s-%d", name, i); !taken[n] {
				return n
			}
		}
	}
	for _, a := range p.w.Apps {
		t := p.w.Tenant(a.Tenant)
		if a.Tenant == "" || t == nil || len(t.Users) == 0 {
			continue
		}
		u := t.Users[0]
		var acc AccountSpec
		if a.Public {
			acc = AccountSpec{Name: unique(localPart(u.UPN), a.Name), App: a.Name, Flow: "interactive", Email: u.UPN}
		} else {
			acc = AccountSpec{Name: unique(a.Name, a.Name), App: a.Name, Flow: "client_credentials", Mailbox: u.UPN, Credential: "secret"}
		}
		if !nameRE.MatchString(acc.Name) {
			continue // a local part with characters an account name cannot have
		}
		taken[acc.Name] = true
		p.w.Accounts = append(p.w.Accounts, acc)
	}
}

func (p *scenarioParser) faults() {
	for i, ft := range p.f.Faults {
		path := []string{"faults", strconv.Itoa(i)}
		k := func(key string) []string { return join(path, key) }
		f := Fault{Endpoint: ft.Endpoint, Status: ft.Status, Drop: ft.Drop, After: ft.After, Times: ft.Times,
			Reply: ft.Reply, DisconnectAfter: ft.DisconnectAfter, Probability: ft.Probability, Seed: ft.Seed}
		switch {
		case ft.Endpoint == "" && !p.has(k("endpoint")...):
			p.key(k("endpoint"), "missing `endpoint`", "name what fails: one of "+quoteList(faultEndpoints))
		case !oneOf(faultEndpoints, ft.Endpoint):
			p.key(k("endpoint"), "invalid endpoint"+show(ft.Endpoint), "use one of "+quoteList(faultEndpoints))
		}
		mail := f.IsMail()
		if p.has(k("status")...) && (ft.Status < 400 || ft.Status > 599) {
			p.key(k("status"), fmt.Sprintf("status %d is not an HTTP error status", ft.Status), "use 400-599 (e.g. 503 or 429), or remove the key")
		}
		if p.has(k("latency")...) {
			f.Latency = p.duration(k("latency"), ft.Latency, 0, time.Millisecond, false)
		}
		if ft.After < 0 {
			p.key(k("after"), "`after` is negative", "write how many matching requests to let through first (0 or more)")
		}
		if ft.Times < 0 {
			p.key(k("times"), "`times` is negative", "write how many requests to fail (0: every one after `after`)")
		}
		if p.has(k("probability")...) && (ft.Probability <= 0 || ft.Probability > 1) {
			p.key(k("probability"), "`probability` is not in (0, 1]", "write the chance that a counted request fails, e.g. 0.5, or remove the key for every one")
		}
		p.mailFault(path, ft, mail)
		switch {
		case ft.Drop && p.has(k("status")...):
			p.key(k("drop"), "drop and status are both set", "keep one: a dropped connection carries no status")
		case !ft.Drop && !p.has(k("status")...) && !p.has(k("latency")...) && ft.Reply == "" && ft.DisconnectAfter == 0:
			p.table(path, "the fault does nothing", "set at least one of status, latency, drop (mail servers: reply, latency, drop, disconnect_after)")
		}
		p.w.Faults = append(p.w.Faults, f)
	}
}

// mailFault checks the keys that belong to the mail servers' faults, or to the HTTP endpoints'.
func (p *scenarioParser) mailFault(path []string, ft faultTable, mail bool) {
	k := func(key string) []string { return join(path, key) }
	if !mail {
		keys := []string{"reply", "disconnect_after", "probability", "seed"}
		if ft.Endpoint == "graph" {
			keys = keys[:2] // Graph's requests fail by chance too, as the mail servers' commands
		}
		for _, key := range keys {
			if p.has(k(key)...) {
				p.key(k(key), "`"+key+"` applies to the mail servers only", `set endpoint = "imap", "pop" or "smtp", or remove the key`)
			}
		}
		return
	}
	if p.has(k("status")...) {
		p.key(k("status"), "a mail server answers no HTTP status", "write the line it should answer as `reply`, e.g. reply = \"421 4.3.2 Service not available\"")
	}
	if p.has(k("reply")...) && (strings.TrimSpace(ft.Reply) == "" || strings.ContainsAny(ft.Reply, "\r\n") || len(ft.Reply) > 512) {
		p.key(k("reply"), "`reply` is not one line of text", "write one line of at most 512 characters, e.g. \"-ERR Server busy\"")
	}
	if ft.DisconnectAfter < 0 {
		p.key(k("disconnect_after"), "`disconnect_after` is negative", "write how many bytes the server sends before it closes the connection")
	}
	if ft.DisconnectAfter > 0 && (ft.Reply != "" || ft.Drop || p.has(k("latency")...)) {
		p.key(k("disconnect_after"), "disconnect_after counts connections, and reply, latency and drop count commands",
			"make them two faults")
	}
}

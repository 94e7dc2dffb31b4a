package mailoauthtest

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// World is an organisation built in Go: one tenant, whose domains are those of its users'
// addresses, with its users and its app registrations. Each app has one account of the same name,
// which Server.Account returns. What it does not model (several tenants, shared mailboxes, disabled
// protocols, lifetimes other than the access token's, injected faults) a TOML scenario does
// (Options.Scenario).
type World struct {
	Users []User // at least one
	Apps  []App
	// TokenLifetime is how long the access tokens it issues are valid, in whole seconds; zero is an
	// hour, as Entra's. A lifetime shorter than the client's refresh margin (auth's is 5 minutes)
	// makes every token request after the first a silent refresh with the refresh token.
	TokenLifetime time.Duration
}

// User is a member of the tenant with a mailbox.
type User struct {
	Address string // e.g. carol@fabrikam.test; also the user's sign-in name
	// Password is what SignIn and the device-code page take; empty is the address's local part
	// followed by "-password" (carol-password), as in the default world.
	Password    string
	DisplayName string // empty: the local part
}

// App is an app registration and its account.
type App struct {
	// Name names the app and its account: letters, digits, '.', '_' and '-'.
	Name string
	// ClientID is the Application (client) ID, a GUID; empty is a random one.
	ClientID string
	// Flow is its account's flow, which also makes the app public (config.FlowDevice,
	// config.FlowInteractive, config.FlowPassword) or confidential with a client secret
	// (config.FlowClientCredentials, config.FlowAuthCodeWeb); empty is config.FlowDevice.
	Flow string
	// Permissions are granted, with admin consent: delegated ones for a flow that signs a user in,
	// application ones for client credentials. A name alone is Exchange Online's if it is one of its
	// permissions (IMAP.AccessAsUser.All, SMTP.SendAsApp), Microsoft Graph's otherwise (Mail.Send),
	// as in a scenario; a full one names its API (https://graph.microsoft.com/Mail.Send). Nil grants
	// every mail permission of IMAP, POP, SMTP and Graph.
	Permissions []string
	// RedirectURI is registered for the app and set on its account (interactive and auth_code_web);
	// empty is http://localhost (any port) for interactive and http://localhost/callback for
	// auth_code_web.
	RedirectURI string
	// Mailbox is its account's user: for client credentials, the mailbox it opens (the app is
	// granted all of the World's); for the device, interactive and password flows, the user who
	// signs in (config.Account.Email). Empty is the World's first user. An auth_code_web account
	// serves whoever signs in and has none unless it is set.
	Mailbox string
}

var appName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// build turns w into the emulator's model, or says which field is wrong.
func (w *World) build() (*world.World, error) {
	if len(w.Users) == 0 {
		return nil, errors.New("mailoauthtest: World.Users is empty: add at least one User")
	}
	t := &world.Tenant{}
	out := &world.World{Tenants: []*world.Tenant{t}, Tokens: world.DefaultLifetimes()}
	if w.TokenLifetime != 0 {
		if w.TokenLifetime < time.Second || w.TokenLifetime%time.Second != 0 {
			return nil, fmt.Errorf("mailoauthtest: World.TokenLifetime %v is not a whole number of seconds of at least one: the identity platform announces it in seconds", w.TokenLifetime)
		}
		out.Tokens.AccessToken = w.TokenLifetime
	}
	seen := map[string]bool{}
	for i, u := range w.Users {
		addr, err := mail.ParseAddress(u.Address)
		if err != nil || addr.Name != "" || addr.Address != u.Address {
			return nil, fmt.Errorf("mailoauthtest: World.Users[%d].Address %q is not a plain address such as carol@fabrikam.test", i, u.Address)
		}
		key := strings.ToLower(u.Address)
		if seen[key] {
			return nil, fmt.Errorf("mailoauthtest: World.Users[%d].Address %s is given twice: give each user once", i, u.Address)
		}
		seen[key] = true
		local, domain, _ := strings.Cut(key, "@")
		if !containsFold(t.Domains, domain) {
			t.Domains = append(t.Domains, domain)
		}
		pw := u.Password
		if pw == "" {
			pw = local + "-password"
		}
		t.Users = append(t.Users, &world.User{UPN: u.Address, Password: pw, DisplayName: u.DisplayName})
	}
	t.Name, _, _ = strings.Cut(t.Domains[0], ".")
	names := map[string]bool{}
	for i, a := range w.Apps {
		if !appName.MatchString(a.Name) || names[a.Name] {
			return nil, fmt.Errorf("mailoauthtest: World.Apps[%d].Name %q is empty, used twice or not made of letters, digits, '.', '_' and '-': give each app its own name", i, a.Name)
		}
		names[a.Name] = true
		app, acc, err := a.build(i, w, t)
		if err != nil {
			return nil, err
		}
		out.Apps = append(out.Apps, app)
		out.Accounts = append(out.Accounts, acc)
	}
	return out, nil
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// build is the app's registration, its grants in the tenant and its account.
func (a App) build(i int, w *World, t *world.Tenant) (*world.App, world.AccountSpec, error) {
	field := func(name string) string { return fmt.Sprintf("World.Apps[%d].%s", i, name) }
	flow := a.Flow
	if flow == "" {
		flow = config.FlowDevice
	}
	app := &world.App{Name: a.Name, ClientID: a.ClientID, Tenant: t.Name}
	if a.ClientID != "" && !guid.MatchString(a.ClientID) {
		return nil, world.AccountSpec{}, fmt.Errorf("mailoauthtest: %s is not a GUID: leave it empty for a random one", field("ClientID"))
	}
	mailbox := w.Users[0].Address
	if a.Mailbox != "" {
		if t.User(a.Mailbox) == nil {
			return nil, world.AccountSpec{}, fmt.Errorf("mailoauthtest: %s %s is none of World.Users: add the user or leave it empty", field("Mailbox"), a.Mailbox)
		}
		mailbox = a.Mailbox
	}
	acc := world.AccountSpec{Name: a.Name, App: a.Name, Flow: flow, Email: mailbox}
	var defaults []string
	switch flow {
	case config.FlowDevice, config.FlowInteractive, config.FlowPassword:
		app.Public, app.Consented = true, true
		app.RedirectURIs = []string{"http://localhost"}
		defaults = append(append(defaults, world.ExchangeDelegated...), world.GraphMailDelegated...)
	case config.FlowAuthCodeWeb:
		app.Consented, acc.Credential = true, "secret"
		acc.Email = a.Mailbox
		app.RedirectURIs = []string{"http://localhost/callback"}
		defaults = append(append(defaults, world.ExchangeDelegated...), world.GraphMailDelegated...)
	case config.FlowClientCredentials:
		app.AdminConsented, acc.Credential = true, "secret"
		acc.Email, acc.Mailbox = "", mailbox
		defaults = append(append(defaults, world.ExchangeApplication...), world.GraphMailApplication...)
		sp := &world.ServicePrincipal{App: a.Name}
		for _, u := range w.Users {
			sp.FullAccess = append(sp.FullAccess, u.Address)
		}
		t.ServicePrincipals = append(t.ServicePrincipals, sp)
	default:
		return nil, world.AccountSpec{}, fmt.Errorf("mailoauthtest: %s %q is not a flow a World app can have: use config.FlowDevice, FlowInteractive, FlowPassword, FlowClientCredentials or FlowAuthCodeWeb (a TOML scenario covers the others)", field("Flow"), a.Flow)
	}
	if a.RedirectURI != "" {
		if flow != config.FlowInteractive && flow != config.FlowAuthCodeWeb {
			return nil, world.AccountSpec{}, fmt.Errorf("mailoauthtest: %s is set, but only the interactive and auth_code_web flows redirect: remove it", field("RedirectURI"))
		}
		if u, err := url.Parse(a.RedirectURI); flow == config.FlowInteractive && (err != nil || u.Scheme != "http" || !loopback(u.Hostname())) {
			return nil, world.AccountSpec{}, fmt.Errorf("mailoauthtest: %s of an interactive app must be http://localhost[:PORT][/PATH] (the login listens on loopback)", field("RedirectURI"))
		}
		app.RedirectURIs = []string{a.RedirectURI}
	}
	perms := a.Permissions
	if perms == nil {
		perms = defaults
	}
	appOnly := flow == config.FlowClientCredentials
	for _, p := range perms {
		c, ok := world.CanonicalPermission(fullPermission(p), appOnly)
		if !ok {
			kind := "a delegated"
			if appOnly {
				kind = "an application"
			}
			return nil, world.AccountSpec{}, fmt.Errorf("mailoauthtest: %s: %q is not %s permission of Exchange Online or Microsoft Graph: write it as the portal lists it, e.g. https://outlook.office.com/IMAP.AccessAsUser.All or Mail.Send", field("Permissions"), p, kind)
		}
		if appOnly {
			app.Application = append(app.Application, c)
		} else {
			app.Delegated = append(app.Delegated, c)
		}
	}
	return app, acc, nil
}

// fullPermission prefixes a short permission name with its API, Exchange Online's names first.
func fullPermission(p string) string {
	if strings.Contains(p, "/") {
		return p
	}
	exo, _ := world.LookupResource(world.ExchangeResource)
	if n := strings.ToLower(p); exo.Delegated[n] || exo.Application[n] {
		return world.ExchangeResource + "/" + p
	}
	return world.GraphResource + "/" + p
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback()
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

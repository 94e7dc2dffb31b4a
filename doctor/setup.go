package doctor

import (
	"slices"
	"strings"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor/catalog"
)

// Checklist is what must be set up, in Entra ID and Exchange Online, for an account's flow and
// protocols (`mailoauth setup`). Its JSON is documented in docs/doctor.md.
type Checklist struct {
	Account  string   `json:"account"`
	Flow     string   `json:"flow"`
	ClientID string   `json:"client_id"`
	Tenant   string   `json:"tenant"`
	Mailbox  string   `json:"mailbox,omitempty"`
	Scopes   []string `json:"scopes"` // what mailoauth will ask the identity platform for
	Steps    []Item   `json:"steps"`
}

// Item is one step: a title, what to do (portal steps), and the commands to run, filled in.
type Item struct {
	Title    string   `json:"title"`
	Details  []string `json:"details,omitempty"`
	Commands []string `json:"commands,omitempty"`
}

// Setup returns the registration checklist of an account: what the app registration, the tenant and
// the mailbox need for the account's flow and protocols. Facts per Microsoft's pages
// cited by the catalogue: DocOAuth (permissions, scopes, service principal, mailbox permission),
// DocFlows and DocRedirect (platforms, redirect URIs, public client flows), DocAdminConsent,
// DocIMAPPOP and DocSMTPAuth (the mailbox's switches).
func Setup(acc *config.Account) Checklist {
	s := catalog.ForConfig(acc)
	protocols := acc.Protocols
	if len(protocols) == 0 {
		protocols = config.DefaultProtocols()
	}
	mail := slices.DeleteFunc(slices.Clone(protocols), func(p string) bool { return p == config.ProtocolGraph })
	graph := slices.Contains(protocols, config.ProtocolGraph)
	cl := Checklist{Account: acc.Name, Flow: acc.Flow, ClientID: acc.ClientID, Tenant: firstNonEmpty(acc.Tenant, config.TenantOrganizations), Mailbox: s.Mailbox}
	add := func(title string, details []string, commands ...string) {
		cl.Steps = append(cl.Steps, Item{Title: title, Details: details, Commands: commands})
	}
	app := s.PortalApp()

	reg := []string{"Entra admin center (https://entra.microsoft.com) > App registrations; the app for this account has Application (client) ID " + acc.ClientID +
		" — create one with New registration if there is none, and put its id in client_id",
		"tenant: the Directory (tenant) ID on the same Overview page, or a verified domain (now " + cl.Tenant + ")"}
	add("App registration", reg)

	// Platform, redirect URI and client type.
	switch acc.Flow {
	case config.FlowInteractive:
		redirect := firstNonEmpty(acc.RedirectURI, "http://localhost")
		add("Platform and redirect URI", []string{
			app + " > Authentication > Add a platform > Mobile and desktop applications",
			"add the redirect URI " + redirect + " (mailoauth listens on a loopback port; any port matches http://localhost)",
		})
	case config.FlowDevice, config.FlowPassword:
		add("Public client flows", []string{
			app + " > Authentication > Advanced settings > Allow public client flows: Yes (the " + acc.Flow + " flow is a public client flow)",
		})
	case config.FlowAuthCodeWeb:
		add("Platform and redirect URI", []string{
			app + " > Authentication > Add a platform > Web",
			"add the redirect URI " + firstNonEmpty(acc.RedirectURI, "<your web app's redirect URI>"),
		})
	case config.FlowRefreshToken:
		add("Client type", []string{
			"the refresh token must have been issued to client id " + acc.ClientID + "; a public client needs " + app + " > Authentication > Allow public client flows: Yes, a confidential one a client secret or certificate in this account",
		})
	}
	if acc.Flow == config.FlowClientCredentials || acc.Flow == config.FlowAuthCodeWeb || (acc.Flow == config.FlowRefreshToken && s.SecretSource != "") {
		if acc.Certificate != "" {
			add("Client credential: certificate", []string{
				app + " > Certificates & secrets > Certificates > Upload certificate: the public certificate of " + acc.Certificate,
			})
		} else {
			add("Client credential: client secret", []string{
				app + " > Certificates & secrets > Client secrets > New client secret",
				"copy its Value (shown once; not the Secret ID) into " + firstNonEmpty(strings.TrimPrefix(s.SecretSource, "client_secret_file "), "the file named by client_secret_file") + "; note its expiry date: an expired secret gets AADSTS7000222",
			})
		}
	}

	// API permissions by exact name, and consent.
	var perms []string
	if acc.Flow == config.FlowClientCredentials {
		for _, p := range mail {
			perms = append(perms, "APIs my organization uses > Office 365 Exchange Online > Application permissions > "+catalog.NeededPermission(p, true))
		}
		if graph {
			perms = append(perms, "Microsoft Graph > Application permissions > Mail.ReadWrite", "Microsoft Graph > Application permissions > Mail.Send")
		}
		cl.Scopes = []string{s.Cloud.ExchangeApp + "/.default"}
		if graph {
			cl.Scopes = append(cl.Scopes, s.Cloud.Graph+"/.default")
		}
	} else {
		for _, p := range mail {
			perms = append(perms, "APIs my organization uses > Office 365 Exchange Online > Delegated permissions > "+catalog.NeededPermission(p, false))
			cl.Scopes = append(cl.Scopes, s.Cloud.ExchangeDelegated+"/"+catalog.NeededPermission(p, false))
		}
		if graph {
			perms = append(perms, "Microsoft Graph > Delegated permissions > Mail.ReadWrite", "Microsoft Graph > Delegated permissions > Mail.Send")
			cl.Scopes = append(cl.Scopes, s.Cloud.Graph+"/Mail.ReadWrite", s.Cloud.Graph+"/Mail.Send")
		}
		perms = append(perms, "(offline_access, openid and profile are asked for at sign-in; nothing to add)")
	}
	if len(acc.Scopes) > 0 {
		cl.Scopes = acc.Scopes
	}
	for i := range perms {
		perms[i] = app + " > API permissions > Add a permission > " + perms[i]
	}
	perms = append(perms, "the Exchange permissions are under Office 365 Exchange Online, not Microsoft Graph: Graph lists IMAP.AccessAsUser.All too, and its tokens are refused by IMAP (MO-AUD-GRAPH)")
	add("API permissions", perms)
	if acc.Flow == config.FlowClientCredentials {
		add("Admin consent (required for application permissions)", []string{
			app + " > API permissions > Grant admin consent for the tenant, or an administrator opens:",
		}, s.AdminConsentURL())
	} else {
		add("Consent", []string{
			"each user consents at first sign-in (mailoauth login " + acc.Name + "), unless the organisation requires admin consent; an administrator can consent for everyone:",
		}, s.AdminConsentURL())
	}

	// Exchange Online.
	if len(mail) > 0 {
		var cmds []string
		details := []string{"in Exchange Online PowerShell (Install-Module ExchangeOnlineManagement; Connect-ExchangeOnline)"}
		if acc.Flow == config.FlowClientCredentials {
			details = append(details,
				"register the app's service principal: the object id is the Enterprise Application's (Entra admin center > Enterprise applications > the app > Object ID), not the app registration's",
				"then give it FullAccess on the mailbox it opens")
			cmds = append(cmds, s.NewServicePrincipal(""), s.AddMailboxPermission("<Enterprise Application object id>"))
		} else if s.Mailbox != "" && !strings.EqualFold(s.Mailbox, acc.Email) {
			details = append(details, acc.Email+" opens "+s.Mailbox+" (a shared or delegated mailbox): it needs FullAccess there; the SASL user is "+s.Mailbox)
			cmds = append(cmds, s.AddMailboxPermission(acc.Email))
		}
		for _, p := range mail {
			cmds = append(cmds, s.EnableProtocol(p))
		}
		add("Exchange Online", details, cmds...)
	}
	first := "mailoauth login " + acc.Name
	if acc.Flow == config.FlowClientCredentials {
		first = "mailoauth token " + acc.Name // app-only: nobody signs in, the app gets its own token
	}
	add("Try it", nil, first, "mailoauth doctor "+acc.Name)
	return cl
}

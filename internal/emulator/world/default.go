package world

// Names and ids of the default world (SPEC §6). They are part of the contract: tests, docs and the
// written mailoauth.toml refer to them.
const (
	DefaultTenantName = "contoso"
	DefaultTenantID   = "7c4b8e1a-2f5d-4e3b-9a61-0d8f3c2b1a50"
	DefaultDomain     = "contoso.test"
	DesktopClientID   = "4e6f1b2a-8c3d-4a5e-b7f9-1d2c3b4a5e6f"
	DaemonClientID    = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	Alice             = "alice@contoso.test"
	Bob               = "bob@contoso.test"
	Support           = "support@contoso.test"
)

// Delegated and application permissions by their scope URIs.
var (
	ExchangeDelegated = []string{
		ExchangeResource + "/IMAP.AccessAsUser.All",
		ExchangeResource + "/POP.AccessAsUser.All",
		ExchangeResource + "/SMTP.Send",
	}
	GraphMailDelegated = []string{
		GraphResource + "/Mail.ReadWrite",
		GraphResource + "/Mail.Send",
		GraphResource + "/User.Read",
	}
	ExchangeApplication = []string{
		ExchangeResource + "/IMAP.AccessAsApp",
		ExchangeResource + "/POP.AccessAsApp",
		ExchangeResource + "/SMTP.SendAsApp",
	}
	GraphMailApplication = []string{
		GraphResource + "/Mail.ReadWrite",
		GraphResource + "/Mail.Send",
	}
)

// Default returns the default world of SPEC §6: tenant contoso (contoso.test) with alice and bob, the
// shared mailbox support@ (FullAccess for alice), the public app "desktop" and the confidential app
// "daemon" registered in Exchange with FullAccess on alice's and bob's mailboxes. The daemon's secret
// and certificate are not part of it: the emulator generates them at start and adds them.
func Default() *World {
	return &World{
		Tenants: []*Tenant{{
			Name:        DefaultTenantName,
			ID:          DefaultTenantID,
			DisplayName: "Contoso",
			Domains:     []string{DefaultDomain},
			Users: []*User{
				{UPN: Alice, Password: "alice-password", DisplayName: "Alice Smith", ObjectID: "a11ce000-0000-4000-8000-00000000a11c"},
				{UPN: Bob, Password: "bob-password", DisplayName: "Bob Jones", ObjectID: "b0b00000-0000-4000-8000-000000000b0b"},
			},
			SharedMailboxes: []*SharedMailbox{
				{Address: Support, DisplayName: "Contoso Support", FullAccess: []string{Alice}},
			},
			ServicePrincipals: []*ServicePrincipal{
				{App: "daemon", FullAccess: []string{Alice, Bob}},
			},
		}},
		Apps: []*App{
			{
				Name: "desktop", ClientID: DesktopClientID, DisplayName: "Contoso Mail Desktop", Tenant: DefaultTenantName,
				Public: true, RedirectURIs: []string{"http://localhost"},
				Delegated: append(append([]string{}, ExchangeDelegated...), GraphMailDelegated...),
				Consented: true,
			},
			{
				Name: "daemon", ClientID: DaemonClientID, DisplayName: "Contoso Mail Daemon", Tenant: DefaultTenantName,
				Application:    append(append([]string{}, ExchangeApplication...), GraphMailApplication...),
				AdminConsented: true,
			},
		},
		Tokens: DefaultLifetimes(),
		Accounts: []AccountSpec{
			{Name: "alice", App: "desktop", Flow: "interactive", Email: Alice},
			{Name: "alice-device", App: "desktop", Flow: "device", Email: Alice},
			{Name: "daemon", App: "daemon", Flow: "client_credentials", Mailbox: Alice, Credential: "secret"},
			{Name: "daemon-cert", App: "daemon", Flow: "client_credentials", Mailbox: Alice, Credential: "pfx"},
			{Name: "daemon-bob", App: "daemon", Flow: "client_credentials", Mailbox: Bob, Credential: "secret"},
		},
	}
}

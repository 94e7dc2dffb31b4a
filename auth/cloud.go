package auth

import "fmt"

// Cloud is one Microsoft cloud's hosts: where to sign in, which resource URIs scopes name, and where
// the mail servers are.
type Cloud struct {
	Name string
	// Authority is the identity platform's base URL, without a tenant.
	Authority string
	// ExchangeDelegated prefixes delegated scopes (…/IMAP.AccessAsUser.All); ExchangeApp is the
	// resource of app-only tokens (…/.default).
	ExchangeDelegated string
	ExchangeApp       string
	Graph             string // Graph resource URI (scopes)
	GraphAPI          string // Graph API root
	IMAP, POP, SMTP   string // host:port
}

// Clouds, by the names config's `cloud =` takes. Hosts come from Microsoft's documentation, as
// collected with sources in research/exchange-wire.md §5:
//   - global: "Authenticate an IMAP, POP or SMTP connection using OAuth" (learn.microsoft.com/exchange/
//     client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth)
//     and "POP3 and IMAP4 settings" for outlook.office365.com:993/995 and smtp.office365.com:587;
//   - authorities and Graph hosts: Graph "National cloud deployments" (learn.microsoft.com/graph/deployments);
//   - GCC High and DoD mail hosts: "Office 365 U.S. Government GCC High endpoints" and "… DoD endpoints"
//     (learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-gcc-high-endpoints,
//     …-dod-endpoints): outlook.office365.us and outlook-dod.office365.us, TCP 587/993/995;
//   - China: "Office 365 operated by 21Vianet endpoints" (*.partner.outlook.cn, TCP 587/993/995;
//     login.partner.microsoftonline.cn / login.chinacloudapi.cn).
//
// The delegated Exchange scope prefix for the national clouds is not in any Microsoft document found;
// the values here are the ones used in practice (EmailEngine's documentation) and are unconfirmed.
var Clouds = map[string]Cloud{
	"global": {
		Name: "global", Authority: "https://login.microsoftonline.com",
		ExchangeDelegated: "https://outlook.office.com", ExchangeApp: "https://outlook.office365.com",
		Graph: "https://graph.microsoft.com", GraphAPI: "https://graph.microsoft.com/v1.0",
		IMAP: "outlook.office365.com:993", POP: "outlook.office365.com:995", SMTP: "smtp.office365.com:587",
	},
	"usgovernment": { // GCC High
		Name: "usgovernment", Authority: "https://login.microsoftonline.us",
		ExchangeDelegated: "https://outlook.office365.us", ExchangeApp: "https://outlook.office365.us",
		Graph: "https://graph.microsoft.us", GraphAPI: "https://graph.microsoft.us/v1.0",
		IMAP: "outlook.office365.us:993", POP: "outlook.office365.us:995", SMTP: "outlook.office365.us:587",
	},
	"usgovernmentdod": {
		Name: "usgovernmentdod", Authority: "https://login.microsoftonline.us",
		ExchangeDelegated: "https://outlook-dod.office365.us", ExchangeApp: "https://outlook-dod.office365.us",
		Graph: "https://dod-graph.microsoft.us", GraphAPI: "https://dod-graph.microsoft.us/v1.0",
		IMAP: "outlook-dod.office365.us:993", POP: "outlook-dod.office365.us:995", SMTP: "outlook-dod.office365.us:587",
	},
	"china": { // operated by 21Vianet
		Name: "china", Authority: "https://login.chinacloudapi.cn",
		ExchangeDelegated: "https://partner.outlook.cn", ExchangeApp: "https://partner.outlook.cn",
		Graph: "https://microsoftgraph.chinacloudapi.cn", GraphAPI: "https://microsoftgraph.chinacloudapi.cn/v1.0",
		IMAP: "partner.outlook.cn:993", POP: "partner.outlook.cn:995", SMTP: "smtp.partner.outlook.cn:587",
	},
}

// LookupCloud returns a cloud by name; "" is global.
func LookupCloud(name string) (Cloud, error) {
	if name == "" {
		name = "global"
	}
	c, ok := Clouds[name]
	if !ok {
		return Cloud{}, fmt.Errorf("unknown cloud %q; use global, usgovernment, usgovernmentdod or china", name)
	}
	return c, nil
}

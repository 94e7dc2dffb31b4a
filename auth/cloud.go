package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mailoauth/mailoauth/config"
)

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

// clouds, by the names Account.Cloud takes. The hosts are those Microsoft documents for each cloud
// (the IMAP, POP and SMTP endpoints of Exchange Online and its national deployments, and Graph's
// national cloud deployments). The delegated Exchange scope prefix of the national clouds is not
// documented by Microsoft; the values here are the ones used in practice.
var clouds = map[string]Cloud{
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

// LookupCloud returns a copy of the named cloud's hosts; "" is global. The names are
// CloudNames(), the config.Cloud* constants.
func LookupCloud(name string) (Cloud, error) {
	if name == "" {
		name = config.CloudGlobal
	}
	c, ok := clouds[name]
	if !ok {
		return Cloud{}, fmt.Errorf("unknown cloud %q; use one of %s", name, strings.Join(CloudNames(), ", "))
	}
	return c, nil
}

// CloudNames returns the names LookupCloud knows, sorted.
func CloudNames() []string {
	names := make([]string, 0, len(clouds))
	for n := range clouds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

package config

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

const (
	appID  = "11111111-2222-3333-4444-555555555555"
	hashOK = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
)

// Accounts that are valid on their own, to build cases from.
const (
	interactive = "[accounts.work]\nflow = \"interactive\"\nclient_id = \"" + appID + "\"\n"
	daemon      = "[accounts.daemon]\nflow = \"client_credentials\"\nclient_id = \"" + appID + "\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_secret_file = \"secret.txt\"\nmailbox = \"alice@contoso.com\"\n"
)

// ruleCase is a file with exactly one problem, and where and how it must be reported.
type ruleCase struct {
	name string
	src  string
	mode fs.FileMode // 0 means 0600
	line int         // the line the error must name
	key  string      // the key it must name ("" for a table-level problem)
	want []string    // fragments of the message: the problem and the fix
}

func TestRules(t *testing.T) {
	cases := []ruleCase{
		// Rule 1: unknown keys, syntax, types.
		{name: "unknown key", src: interactive + "flwo = \"device\"\n", line: 4, key: "flwo",
			want: []string{"unknown key `flwo` in [accounts.work] at config.toml:4: did you mean `flow`?"}},
		{name: "unknown table", src: "[stroe]\nbackend = \"file\"\n", line: 1, key: "stroe",
			want: []string{"unknown table [stroe] at config.toml:1: did you mean [store]?"}},
		{name: "syntax", src: "[accounts.work]\nflow = interactive\n", line: 2,
			want: []string{"config.toml:2:8: invalid value: text must be quoted"}},
		{name: "wrong type", src: interactive + "protocols = \"imap\"\n", line: 4, key: "protocols",
			want: []string{"wrong type for `protocols` in [accounts.work] at config.toml:4: it must be a list of strings, not a string"}},

		// Rule 2: the store.
		{name: "backend", src: "[store]\nbackend = \"vault\"\n", line: 2, key: "backend",
			want: []string{"invalid backend `vault` in [store] at config.toml:2", `use "file"`, `"keyring"`}},
		{name: "two key sources", src: "[store]\npassphrase_env = \"PASS\"\nkey_file = \"/run/secrets/key\"\n", line: 3, key: "key_file",
			want: []string{"passphrase_env and key_file are both set in [store] at config.toml:3: keep one"}},
		{name: "keyring with passphrase", src: "[store]\nbackend = \"keyring\"\npassphrase_file = \"/p\"\n", line: 3, key: "passphrase_file",
			want: []string{`passphrase_file is set, but backend is "keyring" in [store] at config.toml:3: remove it`}},
		{name: "redis without url", src: "[store]\nbackend = \"redis\"\n", line: 1, key: "url",
			want: []string{"missing `url`, which backend \"redis\" needs in [store] at config.toml:1", "rediss://"}},
		{name: "redis url not redis", src: "[store]\nbackend = \"redis\"\nurl = \"http://h:6379\"\n", line: 3, key: "url",
			want: []string{"`url` is not a redis:// or rediss:// URL"}},
		{name: "redis url with password", src: "[store]\nbackend = \"redis\"\nurl = \"redis://u:hunter2@h:6379\"\n", line: 3, key: "url",
			want: []string{"`url` holds a password", "password_env or password_file"}},
		{name: "redis url with query options", src: "[store]\nbackend = \"redis\"\nurl = \"rediss://h:6379?skip_verify=true\"\n", line: 3, key: "url",
			want: []string{"`url` has query options", "always verified"}},
		{name: "redis ca_file without TLS", src: "[store]\nbackend = \"redis\"\nurl = \"redis://h:6379\"\nca_file = \"/ca.pem\"\n", line: 4, key: "ca_file",
			want: []string{"`ca_file` is set but `url` is redis://"}},
		{name: "redis two passwords", src: "[store]\nbackend = \"redis\"\nurl = \"redis://h:6379\"\npassword_env = \"P\"\npassword_file = \"/p\"\n", line: 5, key: "password_file",
			want: []string{"password_env and password_file are both set"}},
		{name: "url without redis", src: "[store]\nurl = \"redis://h:6379\"\n", line: 2, key: "url",
			want: []string{`url is set, but backend is not "redis"`, `backend = "redis"`}},
		{name: "passphrase_env not a name", src: "[store]\npassphrase_env = \"my passphrase\"\n", line: 2, key: "passphrase_env",
			want: []string{"`passphrase_env` is not the name of an environment variable", "MAILOAUTH_PASSPHRASE"}},

		// Rule 3: account names.
		{name: "account name", src: strings.Replace(interactive, "work", `"my work"`, 1), line: 1,
			want: []string{"invalid account name in [accounts.\"my work\"] at config.toml:1", "letters, digits"}},

		// Rule 4: flow.
		{name: "missing flow", src: "[accounts.work]\nclient_id = \"" + appID + "\"\n", line: 1, key: "flow",
			want: []string{"missing `flow` in [accounts.work] at config.toml:1: set flow to one of interactive, device"}},
		{name: "invalid flow", src: "[accounts.work]\nclient_id = \"" + appID + "\"\nflow = \"passwd\"\n", line: 3, key: "flow",
			want: []string{"invalid flow `passwd` in [accounts.work] at config.toml:3: use one of interactive, device, client_credentials, auth_code_web, refresh_token, password"}},

		// Rule 5: client_id.
		{name: "missing client_id", src: "[accounts.work]\nflow = \"device\"\n", line: 1, key: "client_id",
			want: []string{"missing `client_id` in [accounts.work] at config.toml:1", "Application (client) ID from the app registration's Overview page"}},
		{name: "client_id not a GUID", src: "[accounts.work]\nflow = \"device\"\nclient_id = \"my-app\"\n", line: 3, key: "client_id",
			want: []string{"`client_id` is not a GUID in [accounts.work] at config.toml:3", "Overview page"}},

		// Rule 6: tenant.
		{name: "invalid tenant", src: interactive + "tenant = \"contoso onmicrosoft\"\n", line: 4, key: "tenant",
			want: []string{"invalid tenant in [accounts.work] at config.toml:4", "GUID", "organizations, common, consumers"}},
		{name: "single-label tenant", src: interactive + "tenant = \"contoso\"\n", line: 4, key: "tenant",
			want: []string{"invalid tenant `contoso`", "did you mean contoso.onmicrosoft.com?"}},
		{name: "client_credentials with organizations", src: strings.Replace(daemon, "contoso.onmicrosoft.com", "organizations", 1), line: 4, key: "tenant",
			want: []string{`the client_credentials flow cannot use tenant = "organizations" in [accounts.daemon] at config.toml:4`, "no app-only token"}},
		{name: "client_credentials without tenant", src: strings.Replace(daemon, "tenant = \"contoso.onmicrosoft.com\"\n", "", 1), line: 1, key: "tenant",
			want: []string{"missing `tenant` in [accounts.daemon] at config.toml:1", "needs a specific tenant"}},
		{name: "auth_code_web with common", src: "[accounts.web]\nflow = \"auth_code_web\"\nclient_id = \"" + appID + "\"\ntenant = \"common\"\ncertificate = \"app.pem\"\nredirect_uri = \"https://app.example.com/cb\"\n", line: 4, key: "tenant",
			want: []string{`the auth_code_web flow cannot use tenant = "common"`}},
		{name: "password with consumers", src: "[accounts.legacy]\nflow = \"password\"\nclient_id = \"" + appID + "\"\ntenant = \"consumers\"\nemail = \"a@contoso.com\"\npassword_env = \"PW\"\n", line: 4, key: "tenant",
			want: []string{`the password flow cannot use tenant = "consumers"`, "work or school accounts only"}},

		// Rule 7: protocols.
		{name: "empty protocols", src: interactive + "protocols = []\n", line: 4, key: "protocols",
			want: []string{"`protocols` is empty in [accounts.work] at config.toml:4", "remove the key"}},
		{name: "unknown protocol", src: interactive + "protocols = [\"imap\", \"pop3\"]\n", line: 4, key: "protocols",
			want: []string{"unknown protocol `pop3` in [accounts.work] at config.toml:4: use imap, pop, smtp or graph"}},
		{name: "duplicate protocol", src: interactive + "protocols = [\"imap\", \"imap\"]\n", line: 4, key: "protocols",
			want: []string{"protocol `imap` is listed twice", "list each protocol once"}},

		// Rule 8: client credentials and flow-specific secrets.
		{name: "confidential without credential", src: strings.Replace(daemon, "client_secret_file = \"secret.txt\"\n", "", 1), line: 1,
			want: []string{"missing client credential in [accounts.daemon] at config.toml:1", "client_secret_file, client_secret_env, certificate"}},
		{name: "two credentials", src: daemon + "certificate = \"app.pfx\"\n", line: 7, key: "certificate",
			want: []string{"client_secret_file and certificate are both set in [accounts.daemon] at config.toml:7: keep exactly one"}},
		{name: "certificate password without certificate", src: daemon + "certificate_password_env = \"PFX_PASS\"\n", line: 7, key: "certificate_password_env",
			want: []string{"certificate_password_env is set without certificate", "at config.toml:7"}},
		{name: "two certificate passwords", src: strings.Replace(daemon, "client_secret_file = \"secret.txt\"", "certificate = \"app.pfx\"", 1) + "certificate_password_env = \"P\"\ncertificate_password_file = \"p.txt\"\n", line: 8, key: "certificate_password_file",
			want: []string{"certificate_password_env and certificate_password_file are both set", "keep one"}},
		{name: "public client with secret", src: interactive + "client_secret_file = \"secret.txt\"\n", line: 4, key: "client_secret_file",
			want: []string{"client_secret_file is set, but the interactive flow is a public client in [accounts.work] at config.toml:4", "a public client must not send a secret; Entra answers AADSTS700025"}},
		{name: "public client with certificate", src: strings.Replace(interactive, "interactive", "device", 1) + "certificate = \"app.pem\"\n", line: 4, key: "certificate",
			want: []string{"certificate is set, but the device flow is a public client", "AADSTS700025"}},
		{name: "refresh_token without token", src: "[accounts.import]\nflow = \"refresh_token\"\nclient_id = \"" + appID + "\"\n", line: 1,
			want: []string{"missing refresh token in [accounts.import] at config.toml:1", "refresh_token_file or refresh_token_env"}},
		{name: "refresh_token with two sources", src: "[accounts.import]\nflow = \"refresh_token\"\nclient_id = \"" + appID + "\"\nrefresh_token_env = \"RT\"\nrefresh_token_file = \"rt.txt\"\n", line: 5, key: "refresh_token_file",
			want: []string{"refresh_token_env and refresh_token_file are both set", "keep one"}},
		{name: "refresh_token key on another flow", src: interactive + "refresh_token_file = \"rt.txt\"\n", line: 4, key: "refresh_token_file",
			want: []string{"refresh_token_file is only used by the refresh_token flow", `set flow = "refresh_token"`}},
		{name: "password without email", src: "[accounts.legacy]\nflow = \"password\"\nclient_id = \"" + appID + "\"\npassword_env = \"PW\"\n", line: 1, key: "email",
			want: []string{"missing `email` in [accounts.legacy] at config.toml:1", "signs in as this user"}},
		{name: "password without password", src: "[accounts.legacy]\nflow = \"password\"\nclient_id = \"" + appID + "\"\nemail = \"a@contoso.com\"\n", line: 1,
			want: []string{"missing password in [accounts.legacy] at config.toml:1", "password_file or password_env"}},
		{name: "password key on another flow", src: interactive + "password_env = \"PW\"\n", line: 4, key: "password_env",
			want: []string{"password_env is only used by the password flow", `set flow = "password"`}},
		{name: "auth_code_web without redirect_uri", src: "[accounts.web]\nflow = \"auth_code_web\"\nclient_id = \"" + appID + "\"\ntenant = \"contoso.com\"\nclient_secret_env = \"S\"\n", line: 1, key: "redirect_uri",
			want: []string{"missing `redirect_uri` in [accounts.web] at config.toml:1", "registered for the app"}},
		{name: "auth_code_web with http redirect", src: "[accounts.web]\nflow = \"auth_code_web\"\nclient_id = \"" + appID + "\"\ntenant = \"contoso.com\"\nclient_secret_env = \"S\"\nredirect_uri = \"http://app.example.com/cb\"\n", line: 6, key: "redirect_uri",
			want: []string{"`redirect_uri` must be an https URL (http only for localhost)"}},
		{name: "interactive with web redirect", src: interactive + "redirect_uri = \"https://app.example.com/cb\"\n", line: 4, key: "redirect_uri",
			want: []string{"`redirect_uri` of the interactive flow must be http://localhost[:PORT]"}},
		{name: "redirect_uri on device", src: strings.Replace(interactive, "interactive", "device", 1) + "redirect_uri = \"http://localhost\"\n", line: 4, key: "redirect_uri",
			want: []string{"redirect_uri is only used by the interactive and auth_code_web flows", "remove it"}},
		{name: "client_secret_env not a name", src: strings.Replace(daemon, "client_secret_file = \"secret.txt\"", "client_secret_env = \"abc~def\"", 1), line: 5, key: "client_secret_env",
			want: []string{"`client_secret_env` is not the name of an environment variable", "never the client secret itself"}},

		// Rule 9: client_credentials needs a mailbox.
		{name: "client_credentials without mailbox", src: strings.Replace(daemon, "mailbox = \"alice@contoso.com\"\n", "", 1), line: 1, key: "mailbox",
			want: []string{"missing `mailbox` in [accounts.daemon] at config.toml:1", "signs in no user, so it must be told which mailbox to open"}},
		{name: "client_credentials with login_hint", src: daemon + "login_hint = \"alice@contoso.com\"\n", line: 7, key: "login_hint",
			want: []string{"login_hint is set, but the client_credentials flow signs in no user"}},

		// Rule 10: addresses.
		{name: "email with display name", src: interactive + "email = \"Alice <alice@contoso.com>\"\n", line: 4, key: "email",
			want: []string{"`email` is not a plain address in [accounts.work] at config.toml:4", "write the address alone"}},
		{name: "mailbox not an address", src: strings.Replace(daemon, "alice@contoso.com", "alice", 1), line: 6, key: "mailbox",
			want: []string{"`mailbox` `alice` is not a plain address"}},
		{name: "login_hint not an address", src: interactive + "login_hint = \"alice@\"\n", line: 4, key: "login_hint",
			want: []string{"`login_hint`", "is not a plain address"}},

		// Rule 11: cloud.
		{name: "cloud", src: interactive + "cloud = \"gcc\"\n", line: 4, key: "cloud",
			want: []string{"unknown cloud `gcc` in [accounts.work] at config.toml:4: use global, usgovernment (GCC High), usgovernmentdod (DoD) or china"}},

		// Rule 12: authority.
		{name: "authority http", src: interactive + "authority = \"http://127.0.0.1:8443\"\n", line: 4, key: "authority",
			want: []string{"`authority` uses http in [accounts.work] at config.toml:4: use https: MSAL refuses an http authority"}},
		{name: "authority with tenant path", src: interactive + "authority = \"https://login.microsoftonline.com/contoso.com\"\n", line: 4, key: "authority",
			want: []string{"`authority` has a path", "the tenant goes in tenant ="}},
		{name: "authority with query", src: interactive + "authority = \"https://login.microsoftonline.com?x=1\"\n", line: 4, key: "authority",
			want: []string{"`authority` has a query or fragment"}},

		// Rule 13: servers.
		{name: "imap without port", src: interactive + "imap = \"outlook.office365.com\"\n", line: 4, key: "imap",
			want: []string{"`imap` is not host:port in [accounts.work] at config.toml:4", `imap = "outlook.office365.com:993"`}},
		{name: "smtp port not numeric", src: interactive + "smtp = \"smtp.office365.com:submission\"\n", line: 4, key: "smtp",
			want: []string{"`smtp` has no valid port", `smtp = "smtp.office365.com:587"`}},
		{name: "graph not https", src: interactive + "graph = \"http://graph.microsoft.com/v1.0\"\n", line: 4, key: "graph",
			want: []string{"`graph` must be an https URL", "https://graph.microsoft.com/v1.0"}},

		// Rule 14: scopes.
		{name: "empty scope", src: interactive + "scopes = [\"https://outlook.office.com/IMAP.AccessAsUser.All\", \"\"]\n", line: 4, key: "scopes",
			want: []string{"`scopes` has an empty entry in [accounts.work] at config.toml:4: remove the empty string"}},
		{name: "empty scopes", src: interactive + "scopes = []\n", line: 4, key: "scopes",
			want: []string{"`scopes` is empty"}},
		{name: "scope with space", src: interactive + "scopes = [\"openid offline_access\"]\n", line: 4, key: "scopes",
			want: []string{"contains a space", "each scope as its own string"}},
		{name: "app-only scope", src: daemon + "scopes = [\"https://outlook.office.com/IMAP.AccessAsUser.All\"]\n", line: 7, key: "scopes",
			want: []string{"does not end in /.default", "AADSTS1002012"}},

		// Rule 15: inline secrets.
		{name: "inline secret readable by others", src: strings.Replace(daemon, "client_secret_file = \"secret.txt\"", "client_secret = \"s3cr3t~value\"", 1), mode: 0o644, line: 5, key: "client_secret",
			want: []string{"client_secret is written inline in [accounts.daemon] at config.toml:5, and config.toml can be read by other users (mode 0644): move the secret to client_secret_file (a file only you can read) or client_secret_env, or run chmod 600 config.toml"}},
		{name: "inline secret readable by group", src: strings.Replace(daemon, "client_secret_file = \"secret.txt\"", "client_secret = \"s3cr3t~value\"", 1), mode: 0o640, line: 5, key: "client_secret",
			want: []string{"(mode 0640)"}},

		// Rule 16: the proxy.
		{name: "listener protocol", src: "[[proxy.listener]]\nprotocol = \"imaps\"\nlisten = \"127.0.0.1:1993\"\n", line: 2, key: "protocol",
			want: []string{"invalid protocol `imaps` in [[proxy.listener]] at config.toml:2: use imap, pop or smtp"}},
		{name: "listener missing listen", src: "[[proxy.listener]]\nprotocol = \"imap\"\n", line: 1, key: "listen",
			want: []string{"missing `listen` in [[proxy.listener]] at config.toml:1"}},
		{name: "listen not host:port", src: "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"1993\"\n", line: 3, key: "listen",
			want: []string{"`listen` is not host:port", `listen = "127.0.0.1:1993"`}},
		{name: "duplicate listen", src: "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"127.0.0.1:1993\"\n\n[[proxy.listener]]\nprotocol = \"pop\"\nlisten = \"127.0.0.1:1993\"\n", line: 7, key: "listen",
			want: []string{"address `127.0.0.1:1993` is used twice in [[proxy.listener]] at config.toml:7: the other is at line 3"}},
		{name: "local_tls", src: "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"127.0.0.1:1993\"\nlocal_tls = \"tls\"\n", line: 4, key: "local_tls",
			want: []string{"invalid local_tls `tls`", "use none, implicit or starttls"}},
		{name: "local TLS without certificate", src: "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"127.0.0.1:1993\"\nlocal_tls = \"implicit\"\ntls_key = \"key.pem\"\n", line: 1, key: "tls_cert",
			want: []string{"missing `tls_cert` in [[proxy.listener]] at config.toml:1", "set tls_cert and tls_key"}},
		{name: "certificate without local TLS", src: "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"127.0.0.1:1993\"\ntls_cert = \"cert.pem\"\n", line: 4, key: "tls_cert",
			want: []string{`tls_cert is set, but local_tls is "none"`}},
		{name: "non-loopback without TLS", src: "[[proxy.listener]]\nprotocol = \"smtp\"\nlisten = \"0.0.0.0:1587\"\n", line: 3, key: "listen",
			want: []string{"`listen` address `0.0.0.0:1587` is not loopback and local_tls is \"none\"", "clear text"}},
		{name: "upstream", src: "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"127.0.0.1:1993\"\nupstream = \"outlook.office365.com\"\n", line: 4, key: "upstream",
			want: []string{"`upstream` is not host:port"}},
		{name: "via", src: "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"127.0.0.1:1993\"\nvia = \"ews\"\n", line: 4, key: "via",
			want: []string{"invalid via `ews` in [[proxy.listener]] at config.toml:4", `use via = "graph"`}},
		{name: "via graph with upstream", src: "[[proxy.listener]]\nprotocol = \"imap\"\nlisten = \"127.0.0.1:1993\"\nvia = \"graph\"\nupstream = \"outlook.office365.com:993\"\n", line: 5, key: "upstream",
			want: []string{"`upstream` is set, but via is \"graph\" in [[proxy.listener]] at config.toml:5", "remove upstream"}},
		{name: "gateway delete", src: "[proxy.gateway]\ndelete = \"trash\"\n", line: 2, key: "delete",
			want: []string{"invalid delete `trash` in [proxy.gateway] at config.toml:2", `"deleted_items"`, `"permanent"`}},
		{name: "gateway poll interval", src: "[proxy.gateway]\npoll_interval = \"often\"\n", line: 2, key: "poll_interval",
			want: []string{"`poll_interval` `often` is not a positive duration in [proxy.gateway] at config.toml:2", `poll_interval = "30s"`}},
		{name: "gateway poll interval too short", src: "[proxy.gateway]\npoll_interval = \"1s\"\n", line: 2, key: "poll_interval",
			want: []string{"`poll_interval` 1s is shorter than 5s in [proxy.gateway] at config.toml:2", "throttled"}},
		{name: "admin", src: "[proxy]\nadmin = \"localhost\"\n", line: 2, key: "admin",
			want: []string{"`admin` is not host:port"}},
		{name: "idle timeout", src: "[proxy]\nidle_timeout = \"30\"\n", line: 2, key: "idle_timeout",
			want: []string{"`idle_timeout` `30` is not a positive duration", `idle_timeout = "30m"`}},
		{name: "user with unknown account", src: interactive + "[proxy.users.\"alice@contoso.com\"]\naccount = \"wrok\"\npassword_hash = \"" + hashOK + "\"\n", line: 5, key: "account",
			want: []string{"no account `wrok` in [proxy.users.\"alice@contoso.com\"] at config.toml:5: did you mean \"work\"? Known accounts: work"}},
		{name: "user with an account unlike any", src: interactive + "[proxy.users.\"alice@contoso.com\"]\naccount = \"personal\"\npassword_hash = \"" + hashOK + "\"\n", line: 5, key: "account",
			want: []string{"no account `personal` in [proxy.users.\"alice@contoso.com\"] at config.toml:5: known accounts: work"}},
		{name: "user without account", src: interactive + "[proxy.users.alice]\npassword_hash = \"" + hashOK + "\"\n", line: 4, key: "account",
			want: []string{"missing `account` in [proxy.users.alice] at config.toml:4"}},
		{name: "password hash not argon2id", src: interactive + "[proxy.users.alice]\naccount = \"work\"\npassword_hash = \"$2y$10$abcdefghij\"\n", line: 6, key: "password_hash",
			want: []string{"`password_hash` is not an argon2id hash", "mailoauth proxy hash-password"}},
		{name: "domain", src: interactive + "[proxy.domains.contoso]\naccount = \"work\"\npassword_hash = \"" + hashOK + "\"\n", line: 4,
			want: []string{"invalid domain `contoso` in [proxy.domains.contoso] at config.toml:4"}},

		// Paths.
		{name: "other user's home", src: "[store]\npath = \"~bob/tokens\"\n", line: 2, key: "path",
			want: []string{"cannot use the path in `path`", "only ~/"}},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			mode := c.mode
			if mode == 0 {
				mode = 0o600
			}
			f, err := Parse("config.toml", []byte(c.src), mode)
			if err == nil {
				t.Fatalf("accepted:\n%s\n%+v", c.src, f)
			}
			var errs Errors
			var one *Error
			switch {
			case errors.As(err, &errs):
				if len(errs) != 1 {
					t.Fatalf("want exactly one error, got %d:\n%v", len(errs), err)
				}
				one = errs[0]
			case errors.As(err, &one):
			default:
				t.Fatalf("%T is not a config error: %v", err, err)
			}
			msg := one.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
			if one.Line != c.line {
				t.Errorf("line = %d, want %d: %s", one.Line, c.line, msg)
			}
			if c.key != "" && one.Key != c.key {
				t.Errorf("key = %q, want %q: %s", one.Key, c.key, msg)
			}
			if one.File != "config.toml" {
				t.Errorf("file = %q", one.File)
			}
			var ce interface{ ConfigError() bool }
			if !errors.As(err, &ce) || !ce.ConfigError() {
				t.Error("not a ConfigError")
			}
		})
	}
}

// TestAllErrorsAtOnce checks that a file with several problems reports all of them, in line order.
func TestAllErrorsAtOnce(t *testing.T) {
	src := "[store]\nbackend = \"vault\"\n\n[accounts.work]\nflow = \"passwd\"\nclient_id = \"x\"\nflwo = 1\ncloud = \"mars\"\n"
	_, err := Parse("config.toml", []byte(src), 0o600)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	// The unknown key stops the checks that follow decoding: they would be made on a file that does
	// not say what the user meant.
	if len(errs) != 1 || errs[0].Key != "flwo" {
		t.Fatalf("want the unknown key alone first, got:\n%v", err)
	}
	_, err = Parse("config.toml", []byte(strings.Replace(src, "flwo = 1\n", "", 1)), 0o600)
	if !errors.As(err, &errs) || len(errs) != 4 {
		t.Fatalf("want 4 errors, got:\n%v", err)
	}
	for i, want := range []int{2, 5, 6, 7} {
		if errs[i].Line != want {
			t.Errorf("error %d at line %d, want %d: %v", i, errs[i].Line, want, errs[i])
		}
	}
}

func TestInlineSecretAcceptedWhenPrivate(t *testing.T) {
	src := strings.Replace(daemon, "client_secret_file = \"secret.txt\"", "client_secret = \"s3cr3t~value\"", 1)
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		f, err := Parse("config.toml", []byte(src), mode)
		if err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		if string(f.Accounts["daemon"].ClientSecret) != "s3cr3t~value" {
			t.Errorf("secret not kept")
		}
	}
}

// TestSecretsNeverInMessages puts secret values where they are refused, and where people put
// them by mistake, and checks that no message repeats them.
func TestSecretsNeverInMessages(t *testing.T) {
	const secret = "Zq8Q~s3cr3tValue0123456789abcdefghijklmn"
	srcs := []string{
		// Inline, in a readable file.
		strings.Replace(daemon, "client_secret_file = \"secret.txt\"", "client_secret = \""+secret+"\"", 1),
		// Inline, on a public client.
		interactive + "client_secret = \"" + secret + "\"\n",
		// Pasted where a name or an ID belongs.
		strings.Replace(daemon, "client_secret_file = \"secret.txt\"", "client_secret_env = \""+secret+"\"", 1),
		strings.Replace(interactive, appID, secret, 1),
		interactive + "tenant = \"" + secret + "\"\n",
		interactive + "authority = \"https://user:" + secret + "@login.example.com/x\"\n",
		interactive + "flow = \"" + secret + "\"\n",
		"[store]\npassphrase_env = \"" + secret + "\"\nkey_file = \"k\"\n",
		interactive + "[proxy.users.alice]\naccount = \"work\"\npassword_hash = \"" + secret + "\"\n",
		// Wrong types and syntax errors around a secret.
		interactive + "client_secret = [\"" + secret + "\"]\n",
		interactive + "client_secret = " + secret + "\n",
		interactive + "client_secret = \"" + secret + "\n",
	}
	for i, src := range srcs {
		_, err := Parse("config.toml", []byte(src), 0o644)
		if err == nil {
			t.Fatalf("case %d accepted", i)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("case %d: message reveals the secret:\n%v", i, err)
		}
	}
}

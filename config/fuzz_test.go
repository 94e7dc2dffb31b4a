package config

import "testing"

// FuzzParse checks that no file, however broken, makes Parse panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", full, interactive, daemon, interactive + daemon + "[[proxy.listener]]\nlisten = \":0\"\n",
		"[proxy]\nlistener = [{protocol = \"imap\", listen = \"[::1]:1993\"}]\nusers = { \"\" = {} }\ndomains = { x = {} }\n",
		"[accounts.\"\"]\n[store]\nbackend = \"keyring\"\nkey_file = \"~\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data, 0o644)
		if err != nil {
			_ = err.Error()
			return
		}
		for _, name := range cfg.Names() {
			a, _ := cfg.Account(name)
			_, _ = a.Public(), a.NeedsUser()
		}
	})
}

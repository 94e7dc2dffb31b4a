package config

// The [console] section's rules: who may log in, and that nothing crosses a network in clear text.
func (v *validator) console(f *File, c *Console) {
	at := func(key string) []string { return []string{"console", key} }
	has := func(key string) bool { return v.pos.Has("console", key) }

	listenOK := false
	if problem := checkHostPort(c.Listen, true); problem != "" {
		v.key(at("listen"), "`listen` "+problem, `write host:port, e.g. listen = "`+DefaultConsoleListen+`"`)
	} else {
		listenOK = true
	}

	tls := c.TLSCert != "" || c.TLSKey != ""
	if tls {
		for _, k := range []struct{ key, val string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
			if k.val == "" {
				v.key(at(k.key), "missing `"+k.key+"`", "the console's TLS needs a certificate and its key: set tls_cert and tls_key (PEM files)")
			}
		}
		v.secretFile(at("tls_key"), c.TLSKey) // the private key; the certificate is public
	}

	// The addresses the console is served on: its own, and the proxy's admin address.
	type served struct {
		path []string
		addr string
	}
	addrs := []served{}
	if listenOK {
		addrs = append(addrs, served{at("listen"), c.Listen})
	}
	if f.Proxy != nil && f.Proxy.Admin != "" && checkHostPort(f.Proxy.Admin, true) == "" {
		addrs = append(addrs, served{[]string{"proxy", "admin"}, f.Proxy.Admin})
	}

	switch c.Auth {
	case ConsoleAuthPassword:
		switch {
		case c.PasswordHash == "" && !has("password_hash"):
			v.key(at("password_hash"), "missing `password_hash`",
				`run `+"`mailoauth proxy hash-password`"+` and paste what it prints, or set auth = "none" on a loopback address`)
		case !hashLike(c.PasswordHash):
			v.key(at("password_hash"), "`password_hash` is not an argon2id hash",
				"run `mailoauth proxy hash-password` and paste what it prints (it starts with $argon2id$)")
		}
	case ConsoleAuthNone:
		for _, a := range addrs {
			if !loopback(a.addr) {
				v.key(at("auth"), `auth = "none" and the console is served on `+"`"+a.addr+"`"+`, which is not loopback`,
					"anyone who can reach it could sign accounts out: set auth = \"password\" with password_hash, or serve it on 127.0.0.1")
			}
		}
	default:
		v.key(at("auth"), "invalid auth"+show(c.Auth), `use "password" (with password_hash) or "none" (loopback only)`)
	}

	if !tls {
		for _, a := range addrs {
			if !loopback(a.addr) {
				v.key(a.path, "the console is served on `"+a.addr+"`, which is not loopback, without TLS",
					"the admin password and session would cross the network in clear text: set tls_cert and tls_key in [console], or listen on 127.0.0.1")
			}
		}
	}
}

func hashLike(s string) bool {
	return len(s) > len("$argon2id$") && s[:len("$argon2id$")] == "$argon2id$"
}

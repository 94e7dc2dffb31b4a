package tomlconf

import (
	"testing"
)

// FuzzDecode checks that no document, however broken, makes Decode panic, and that every error it
// returns can be printed.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		"",
		"version = 1\n[store]\nbackend = \"file\"\n",
		"[accounts.work]\nflow = \"x\"\nprotocols = [\"imap\", 2]\nflwo = 1\n",
		"[[proxy.listener]]\nprotocol = \"imap\"\n[proxy.listener.options]\nverbose = true\n[[proxy.listener]]\n",
		"[proxy]\nlistener = [{protocol = 1}, {listen = \"x\", options = {verbose = 1}}]\n",
		"[proxy.listener]\n[[store]]\nstore = 1\n",
		"[accounts]\nwork.flow.x = 1\nwork.port = 99999999999999999999\n",
		"a = \"unterminated\n",
		"[a.b.c]\n[a]\n[a.b]\n",
		"when = 1979-05-27T07:32:00Z\nextra = {}\n",
		"[proxy.extra]\na.b.c = [[1], [{x = 1}]]\n",
		"x = 1\nx = 2\n[t]\n[t]\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		pos, err := Decode("fuzz.toml", data, &d)
		if err != nil {
			_ = err.Error()
		}
		_ = pos.Line("accounts", "work", "flow")
		var m map[string]any
		if _, err := Decode("fuzz.toml", data, &m); err != nil {
			_ = err.Error()
		}
	})
}

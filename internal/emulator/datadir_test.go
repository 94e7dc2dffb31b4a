package emulator_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
)

// TestWrittenConfigHasGatewayListeners: the written [proxy] has the three listeners to Exchange and
// the same three via Graph, each on its own loopback port (a port --ports fixes is the one
// written), and the config loads; a start removes the previous run's gateway UIDs with its tokens.
func TestWrittenConfigHasGatewayListeners(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	v, err := newEnv(t, emulator.Options{Ports: map[string]int{"gateway-pop": fixed}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, "uids", "0123")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := v.E.WriteData(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "uids")); !os.IsNotExist(err) {
		t.Errorf("the previous run's uids are still there: %v", err)
	}
	f, err := config.Load(filepath.Join(dir, emulator.ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, p := range []string{config.ProtocolIMAP, config.ProtocolPOP, config.ProtocolSMTP} {
		want[p] = v.E.ProxyAddrs[p]
		want[p+" via graph"] = v.E.GatewayAddrs[p]
	}
	if got := v.E.GatewayAddrs[config.ProtocolPOP]; got != "127.0.0.1:"+strconv.Itoa(fixed) {
		t.Errorf("gateway POP3 on %s, want the fixed port %d", got, fixed)
	}
	seen := map[string]bool{}
	for _, l := range f.Proxy.Listeners {
		key := l.Protocol
		if l.Via != "" {
			key += " via " + l.Via
		}
		if want[key] == "" || l.Listen != want[key] || l.LocalTLS != config.LocalTLSNone || seen[l.Listen] {
			t.Errorf("listener %s on %s (local TLS %q), want %q, each port once", key, l.Listen, l.LocalTLS, want[key])
		}
		seen[l.Listen] = true
		delete(want, key)
	}
	if len(want) != 0 {
		t.Errorf("no listener for %v", want)
	}
}

package tomlconf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

type account struct {
	Flow      string   `toml:"flow"`
	Protocols []string `toml:"protocols"`
	Port      int      `toml:"port"`
	Small     int8     `toml:"small"`
	Secret    string   `toml:"client_secret"`
	Ignored   string   `toml:"-"`
}

type listener struct {
	Protocol string `toml:"protocol"`
	Listen   string `toml:"listen"`
	Options  *struct {
		Verbose bool `toml:"verbose"`
	} `toml:"options"`
}

type user struct {
	Account string `toml:"account"`
}

type proxy struct {
	Listeners []listener        `toml:"listener"`
	Users     map[string]*user  `toml:"users"`
	Extra     map[string]any    `toml:"extra"`
	Timeouts  map[string]string `toml:"timeouts"`
}

type base struct {
	Version int `toml:"version"`
}

// duration stands for a type with its own text form, whose errors quote the text.
type duration struct{ text string }

func (d *duration) UnmarshalText(b []byte) error {
	if !strings.HasSuffix(string(b), "s") {
		return fmt.Errorf("invalid duration %q", b)
	}
	d.text = string(b)
	return nil
}

type doc struct {
	base
	Wait  duration `toml:"wait"`
	Store struct {
		Backend string `toml:"backend"`
	} `toml:"store"`
	Accounts map[string]*account `toml:"accounts"`
	Proxy    *proxy              `toml:"proxy"`
	When     time.Time           `toml:"when"`
	Untagged string
}

func decode(t *testing.T, src string) (*doc, *Positions, error) {
	t.Helper()
	var d doc
	pos, err := Decode("config.toml", []byte(src), &d)
	return &d, pos, err
}

// messages returns the lines of err's message, failing the test when err is nil.
func messages(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got none")
	}
	return strings.Split(err.Error(), "\n")
}

func TestDecodeValid(t *testing.T) {
	src := `version = 2
Untagged = "x"
when = 2024-01-02T03:04:05Z

[store]
backend = "file"

[accounts.work]
flow = "interactive"
protocols = ["imap", "smtp"]

[accounts."odd name"]
port = 993

[proxy]
extra = { anything = [1, "two"], nested = { ok = true } }

[[proxy.listener]]
protocol = "imap"
listen = "127.0.0.1:1993"

[proxy.listener.options]
verbose = true

[[proxy.listener]]
protocol = "smtp"
listen = "127.0.0.1:1587"

[proxy.users."alice@contoso.com"]
account = "work"
`
	d, pos, err := decode(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 2 || d.Untagged != "x" || d.Store.Backend != "file" || d.Accounts["work"].Flow != "interactive" ||
		d.Accounts["odd name"].Port != 993 || len(d.Proxy.Listeners) != 2 || !d.Proxy.Listeners[0].Options.Verbose ||
		d.Proxy.Users["alice@contoso.com"].Account != "work" || d.When.Year() != 2024 {
		t.Fatalf("decoded %+v", d)
	}

	lines := []struct {
		path []string
		want int
	}{
		{[]string{"version"}, 1},
		{[]string{"store"}, 5},
		{[]string{"store", "backend"}, 6},
		{[]string{"accounts"}, 8}, // implied by the first header that names it
		{[]string{"accounts", "work"}, 8},
		{[]string{"accounts", "work", "protocols"}, 10},
		{[]string{"accounts", "odd name", "port"}, 13},
		{[]string{"proxy", "extra", "nested", "ok"}, 16},
		{[]string{"proxy", "listener"}, 18},
		{[]string{"proxy", "listener", "0"}, 18},
		{[]string{"proxy", "listener", "0", "listen"}, 20},
		{[]string{"proxy", "listener", "0", "options"}, 22},
		{[]string{"proxy", "listener", "0", "options", "verbose"}, 23},
		{[]string{"proxy", "listener", "1"}, 25},
		{[]string{"proxy", "listener", "1", "protocol"}, 26},
		{[]string{"proxy", "users", "alice@contoso.com", "account"}, 30},
		{[]string{"accounts", "work", "email"}, 0},
		{[]string{"nothing"}, 0},
	}
	for _, l := range lines {
		if got := pos.Line(l.path...); got != l.want {
			t.Errorf("Line(%q) = %d, want %d", l.path, got, l.want)
		}
	}
	if pos.Len("proxy", "listener") != 2 || pos.Len("store") != 0 {
		t.Errorf("Len: %d, %d", pos.Len("proxy", "listener"), pos.Len("store"))
	}
	if pos.File() != "config.toml" || !pos.Has("store") || pos.Has("accounts", "work", "email") {
		t.Error("File/Has")
	}
}

func TestPositionsInlineArrayOfTables(t *testing.T) {
	src := "[proxy]\nlistener = [\n  { protocol = \"imap\" },\n  { protocol = \"pop\", listen = \"x\" },\n]\n"
	_, pos, err := decode(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if got := pos.Line("proxy", "listener", "1", "listen"); got != 4 {
		t.Errorf("line = %d, want 4", got)
	}
	if got := pos.TableName("proxy", "listener", "1"); got != "[proxy.listener]" {
		t.Errorf("TableName = %q", got)
	}
}

func TestUnknownKeysAllReported(t *testing.T) {
	src := `[store]
backend = "file"
bakend = "file"

[accounts.work]
flow = "interactive"
flwo = "device"
colour = "blue"

[[proxy.listener]]
protcol = "imap"
`
	got := messages(t, func() error { _, _, err := decode(t, src); return err }())
	want := []string{
		"unknown key `bakend` in [store] at config.toml:3: did you mean `backend`?",
		"unknown key `flwo` in [accounts.work] at config.toml:7: did you mean `flow`?",
		"unknown key `colour` in [accounts.work] at config.toml:8: remove it, or use one of `flow`, `protocols`, `port`, `small`, `client_secret`",
		"unknown key `protcol` in [[proxy.listener]] at config.toml:11: did you mean `protocol`?",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnknownKeyIsNotDecoded(t *testing.T) {
	d, _, err := decode(t, "version = 3\nvershion = 4\n")
	if err == nil || d.Version != 0 {
		t.Fatalf("err = %v, version = %d: a refused document must leave the target untouched", err, d.Version)
	}
}

func TestKeysAreCaseSensitive(t *testing.T) {
	_, _, err := decode(t, "[accounts.work]\nFlow = \"device\"\n")
	want := "unknown key `Flow` in [accounts.work] at config.toml:2: did you mean `flow`? Keys are case-sensitive"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	// Untagged fields keep go-toml's convention: any case.
	if _, _, err := decode(t, "untagged = \"x\"\n"); err != nil {
		t.Error(err)
	}
}

func TestUnknownTableReportedOnce(t *testing.T) {
	src := "[stroe]\nbackend = 1\nother = 2\n\n[stroe.deeper]\nx = 1\n"
	got := messages(t, func() error { _, _, err := decode(t, src); return err }())
	if len(got) != 1 || got[0] != "unknown table [stroe] at config.toml:1: did you mean [store]?" {
		t.Errorf("got %q", got)
	}
}

func TestWrongTypes(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"string for list", "[accounts.work]\nflow = \"x\"\nprotocols = \"imap\"\n",
			"wrong type for `protocols` in [accounts.work] at config.toml:3: it must be a list of strings, not a string"},
		{"list element", "[accounts.work]\nprotocols = [\"imap\", 2]\n",
			"wrong type for `protocols` in [accounts.work] at config.toml:2: it must be a list of strings, not a list whose element 2 is an integer"},
		{"integer for string", "[accounts.work]\nflow = 1\n",
			"wrong type for `flow` in [accounts.work] at config.toml:2: it must be a string, not an integer"},
		{"float for int", "[accounts.work]\nport = 1.5\n",
			"wrong type for `port` in [accounts.work] at config.toml:2: it must be an integer, not a float"},
		{"top level", "version = \"2\"\n",
			"wrong type for `version` at config.toml:1: it must be an integer, not a string"},
		{"value for table", "store = \"file\"\n",
			"wrong type for `store` at config.toml:1: it must be a table, not a string"},
		{"table for value", "[accounts.work.flow]\nx = 1\n",
			"wrong type for `flow` in [accounts.work] at config.toml:1: it must be a string, not a table"},
		{"dotted key through value", "[accounts]\nwork.flow.x = 1\n",
			"wrong type for `flow` in [accounts.work] at config.toml:2: it must be a string, not a table"},
		{"single brackets for list", "[proxy.listener]\nprotocol = \"imap\"\n",
			"`listener` is a list of tables in [proxy] at config.toml:1: write its header with double brackets, [[proxy.listener]]"},
		{"double brackets for table", "[[store]]\nbackend = \"x\"\n",
			"`store` is a single table, not a list at config.toml:1: write its header with single brackets, [store]"},
		{"inline table key", "[proxy]\nlistener = [{ protocol = 2 }]\n",
			"wrong type for `protocol` in [[proxy.listener]] at config.toml:2: it must be a string, not an integer"},
		{"inline table unknown key", "[proxy]\nlistener = [{ protcol = \"imap\" }]\n",
			"unknown key `protcol` in [[proxy.listener]] at config.toml:2: did you mean `protocol`?"},
		{"quoted table", "[proxy.users.\"a@b.c\"]\naccount = true\n",
			"wrong type for `account` in [proxy.users.\"a@b.c\"] at config.toml:2: it must be a string, not a boolean"},
		{"time", "when = \"yesterday\"\n",
			"wrong type for `when` at config.toml:1: it must be a date-time, not a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decode(t, c.src)
			if err == nil || err.Error() != c.want {
				t.Errorf("got  %v\nwant %s", err, c.want)
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"unquoted value", "[accounts.work]\nflow = interactive\n",
			`config.toml:2:8: invalid value: text must be quoted (key = "value"); true, false and numbers are written bare`},
		{"missing equals", "[store]\nbackend \"file\"\n",
			"config.toml:2:9: expected '=' after key: each line is key = value, a [table] header or a comment starting with #"},
		{"unterminated string", "[store]\nbackend = \"file\n",
			`config.toml:2:16: basic strings cannot have new lines: close the string with " on the same line, or use """...""" for text over several lines`},
		{"bad escape", "[store]\nbackend = \"C:\\mail\"\n",
			`config.toml:2:14: invalid escape character 'm': inside "..." a backslash starts an escape: write \\ for a backslash, or use single quotes ('C:\path') for text taken literally`},
		{"unclosed header", "[store\nbackend = 1\n",
			"config.toml:1:7: expected ']' to close table name: a table header is [name] or [[name]] alone on its line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decode(t, c.src)
			if err == nil || err.Error() != c.want {
				t.Errorf("got  %v\nwant %s", err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Column == 0 || e.Line == 0 {
				t.Errorf("not a located *Error: %#v", err)
			}
		})
	}
}

func TestDuplicates(t *testing.T) {
	src := "[accounts.work]\nflow = \"a\"\nflow = \"b\"\n\n[accounts.work]\nport = 1\n"
	got := messages(t, func() error { _, _, err := decode(t, src); return err }())
	want := []string{
		"`flow` is written twice in [accounts.work] at config.toml:3: it was first written at line 2; keep one",
		"table [accounts.work] is written twice at config.toml:5: it was first written at line 1; merge the two into one table",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestGoTomlRefusalsAreTranslated(t *testing.T) {
	_, _, err := decode(t, "[accounts.work]\nsmall = 300\n")
	want := "invalid `small` in [accounts.work] at config.toml:2: integer value 300 cannot be stored in int8"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	var ce interface{ ConfigError() bool }
	if !errors.As(err, &ce) {
		t.Error("not a ConfigError")
	}
}

func TestNoValueInMessages(t *testing.T) {
	const secret = "Zq8~verysecretvalue"
	srcs := []string{
		"[accounts.work]\nclient_secret = 12\nflow = \"" + secret + "\"\nport = \"" + secret + "\"\n",
		"[accounts.work]\nclient_secret = [\"" + secret + "\"]\n",
		"[accounts.work]\nclient_secret = \"" + secret + "\nflow = 1\n",
		"[accounts.work]\nclient_secret = " + secret + "\n",
		"[accounts.work]\nclient_secret = '" + secret + "'x\n",
		"[accounts.work]\nsecret = \"" + secret + "\"\n",
		"wait = \"" + secret + "\"\n",
	}
	for _, src := range srcs {
		_, _, err := decode(t, src)
		if err == nil {
			t.Fatalf("no error for %q", src)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "verysecret") {
			t.Errorf("message reveals the value: %v", err)
		}
	}
}

func TestInterfaceTarget(t *testing.T) {
	var m map[string]any
	pos, err := Decode("x.toml", []byte("a = 1\n[b]\nc = [1, 2]\n"), &m)
	if err != nil || m["a"] != int64(1) || pos.Line("b", "c") != 3 {
		t.Fatalf("m = %v, err = %v", m, err)
	}
	if _, err := Decode("x.toml", nil, m); err == nil {
		t.Error("a non-pointer target must be refused")
	}
	if _, err := Decode("x.toml", nil, nil); err == nil {
		t.Error("a nil target must be refused")
	}
}

func TestErrorFormat(t *testing.T) {
	cases := []struct {
		e    Error
		want string
	}{
		{Error{File: "config.toml", Line: 7, Table: "accounts.work", Key: "flow", Msg: "invalid flow `passwd`",
			Fix: "use one of interactive, device, client_credentials, auth_code_web, refresh_token, password"},
			"invalid flow `passwd` in [accounts.work] at config.toml:7: use one of interactive, device, client_credentials, auth_code_web, refresh_token, password"},
		{Error{File: "config.toml", Line: 3, Key: "version", Msg: "bad"}, "bad at config.toml:3"},
		{Error{File: "config.toml", Table: "store", Msg: "bad", Fix: "fix"}, "bad in [store] at config.toml: fix"},
		{Error{Line: 4, Msg: "bad"}, "bad at line 4"},
		{Error{Msg: "no account `x`"}, "no account `x`"},
		{Error{File: "c.toml", Line: 2, Table: "[proxy.listener]", Msg: "bad"}, "bad in [[proxy.listener]] at c.toml:2"},
		{Error{File: "config.toml", Line: 12, Table: "accounts.work", Msg: "client_secret is written inline",
			Detail: "and config.toml can be read by other users (mode 0644)", Fix: "move it"},
			"client_secret is written inline in [accounts.work] at config.toml:12, and config.toml can be read by other users (mode 0644): move it"},
		{Error{File: "config.toml", Line: 3, Column: 14, Msg: "expected '=' after key", Fix: "hint"}, "config.toml:3:14: expected '=' after key: hint"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestErrorsInterfaces(t *testing.T) {
	sentinel := errors.New("sentinel")
	es := Errors{{Msg: "one"}, {Msg: "two", Err: sentinel}}
	var err error = es
	if err.Error() != "one\ntwo" {
		t.Errorf("Error() = %q", err.Error())
	}
	if !errors.Is(err, sentinel) {
		t.Error("errors.Is does not reach a wrapped error")
	}
	var e *Error
	if !errors.As(err, &e) || e.Msg != "one" {
		t.Error("errors.As does not reach an *Error")
	}
	var ce interface{ ConfigError() bool }
	if !errors.As(err, &ce) || !ce.ConfigError() {
		t.Error("Errors is not a ConfigError")
	}
	if Errors(nil).Err() != nil || es.Err() == nil {
		t.Error("Err()")
	}
}

func TestPositionsHelpers(t *testing.T) {
	_, pos, err := decode(t, "[accounts.work]\nflow = \"x\"\n\n[[proxy.listener]]\nprotocol = \"imap\"\n[proxy.users.\"a b\"]\naccount = \"x\"\n")
	if err != nil {
		t.Fatal(err)
	}
	// A key that is not written is placed at its table's header.
	e := pos.KeyError([]string{"accounts", "work", "client_id"}, "missing `client_id`", "set it")
	if got, want := e.Error(), "missing `client_id` in [accounts.work] at config.toml:1: set it"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e = pos.KeyError([]string{"proxy", "listener", "0", "listen"}, "missing `listen`", "")
	if got, want := e.Error(), "missing `listen` in [[proxy.listener]] at config.toml:4"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e = pos.TableError([]string{"proxy", "users", "a b"}, "bad user", "")
	if got, want := e.Error(), `bad user in [proxy.users."a b"] at config.toml:6`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	var none *Positions
	if none.Line("x") != 0 || none.Has("x") || none.Len("x") != 0 || none.File() != "" {
		t.Error("a nil Positions must know nothing")
	}
	if got := none.KeyError([]string{"a", "b"}, "m", "").Error(); got != "m in [a]" {
		t.Errorf("nil KeyError: %q", got)
	}
}

func TestFormatKey(t *testing.T) {
	cases := map[string][]string{
		`accounts.work`:                   {"accounts", "work"},
		`proxy.users."alice@contoso.com"`: {"proxy", "users", "alice@contoso.com"},
		`"a\"b"."c\\d"`:                   {`a"b`, `c\d`},
		`""."\u0001"`:                     {"", "\x01"},
	}
	for want, parts := range cases {
		if got := FormatKey(parts...); got != want {
			t.Errorf("FormatKey(%q) = %s, want %s", parts, got, want)
		}
	}
}

package tomlconf

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file, located by file, line, table and key, with the fix
// when one is known. Error never holds a value read from the file beyond a key name or a short
// enumerated value (such as a flow name): secrets must not reach error messages.
type Error struct {
	File  string // the file as the caller named it; "" when the error is not about a file
	Line  int    // 1-based; 0 when unknown
	Table string // dotted table name ("accounts.work"); "[proxy.listener]" for an array of tables; "" at top level
	Key   string // the key concerned, unquoted; "" for a table-level problem
	// Field names the Go field concerned ("Account.Flow") when the value was set in code rather
	// than read from a file; File, Line, Table and Key are then empty.
	Field string
	Msg   string // the problem: "unknown key `flwo`"
	// Detail adds a clause after the location ("and config.toml can be read by other users").
	Detail string
	Fix    string // what to do about it: "use one of ..."

	// Column is set only for syntax errors, which are then shown compiler-style as
	// "file:line:column: message", the form editors jump to.
	Column int
	// Err is an underlying error (for example fs.ErrNotExist), reachable through errors.Is and
	// errors.As but never printed, so its text cannot leak into the message.
	Err error
}

// Error formats the problem, the table, the place and the fix, for example
//
//	invalid flow `passwd` in [accounts.work] at config.toml:7: use one of interactive, device, ...
func (e *Error) Error() string {
	var b strings.Builder
	if e.Field != "" && !strings.Contains(e.Msg+e.Fix, e.Field) {
		// A message about a value set in code names its field, which one made from a template
		// with the field's name in it already does.
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	if e.Column > 0 && e.Line > 0 {
		if e.File != "" {
			b.WriteString(e.File)
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Column))
		b.WriteString(": ")
		b.WriteString(e.Msg)
	} else {
		b.WriteString(e.Msg)
		if e.Table != "" {
			b.WriteString(" in ")
			b.WriteString(tableHeader(e.Table))
		}
		switch {
		case e.File != "":
			b.WriteString(" at ")
			b.WriteString(e.File)
			if e.Line > 0 {
				b.WriteByte(':')
				b.WriteString(strconv.Itoa(e.Line))
			}
		case e.Line > 0:
			b.WriteString(" at line ")
			b.WriteString(strconv.Itoa(e.Line))
		}
	}
	if e.Detail != "" {
		b.WriteString(", ")
		b.WriteString(e.Detail)
	}
	if e.Fix != "" {
		b.WriteString(": ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// ConfigError marks the error as a configuration problem: the CLI exits with status 2 for it.
func (e *Error) ConfigError() bool { return true }

// tableHeader renders a table name as the header a user would have written.
func tableHeader(table string) string {
	return "[" + table + "]"
}

// Errors is every problem found in one file, in the order of their lines. It is returned whole so
// that a user fixes a file in one pass instead of one error per run.
type Errors []*Error

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// ConfigError marks the errors as a configuration problem: the CLI exits with status 2 for them.
func (es Errors) ConfigError() bool { return true }

// Err returns es as an error, or nil when es is empty, so that a nil Errors never becomes a
// non-nil error interface.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// FormatKey renders a key path the way TOML spells it, quoting the parts that are not bare keys:
// FormatKey("proxy", "users", "alice@contoso.com") is `proxy.users."alice@contoso.com"`.
func FormatKey(parts ...string) string {
	quoted := make([]string, len(parts))
	for i, p := range parts {
		quoted[i] = quoteKey(p)
	}
	return strings.Join(quoted, ".")
}

func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return quoteBasic(k)
		}
	}
	return k
}

// quoteBasic quotes s as a TOML basic string. strconv.Quote is not used because Go's \x escapes
// are not valid TOML.
func quoteBasic(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

package config

import "github.com/mailoauth/mailoauth/internal/tomlconf"

// Error is one problem with a configuration. For an account read from a file it names the file,
// the line, the table and the key; for an account built in code it names the Go field instead
// (Field, such as "Account.Flow"). It never holds a value beyond a key name or a short enumerated
// value (a flow name): secrets must not reach error messages.
//
// The decoder that finds problems of form lives in an internal package; Error has the same fields
// as its error type, so that Load and Parse hand callers this one type, which they can name.
type Error struct {
	File  string // the file as the caller named it; "" when the error is not about a file
	Line  int    // 1-based; 0 when unknown
	Table string // dotted table name ("accounts.work"); "[proxy.listener]" for an array of tables; "" at top level
	Key   string // the TOML key concerned, unquoted; "" for a table-level problem
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

// Error formats the problem, where it is and the fix, for example
//
//	invalid flow `passwd` in [accounts.work] at config.toml:7: use one of interactive, device, ...
//	invalid Account.Flow "passwd": use one of interactive, device, ...
func (e *Error) Error() string { return (*tomlconf.Error)(e).Error() }

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// ConfigError marks the error as a configuration problem: the CLI exits with status 2 for it.
func (e *Error) ConfigError() bool { return true }

// Errors is every problem found at once (in a file, in the order of their lines), so that a user
// fixes a configuration in one pass instead of one error per run.
type Errors []*Error

// Error returns one line per problem.
func (es Errors) Error() string { return tomlconf.Errors(es.internal()).Error() }

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

func (es Errors) internal() []*tomlconf.Error {
	out := make([]*tomlconf.Error, len(es))
	for i, e := range es {
		out[i] = (*tomlconf.Error)(e)
	}
	return out
}

// publicErrors turns the decoder's and validator's errors into this package's, leaving any other
// error as it is.
func publicErrors(err error) error {
	switch e := err.(type) {
	case nil:
		return nil
	case *tomlconf.Error:
		return (*Error)(e)
	case tomlconf.Errors:
		out := make(Errors, len(e))
		for i, x := range e {
			out[i] = (*Error)(x)
		}
		return out
	}
	return err
}

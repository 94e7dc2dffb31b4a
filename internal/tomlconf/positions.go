package tomlconf

import (
	"strconv"
	"strings"
)

// Positions records where each key and table of a decoded document is written, so that checks
// made after decoding (a missing client_id, an unknown flow) can still name the line.
//
// A path is the sequence of keys from the root: []string{"accounts", "work", "flow"}. An element
// of an array of tables, or of an inline array of inline tables, is addressed by its index written
// in decimal: []string{"proxy", "listener", "0", "listen"}. A key's line is the line its name is
// written on; a table's line is the line of its header (or of its first key when the table is only
// implied, as "accounts" is by [accounts.work]).
//
// All methods accept a nil receiver and then know nothing, so callers need not guard them.
type Positions struct {
	file   string
	lines  map[string]int
	arrays map[string]int // arrays of tables (either kind) and their lengths
}

func newPositions(file string) *Positions {
	return &Positions{file: file, lines: map[string]int{}, arrays: map[string]int{}}
}

// pathKey joins a path into a map key. NUL cannot be typed in a bare key and is vanishingly rare in
// a quoted one; a collision would only misplace a line number.
func pathKey(path []string) string { return strings.Join(path, "\x00") }

// File returns the file name given to Decode.
func (p *Positions) File() string {
	if p == nil {
		return ""
	}
	return p.file
}

// Line returns the line where the key or table at path is written, or 0 if the document does not
// write it.
func (p *Positions) Line(path ...string) int {
	if p == nil {
		return 0
	}
	return p.lines[pathKey(path)]
}

// Has reports whether the document writes the key or table at path (explicitly or as the prefix of
// a dotted key or header).
func (p *Positions) Has(path ...string) bool {
	return p.Line(path...) > 0
}

// Len returns the number of elements of the array of tables at path (written as [[path]] headers or
// as an inline array of inline tables), or 0.
func (p *Positions) Len(path ...string) int {
	if p == nil {
		return 0
	}
	return p.arrays[pathKey(path)]
}

// nearestLine returns the line of path, or else of its closest ancestor that has one: a missing
// key is reported at its table's header.
func (p *Positions) nearestLine(path []string) int {
	for n := len(path); n > 0; n-- {
		if l := p.Line(path[:n]...); l > 0 {
			return l
		}
	}
	return 0
}

// isIndex reports whether path[i] is an index into an array of tables.
func (p *Positions) isIndex(path []string, i int) bool {
	if p == nil || i == 0 || p.arrays[pathKey(path[:i])] == 0 {
		return false
	}
	_, err := strconv.Atoi(path[i])
	return err == nil
}

// TableName returns the name of the table at path as Error.Table holds it: the dotted key, quoted
// where TOML needs quotes, without array indexes; an element of an array of tables is returned in
// brackets ("[proxy.listener]") so that Error shows it as the header the user wrote,
// [[proxy.listener]].
func (p *Positions) TableName(path ...string) string {
	var parts []string
	last := false
	for i, part := range path {
		if p.isIndex(path, i) {
			last = true
			continue
		}
		last = false
		parts = append(parts, part)
	}
	name := FormatKey(parts...)
	if last {
		name = "[" + name + "]"
	}
	return name
}

// KeyError returns an error about the key at path, placed at the key's line (or, for a key that
// is not written, at its table's header) and naming the key and its table.
func (p *Positions) KeyError(path []string, msg, fix string) *Error {
	e := &Error{File: p.File(), Line: p.nearestLine(path), Msg: msg, Fix: fix}
	if n := len(path); n > 0 {
		e.Key = path[n-1]
		e.Table = p.TableName(path[:n-1]...)
	}
	return e
}

// TableError returns an error about the table at path as a whole, placed at its header.
func (p *Positions) TableError(path []string, msg, fix string) *Error {
	return &Error{File: p.File(), Line: p.nearestLine(path), Table: p.TableName(path...), Msg: msg, Fix: fix}
}

// set records the line of path unless an earlier occurrence already did: the first place a table
// is mentioned is where a reader finds it.
func (p *Positions) set(path []string, line int) {
	k := pathKey(path)
	if _, ok := p.lines[k]; !ok {
		p.lines[k] = line
	}
}

// setHeader records the line of an explicit table header, which wins over an implied mention.
func (p *Positions) setHeader(path []string, line int) {
	p.lines[pathKey(path)] = line
}

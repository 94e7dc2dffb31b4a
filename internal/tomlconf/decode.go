// Package tomlconf decodes TOML configuration files strictly and reports every problem with the
// file, line, table and key, so that a user can fix a file from the message alone. It is shared by
// the configuration (package config) and by the emulator's scenario files.
//
// Strict means: a key that the target type does not have is an error (a misspelt key silently
// ignored is a setting silently lost), and so is a value of the wrong type. Unlike go-toml's own
// strict mode, which stops at the first type error and matches keys case-insensitively, Decode
// reports all unknown keys, wrong types and duplicate keys at once, and keys must match exactly
// (TOML keys are case-sensitive; `Flow` is not `flow`).
//
// Decode also returns the Positions of every key and table, so that validation done after decoding
// (in the caller) can point at lines too.
//
// This package must never put a value read from a document into an error message: configuration
// files hold secrets, and error messages end up in terminals, logs and bug reports. Messages name
// keys, tables, lines and types only.
package tomlconf

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Decode decodes data, the content of file, into v (a non-nil pointer), refusing unknown keys.
// file is used only in messages, as given. It returns the positions of the document's keys and,
// on failure, an Errors holding every problem found (or a single *Error for a syntax error, after
// which nothing more can be said). On a syntax error the Positions cover the document up to it.
//
// v is left untouched unless the document is free of unknown keys, wrong types and duplicates.
func Decode(file string, data []byte, v any) (*Positions, error) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("tomlconf.Decode: need a non-nil pointer, got %T", v)
	}

	w := &walker{
		pos:     newPositions(file),
		data:    data,
		root:    rv.Type().Elem(),
		seen:    map[string]int{},
		headers: map[string]int{},
		bad:     map[string]bool{},
	}
	w.lineStarts = append(w.lineStarts, 0)
	for i, c := range data {
		if c == '\n' {
			w.lineStarts = append(w.lineStarts, i+1)
		}
	}

	w.p.Reset(data)
	for w.p.NextExpression() {
		w.expression(w.p.Expression())
	}
	if err := w.p.Error(); err != nil {
		return w.pos, w.syntaxError(err)
	}
	if len(w.errs) > 0 {
		sortErrors(w.errs)
		return w.pos, w.errs
	}

	// The document has passed the checks above, so go-toml should decode it; what it still refuses
	// (an integer too large for its field, a table defined twice in a way the walk above does not
	// track) is translated to the same form.
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return w.pos, w.decodeError(err)
	}
	return w.pos, nil
}

func sortErrors(errs Errors) {
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Line != errs[j].Line {
			return errs[i].Line < errs[j].Line
		}
		return errs[i].Column < errs[j].Column
	})
}

// walker visits the document's expressions once, recording positions and checking every key and
// value against the target type.
type walker struct {
	p          unstable.Parser
	pos        *Positions
	data       []byte
	lineStarts []int
	root       reflect.Type

	table   []string       // path of the table the following key-values belong to
	seen    map[string]int // key-values written so far, to their line, for duplicate detection
	headers map[string]int // explicit [table] headers written so far, to their line
	bad     map[string]bool
	errs    Errors
}

// line returns the 1-based line of a byte offset.
func (w *walker) line(offset uint32) int {
	return sort.Search(len(w.lineStarts), func(i int) bool { return w.lineStarts[i] > int(offset) })
}

func (w *walker) column(offset uint32) int {
	l := w.line(offset)
	return int(offset) - w.lineStarts[l-1] + 1
}

// keyOf returns the parts of the key of a KeyValue, Table or ArrayTable node and the line where
// the key starts.
func (w *walker) keyOf(n *unstable.Node) ([]string, int) {
	var parts []string
	line := 0
	it := n.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = w.line(k.Raw.Offset)
		}
		parts = append(parts, string(k.Data))
	}
	return parts, line
}

func (w *walker) expression(n *unstable.Node) {
	switch n.Kind {
	case unstable.Table:
		parts, line := w.keyOf(n)
		path := w.headerPath(parts)
		k := pathKey(path)
		if first, ok := w.headers[k]; ok {
			w.add(&Error{File: w.pos.file, Line: line, Msg: "table " + tableHeader(w.pos.TableName(path...)) + " is written twice",
				Fix: fmt.Sprintf("it was first written at line %d; merge the two into one table", first)})
			w.bad[k] = true
		} else {
			w.headers[k] = line
		}
		w.pos.setHeader(path, line)
		w.markPrefixes(path, line)
		w.table = path
		w.checkHeader(path, line, false)

	case unstable.ArrayTable:
		parts, line := w.keyOf(n)
		arr := w.headerPath(parts)
		k := pathKey(arr)
		idx := w.pos.arrays[k]
		w.pos.arrays[k] = idx + 1
		path := append(slices.Clip(arr), strconv.Itoa(idx))
		w.markPrefixes(path, line)
		w.pos.setHeader(path, line)
		w.table = path
		w.checkHeader(arr, line, true)

	case unstable.KeyValue:
		parts, line := w.keyOf(n)
		path := append(slices.Clone(w.table), parts...)
		k := pathKey(path)
		if first, ok := w.seen[k]; ok {
			w.add(w.pos.keyErrorAt(path, line, "`"+parts[len(parts)-1]+"` is written twice",
				fmt.Sprintf("it was first written at line %d; keep one", first)))
			return
		}
		w.seen[k] = line
		w.markPrefixes(path, line)
		w.pos.set(path, line)
		w.recordValue(path, n.Value())
		w.checkKeyValue(path, len(w.table), line, n.Value())
	}
}

// headerPath turns the key of a table header into a path, descending into the last element of any
// array of tables it passes through, as TOML does: after [[a]], [a.b] is a sub-table of the last a.
func (w *walker) headerPath(parts []string) []string {
	var path []string
	for i, part := range parts {
		path = append(path, part)
		if i < len(parts)-1 {
			if n := w.pos.arrays[pathKey(path)]; n > 0 {
				path = append(path, strconv.Itoa(n-1))
			}
		}
	}
	return path
}

// markPrefixes records the line of the tables a header or dotted key implies.
func (w *walker) markPrefixes(path []string, line int) {
	for i := 1; i < len(path); i++ {
		w.pos.set(path[:i], line)
	}
}

// recordValue records the positions of the keys inside inline tables and arrays of inline tables.
func (w *walker) recordValue(path []string, v *unstable.Node) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			parts, line := w.keyOf(kv)
			sub := append(slices.Clone(path), parts...)
			w.markPrefixes(sub, line)
			w.pos.set(sub, line)
			w.recordValue(sub, kv.Value())
		}
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			e := it.Node()
			if e.Kind == unstable.Comment {
				continue
			}
			sub := append(slices.Clone(path), strconv.Itoa(i))
			if e.Kind == unstable.InlineTable {
				w.pos.arrays[pathKey(path)] = i + 1
				w.pos.set(sub, w.line(e.Raw.Offset))
			}
			w.recordValue(sub, e)
			i++
		}
	}
}

func (w *walker) add(e *Error) { w.errs = append(w.errs, e) }

// keyErrorAt is KeyError with the line known from the walk.
func (p *Positions) keyErrorAt(path []string, line int, msg, fix string) *Error {
	e := p.KeyError(path, msg, fix)
	e.Line = line
	return e
}

// isBad reports whether a problem was already reported for path or one of its prefixes, so that
// one misspelt table does not produce an error for each of its keys.
func (w *walker) isBad(path []string) bool {
	for i := 1; i <= len(path); i++ {
		if w.bad[pathKey(path[:i])] {
			return true
		}
	}
	return false
}

// step is the outcome of following one key from a type.
type step int

const (
	stepOK      step = iota
	stepAny          // an interface: anything goes below
	stepUnknown      // a struct without that field
	stepScalar       // not a table at all
)

// follow descends from t (pointers removed) along one key.
func follow(t reflect.Type, part string) (reflect.Type, step) {
	t = deref(t)
	if isScalar(t) {
		return nil, stepScalar
	}
	switch t.Kind() {
	case reflect.Interface:
		return nil, stepAny
	case reflect.Struct:
		f, ok := fieldByKey(t, part)
		if !ok {
			return nil, stepUnknown
		}
		return f.Type, stepOK
	case reflect.Map:
		return t.Elem(), stepOK
	case reflect.Slice, reflect.Array:
		if _, err := strconv.Atoi(part); err == nil {
			return t.Elem(), stepOK
		}
		return nil, stepScalar
	}
	return nil, stepScalar
}

// walkPath follows path from the root. It returns the type reached, or the index of the part that
// could not be followed and why. A path reaching an interface stops the checks (ok with t nil).
func (w *walker) walkPath(path []string) (t reflect.Type, failAt int, why step) {
	t = w.root
	for i, part := range path {
		next, s := follow(t, part)
		switch s {
		case stepAny:
			return nil, -1, stepAny
		case stepUnknown, stepScalar:
			return t, i, s
		}
		t = next
	}
	return t, -1, stepOK
}

// reportPath reports why path could not be followed at failAt (t is the type holding path[failAt]).
// isTable says whether path[failAt] is used as a table (a header or a dotted key's prefix).
func (w *walker) reportPath(path []string, t reflect.Type, failAt int, why step, line int, isTable bool) {
	switch why {
	case stepUnknown:
		w.bad[pathKey(path[:failAt+1])] = true
		part := path[failAt]
		if isTable {
			e := &Error{File: w.pos.file, Line: line, Msg: "unknown table " + tableHeader(w.pos.TableName(path[:failAt+1]...))}
			e.Key = part
			e.Fix = suggest(t, part, true, func(s string) string { return tableHeader(w.pos.TableName(append(slices.Clone(path[:failAt]), s)...)) })
			w.add(e)
			return
		}
		fix := suggest(t, part, false, func(s string) string { return "`" + s + "`" })
		w.add(w.pos.keyErrorAt(path[:failAt+1], line, "unknown key `"+part+"`", fix))
	case stepScalar:
		// path[failAt-1] names a value that is not a table, yet the document puts keys in it.
		if failAt == 0 {
			return // the root is always a table
		}
		holder := path[:failAt]
		w.bad[pathKey(holder)] = true
		if isTableList(t) {
			w.add(w.pos.keyErrorAt(holder, line, "`"+holder[len(holder)-1]+"` is a list of tables",
				"write each element as [["+FormatKey(w.plain(holder)...)+"]]"))
			return
		}
		w.add(w.pos.keyErrorAt(holder, line, "wrong type for `"+holder[len(holder)-1]+"`",
			"it must be "+describe(t)+", not a table"))
	}
}

// plain removes array indexes from a path.
func (w *walker) plain(path []string) []string {
	var out []string
	for i, p := range path {
		if !w.pos.isIndex(path, i) {
			out = append(out, p)
		}
	}
	return out
}

// checkHeader checks a [table] (or, with array set, an [[array]]) header against the target type.
func (w *walker) checkHeader(path []string, line int, array bool) {
	if w.isBad(path) {
		return
	}
	t, failAt, why := w.walkPath(path)
	if why == stepAny {
		return
	}
	if failAt >= 0 {
		w.reportPath(path, t, failAt, why, line, true)
		return
	}
	t = deref(t)
	name := FormatKey(w.plain(path)...)
	last := path[len(path)-1]
	isList := isTableList(t)
	switch {
	case array && isList, !array && isTableType(t):
		return
	case !array && isList:
		w.add(w.pos.keyErrorAt(path, line, "`"+last+"` is a list of tables",
			"write its header with double brackets, [["+name+"]]"))
	case array && isTableType(t):
		w.add(w.pos.keyErrorAt(path, line, "`"+last+"` is a single table, not a list",
			"write its header with single brackets, ["+name+"]"))
	default:
		got := "a table"
		if array {
			got = "a list of tables"
		}
		w.add(w.pos.keyErrorAt(path, line, "wrong type for `"+last+"`", "it must be "+describe(t)+", not "+got))
	}
	w.bad[pathKey(path)] = true
}

// checkKeyValue checks the key at path (whose first tableLen parts are the current table) and its
// value against the target type.
func (w *walker) checkKeyValue(path []string, tableLen, line int, v *unstable.Node) {
	if w.isBad(path) {
		return
	}
	t, failAt, why := w.walkPath(path)
	if why == stepAny {
		return
	}
	if failAt >= 0 {
		// A failure inside the table's own path was reported with its header; a failure at a
		// dotted key's prefix uses that prefix as a table.
		if failAt < tableLen {
			return
		}
		w.reportPath(path, t, failAt, why, line, failAt < len(path)-1)
		return
	}
	w.checkValue(path, line, t, v)
}

// checkValue checks a value against the type of the key at path; the key is on line.
func (w *walker) checkValue(path []string, line int, t reflect.Type, v *unstable.Node) {
	t = deref(t)
	if t.Kind() == reflect.Interface {
		return
	}
	if got := w.misfit(path, t, v); got != "" {
		w.bad[pathKey(path)] = true
		w.add(w.pos.keyErrorAt(path, line, "wrong type for `"+path[len(path)-1]+"`",
			"it must be "+describe(t)+", not "+got))
	}
}

// misfit returns "" if v can be stored in t, or else what v is ("an integer", "a list holding an
// integer"). Inline tables are checked key by key, reporting their own unknown keys and wrong
// types, and then count as fitting.
func (w *walker) misfit(path []string, t reflect.Type, v *unstable.Node) string {
	t = deref(t)
	if t.Kind() == reflect.Interface {
		return ""
	}
	ok := false
	switch {
	case t == timeType || t == localDateType || t == localTimeType || t == localDateTimeType:
		// time.Time would also take a string (it is a TextUnmarshaler), but TOML has date-times;
		// and time's parse errors quote the value.
		switch v.Kind {
		case unstable.DateTime:
			ok = t == timeType
		case unstable.LocalDateTime:
			ok = t == timeType || t == localDateTimeType
		case unstable.LocalDate:
			ok = t == timeType || t == localDateType
		case unstable.LocalTime:
			ok = t == timeType || t == localTimeType
		}
	case isTextUnmarshaler(t):
		switch v.Kind {
		case unstable.String, unstable.Integer, unstable.Float, unstable.Bool:
			ok = true
		}
	case v.Kind == unstable.String:
		ok = t.Kind() == reflect.String
	case v.Kind == unstable.Integer:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
			reflect.Float32, reflect.Float64:
			ok = true
		}
	case v.Kind == unstable.Float:
		ok = t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64
	case v.Kind == unstable.Bool:
		ok = t.Kind() == reflect.Bool
	case v.Kind == unstable.Array:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			break
		}
		i := 0
		it := v.Children()
		for it.Next() {
			e := it.Node()
			if e.Kind == unstable.Comment {
				continue
			}
			if got := w.misfit(append(slices.Clone(path), strconv.Itoa(i)), t.Elem(), e); got != "" {
				return fmt.Sprintf("a list whose element %d is %s", i+1, got)
			}
			i++
		}
		return ""
	case v.Kind == unstable.InlineTable:
		if !isTableType(t) {
			break
		}
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			parts, line := w.keyOf(kv)
			sub := append(slices.Clone(path), parts...)
			w.checkInline(sub, len(path), line, t, kv.Value())
		}
		return ""
	}
	if ok {
		return ""
	}
	return kindName(v.Kind)
}

// checkInline checks one key-value of an inline table whose type is t and whose path has length
// base.
func (w *walker) checkInline(path []string, base, line int, t reflect.Type, v *unstable.Node) {
	for i := base; i < len(path); i++ {
		next, s := follow(t, path[i])
		switch s {
		case stepAny:
			return
		case stepUnknown, stepScalar:
			if !w.isBad(path[:i+1]) {
				w.reportPath(path, t, i, s, line, i < len(path)-1)
			}
			return
		}
		t = next
	}
	w.checkValue(path, line, t, v)
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	localDateType     = reflect.TypeFor[toml.LocalDate]()
	localTimeType     = reflect.TypeFor[toml.LocalTime]()
	localDateTimeType = reflect.TypeFor[toml.LocalDateTime]()
	textUnmarshaler   = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func isTextUnmarshaler(t reflect.Type) bool {
	return t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)
}

// isScalar reports whether t holds a single TOML value even though Go may see a struct in it.
func isScalar(t reflect.Type) bool {
	switch t {
	case timeType, localDateType, localTimeType, localDateTimeType:
		return true
	}
	if t.Kind() != reflect.Interface && isTextUnmarshaler(t) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array, reflect.Interface:
		return false
	}
	return true
}

// isTableList reports whether an array of tables can be decoded into t.
func isTableList(t reflect.Type) bool {
	t = deref(t)
	return (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && isTableType(t.Elem())
}

// isTableType reports whether a TOML table can be decoded into t.
func isTableType(t reflect.Type) bool {
	t = deref(t)
	if isScalar(t) {
		return false
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

// fieldByKey finds the struct field a TOML key decodes into: its tag name, or for an untagged
// field its Go name (case-insensitively, go-toml's convention for untagged fields). Embedded
// structs without a tag name are flattened, shallower fields first, as go-toml does.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for _, f := range fieldsOf(t) {
		if f.name == key || (!f.tagged && strings.EqualFold(f.name, key)) {
			return f.StructField, true
		}
	}
	return reflect.StructField{}, false
}

type field struct {
	reflect.StructField
	name   string
	tagged bool
}

// fieldCache maps a struct type to its fields: types are few and documents have many keys.
var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists the keys a struct accepts, in declaration order. The result is shared: callers
// must not modify it.
func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	f := appendFields(nil, t, map[reflect.Type]bool{})
	fieldCache.Store(t, f)
	return f
}

func appendFields(out []field, t reflect.Type, visiting map[reflect.Type]bool) []field {
	if visiting[t] {
		return out
	}
	visiting[t] = true
	defer delete(visiting, t)
	var embedded []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, tagged := f.Tag.Lookup("toml")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if deref(f.Type).Kind() == reflect.Struct {
				embedded = append(embedded, f)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name, tagged = f.Name, false
		}
		out = append(out, field{StructField: f, name: name, tagged: tagged})
	}
	for _, f := range embedded {
		out = appendFields(out, deref(f.Type), visiting)
	}
	return out
}

// suggest proposes the field of t closest to an unknown key, or lists the keys allowed there;
// with tables, only the fields that hold tables. show renders a candidate as the user would write
// it.
func suggest(t reflect.Type, key string, tables bool, show func(string) string) string {
	t = deref(t)
	if t.Kind() != reflect.Struct {
		return "remove it"
	}
	var raw, names []string
	for _, f := range fieldsOf(t) {
		if tables && !isTableType(f.Type) && !isTableList(f.Type) {
			continue
		}
		raw = append(raw, f.name)
		names = append(names, show(f.name))
	}
	if best := Nearest(key, raw); best != "" {
		if strings.EqualFold(best, key) {
			return "did you mean " + show(best) + "? Keys are case-sensitive"
		}
		return "did you mean " + show(best) + "?"
	}
	if len(names) == 0 {
		return "remove it"
	}
	return "remove it, or use one of " + strings.Join(names, ", ")
}

// Nearest returns the candidate that word is most likely a typo of, or "" when none is close: a
// candidate equal but for case wins, else the one fewest edits away, if those edits are few for
// its length. Unknown config keys and account names are suggested with it.
func Nearest(word string, candidates []string) string {
	for _, c := range candidates {
		if strings.EqualFold(c, word) {
			return c
		}
	}
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := distance(strings.ToLower(word), strings.ToLower(c)); d < bestDist && d <= len(c)/3+1 {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the Damerau-Levenshtein (optimal string alignment) distance, which counts a swap of
// two adjacent letters ("flwo" for "flow") as one edit.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 64 // not a typo of a key name; skip the quadratic work
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// describe says in TOML terms what a value of type t must be.
func describe(t reflect.Type) string {
	t = deref(t)
	switch t {
	case timeType:
		return "a date-time"
	case localDateType:
		return "a date"
	case localTimeType:
		return "a time of day"
	case localDateTimeType:
		return "a local date-time"
	}
	if t.Kind() != reflect.Interface && isTextUnmarshaler(t) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + plural(describe(t.Elem()))
	case reflect.Struct, reflect.Map:
		return "a table"
	}
	return "a value"
}

func plural(d string) string {
	switch d {
	case "true or false":
		return "booleans"
	case "a value":
		return "values"
	}
	d = strings.TrimPrefix(strings.TrimPrefix(d, "an "), "a ")
	if rest, ok := strings.CutPrefix(d, "list of "); ok {
		return "lists of " + rest
	}
	return d + "s"
}

// kindName names a TOML value kind for "not ..." in a type error.
func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.DateTime, unstable.LocalDateTime:
		return "a date-time"
	case unstable.LocalDate:
		return "a date"
	case unstable.LocalTime:
		return "a time"
	case unstable.Array:
		return "a list"
	case unstable.InlineTable:
		return "an inline table"
	}
	return "a " + k.String()
}

// syntaxError turns a parser error into an *Error placed at its line and column.
func (w *walker) syntaxError(err error) error {
	var perr *unstable.ParserError
	if !errors.As(err, &perr) {
		return &Error{File: w.pos.file, Msg: cleanMessage(err.Error()), Err: err}
	}
	offset := len(w.data)
	if perr.Highlight != nil {
		if o := cap(w.data) - cap(perr.Highlight); o >= 0 && o <= len(w.data) {
			offset = o
		}
	}
	e := &Error{File: w.pos.file, Line: w.line(uint32(offset)), Column: w.column(uint32(offset))}
	e.Msg = cleanMessage(perr.Message)
	e.Fix = hint(perr.Message)
	if strings.Contains(perr.Message, "at start of value") || strings.Contains(perr.Message, "expected keyword") {
		// go-toml guesses what an unquoted word was meant to be ("expected keyword "inf"" for
		// flow = interactive); the guess misleads more than it helps.
		e.Msg = "invalid value"
	}
	return e
}

// decodeError translates what go-toml refused after the walk found nothing wrong.
func (w *walker) decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var errs Errors
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, _ := de.Position()
			key := de.Key()
			if len(key) == 0 {
				continue
			}
			errs = append(errs, w.pos.keyErrorAt(key, line, "unknown key `"+key[len(key)-1]+"`", "remove it"))
		}
		sortErrors(errs)
		if len(errs) > 0 {
			return errs
		}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := cleanMessage(de.Error())
		if key := de.Key(); len(key) > 0 {
			return w.pos.keyErrorAt(key, line, "invalid `"+key[len(key)-1]+"`", redactQuoted(msg))
		}
		return &Error{File: w.pos.file, Line: line, Column: col, Msg: msg, Fix: hint(msg)}
	}
	return &Error{File: w.pos.file, Msg: cleanMessage(err.Error())}
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// redactQuoted removes quoted text from a message that may come from a value's own UnmarshalText
// (time's "parsing time "yesterday" ...", a duration's "invalid duration "5x""): such messages quote
// the value, and the value may be a secret.
func redactQuoted(m string) string {
	return quoted.ReplaceAllString(m, `"..."`)
}

var codePoint = regexp.MustCompile(`U\+[0-9A-F]{4,6} ('[^']*'|'''?)`)

// cleanMessage removes go-toml's prefix and Go-isms from a message: "toml: unexpected character
// U+0078 'x' at start of value" becomes "unexpected character 'x' at start of value". Go type names
// ("struct field tomlconf.xs.B of type string") mean nothing to a user and are cut.
func cleanMessage(m string) string {
	m = strings.TrimPrefix(m, "toml: ")
	m = codePoint.ReplaceAllString(m, "$1")
	if i := strings.Index(m, " into struct field "); i >= 0 {
		m = m[:i]
	}
	m = strings.Replace(m, "cannot decode TOML ", "cannot store a TOML ", 1)
	return m
}

// hint proposes a fix for the syntax errors people make most in configuration files.
func hint(msg string) string {
	switch {
	case strings.Contains(msg, "at start of value"), strings.Contains(msg, "expected keyword"):
		return `text must be quoted (key = "value"); true, false and numbers are written bare`
	case strings.Contains(msg, "expected '=' after key"), strings.Contains(msg, "at start of key"):
		return "each line is key = value, a [table] header or a comment starting with #"
	case strings.Contains(msg, "expected newline but got U+0027"):
		return `a '...' string cannot contain a single quote; use "..." instead`
	case strings.Contains(msg, "expected newline"):
		return "put each key = value on its own line"
	case strings.Contains(msg, "unterminated basic string"), strings.Contains(msg, "strings cannot have new lines"):
		return `close the string with " on the same line, or use """...""" for text over several lines`
	case strings.Contains(msg, "unterminated literal string"):
		return "close the string with ' on the same line"
	case strings.Contains(msg, "invalid escape"), strings.Contains(msg, "escape"):
		return `inside "..." a backslash starts an escape: write \\ for a backslash, or use single quotes ('C:\path') for text taken literally`
	case strings.Contains(msg, "close table name"), strings.Contains(msg, "array table"):
		return "a table header is [name] or [[name]] alone on its line"
	case strings.Contains(msg, "array is incomplete"):
		return "close the list with ]"
	case strings.Contains(msg, "inline table is incomplete"), strings.Contains(msg, "inline table"):
		return "an inline table is { key = value, other = value }"
	case strings.Contains(msg, "already"):
		return "each key and table may be written only once"
	}
	return ""
}

package token_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoMutableExportedGlobals: no library package of the module (this test sits beside
// TestMailClientsStaySmall, the other module-wide rule) exports a variable other than a sentinel
// error. An exported slice or map is shared by every importer, and one that changes it changes it for
// all: lists are functions returning a copy instead (check.Protocols, config.DefaultProtocols).
func TestNoMutableExportedGlobals(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch name := d.Name(); {
			case path != ".." && (strings.HasPrefix(name, ".") || name == "internal" || name == "cmd" || name == "testdata"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if name.IsExported() && !(i < len(vs.Values) && sentinelError(vs.Values[i])) {
						t.Errorf("%s: exported variable %s: make it a function returning a copy, a constant, or unexported", fset.Position(name.Pos()), name.Name)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sentinelError reports whether e is errors.New(...) or fmt.Errorf(...), or names another package's
// sentinel (pkg.ErrX: store re-exports the errors of the encryption it shares with store/redis, so
// that errors.Is works with either name).
func sentinelError(e ast.Expr) bool {
	if sel, ok := e.(*ast.SelectorExpr); ok {
		_, isPkg := sel.X.(*ast.Ident)
		return isPkg && strings.HasPrefix(sel.Sel.Name, "Err")
	}
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && (pkg.Name == "errors" && sel.Sel.Name == "New" || pkg.Name == "fmt" && sel.Sel.Name == "Errorf")
}

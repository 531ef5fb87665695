package placement

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/unisched/unisched/placement/policy"
)

// TestAuthorizedRulesAreRegistered finds every s.authorize(r, rule, ...)
// call in the package and checks that the rule (a literal or a string
// constant) is one upstream registers; a typo would otherwise only show up
// as a 403 in some conformance file.
func TestAuthorizedRulesAreRegistered(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	consts := map[string]string{}
	type use struct {
		pos  token.Pos
		expr ast.Expr
	}
	var uses []use
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i < len(n.Values) {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							consts[id.Name] = v
						}
					}
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "authorize" && len(n.Args) >= 2 {
					uses = append(uses, use{n.Pos(), n.Args[1]})
				}
			}
			return true
		})
	}
	for _, u := range uses {
		var rule string
		switch e := u.expr.(type) {
		case *ast.BasicLit:
			rule, _ = strconv.Unquote(e.Value)
		case *ast.Ident:
			v, ok := consts[e.Name]
			if !ok {
				// a variable, e.g. inside a wrapper: its callers are checked
				t.Logf("%s: rule %s is not a string constant; not checked", fset.Position(u.pos), e.Name)
				continue
			}
			rule = v
		case *ast.SelectorExpr:
			// policy.X constants are registered by construction; the
			// policy package's tests cover them.
			if pkg, ok := e.X.(*ast.Ident); ok && pkg.Name == "policy" {
				continue
			}
			t.Errorf("%s: cannot resolve rule expression", fset.Position(u.pos))
			continue
		default:
			t.Errorf("%s: cannot resolve rule expression", fset.Position(u.pos))
			continue
		}
		if !policy.Registered(rule) {
			t.Errorf("%s: rule %q is not registered upstream", fset.Position(u.pos), rule)
		}
	}
	if len(uses) == 0 {
		t.Log("no authorize calls yet")
	}
}

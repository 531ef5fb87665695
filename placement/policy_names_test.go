package placement

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
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
	policyConsts := map[string]string{}
	policyFiles, err := filepath.Glob("policy/*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range policyFiles {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for i, id := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							policyConsts[id.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			return true
		})
	}
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
	used := map[string]bool{}
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
			v, ok := policyConsts[e.Sel.Name]
			if pkg, isIdent := e.X.(*ast.Ident); !isIdent || pkg.Name != "policy" || !ok {
				t.Errorf("%s: cannot resolve rule expression", fset.Position(u.pos))
				continue
			}
			rule = v
		default:
			t.Errorf("%s: cannot resolve rule expression", fset.Position(u.pos))
			continue
		}
		if !policy.Registered(rule) {
			t.Errorf("%s: rule %q is not registered upstream", fset.Position(u.pos), rule)
		}
		used[rule] = true
	}
	// every operation upstream guards is guarded here too: a handler that
	// checks a neighbour's rule (list for show) leaves one unused
	for _, r := range policy.Defaults {
		if strings.HasPrefix(r.Name, "placement:") && !used[r.Name] {
			t.Errorf("no handler authorizes %s", r.Name)
		}
	}
}

package jsonschema

import (
	"fmt"
	"regexp"
	"strings"
)

// Python's \s for str patterns, as a character-class body.
const pySpaceClass = `\t\n\v\f\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`

// compilePattern compiles a Python re pattern for use with re.search
// semantics. RE2 covers the syntax JSON schemas use in practice; the
// places where the two engines disagree on the same syntax are rewritten:
// Python's $ also matches before a final newline, \Z is RE2's \z, and
// \d, \w, \s are Unicode-aware in Python. Patterns RE2 cannot express
// (look-around, back-references) are rejected.
func compilePattern(p string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(translatePattern(p))
	if err != nil {
		return nil, fmt.Errorf("compiling pattern %q: %w", p, err)
	}
	return re, nil
}

func translatePattern(p string) string {
	var b strings.Builder
	inClass := false
	classStart := false // just after [ or [^, where ] is a literal
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' && i+1 < len(p) {
			i++
			e := p[i]
			switch e {
			case 'Z':
				b.WriteString(`\z`)
			case 'd':
				b.WriteString(`\p{Nd}`)
			case 'D':
				b.WriteString(`\P{Nd}`)
			case 'w':
				if inClass {
					b.WriteString(`\p{L}\p{N}_`)
				} else {
					b.WriteString(`[\p{L}\p{N}_]`)
				}
			case 'W':
				if inClass {
					b.WriteString(`\W`)
				} else {
					b.WriteString(`[^\p{L}\p{N}_]`)
				}
			case 's':
				if inClass {
					b.WriteString(pySpaceClass)
				} else {
					b.WriteString("[" + pySpaceClass + "]")
				}
			case 'S':
				if inClass {
					b.WriteString(`\S`)
				} else {
					b.WriteString("[^" + pySpaceClass + "]")
				}
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
			classStart = false
			continue
		}
		switch {
		case inClass:
			if c == ']' && !classStart {
				inClass = false
			}
			if c == '^' && classStart && i > 0 && p[i-1] == '[' {
				b.WriteByte(c)
				continue // still at the class start
			}
			classStart = false
			b.WriteByte(c)
		case c == '[':
			inClass, classStart = true, true
			b.WriteByte(c)
		case c == '$':
			b.WriteString(`(?:\n?\z)`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

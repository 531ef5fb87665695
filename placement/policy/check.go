package policy

import (
	"strconv"
	"strings"
	"unicode"
)

// A check is one node of a parsed oslo.policy check string. Rules are kept
// as check strings rather than Go closures so that the defaults read like
// upstream's policy files and operator overrides can use the same language.
type check interface {
	eval(ev *evaluation) bool
}

// evaluation carries what one Allowed call checks against. depth guards
// against rule cycles, which oslo.policy rejects at load time.
type evaluation struct {
	rules  map[string]check
	target map[string]string
	creds  *creds
	depth  int
}

type trueCheck struct{}

func (trueCheck) eval(*evaluation) bool { return true }

type falseCheck struct{}

func (falseCheck) eval(*evaluation) bool { return false }

type notCheck struct{ c check }

func (n notCheck) eval(ev *evaluation) bool { return !n.c.eval(ev) }

type andCheck []check

func (a andCheck) eval(ev *evaluation) bool {
	for _, c := range a {
		if !c.eval(ev) {
			return false
		}
	}
	return true
}

type orCheck []check

func (o orCheck) eval(ev *evaluation) bool {
	for _, c := range o {
		if c.eval(ev) {
			return true
		}
	}
	return false
}

// ruleCheck ("rule:name") evaluates another rule; an undefined one is false.
type ruleCheck struct{ name string }

func (r ruleCheck) eval(ev *evaluation) bool {
	c, ok := ev.rules[r.name]
	if !ok || ev.depth > 32 {
		return false
	}
	ev.depth++
	defer func() { ev.depth-- }()
	return c.eval(ev)
}

// roleCheck ("role:name") compares case-insensitively, as oslo.policy does.
type roleCheck struct{ match string }

func (r roleCheck) eval(ev *evaluation) bool {
	m, ok := substitute(r.match, ev.target)
	if !ok {
		return false
	}
	for _, role := range ev.creds.roles {
		if strings.EqualFold(role, m) {
			return true
		}
	}
	return false
}

// genericCheck ("kind:match") compares a credential attribute (or a Python
// literal kind such as 'value' or True) with the target-substituted match,
// both as Python's str() renders them.
type genericCheck struct{ kind, match string }

func (g genericCheck) eval(ev *evaluation) bool {
	m, ok := substitute(g.match, ev.target)
	if !ok {
		return false
	}
	if lit, ok := pythonLiteral(g.kind); ok {
		return m == lit
	}
	vals, ok := ev.creds.lookup(g.kind)
	if !ok {
		return false
	}
	for _, v := range vals {
		if v == m {
			return true
		}
	}
	return false
}

// substitute expands Python %-style "%(key)s" references against the
// target. A missing key makes the check false, as a KeyError does upstream.
func substitute(s string, target map[string]string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "%"):
			b.WriteByte('%')
			i++
		case strings.HasPrefix(rest, "("):
			end := strings.Index(rest, ")s")
			if end < 0 {
				return "", false
			}
			v, ok := target[rest[1:end]]
			if !ok {
				return "", false
			}
			b.WriteString(v)
			i += end + 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// pythonLiteral renders kinds that ast.literal_eval accepts (quoted
// strings, numbers, True/False/None) as str() would.
func pythonLiteral(kind string) (string, bool) {
	switch kind {
	case "True", "False", "None":
		return kind, true
	}
	if len(kind) >= 2 && (kind[0] == '\'' || kind[0] == '"') && kind[len(kind)-1] == kind[0] {
		return kind[1 : len(kind)-1], true
	}
	if n, err := strconv.ParseInt(kind, 10, 64); err == nil {
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// parseCheck parses an oslo.policy check string. Like oslo.policy, an
// empty string allows everything and a string that does not parse denies
// everything.
func parseCheck(s string) check {
	toks := tokenize(s)
	if len(toks) == 0 {
		return trueCheck{}
	}
	p := &parser{toks: toks}
	c, ok := p.expr()
	if !ok || p.pos != len(p.toks) {
		return falseCheck{}
	}
	return c
}

type token struct {
	kind string // "(", ")", "and", "or", "not", "check"
	text string
}

// tokenize splits on whitespace, peeling parentheses off the ends of
// words, and recognises the keywords case-insensitively, as oslo.policy's
// _parse_tokenize does.
func tokenize(s string) []token {
	var toks []token
	for _, word := range strings.FieldsFunc(s, unicode.IsSpace) {
		lead := 0
		for lead < len(word) && word[lead] == '(' {
			lead++
		}
		for range lead {
			toks = append(toks, token{kind: "("})
		}
		word = word[lead:]
		trail := 0
		for trail < len(word) && word[len(word)-1-trail] == ')' {
			trail++
		}
		word = word[:len(word)-trail]
		if word != "" {
			switch lw := strings.ToLower(word); lw {
			case "and", "or", "not":
				toks = append(toks, token{kind: lw})
			default:
				toks = append(toks, token{kind: "check", text: word})
			}
		}
		for range trail {
			toks = append(toks, token{kind: ")"})
		}
	}
	return toks
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].kind
	}
	return ""
}

// expr: term ("or" term)*; "and" binds tighter, as in oslo.policy.
func (p *parser) expr() (check, bool) {
	first, ok := p.term()
	if !ok {
		return nil, false
	}
	alts := orCheck{first}
	for p.peek() == "or" {
		p.pos++
		c, ok := p.term()
		if !ok {
			return nil, false
		}
		alts = append(alts, c)
	}
	if len(alts) == 1 {
		return first, true
	}
	return alts, true
}

func (p *parser) term() (check, bool) {
	first, ok := p.factor()
	if !ok {
		return nil, false
	}
	all := andCheck{first}
	for p.peek() == "and" {
		p.pos++
		c, ok := p.factor()
		if !ok {
			return nil, false
		}
		all = append(all, c)
	}
	if len(all) == 1 {
		return first, true
	}
	return all, true
}

func (p *parser) factor() (check, bool) {
	switch p.peek() {
	case "not":
		p.pos++
		c, ok := p.factor()
		if !ok {
			return nil, false
		}
		return notCheck{c}, true
	case "(":
		p.pos++
		c, ok := p.expr()
		if !ok || p.peek() != ")" {
			return nil, false
		}
		p.pos++
		return c, true
	case "check":
		t := p.toks[p.pos].text
		p.pos++
		return parseAtom(t), true
	}
	return nil, false
}

// parseAtom turns one word into a check; a word that is not "@", "!" or
// "kind:match" is false, as oslo.policy's _parse_check makes it.
func parseAtom(word string) check {
	switch word {
	case "@":
		return trueCheck{}
	case "!":
		return falseCheck{}
	}
	kind, match, ok := strings.Cut(word, ":")
	if !ok {
		return falseCheck{}
	}
	switch kind {
	case "rule":
		return ruleCheck{name: match}
	case "role":
		return roleCheck{match: match}
	}
	return genericCheck{kind: kind, match: match}
}

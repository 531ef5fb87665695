// Package jsonschema validates JSON documents against JSON schemas and
// reports failures with the exact text python-jsonschema 4.10 (Debian
// bookworm) gives, because Placement's API returns that text to clients
// and the upstream conformance suite matches on it.
//
// The semantics are those of jsonschema.validate(instance, schema,
// format_checker=FormatChecker()) as OpenStack Placement calls it: Draft
// 2020-12 keywords, keywords evaluated in the order the schema text lists
// them, best_match choosing the reported error, and Placement's own
// "uuid" format check. Other formats are not asserted.
package jsonschema

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Schema is a compiled schema, safe for concurrent use.
type Schema struct {
	root *node
}

type node struct {
	raw any // *Object or bool, shown in error text and used by best_match
	kws []keyword
}

type keyword struct {
	name string
	eval evalFunc
}

type evalFunc func(inst any, n *node) []*vError

// Compile parses a schema from JSON text. Key order in the text is the
// order keywords are evaluated in, as for the Python dict literal the
// text was translated from. A schema that python-jsonschema would reject,
// or that uses keywords this package does not implement, is an error.
func Compile(schemaJSON string) (*Schema, error) {
	raw, err := Decode([]byte(schemaJSON))
	if err != nil {
		return nil, fmt.Errorf("compiling schema: %w", err)
	}
	c := &compiler{root: raw, refs: map[string]*node{}}
	root, err := c.compile(raw, "#")
	if err != nil {
		return nil, fmt.Errorf("compiling schema: %w", err)
	}
	for len(c.pending) > 0 {
		r := c.pending[0]
		c.pending = c.pending[1:]
		if err := c.resolve(r); err != nil {
			return nil, fmt.Errorf("compiling schema: %w", err)
		}
	}
	if err := c.checkCycles(); err != nil {
		return nil, fmt.Errorf("compiling schema: %w", err)
	}
	return &Schema{root: root}, nil
}

// MustCompile is Compile for schemas written into the program, where an
// error is a bug.
func MustCompile(schemaJSON string) *Schema {
	s, err := Compile(schemaJSON)
	if err != nil {
		panic(err)
	}
	return s
}

type compiler struct {
	root    any
	refs    map[string]*node // compiled $ref targets by JSON pointer
	pending []*pendingRef
	cur     *node // the schema whose keywords are being compiled
	// inPlace links a schema to the subschemas that see the same instance
	// ($ref, allOf, not, if...); a cycle there would never terminate.
	inPlace []inPlaceEdge
}

type inPlaceEdge struct {
	from  *node
	to    *node
	toRef **node // for $ref, known once references are resolved
	where string
}

type pendingRef struct {
	ref    string
	target **node
	where  string
}

var typeNames = map[string]bool{
	"array": true, "boolean": true, "integer": true, "null": true,
	"number": true, "object": true, "string": true,
}

func (c *compiler) compile(raw any, where string) (*node, error) {
	return c.compileInto(&node{}, raw, where)
}

func (c *compiler) compileInto(n *node, raw any, where string) (*node, error) {
	n.raw = raw
	prev := c.cur
	c.cur = n
	defer func() { c.cur = prev }()
	switch t := raw.(type) {
	case bool:
		if !t {
			n.kws = []keyword{{name: "", eval: evalFalse}}
		}
		return n, nil
	case *Object:
		for _, k := range t.keys {
			kw, err := c.keyword(t, k, t.vals[k], where+"/"+k)
			if err != nil {
				return nil, err
			}
			if kw != nil {
				n.kws = append(n.kws, keyword{name: k, eval: kw})
			}
		}
		return n, nil
	}
	return nil, fmt.Errorf("%s: %s is not a schema (object or boolean)", where, repr(raw))
}

func (c *compiler) sub(raw any, where string) (*node, error) { return c.compile(raw, where) }

// inPlaceSub compiles a subschema that applies to the same instance.
func (c *compiler) inPlaceSub(raw any, where string) (*node, error) {
	from := c.cur
	n, err := c.compile(raw, where)
	if err == nil {
		c.inPlace = append(c.inPlace, inPlaceEdge{from: from, to: n, where: where})
	}
	return n, err
}

// checkCycles rejects schemas that would recurse forever on any instance
// reaching them, such as {"$ref": "#"}; Python dies there with
// RecursionError, Go would exhaust the stack.
func (c *compiler) checkCycles() error {
	edges := map[*node][]inPlaceEdge{}
	for _, e := range c.inPlace {
		edges[e.from] = append(edges[e.from], e)
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[*node]int{}
	var visit func(n *node) error
	visit = func(n *node) error {
		switch state[n] {
		case visiting:
			return errors.New("references loop without descending into the instance")
		case done:
			return nil
		}
		state[n] = visiting
		for _, e := range edges[n] {
			to := e.to
			if e.toRef != nil {
				to = *e.toRef
			}
			if err := visit(to); err != nil {
				return fmt.Errorf("%s: %w", e.where, err)
			}
		}
		state[n] = done
		return nil
	}
	for _, e := range c.inPlace {
		if err := visit(e.from); err != nil {
			return err
		}
	}
	return nil
}

func (c *compiler) subMap(v any, where string, inPlace bool) ([]string, []*node, error) {
	o, ok := v.(*Object)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %s is not of type 'object'", where, repr(v))
	}
	nodes := make([]*node, len(o.keys))
	for i, k := range o.keys {
		sub := c.sub
		if inPlace {
			sub = c.inPlaceSub
		}
		n, err := sub(o.vals[k], where+"/"+k)
		if err != nil {
			return nil, nil, err
		}
		nodes[i] = n
	}
	return o.keys, nodes, nil
}

func (c *compiler) subList(v any, where string, inPlace bool) ([]*node, error) {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return nil, fmt.Errorf("%s: %s is not a non-empty array of schemas", where, repr(v))
	}
	nodes := make([]*node, len(l))
	for i, e := range l {
		sub := c.sub
		if inPlace {
			sub = c.inPlaceSub
		}
		n, err := sub(e, where+"/"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	return nodes, nil
}

func nonNegInt(v any, where string) (any, error) {
	if isType(v, "integer") {
		if c, _ := numCmp(v, int64(0)); c >= 0 {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%s: %s is not a non-negative integer", where, repr(v))
}

func number(v any, where string) (any, error) {
	if !isNumber(v) {
		return nil, fmt.Errorf("%s: %s is not of type 'number'", where, repr(v))
	}
	return v, nil
}

func stringList(v any, where string) ([]string, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not of type 'array'", where, repr(v))
	}
	out := make([]string, len(l))
	seen := map[string]bool{}
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not of type 'string'", where, repr(e))
		}
		if seen[s] {
			return nil, fmt.Errorf("%s: %s has non-unique elements", where, repr(v))
		}
		seen[s] = true
		out[i] = s
	}
	return out, nil
}

// keyword compiles one keyword of schema s. Unknown keywords are ignored,
// as python-jsonschema ignores them; keywords it implements but this
// package does not are an error rather than a silent pass.
func (c *compiler) keyword(s *Object, k string, v any, where string) (evalFunc, error) {
	switch k {
	case "type":
		var types []string
		if str, ok := v.(string); ok {
			types = []string{str}
		} else {
			l, err := stringList(v, where)
			if err != nil || len(l) == 0 {
				return nil, fmt.Errorf("%s: %s is not valid under any of the given schemas", where, repr(v))
			}
			types = l
		}
		for _, t := range types {
			if !typeNames[t] {
				return nil, fmt.Errorf("%s: %s is not a known type", where, strRepr(t))
			}
		}
		return kwType(types), nil
	case "properties":
		names, nodes, err := c.subMap(v, where, false)
		if err != nil {
			return nil, err
		}
		return kwProperties(names, nodes), nil
	case "patternProperties":
		pats, nodes, err := c.subMap(v, where, false)
		if err != nil {
			return nil, err
		}
		res := make([]*regexp.Regexp, len(pats))
		for i, p := range pats {
			if res[i], err = compilePattern(p); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		}
		return kwPatternProperties(pats, res, nodes), nil
	case "additionalProperties":
		var props []string
		if pv, ok := s.Get("properties"); ok {
			if po, ok := pv.(*Object); ok {
				props = po.keys
			}
		}
		var pats []string
		var res []*regexp.Regexp
		if pv, ok := s.Get("patternProperties"); ok {
			if po, ok := pv.(*Object); ok {
				pats = po.keys
				for _, p := range pats {
					re, err := compilePattern(p)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", where, err)
					}
					res = append(res, re)
				}
			}
		}
		_, hasPatternProps := s.Get("patternProperties")
		if b, ok := v.(bool); ok {
			if b {
				return nil, nil
			}
			return kwNoAdditionalProperties(props, res, pats, hasPatternProps), nil
		}
		sub, err := c.sub(v, where)
		if err != nil {
			return nil, err
		}
		return kwAdditionalProperties(props, res, sub), nil
	case "propertyNames":
		sub, err := c.sub(v, where)
		if err != nil {
			return nil, err
		}
		return kwPropertyNames(sub), nil
	case "required":
		names, err := stringList(v, where)
		if err != nil {
			return nil, err
		}
		return kwRequired(names), nil
	case "dependentRequired":
		o, ok := v.(*Object)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not of type 'object'", where, repr(v))
		}
		deps := make([][]string, len(o.keys))
		for i, prop := range o.keys {
			l, err := stringList(o.vals[prop], where+"/"+prop)
			if err != nil {
				return nil, err
			}
			deps[i] = l
		}
		return kwDependentRequired(o.keys, deps), nil
	case "dependentSchemas":
		names, nodes, err := c.subMap(v, where, true)
		if err != nil {
			return nil, err
		}
		return kwDependentSchemas(names, nodes), nil
	case "minProperties", "maxProperties", "minLength", "maxLength", "minItems", "maxItems":
		limit, err := nonNegInt(v, where)
		if err != nil {
			return nil, err
		}
		return kwCount(k, limit), nil
	case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
		limit, err := number(v, where)
		if err != nil {
			return nil, err
		}
		return kwBound(k, limit), nil
	case "multipleOf":
		d, err := number(v, where)
		if err != nil {
			return nil, err
		}
		if cmp, _ := numCmp(d, int64(0)); cmp <= 0 {
			return nil, fmt.Errorf("%s: %s is less than or equal to the minimum of 0", where, repr(v))
		}
		return kwMultipleOf(d), nil
	case "pattern":
		p, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not of type 'string'", where, repr(v))
		}
		re, err := compilePattern(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return kwPattern(p, re), nil
	case "format":
		f, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not of type 'string'", where, repr(v))
		}
		if f != "uuid" {
			return nil, nil
		}
		return kwFormatUUID, nil
	case "enum":
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not of type 'array'", where, repr(v))
		}
		return kwEnum(l), nil
	case "const":
		return kwConst(v), nil
	case "uniqueItems":
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not of type 'boolean'", where, repr(v))
		}
		if !b {
			return nil, nil
		}
		return kwUniqueItems, nil
	case "items":
		prefix := 0
		if pv, ok := s.Get("prefixItems"); ok {
			if pl, ok := pv.([]any); ok {
				prefix = len(pl)
			}
		}
		if b, ok := v.(bool); ok && !b {
			return kwNoItems(prefix), nil
		}
		sub, err := c.sub(v, where)
		if err != nil {
			return nil, err
		}
		return kwItems(prefix, sub), nil
	case "prefixItems":
		nodes, err := c.subList(v, where, false)
		if err != nil {
			return nil, err
		}
		return kwPrefixItems(nodes), nil
	case "additionalItems":
		if iv, ok := s.Get("items"); ok {
			if _, isObj := iv.(*Object); isObj {
				return nil, nil
			}
			return nil, fmt.Errorf("%s: additionalItems beside a boolean items is not supported", where)
		}
		if b, ok := v.(bool); ok {
			if b {
				return nil, nil
			}
			return kwNoAdditionalItems, nil
		}
		sub, err := c.sub(v, where)
		if err != nil {
			return nil, err
		}
		return kwAdditionalItems(sub), nil
	case "contains":
		sub, err := c.sub(v, where)
		if err != nil {
			return nil, err
		}
		minC, maxC := any(int64(1)), any(nil)
		if mv, ok := s.Get("minContains"); ok {
			if minC, err = nonNegInt(mv, where); err != nil {
				return nil, err
			}
		}
		if mv, ok := s.Get("maxContains"); ok {
			if maxC, err = nonNegInt(mv, where); err != nil {
				return nil, err
			}
		}
		return kwContains(sub, minC, maxC), nil
	case "allOf", "anyOf", "oneOf":
		nodes, err := c.subList(v, where, true)
		if err != nil {
			return nil, err
		}
		switch k {
		case "allOf":
			return kwAllOf(nodes), nil
		case "anyOf":
			return kwAnyOf(nodes), nil
		}
		return kwOneOf(nodes), nil
	case "not":
		sub, err := c.inPlaceSub(v, where)
		if err != nil {
			return nil, err
		}
		return kwNot(sub), nil
	case "if":
		ifn, err := c.inPlaceSub(v, where)
		if err != nil {
			return nil, err
		}
		var then, els *node
		if tv, ok := s.Get("then"); ok {
			if then, err = c.inPlaceSub(tv, where); err != nil {
				return nil, err
			}
		}
		if ev, ok := s.Get("else"); ok {
			if els, err = c.inPlaceSub(ev, where); err != nil {
				return nil, err
			}
		}
		return kwIf(ifn, then, els), nil
	case "$ref":
		ref, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not of type 'string'", where, repr(v))
		}
		holder := new(*node)
		c.pending = append(c.pending, &pendingRef{ref: ref, target: holder, where: where})
		c.inPlace = append(c.inPlace, inPlaceEdge{from: c.cur, toRef: holder, where: where})
		return kwRef(holder), nil
	case "$defs", "definitions":
		if _, _, err := c.subMap(v, where, false); err != nil {
			return nil, err
		}
		return nil, nil
	case "$schema":
		if str, ok := v.(string); ok && (str == "" || strings.Contains(str, "2020-12")) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: only Draft 2020-12 schemas are supported, not %s", where, repr(v))
	case "$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "unevaluatedItems", "unevaluatedProperties":
		return nil, fmt.Errorf("%s: keyword %q is not supported", where, k)
	}
	return nil, nil
}

// resolve binds a $ref to the schema at its JSON pointer in this document.
func (c *compiler) resolve(r *pendingRef) error {
	if !strings.HasPrefix(r.ref, "#") {
		return fmt.Errorf("%s: only local references are supported, not %q", r.where, r.ref)
	}
	frag, err := url.PathUnescape(r.ref[1:])
	if err != nil {
		return fmt.Errorf("%s: bad reference %q: %w", r.where, r.ref, err)
	}
	if n, ok := c.refs[frag]; ok {
		*r.target = n
		return nil
	}
	if frag != "" && !strings.HasPrefix(frag, "/") {
		return fmt.Errorf("%s: anchors are not supported, in %q", r.where, r.ref)
	}
	cur := c.root
	if frag != "" {
		for _, tok := range strings.Split(frag[1:], "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			switch t := cur.(type) {
			case *Object:
				v, ok := t.Get(tok)
				if !ok {
					return fmt.Errorf("%s: unresolvable reference %q", r.where, r.ref)
				}
				cur = v
			case []any:
				i, err := strconv.Atoi(tok)
				if err != nil || i < 0 || i >= len(t) {
					return fmt.Errorf("%s: unresolvable reference %q", r.where, r.ref)
				}
				cur = t[i]
			default:
				return fmt.Errorf("%s: unresolvable reference %q", r.where, r.ref)
			}
		}
	}
	n := &node{}
	c.refs[frag] = n
	if _, err := c.compileInto(n, cur, "#"+frag); err != nil {
		return err
	}
	*r.target = n
	return nil
}

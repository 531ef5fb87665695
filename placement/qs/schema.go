package qs

//go:generate /usr/bin/python3 gen_schemas.py

import (
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Schema is the JSON schema Placement validates a query string against
// (every value is a string, so only key names, patterns, lengths, enums and
// formats can fail). Text is Python's pprint of the schema, which
// python-jsonschema embeds in its error message.
type Schema struct {
	Text              string
	Properties        []Property
	PatternProperties []string
	Required          []string

	once     sync.Once
	patterns []*regexp.Regexp
}

// Property is one named query parameter of a Schema.
type Property struct {
	Name   string
	Text   string
	Checks []Check
}

// Check is one constraint on a property's value, in schema order.
type Check struct {
	Kind string // pattern, minLength, enum, format
	Arg  string
	Min  int
	Enum []string

	once sync.Once
	re   *regexp.Regexp
}

// Validate checks params against s and returns the error python-jsonschema's
// best_match would report, prefixed as Placement does.
func (s *Schema) Validate(params Params) *Error {
	s.once.Do(func() {
		for _, p := range s.PatternProperties {
			s.patterns = append(s.patterns, regexp.MustCompile(p))
		}
	})
	keys, vals := params.dict()

	// Errors on the whole object (path length 0) rank before errors on a
	// property; among those, schema keyword order decides: required comes
	// before additionalProperties in every Placement query schema.
	for _, r := range s.Required {
		if _, ok := vals[r]; !ok {
			return s.topError(pyRepr(r)+" is a required property", "required", vals)
		}
	}
	var extras []string
	for _, k := range keys {
		if s.property(k) != nil || s.matchesPattern(k) {
			continue
		}
		extras = append(extras, k)
	}
	if len(extras) > 0 {
		sort.Strings(extras)
		quoted := make([]string, len(extras))
		for i, e := range extras {
			quoted[i] = pyRepr(e)
		}
		var msg string
		if len(s.PatternProperties) > 0 {
			verb := "does"
			if len(extras) > 1 {
				verb = "do"
			}
			pats := append([]string(nil), s.PatternProperties...)
			sort.Strings(pats)
			for i, p := range pats {
				pats[i] = pyRepr(p)
			}
			msg = strings.Join(quoted, ", ") + " " + verb + " not match any of the regexes: " + strings.Join(pats, ", ")
		} else {
			verb := "was"
			if len(extras) > 1 {
				verb = "were"
			}
			msg = "Additional properties are not allowed (" + strings.Join(quoted, ", ") + " " + verb + " unexpected)"
		}
		return s.topError(msg, "additionalProperties", vals)
	}
	for i := range s.Properties {
		p := &s.Properties[i]
		v, ok := vals[p.Name]
		if !ok {
			continue
		}
		for j := range p.Checks {
			if msg := p.Checks[j].failure(v); msg != "" {
				return badRequest("Invalid query string parameters: " + msg +
					"\n\nFailed validating " + pyRepr(p.Checks[j].Kind) + " in schema['properties'][" + pyRepr(p.Name) + "]:\n" +
					indent(p.Text) + "\n\nOn instance[" + pyRepr(p.Name) + "]:\n" + indent(pyRepr(v)))
			}
		}
	}
	return nil
}

func (s *Schema) topError(msg, keyword string, vals map[string]string) *Error {
	return badRequest("Invalid query string parameters: " + msg +
		"\n\nFailed validating " + pyRepr(keyword) + " in schema:\n" + indent(s.Text) +
		"\n\nOn instance:\n" + indent(pformatDict(vals)))
}

func (s *Schema) property(name string) *Property {
	for i := range s.Properties {
		if s.Properties[i].Name == name {
			return &s.Properties[i]
		}
	}
	return nil
}

func (s *Schema) matchesPattern(key string) bool {
	for _, re := range s.patterns {
		if re.MatchString(key) {
			return true
		}
	}
	return false
}

func (c *Check) failure(v string) string {
	switch c.Kind {
	case "pattern":
		c.once.Do(func() { c.re = regexp.MustCompile(c.Arg) })
		if !c.re.MatchString(v) {
			return pyRepr(v) + " does not match " + pyRepr(c.Arg)
		}
	case "minLength":
		if utf8.RuneCountInString(v) < c.Min {
			return pyRepr(v) + " is too short"
		}
	case "enum":
		for _, e := range c.Enum {
			if e == v {
				return ""
			}
		}
		quoted := make([]string, len(c.Enum))
		for i, e := range c.Enum {
			quoted[i] = pyRepr(e)
		}
		return pyRepr(v) + " is not one of [" + strings.Join(quoted, ", ") + "]"
	case "format":
		if c.Arg == "uuid" && !IsUUIDLike(v) {
			return pyRepr(v) + " is not a " + pyRepr(c.Arg)
		}
	}
	return ""
}

// indent prefixes every line with four spaces, as jsonschema's error text
// does for the schema and instance dumps.
func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// pformatDict renders a dict of strings like Python's pprint.pformat with
// width 72: sorted keys, one line if it fits, else one item per line.
func pformatDict(vals map[string]string) string {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	items := make([]string, len(keys))
	for i, k := range keys {
		items[i] = pyRepr(k) + ": " + pyRepr(vals[k])
	}
	one := "{" + strings.Join(items, ", ") + "}"
	if len(one) <= 72 {
		return one
	}
	return "{" + strings.Join(items, ",\n ") + "}"
}

// pyRepr renders a string as Python's repr() does.
func pyRepr(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, "\"") {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x` + hex2(byte(r)))
		case r < 0x80 || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			b.WriteString(`\x` + hex2(byte(r)))
		case r <= 0xffff:
			b.WriteString(`\u` + hex2(byte(r>>8)) + hex2(byte(r)))
		default:
			b.WriteString(`\U` + hex2(byte(r>>24)) + hex2(byte(r>>16)) + hex2(byte(r>>8)) + hex2(byte(r)))
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// pyReprList renders a list of strings as Python's repr() of a list does.
func pyReprList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = pyRepr(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

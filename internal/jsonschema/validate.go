package jsonschema

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ValidationError is the error python-jsonschema's validate() would raise.
type ValidationError struct {
	// Message is the first line of the Python text, e.g. "0 is less than
	// the minimum of 1"; Placement's query-string errors are built on it.
	Message string
	// Keyword is the failing keyword ("minimum"); empty for a false schema.
	Keyword string
	// SchemaPath is where the failing keyword's schema sits, relative to
	// the schema best_match settled on: "schema['properties']['total']".
	SchemaPath string
	// InstancePath is where the failing value sits, relative likewise:
	// "instance['total']", or "instance" for the whole document.
	InstancePath string
	// Path holds the elements of InstancePath: strings and ints.
	Path []any

	noneKeyword bool
	schema      any
	instance    any
}

// Error is Python's str(ValidationError): the message, then the failing
// keyword with its schema and the failing instance, both pretty-printed.
func (e *ValidationError) Error() string {
	kw := strRepr(e.Keyword)
	if e.noneKeyword {
		kw = "None"
	}
	var b strings.Builder
	b.WriteString(e.Message)
	b.WriteString("\n\nFailed validating ")
	b.WriteString(kw)
	b.WriteString(" in ")
	b.WriteString(e.SchemaPath)
	b.WriteString(":\n    ")
	b.WriteString(indentTail(pformat(e.schema)))
	b.WriteString("\n\nOn ")
	b.WriteString(e.InstancePath)
	b.WriteString(":\n    ")
	b.WriteString(indentTail(pformat(e.instance)))
	return b.String()
}

// indentTail indents every line but the first by four spaces, which is
// what textwrap.indent followed by dedent leaves of Python's template.
func indentTail(s string) string {
	return strings.ReplaceAll(s, "\n", "\n    ")
}

// Validate checks instance against the schema and returns nil or the
// *ValidationError that best_match would pick. The instance is what
// encoding/json produces with UseNumber (plain maps are read in sorted
// key order), or what Decode produces (document key order, which is what
// Python sees). Values of other Go types give a plain error.
func (s *Schema) Validate(instance any) error {
	v, err := normalize(instance)
	if err != nil {
		return err
	}
	return s.validate(v)
}

// ValidateJSON decodes data with Decode and validates it. A document that
// is not JSON gives a plain error, never a *ValidationError, so callers
// can answer "Malformed JSON" for it.
func (s *Schema) ValidateJSON(data []byte) error {
	v, err := Decode(data)
	if err != nil {
		return err
	}
	return s.validate(v)
}

func (s *Schema) validate(v any) error {
	errs := s.root.iterErrors(v)
	if len(errs) == 0 {
		return nil
	}
	return bestMatch(errs).public()
}

// vError mirrors python-jsonschema's ValidationError while errors bubble
// up: path and schemaPath are relative to the parent error, if any, and
// grow at the front as the error leaves each subschema.
type vError struct {
	msg         string
	keyword     string
	noneKeyword bool
	isSet       bool
	instance    any
	schema      any
	path        []any
	schemaPath  []any
	context     []*vError
}

func newErr(format string, args ...any) *vError {
	return &vError{msg: fmt.Sprintf(format, args...)}
}

func (e *vError) public() *ValidationError {
	sp := e.schemaPath
	if len(sp) > 0 {
		sp = sp[:len(sp)-1]
	}
	return &ValidationError{
		Message:      e.msg,
		Keyword:      e.keyword,
		SchemaPath:   formatAsIndex("schema", sp),
		InstancePath: formatAsIndex("instance", e.path),
		Path:         append([]any(nil), e.path...),
		noneKeyword:  e.noneKeyword,
		schema:       e.schema,
		instance:     e.instance,
	}
}

func formatAsIndex(container string, indices []any) string {
	if len(indices) == 0 {
		return container
	}
	var b strings.Builder
	b.WriteString(container)
	for _, i := range indices {
		b.WriteByte('[')
		switch t := i.(type) {
		case int:
			b.WriteString(strconv.Itoa(t))
		default:
			b.WriteString(repr(t))
		}
		b.WriteByte(']')
	}
	return b.String()
}

func (n *node) iterErrors(inst any) []*vError {
	var out []*vError
	for _, kw := range n.kws {
		for _, e := range kw.eval(inst, n) {
			if e.keyword == "" && !e.noneKeyword {
				e.keyword = kw.name
			}
			if !e.isSet {
				e.instance, e.schema, e.isSet = inst, n.raw, true
			}
			if kw.name != "if" && kw.name != "$ref" && kw.name != "" {
				e.schemaPath = prepend(e.schemaPath, kw.name)
			}
			out = append(out, e)
		}
	}
	return out
}

func (n *node) valid(inst any) bool { return len(n.iterErrors(inst)) == 0 }

func prepend(s []any, v any) []any {
	out := make([]any, 0, len(s)+1)
	return append(append(out, v), s...)
}

// descend evaluates a subschema; path and schemaPath (nil for none) are
// the steps from here into the instance and into the schema.
func descend(inst any, n *node, path, schemaPath any) []*vError {
	errs := n.iterErrors(inst)
	for _, e := range errs {
		if path != nil {
			e.path = prepend(e.path, path)
		}
		if schemaPath != nil {
			e.schemaPath = prepend(e.schemaPath, schemaPath)
		}
	}
	return errs
}

// relevance is best_match's sort key: shallow errors first, anyOf/oneOf
// last, and errors whose schema's "type" the instance fails first.
type relevance struct {
	depth      int
	notWeak    bool
	notMatches bool
}

func (r relevance) less(o relevance) bool {
	if r.depth != o.depth {
		return r.depth > o.depth // key is -len(path)
	}
	if r.notWeak != o.notWeak {
		return !r.notWeak
	}
	if r.notMatches != o.notMatches {
		return !r.notMatches
	}
	return false
}

func (e *vError) relevance() relevance {
	return relevance{
		depth:      len(e.path),
		notWeak:    e.noneKeyword || (e.keyword != "anyOf" && e.keyword != "oneOf"),
		notMatches: !e.matchesType(),
	}
}

func (e *vError) matchesType() bool {
	o, ok := e.schema.(*Object)
	if !ok {
		return false
	}
	switch t := o.vals["type"].(type) {
	case string:
		return isType(e.instance, t)
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok && isType(e.instance, s) {
				return true
			}
		}
	}
	return false
}

// bestMatch is python-jsonschema's best_match: the most relevant error
// (first one wins ties), then down into anyOf/oneOf context while a single
// least-relevant (deepest) error stands out.
func bestMatch(errs []*vError) *vError {
	best := errs[0]
	bestKey := best.relevance()
	for _, e := range errs[1:] {
		if k := e.relevance(); bestKey.less(k) {
			best, bestKey = e, k
		}
	}
	for len(best.context) > 0 {
		first, firstKey := best.context[0], best.context[0].relevance()
		for _, e := range best.context[1:] {
			if k := e.relevance(); k.less(firstKey) {
				first, firstKey = e, k
			}
		}
		tied := false
		for _, e := range best.context {
			if e != first && e.relevance() == firstKey {
				tied = true
				break
			}
		}
		if tied {
			return best
		}
		best = first
	}
	return best
}

func evalFalse(inst any, _ *node) []*vError {
	return []*vError{{
		msg:         "False schema does not allow " + repr(inst),
		noneKeyword: true,
		isSet:       true,
		instance:    inst,
		schema:      false,
	}}
}

func kwType(types []string) evalFunc {
	return func(inst any, _ *node) []*vError {
		for _, t := range types {
			if isType(inst, t) {
				return nil
			}
		}
		reprs := make([]string, len(types))
		for i, t := range types {
			reprs[i] = strRepr(t)
		}
		return []*vError{newErr("%s is not of type %s", repr(inst), strings.Join(reprs, ", "))}
	}
}

func kwProperties(names []string, nodes []*node) evalFunc {
	return func(inst any, _ *node) []*vError {
		o, ok := inst.(*Object)
		if !ok {
			return nil
		}
		var out []*vError
		for i, name := range names {
			if v, ok := o.vals[name]; ok {
				out = append(out, descend(v, nodes[i], name, name)...)
			}
		}
		return out
	}
}

func kwPatternProperties(pats []string, res []*regexp.Regexp, nodes []*node) evalFunc {
	return func(inst any, _ *node) []*vError {
		o, ok := inst.(*Object)
		if !ok {
			return nil
		}
		var out []*vError
		for i, re := range res {
			for _, k := range o.keys {
				if re.MatchString(k) {
					out = append(out, descend(o.vals[k], nodes[i], k, pats[i])...)
				}
			}
		}
		return out
	}
}

// extraProperties lists, in instance order, the keys neither properties
// nor patternProperties cover.
func extraProperties(o *Object, props []string, res []*regexp.Regexp) []string {
	var extras []string
keys:
	for _, k := range o.keys {
		for _, p := range props {
			if p == k {
				continue keys
			}
		}
		for _, re := range res {
			if re.MatchString(k) {
				continue keys
			}
		}
		extras = append(extras, k)
	}
	return extras
}

func kwNoAdditionalProperties(props []string, res []*regexp.Regexp, pats []string, hasPatternProps bool) evalFunc {
	return func(inst any, _ *node) []*vError {
		o, ok := inst.(*Object)
		if !ok {
			return nil
		}
		extras := extraProperties(o, props, res)
		if len(extras) == 0 {
			return nil
		}
		joined := joinReprs(sortedCopy(extras))
		if hasPatternProps {
			verb := "do"
			if len(extras) == 1 {
				verb = "does"
			}
			return []*vError{newErr("%s %s not match any of the regexes: %s",
				joined, verb, joinReprs(sortedCopy(pats)))}
		}
		verb := "were"
		if len(extras) == 1 {
			verb = "was"
		}
		return []*vError{newErr("Additional properties are not allowed (%s %s unexpected)", joined, verb)}
	}
}

func joinReprs(ss []string) string {
	reprs := make([]string, len(ss))
	for i, s := range ss {
		reprs[i] = strRepr(s)
	}
	return strings.Join(reprs, ", ")
}

// kwAdditionalProperties walks extras in instance order; Python walks a
// set, whose order varies from run to run, so any order is faithful.
func kwAdditionalProperties(props []string, res []*regexp.Regexp, sub *node) evalFunc {
	return func(inst any, _ *node) []*vError {
		o, ok := inst.(*Object)
		if !ok {
			return nil
		}
		var out []*vError
		for _, k := range extraProperties(o, props, res) {
			out = append(out, descend(o.vals[k], sub, k, nil)...)
		}
		return out
	}
}

func kwPropertyNames(sub *node) evalFunc {
	return func(inst any, _ *node) []*vError {
		o, ok := inst.(*Object)
		if !ok {
			return nil
		}
		var out []*vError
		for _, k := range o.keys {
			out = append(out, descend(k, sub, nil, nil)...)
		}
		return out
	}
}

func kwRequired(names []string) evalFunc {
	return func(inst any, _ *node) []*vError {
		o, ok := inst.(*Object)
		if !ok {
			return nil
		}
		var out []*vError
		for _, name := range names {
			if _, ok := o.vals[name]; !ok {
				out = append(out, newErr("%s is a required property", strRepr(name)))
			}
		}
		return out
	}
}

func kwDependentRequired(props []string, deps [][]string) evalFunc {
	return func(inst any, _ *node) []*vError {
		o, ok := inst.(*Object)
		if !ok {
			return nil
		}
		var out []*vError
		for i, p := range props {
			if _, ok := o.vals[p]; !ok {
				continue
			}
			for _, d := range deps[i] {
				if _, ok := o.vals[d]; !ok {
					out = append(out, newErr("%s is a dependency of %s", strRepr(d), strRepr(p)))
				}
			}
		}
		return out
	}
}

func kwDependentSchemas(props []string, nodes []*node) evalFunc {
	return func(inst any, _ *node) []*vError {
		o, ok := inst.(*Object)
		if !ok {
			return nil
		}
		var out []*vError
		for i, p := range props {
			if _, ok := o.vals[p]; ok {
				out = append(out, descend(inst, nodes[i], nil, p)...)
			}
		}
		return out
	}
}

// kwCount covers the keywords that bound a size: of an object, a string
// (in code points) or an array.
func kwCount(k string, limit any) evalFunc {
	return func(inst any, _ *node) []*vError {
		var size int
		var typ, msg string
		switch k {
		case "minProperties":
			typ, msg = "object", "does not have enough properties"
		case "maxProperties":
			typ, msg = "object", "has too many properties"
		case "minLength":
			typ, msg = "string", "is too short"
		case "maxLength":
			typ, msg = "string", "is too long"
		case "minItems":
			typ, msg = "array", "is too short"
		case "maxItems":
			typ, msg = "array", "is too long"
		}
		switch t := inst.(type) {
		case *Object:
			size = t.Len()
		case string:
			size = runeLen(t)
		case []any:
			size = len(t)
		}
		if !isType(inst, typ) {
			return nil
		}
		c, _ := numCmp(int64(size), limit)
		if (strings.HasPrefix(k, "min") && c < 0) || (strings.HasPrefix(k, "max") && c > 0) {
			return []*vError{newErr("%s %s", repr(inst), msg)}
		}
		return nil
	}
}

func kwBound(k string, limit any) evalFunc {
	return func(inst any, _ *node) []*vError {
		if !isNumber(inst) {
			return nil
		}
		c, ok := numCmp(inst, limit)
		if !ok {
			return nil
		}
		var msg string
		switch {
		case k == "minimum" && c < 0:
			msg = "is less than the minimum of"
		case k == "maximum" && c > 0:
			msg = "is greater than the maximum of"
		case k == "exclusiveMinimum" && c <= 0:
			msg = "is less than or equal to the minimum of"
		case k == "exclusiveMaximum" && c >= 0:
			msg = "is greater than or equal to the maximum of"
		default:
			return nil
		}
		return []*vError{newErr("%s %s %s", repr(inst), msg, repr(limit))}
	}
}

// kwMultipleOf follows Python: float division (exact only on overflow)
// when the divisor is a float, the remainder when it is an int.
func kwMultipleOf(d any) evalFunc {
	return func(inst any, _ *node) []*vError {
		if !isNumber(inst) {
			return nil
		}
		failed := false
		if df, ok := d.(float64); ok {
			q := math.Inf(1)
			if x, ok := toFloat(inst); ok {
				q = x / df
			}
			if math.IsInf(q, 0) || math.IsNaN(q) {
				failed = !exactMultiple(inst, d)
			} else {
				failed = q != math.Trunc(q)
			}
		} else {
			switch t := inst.(type) {
			case float64:
				df, _ := toFloat(d)
				r := math.Mod(t, df)
				failed = r != 0
			default:
				failed = new(big.Int).Rem(toBig(t), toBig(d)).Sign() != 0
			}
		}
		if !failed {
			return nil
		}
		return []*vError{newErr("%s is not a multiple of %s", repr(inst), repr(d))}
	}
}

func toFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case int64:
		return float64(t), true
	case *big.Int:
		f, acc := new(big.Float).SetInt(t).Float64()
		if math.IsInf(f, 0) && acc != big.Exact {
			return 0, false // Python raises OverflowError converting it
		}
		return f, true
	}
	return 0, false
}

func toRat(v any) (*big.Rat, bool) {
	switch t := v.(type) {
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, false
		}
		return new(big.Rat).SetFloat64(t), true
	case int64:
		return new(big.Rat).SetInt64(t), true
	case *big.Int:
		return new(big.Rat).SetInt(t), true
	}
	return nil, false
}

func exactMultiple(inst, d any) bool {
	a, ok1 := toRat(inst)
	b, ok2 := toRat(d)
	if !ok1 || !ok2 {
		return false
	}
	return new(big.Rat).Quo(a, b).IsInt()
}

func kwPattern(p string, re *regexp.Regexp) evalFunc {
	return func(inst any, _ *node) []*vError {
		s, ok := inst.(string)
		if !ok || re.MatchString(s) {
			return nil
		}
		return []*vError{newErr("%s does not match %s", repr(inst), strRepr(p))}
	}
}

func kwFormatUUID(inst any, _ *node) []*vError {
	if isUUIDLike(inst) {
		return nil
	}
	return []*vError{newErr("%s is not a 'uuid'", repr(inst))}
}

func kwEnum(enums []any) evalFunc {
	return func(inst any, _ *node) []*vError {
		found := false
		if pyEq(inst, int64(0)) || pyEq(inst, int64(1)) {
			for _, e := range enums {
				if unboolEq(inst, e) {
					found = true
					break
				}
			}
		} else {
			for _, e := range enums {
				if pyEq(inst, e) {
					found = true
					break
				}
			}
		}
		if found {
			return nil
		}
		return []*vError{newErr("%s is not one of %s", repr(inst), repr(enums))}
	}
}

func kwConst(c any) evalFunc {
	return func(inst any, _ *node) []*vError {
		if jsEqual(inst, c) {
			return nil
		}
		return []*vError{newErr("%s was expected", repr(c))}
	}
}

func kwUniqueItems(inst any, _ *node) []*vError {
	l, ok := inst.([]any)
	if !ok {
		return nil
	}
	for i := range l {
		for j := 0; j < i; j++ {
			if jsEqual(l[j], l[i]) {
				return []*vError{newErr("%s has non-unique elements", repr(inst))}
			}
		}
	}
	return nil
}

func kwNoItems(prefix int) evalFunc {
	return func(inst any, _ *node) []*vError {
		l, ok := inst.([]any)
		if !ok || len(l) <= prefix {
			return nil
		}
		return []*vError{newErr("Expected at most %d items, but found %d", prefix, len(l))}
	}
}

func kwItems(prefix int, sub *node) evalFunc {
	return func(inst any, _ *node) []*vError {
		l, ok := inst.([]any)
		if !ok {
			return nil
		}
		var out []*vError
		for i := prefix; i < len(l); i++ {
			out = append(out, descend(l[i], sub, i, nil)...)
		}
		return out
	}
}

func kwPrefixItems(nodes []*node) evalFunc {
	return func(inst any, _ *node) []*vError {
		l, ok := inst.([]any)
		if !ok {
			return nil
		}
		var out []*vError
		for i := 0; i < len(l) && i < len(nodes); i++ {
			out = append(out, descend(l[i], nodes[i], i, i)...)
		}
		return out
	}
}

func kwNoAdditionalItems(inst any, _ *node) []*vError {
	l, ok := inst.([]any)
	if !ok || len(l) == 0 {
		return nil
	}
	verb := "were"
	if len(l) == 1 {
		verb = "was"
	}
	reprs := make([]string, len(l))
	for i, e := range sortedValues(l) {
		reprs[i] = repr(e)
	}
	return []*vError{newErr("Additional items are not allowed (%s %s unexpected)", strings.Join(reprs, ", "), verb)}
}

func kwAdditionalItems(sub *node) evalFunc {
	return func(inst any, _ *node) []*vError {
		l, ok := inst.([]any)
		if !ok {
			return nil
		}
		var out []*vError
		for i, e := range l {
			out = append(out, descend(e, sub, i, nil)...)
		}
		return out
	}
}

func kwContains(sub *node, minC, maxC any) evalFunc {
	return func(inst any, _ *node) []*vError {
		l, ok := inst.([]any)
		if !ok {
			return nil
		}
		maxV := maxC
		if maxV == nil {
			maxV = int64(len(l))
		}
		matches := int64(0)
		for _, e := range l {
			if !sub.valid(e) {
				continue
			}
			matches++
			if c, _ := numCmp(matches, maxV); c > 0 {
				e := newErr("Too many items match the given schema (expected at most %s)", repr(maxV))
				e.keyword = "maxContains"
				return []*vError{e}
			}
		}
		if c, _ := numCmp(matches, minC); c < 0 {
			if matches == 0 {
				return []*vError{newErr("%s does not contain items matching the given schema", repr(inst))}
			}
			e := newErr("Too few items match the given schema (expected at least %s but only %d matched)", repr(minC), matches)
			e.keyword = "minContains"
			return []*vError{e}
		}
		return nil
	}
}

func kwAllOf(nodes []*node) evalFunc {
	return func(inst any, _ *node) []*vError {
		var out []*vError
		for i, n := range nodes {
			out = append(out, descend(inst, n, nil, i)...)
		}
		return out
	}
}

func kwAnyOf(nodes []*node) evalFunc {
	return func(inst any, _ *node) []*vError {
		var all []*vError
		for i, n := range nodes {
			errs := descend(inst, n, nil, i)
			if len(errs) == 0 {
				return nil
			}
			all = append(all, errs...)
		}
		e := newErr("%s is not valid under any of the given schemas", repr(inst))
		e.context = all
		return []*vError{e}
	}
}

func kwOneOf(nodes []*node) evalFunc {
	return func(inst any, _ *node) []*vError {
		var all []*vError
		first := -1
		for i, n := range nodes {
			errs := descend(inst, n, nil, i)
			if len(errs) == 0 {
				first = i
				break
			}
			all = append(all, errs...)
		}
		if first < 0 {
			e := newErr("%s is not valid under any of the given schemas", repr(inst))
			e.context = all
			return []*vError{e}
		}
		var reprs []string
		for _, n := range nodes[first+1:] {
			if n.valid(inst) {
				reprs = append(reprs, repr(n.raw))
			}
		}
		if len(reprs) == 0 {
			return nil
		}
		reprs = append(reprs, repr(nodes[first].raw))
		return []*vError{newErr("%s is valid under each of %s", repr(inst), strings.Join(reprs, ", "))}
	}
}

func kwNot(sub *node) evalFunc {
	return func(inst any, _ *node) []*vError {
		if !sub.valid(inst) {
			return nil
		}
		return []*vError{newErr("%s should not be valid under %s", repr(inst), repr(sub.raw))}
	}
}

func kwIf(ifn, then, els *node) evalFunc {
	return func(inst any, _ *node) []*vError {
		if ifn.valid(inst) {
			if then != nil {
				return descend(inst, then, nil, "then")
			}
			return nil
		}
		if els != nil {
			return descend(inst, els, nil, "else")
		}
		return nil
	}
}

func kwRef(target **node) evalFunc {
	return func(inst any, _ *node) []*vError {
		return descend(inst, *target, nil, nil)
	}
}

// sortedValues is Python's sorted() for lists it can sort: all strings or
// all numbers. Other lists (where Python would fail) keep their order.
func sortedValues(l []any) []any {
	out := append([]any(nil), l...)
	allStr, allNum := true, true
	for _, e := range l {
		_, s := e.(string)
		allStr = allStr && s
		allNum = allNum && isNumber(e)
	}
	switch {
	case allStr:
		sort.SliceStable(out, func(i, j int) bool { return out[i].(string) < out[j].(string) })
	case allNum:
		sort.SliceStable(out, func(i, j int) bool { c, _ := numCmp(out[i], out[j]); return c < 0 })
	}
	return out
}

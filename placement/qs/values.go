package qs

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Amount is one requested resource class and amount.
type Amount struct {
	Class  string
	Amount int64
}

// Resources parses "RC:n,RC:n" (normalize_resources_qs_param). The order of
// first appearance is kept; a repeated class takes the later amount.
func Resources(val string) ([]Amount, *Error) {
	if strings.TrimSpace(val) == "" {
		return nil, badRequest("Badly formed resources parameter. Expected resources " +
			"query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: empty string.")
	}
	var out []Amount
	for _, rt := range strings.Split(val, ",") {
		parts := strings.Split(rt, ":")
		if len(parts) != 2 {
			return nil, badRequest("Badly formed resources parameter. Expected resources " +
				"query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: " + rt + ".")
		}
		name := parts[0]
		amount, canon, ok := pyInt(parts[1])
		if !ok {
			return nil, badRequest("Requested resource " + name + " expected positive integer amount. Got: " + parts[1] + ".")
		}
		if amount < 1 {
			return nil, badRequest("Requested resource " + name + " requires amount >= 1. Got: " + canon + ".")
		}
		replaced := false
		for i := range out {
			if out[i].Class == name {
				out[i].Amount = amount
				replaced = true
			}
		}
		if !replaced {
			out = append(out, Amount{Class: name, Amount: amount})
		}
	}
	return out, nil
}

// pyInt parses a string as Python's int() does for ASCII digits: surrounding
// whitespace, an optional sign and single underscores between digits are
// allowed. Values beyond int64 saturate (no inventory can hold them anyway);
// canon is the number's canonical decimal text.
func pyInt(s string) (v int64, canon string, ok bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, "", false
	}
	digits := strings.ReplaceAll(s, "_", "")
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, "", false
		}
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, "0", true
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		n = math.MaxInt64
	}
	if neg {
		return -n, "-" + digits, true
	}
	return n, digits, true
}

// Traits is a parsed trait expression: every inner list of Required is an
// any-of (OR) set, the outer list is AND-ed; Forbidden traits must be absent.
type Traits struct {
	Required  [][]string
	Forbidden []string
}

func (t *Traits) addForbidden(names ...string) {
	for _, n := range names {
		if !contains(t.Forbidden, n) {
			t.Forbidden = append(t.Forbidden, n)
		}
	}
	sort.Strings(t.Forbidden)
}

// TraitsParam parses one required[$S] value (normalize_traits_qs_param):
// "A,B,!C", or with allowAnyTraits "in:A,B".
func TraitsParam(val string, allowForbidden, allowAnyTraits bool) (Traits, *Error) {
	var t Traits
	if strings.HasPrefix(val, "in:") {
		if !allowAnyTraits {
			return t, badRequest("Invalid query string parameters: The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' " +
				"only supported since microversion 1.39. Got: " + val)
		}
		var any []string
		for _, s := range strings.Split(val[3:], ",") {
			s = pyStrip(s)
			if s == "" {
				return t, badRequest("Invalid query string parameters: Expected 'required' parameter value " +
					"of the form: in:HW_CPU_X86_VMX,CUSTOM_MAGIC. Got an empty trait in: " + val)
			}
			if !contains(any, s) {
				any = append(any, s)
			}
		}
		for _, s := range any {
			if strings.HasPrefix(s, "!") {
				return t, badRequest("Invalid query string parameters: The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' " +
					"does not support forbidden traits. Got: " + val)
			}
		}
		sort.Strings(any)
		t.Required = [][]string{any}
		return t, nil
	}
	all := strings.Split(val, ",")
	empty := false
	var forbidden []string
	for i, s := range all {
		s = pyStrip(s)
		all[i] = s
		if s == "" {
			empty = true
		}
		if strings.HasPrefix(s, "!") {
			// Any number of leading '!' is one negation (upstream bug kept
			// for compatibility).
			f := strings.TrimLeft(s, "!")
			if f == "" {
				empty = true
			}
			forbidden = append(forbidden, f)
		}
	}
	if empty {
		form := "HW_CPU_X86_VMX,!CUSTOM_MAGIC"
		if !allowForbidden {
			form = "HW_CPU_X86_VMX,CUSTOM_MAGIC"
		}
		return t, badRequest("Invalid query string parameters: Expected 'required' parameter value " +
			"of the form: " + form + ". Got an empty trait in: " + val)
	}
	for _, s := range all {
		if !strings.HasPrefix(s, "!") {
			t.Required = append(t.Required, []string{s})
		}
	}
	if len(forbidden) > 0 && !allowForbidden {
		return Traits{}, badRequest("Invalid query string parameters: Expected 'required' parameter value " +
			"of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: " + val)
	}
	t.addForbidden(forbidden...)
	return t, nil
}

// TraitsParams parses every value of one required[$S] key
// (normalize_traits_qs_params): forbidden traits from 1.22, any-of and
// repetition from 1.39; before 1.39 only the last value counts.
func TraitsParams(values []string, minor int) (Traits, *Error) {
	allowForbidden := minor >= 22
	allowAny := minor >= 39
	if !allowAny && len(values) > 1 {
		values = values[len(values)-1:]
	}
	var t Traits
	for _, v := range values {
		one, err := TraitsParam(v, allowForbidden, allowAny)
		if err != nil {
			return Traits{}, err
		}
		t.Required = append(t.Required, one.Required...)
		t.addForbidden(one.Forbidden...)
	}
	return t, nil
}

// RootRequired parses the root_required value: plain and '!' traits, no
// any-of. A trait both required and forbidden is a bad_value error.
func RootRequired(val string) (required, forbidden []string, err *Error) {
	t, err := TraitsParam(val, true, false)
	if err != nil {
		return nil, nil, err
	}
	for _, any := range t.Required {
		if !contains(required, any[0]) {
			required = append(required, any[0])
		}
	}
	sort.Strings(required)
	forbidden = t.Forbidden
	var conflicts []string
	for _, f := range forbidden {
		if contains(required, f) {
			conflicts = append(conflicts, f)
		}
	}
	if len(conflicts) > 0 {
		return nil, nil, badRequestCode("Conflicting required and forbidden traits found in root_required: "+
			strings.Join(conflicts, ", "), CodeBadValue)
	}
	return required, forbidden, nil
}

// MemberOfParam parses one member_of value: "uuid", "in:u1,u2", "!uuid" or
// "!in:u1,u2". Aggregate uuids are returned in canonical form.
func MemberOfParam(val string) (required, forbidden []string, err *Error) {
	if strings.Contains(val, ",") && !strings.HasPrefix(val, "in:") && !strings.HasPrefix(val, "!in:") {
		return nil, nil, badRequest("Multiple values for 'member_of' must be prefixed with the 'in:' or " +
			"'!in:' keyword using the valid microversion. Got: " + val)
	}
	var list []string
	neg := false
	switch {
	case strings.HasPrefix(val, "!in:"):
		list, neg = strings.Split(val[4:], ","), true
	case strings.HasPrefix(val, "!"):
		list, neg = []string{val[1:]}, true
	case strings.HasPrefix(val, "in:"):
		list = strings.Split(val[3:], ",")
	default:
		list = []string{val}
	}
	var out []string
	for _, u := range list {
		if !IsUUIDLike(u) {
			return nil, nil, badRequest("Invalid query string parameters: Expected 'member_of' parameter to " +
				"contain valid UUID(s). Got: " + u)
		}
		c := CanonicalUUID(u)
		if !contains(out, c) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	if neg {
		return nil, out, nil
	}
	return out, nil, nil
}

// MemberOf is a parsed set of member_of[$S] values: each inner list of
// Required is an any-of set of aggregates, the outer list is AND-ed; a
// provider in any Forbidden aggregate is excluded.
type MemberOf struct {
	Required  [][]string
	Forbidden []string
}

// MemberOfParams parses every value of one member_of[$S] key
// (normalize_member_of_qs_params): repetition from 1.24, forbidden
// aggregates from 1.32.
func MemberOfParams(values []string, suffix string, minor int) (MemberOf, *Error) {
	var m MemberOf
	if minor < 24 && len(values) > 1 {
		return m, badRequest("Multiple member_of" + suffix + " parameters are not supported")
	}
	for _, v := range values {
		req, forb, err := MemberOfParam(v)
		if err != nil {
			return MemberOf{}, err
		}
		if len(req) > 0 {
			m.Required = append(m.Required, req)
		}
		if len(forb) > 0 {
			if minor < 32 {
				return MemberOf{}, badRequest("Forbidden member_of" + suffix +
					" parameters are not supported in the specified microversion")
			}
			for _, f := range forb {
				if !contains(m.Forbidden, f) {
					m.Forbidden = append(m.Forbidden, f)
				}
			}
		}
	}
	sort.Strings(m.Forbidden)
	return m, nil
}

// InTree parses an in_tree[$S] value of GET /allocation_candidates.
func InTree(val string) (string, *Error) {
	v := pyStrip(val)
	if !IsUUIDLike(v) {
		return "", badRequest("Invalid query string parameters: Expected 'in_tree' parameter to be a " +
			"format of uuid. Got: " + val)
	}
	return CanonicalUUID(v), nil
}

// uuidHex strips what Python's uuid.UUID() ignores and reports whether 32
// hex digits remain.
func uuidHex(s string) (string, bool) {
	s = strings.ReplaceAll(s, "urn:", "")
	s = strings.ReplaceAll(s, "uuid:", "")
	s = strings.Trim(s, "{}")
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 32 {
		return "", false
	}
	for i := 0; i < 32; i++ {
		if !isHex(s[i]) {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// IsUUIDLike is oslo.utils' is_uuid_like: 32 hex digits once dashes,
// braces and urn:/uuid: prefixes are removed.
func IsUUIDLike(s string) bool {
	_, ok := uuidHex(s)
	return ok
}

// CanonicalUUID returns the lowercase dashed form of a uuid-like string (or
// the string itself if it is not uuid-like).
func CanonicalUUID(s string) string {
	h, ok := uuidHex(s)
	if !ok {
		return s
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// pyStrip strips whitespace like Python's str.strip().
func pyStrip(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

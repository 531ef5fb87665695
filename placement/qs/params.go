package qs

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Param is one key=value pair of a query string.
type Param struct {
	Key   string
	Value string
}

// Params is a query string in its original order. Placement's behaviour
// depends on that order (request groups are created in the order their keys
// first appear, and error messages list them that way), which url.Values
// loses.
type Params []Param

// ParseQuery splits a raw query string as webob does: pairs separated by
// '&' or ';', '+' is a space, a key without '=' has an empty value, and
// malformed %-escapes are kept literally. Keys and values must be UTF-8.
func ParseQuery(raw string) (Params, *Error) {
	var out Params
	for _, part := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, v = unquotePlus(k), unquotePlus(v)
		for _, s := range []string{k, v} {
			if !utf8.ValidString(s) {
				return nil, badRequest("Invalid query string parameters: " + decodeErrorText(s))
			}
		}
		out = append(out, Param{Key: k, Value: v})
	}
	return out, nil
}

// decodeErrorText mimics Python's UnicodeDecodeError text for the first
// invalid byte.
func decodeErrorText(s string) string {
	pos := 0
	for pos < len(s) {
		r, size := utf8.DecodeRuneInString(s[pos:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		pos += size
	}
	reason := "invalid start byte"
	if b := s[pos]; b >= 0xc2 && b <= 0xf4 {
		reason = "invalid continuation byte"
		if pos+1 >= len(s) {
			reason = "unexpected end of data"
		}
	}
	return "'utf-8' codec can't decode byte 0x" + hex2(s[pos]) + " in position " + strconv.Itoa(pos) + ": " + reason
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

func unquotePlus(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// Has reports whether key appears at least once.
func (p Params) Has(key string) bool {
	for _, kv := range p {
		if kv.Key == key {
			return true
		}
	}
	return false
}

// Get returns the last value of key, as webob's MultiDict indexing does.
func (p Params) Get(key string) (string, bool) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i].Key == key {
			return p[i].Value, true
		}
	}
	return "", false
}

// First returns the first value of key.
func (p Params) First(key string) (string, bool) {
	for _, kv := range p {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// All returns every value of key in order.
func (p Params) All(key string) []string {
	var out []string
	for _, kv := range p {
		if kv.Key == key {
			out = append(out, kv.Value)
		}
	}
	return out
}

// dict returns the distinct keys in first-appearance order with their last
// value: what Python's dict(request.GET) holds.
func (p Params) dict() ([]string, map[string]string) {
	var keys []string
	vals := make(map[string]string, len(p))
	for _, kv := range p {
		if _, ok := vals[kv.Key]; !ok {
			keys = append(keys, kv.Key)
		}
		vals[kv.Key] = kv.Value
	}
	return keys, vals
}

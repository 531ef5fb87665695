package openstack

import (
	"fmt"
	"strings"
)

// PythonJSONError reports the message Python services give for a request
// body that is not JSON (oslo.serialization's jsonutils.loads: a strict
// UTF-8 decode, then CPython 3.11's json module), e.g. "Expecting value:
// line 1 column 1 (char 0)"; ok is false when Python would accept the
// body. Clients see these messages after "Malformed JSON: ".
func PythonJSONError(body []byte) (msg string, bad bool) {
	if msg, bad := pythonUTF8Error(body); bad {
		return msg, true
	}
	s := []rune(string(body))
	if len(s) > 0 && s[0] == '\ufeff' {
		return jsonErrorAt(s, "Unexpected UTF-8 BOM (decode using utf-8-sig)", 0), true
	}
	p := &pyJSON{s: s}
	idx := p.ws(0)
	end, err := p.value(idx)
	if err == errTooDeep {
		return "", false
	}
	if err != nil {
		return err.Error(), true
	}
	if end = p.ws(end); end != len(s) {
		return jsonErrorAt(s, "Extra data", end), true
	}
	return "", false
}

// pythonUTF8Error is str(UnicodeDecodeError) for bytes.decode('utf-8').
func pythonUTF8Error(b []byte) (string, bool) {
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			i++
			continue
		}
		var need int
		lo, hi := byte(0x80), byte(0xbf)
		switch {
		case c >= 0xc2 && c <= 0xdf:
			need = 1
		case c == 0xe0:
			need, lo = 2, 0xa0
		case c >= 0xe1 && c <= 0xec, c == 0xee, c == 0xef:
			need = 2
		case c == 0xed:
			need, hi = 2, 0x9f
		case c == 0xf0:
			need, lo = 3, 0x90
		case c >= 0xf1 && c <= 0xf3:
			need = 3
		case c == 0xf4:
			need, hi = 3, 0x8f
		default:
			return utf8Msg(b, i, i, "invalid start byte"), true
		}
		for k := 1; k <= need; k++ {
			if i+k >= len(b) {
				return utf8Msg(b, i, len(b)-1, "unexpected end of data"), true
			}
			l, h := byte(0x80), byte(0xbf)
			if k == 1 {
				l, h = lo, hi
			}
			if d := b[i+k]; d < l || d > h {
				return utf8Msg(b, i, i+k-1, "invalid continuation byte"), true
			}
		}
		i += need + 1
	}
	return "", false
}

func utf8Msg(b []byte, start, end int, reason string) string {
	if start == end {
		return fmt.Sprintf("'utf-8' codec can't decode byte 0x%02x in position %d: %s", b[start], start, reason)
	}
	return fmt.Sprintf("'utf-8' codec can't decode bytes in position %d-%d: %s", start, end, reason)
}

// jsonErrorAt formats a JSONDecodeError: positions count characters.
func jsonErrorAt(s []rune, msg string, pos int) string {
	line, lastNL := 1, -1
	for i := 0; i < pos && i < len(s); i++ {
		if s[i] == '\n' {
			line++
			lastNL = i
		}
	}
	return fmt.Sprintf("%s: line %d column %d (char %d)", msg, line, pos-lastNL, pos)
}

type pyJSON struct {
	s     []rune
	depth int
}

// maxPyJSONDepth bounds nesting; deeper bodies are left to the Go decoder
// (Python itself gives up with a RecursionError near 1000).
const maxPyJSONDepth = 10000

// jsonError is a JSONDecodeError; stop is Python's StopIteration, which the
// caller turns into "Expecting value" at its position.
type jsonError struct{ msg string }

func (e *jsonError) Error() string { return e.msg }

var errTooDeep = &jsonError{"too deep"}

type stopIteration struct{ pos int }

func (e *stopIteration) Error() string { return "stop" }

func (p *pyJSON) fail(msg string, pos int) error { return &jsonError{jsonErrorAt(p.s, msg, pos)} }

func (p *pyJSON) ws(i int) int {
	for i < len(p.s) && (p.s[i] == ' ' || p.s[i] == '\t' || p.s[i] == '\n' || p.s[i] == '\r') {
		i++
	}
	return i
}

func (p *pyJSON) at(i int) rune {
	if i < len(p.s) {
		return p.s[i]
	}
	return -1
}

func (p *pyJSON) has(i int, lit string) bool {
	r := []rune(lit)
	if i+len(r) > len(p.s) {
		return false
	}
	for k, c := range r {
		if p.s[i+k] != c {
			return false
		}
	}
	return true
}

// value is raw_decode: a StopIteration becomes "Expecting value".
func (p *pyJSON) value(i int) (int, error) {
	end, err := p.scanOnce(i)
	if st, ok := err.(*stopIteration); ok {
		return 0, p.fail("Expecting value", st.pos)
	}
	return end, err
}

func (p *pyJSON) scanOnce(i int) (int, error) {
	if i >= len(p.s) {
		return 0, &stopIteration{i}
	}
	switch p.s[i] {
	case '"':
		return p.str(i + 1)
	case '{', '[':
		if p.depth >= maxPyJSONDepth {
			return 0, errTooDeep
		}
		p.depth++
		defer func() { p.depth-- }()
		if p.s[i] == '{' {
			return p.object(i + 1)
		}
		return p.array(i + 1)
	case 'n':
		if p.has(i, "null") {
			return i + 4, nil
		}
	case 't':
		if p.has(i, "true") {
			return i + 4, nil
		}
	case 'f':
		if p.has(i, "false") {
			return i + 5, nil
		}
	case 'N':
		if p.has(i, "NaN") {
			return i + 3, nil
		}
	case 'I':
		if p.has(i, "Infinity") {
			return i + 8, nil
		}
	case '-':
		if p.has(i, "-Infinity") {
			return i + 9, nil
		}
	}
	return p.number(i)
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func (p *pyJSON) number(start int) (int, error) {
	i := start
	if p.at(i) == '-' {
		i++
		if i >= len(p.s) {
			return 0, &stopIteration{start}
		}
	}
	switch c := p.at(i); {
	case c >= '1' && c <= '9':
		i++
		for isDigit(p.at(i)) {
			i++
		}
	case c == '0':
		i++
	default:
		return 0, &stopIteration{start}
	}
	if p.at(i) == '.' && isDigit(p.at(i+1)) {
		i += 2
		for isDigit(p.at(i)) {
			i++
		}
	}
	if c := p.at(i); (c == 'e' || c == 'E') && i < len(p.s)-1 {
		e := i
		i++
		if c := p.at(i); (c == '-' || c == '+') && i < len(p.s)-1 {
			i++
		}
		for isDigit(p.at(i)) {
			i++
		}
		if !isDigit(p.at(i - 1)) {
			i = e
		}
	}
	return i, nil
}

// str is scanstring (CPython's C implementation) from just after the
// opening quote.
func (p *pyJSON) str(i int) (int, error) {
	begin := i - 1
	for {
		for i < len(p.s) && p.s[i] != '"' && p.s[i] != '\\' {
			if p.s[i] <= 0x1f {
				return 0, p.fail("Invalid control character at", i)
			}
			i++
		}
		if i >= len(p.s) {
			return 0, p.fail("Unterminated string starting at", begin)
		}
		if p.s[i] == '"' {
			return i + 1, nil
		}
		i++ // the backslash
		if i >= len(p.s) {
			return 0, p.fail("Unterminated string starting at", begin)
		}
		if p.s[i] != 'u' {
			if !strings.ContainsRune(`"\/bfnrt`, p.s[i]) {
				return 0, p.fail(`Invalid \escape`, i-1)
			}
			i++
			continue
		}
		u := i
		i++
		if i+4 >= len(p.s) {
			return 0, p.fail(`Invalid \uXXXX escape`, u)
		}
		c, ok := hex4(p.s[i : i+4])
		if !ok {
			return 0, p.fail(`Invalid \uXXXX escape`, u)
		}
		i += 4
		if c >= 0xd800 && c <= 0xdbff && i+6 < len(p.s) && p.s[i] == '\\' && p.s[i+1] == 'u' {
			c2, ok := hex4(p.s[i+2 : i+6])
			if !ok {
				return 0, p.fail(`Invalid \uXXXX escape`, i+1)
			}
			if c2 >= 0xdc00 && c2 <= 0xdfff {
				i += 6
			}
		}
	}
}

func hex4(rs []rune) (rune, bool) {
	var v rune
	for _, r := range rs {
		v <<= 4
		switch {
		case r >= '0' && r <= '9':
			v |= r - '0'
		case r >= 'a' && r <= 'f':
			v |= r - 'a' + 10
		case r >= 'A' && r <= 'F':
			v |= r - 'A' + 10
		default:
			return 0, false
		}
	}
	return v, true
}

func (p *pyJSON) object(i int) (int, error) {
	i = p.ws(i)
	if p.at(i) == '}' {
		return i + 1, nil
	}
	for {
		if p.at(i) != '"' {
			return 0, p.fail("Expecting property name enclosed in double quotes", i)
		}
		end, err := p.str(i + 1)
		if err != nil {
			return 0, err
		}
		i = p.ws(end)
		if p.at(i) != ':' {
			return 0, p.fail("Expecting ':' delimiter", i)
		}
		i = p.ws(i + 1)
		if i, err = p.scanOnce(i); err != nil {
			return 0, err
		}
		i = p.ws(i)
		if p.at(i) == '}' {
			return i + 1, nil
		}
		if p.at(i) != ',' {
			return 0, p.fail("Expecting ',' delimiter", i)
		}
		i = p.ws(i + 1)
	}
}

func (p *pyJSON) array(i int) (int, error) {
	i = p.ws(i)
	if p.at(i) == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = p.scanOnce(i); err != nil {
			return 0, err
		}
		i = p.ws(i)
		if p.at(i) == ']' {
			return i + 1, nil
		}
		if p.at(i) != ',' {
			return 0, p.fail("Expecting ',' delimiter", i)
		}
		i = p.ws(i + 1)
	}
}

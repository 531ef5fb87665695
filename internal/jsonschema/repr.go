package jsonschema

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// repr renders v as Python's repr() does; dicts keep insertion order.
func repr(v any) string {
	var b strings.Builder
	writeRepr(&b, v, false)
	return b.String()
}

// safeRepr renders v as pprint's _safe_repr does: like repr, but with
// dict keys sorted at every level.
func safeRepr(v any) string {
	var b strings.Builder
	writeRepr(&b, v, true)
	return b.String()
}

func writeRepr(b *strings.Builder, v any, sorted bool) {
	switch t := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if t {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case *big.Int:
		b.WriteString(t.String())
	case float64:
		b.WriteString(floatRepr(t))
	case string:
		b.WriteString(strRepr(t))
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e, sorted)
		}
		b.WriteByte(']')
	case *Object:
		keys := t.keys
		if sorted {
			keys = sortedCopy(keys)
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strRepr(k))
			b.WriteString(": ")
			writeRepr(b, t.vals[k], sorted)
		}
		b.WriteByte('}')
	default:
		fmt.Fprintf(b, "<%T>", v)
	}
}

func sortedCopy(keys []string) []string {
	out := append([]string(nil), keys...)
	sort.Strings(out) // byte order of UTF-8 is code point order, as in Python
	return out
}

// floatRepr is Python's repr(float): the shortest round-tripping digits,
// in positional notation when the decimal exponent is in [-4, 16).
func floatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±dd
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expStr)
	decpt := exp + 1 // value = 0.digits * 10**decpt
	if decpt <= -4 || decpt > 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		e := exp
		esign := "+"
		if e < 0 {
			esign, e = "-", -e
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, esign, e)
	}
	switch {
	case decpt <= 0:
		return sign + "0." + strings.Repeat("0", -decpt) + digits
	case decpt >= len(digits):
		return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
	default:
		return sign + digits[:decpt] + "." + digits[decpt:]
	}
}

// strRepr is Python's repr(str): single quotes unless the text holds a
// single quote and no double quote; printable non-ASCII kept as is.
func strRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x7f:
			b.WriteRune(r)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

func runeLen(s string) int { return utf8.RuneCountInString(s) }

// pformat is pprint.pformat(v, width=72) with pprint's defaults (indent 1,
// sorted dicts, not compact), which python-jsonschema uses to show the
// schema and the instance in str(ValidationError).
func pformat(v any) string {
	p := printer{width: 72}
	p.format(v, 0, 0, 0)
	return p.b.String()
}

type printer struct {
	b     strings.Builder
	width int
}

func (p *printer) format(v any, indent, allowance, level int) {
	rep := safeRepr(v)
	if runeLen(rep) > p.width-indent-allowance {
		switch t := v.(type) {
		case *Object:
			p.b.WriteByte('{')
			if t.Len() > 0 {
				p.dictItems(t, indent, allowance+1, level+1)
			}
			p.b.WriteByte('}')
			return
		case []any:
			p.b.WriteByte('[')
			p.items(t, indent, allowance+1, level+1)
			p.b.WriteByte(']')
			return
		case string:
			p.str(t, indent, allowance, level+1)
			return
		}
	}
	p.b.WriteString(rep)
}

func (p *printer) dictItems(o *Object, indent, allowance, level int) {
	indent++
	keys := sortedCopy(o.keys)
	for i, k := range keys {
		last := i == len(keys)-1
		rep := strRepr(k)
		p.b.WriteString(rep)
		p.b.WriteString(": ")
		a := 1
		if last {
			a = allowance
		}
		p.format(o.vals[k], indent+runeLen(rep)+2, a, level)
		if !last {
			p.b.WriteString(",\n")
			p.b.WriteString(strings.Repeat(" ", indent))
		}
	}
}

func (p *printer) items(list []any, indent, allowance, level int) {
	indent++
	for i, e := range list {
		last := i == len(list)-1
		if i > 0 {
			p.b.WriteString(",\n")
			p.b.WriteString(strings.Repeat(" ", indent))
		}
		a := 1
		if last {
			a = allowance
		}
		p.format(e, indent, a, level)
	}
}

// str splits a long string into adjacent literals, at line ends first and
// then after runs of whitespace, as pprint's _pprint_str does.
func (p *printer) str(s string, indent, allowance, level int) {
	if s == "" {
		p.b.WriteString(strRepr(s))
		return
	}
	lines := splitLinesKeepEnds(s)
	if level == 1 {
		indent++
		allowance++
	}
	maxWidth := p.width - indent
	maxWidth1 := maxWidth
	var chunks []string
	rep := ""
	for i, line := range lines {
		rep = strRepr(line)
		lastLine := i == len(lines)-1
		if lastLine {
			maxWidth1 -= allowance
		}
		if runeLen(rep) <= maxWidth1 {
			chunks = append(chunks, rep)
			continue
		}
		parts := splitSpaceRuns(line)
		maxWidth2 := maxWidth
		current := ""
		for j, part := range parts {
			candidate := current + part
			if j == len(parts)-1 && lastLine {
				maxWidth2 -= allowance
			}
			if runeLen(strRepr(candidate)) > maxWidth2 {
				if current != "" {
					chunks = append(chunks, strRepr(current))
				}
				current = part
			} else {
				current = candidate
			}
		}
		if current != "" {
			chunks = append(chunks, strRepr(current))
		}
	}
	if len(chunks) == 1 {
		p.b.WriteString(rep)
		return
	}
	if level == 1 {
		p.b.WriteByte('(')
	}
	for i, c := range chunks {
		if i > 0 {
			p.b.WriteByte('\n')
			p.b.WriteString(strings.Repeat(" ", indent))
		}
		p.b.WriteString(c)
	}
	if level == 1 {
		p.b.WriteByte(')')
	}
}

// isLineBreak lists the characters Python's str.splitlines splits on.
func isLineBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

// splitLinesKeepEnds is str.splitlines(True).
func splitLinesKeepEnds(s string) []string {
	var lines []string
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !isLineBreak(r) {
			i += size
			continue
		}
		end := i + size
		if r == '\r' && end < len(s) && s[end] == '\n' {
			end++
		}
		lines = append(lines, s[start:end])
		start, i = end, end
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

// isPySpace is str.isspace for one character, which is also what \s
// matches in a Python str pattern.
func isPySpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, ' ', 0x85, 0xa0,
		0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// splitSpaceRuns is re.findall(r'\S*\s*', s) without its final empty match:
// each part is a run of non-space followed by the run of space after it.
func splitSpaceRuns(s string) []string {
	var parts []string
	i := 0
	for i < len(s) {
		j := i
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if isPySpace(r) {
				break
			}
			j += size
		}
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if !isPySpace(r) {
				break
			}
			j += size
		}
		parts = append(parts, s[i:j])
		i = j
	}
	return parts
}

// Repr renders a value decoded by Decode as Python's repr() does, for
// callers that quote a failing value in their own error text (Zun's
// validator prefixes "Value: ..." to the library's message).
func Repr(v any) string { return repr(v) }

package pg

import "strconv"

// JSONBRefusal says why PostgreSQL's jsonb would refuse a valid JSON
// document that Go's encoding/json takes: the escape \u0000 (jsonb holds
// no NUL character) or a lone UTF-16 surrogate escape (Go decodes it as
// U+FFFD, jsonb rejects it). "" when jsonb takes it. Callers storing
// client JSON as they received it check it first, so that such a
// document is the client's 400 rather than a failed insert.
func JSONBRefusal(doc []byte) string {
	// In valid JSON a backslash only occurs inside strings, so a plain
	// scan of the escapes is exact.
	for i := 0; i < len(doc); i++ {
		if doc[i] != '\\' || i+1 >= len(doc) {
			continue
		}
		if doc[i+1] != 'u' || i+6 > len(doc) {
			i++ // \" \\ \n ...: skip the escaped byte
			continue
		}
		v, err := strconv.ParseUint(string(doc[i+2:i+6]), 16, 16)
		if err != nil {
			return RefusalSurrogate // not reachable for valid JSON
		}
		i += 5
		switch {
		case v == 0:
			return RefusalNUL
		case v >= 0xDC00 && v <= 0xDFFF:
			return RefusalSurrogate
		case v >= 0xD800 && v <= 0xDBFF:
			j := i + 1
			if j+6 > len(doc) || doc[j] != '\\' || doc[j+1] != 'u' {
				return RefusalSurrogate
			}
			lo, err := strconv.ParseUint(string(doc[j+2:j+6]), 16, 16)
			if err != nil || lo < 0xDC00 || lo > 0xDFFF {
				return RefusalSurrogate
			}
			i = j + 5
		}
	}
	return ""
}

// JSONBRefusal's reasons, worded to follow "a string ...".
const (
	RefusalNUL       = "contains a NUL character"
	RefusalSurrogate = "contains a lone UTF-16 surrogate escape"
)

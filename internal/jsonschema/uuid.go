package jsonschema

import "strings"

// isUUIDLike is Placement's "uuid" format (oslo_utils.uuidutils.is_uuid_like,
// registered over python-jsonschema's own): after dropping every "urn:" and
// "uuid:", surrounding braces and all dashes, exactly 32 hex digits must
// remain. So "{urn:uuid:...}", upper case and undashed forms pass. Values
// that are not strings fail.
func isUUIDLike(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	s = strings.ReplaceAll(s, "urn:", "")
	s = strings.ReplaceAll(s, "uuid:", "")
	s = strings.Trim(s, "{}")
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

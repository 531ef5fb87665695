package agentproto

import "testing"

func TestParseCPUs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", true},
		{"0-3,8", "0-3,8", true},
		{"8191", "8191", true},
		{"8192", "", false},
		{"0-99999999", "", false},
		{"0-99999999999999999999999", "", false},
		{"3-1", "", false},
		{"a", "", false},
	} {
		got, err := ParseCPUs(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got.String() != tc.want) {
			t.Errorf("ParseCPUs(%q) = %q, %v; want %q ok=%v", tc.in, got.String(), err, tc.want, tc.ok)
		}
	}
}

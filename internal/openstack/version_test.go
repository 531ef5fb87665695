package openstack

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

var placementRange = VersionRange{Service: "placement", Min: Version{1, 0}, Max: Version{1, 39}, Default: Version{1, 0}}

// The expectations are microversion_parse 1.0.1's answers (through
// upstream Placement 8.0.0) to the same headers.
func TestParseVersionMatchesMicroversionParse(t *testing.T) {
	cases := []struct {
		values []string
		want   Version // when status is 0
		found  bool
		status int
		detail string
	}{
		{nil, Version{1, 0}, false, 0, ""},
		{[]string{"placement 1.5"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement  1.5"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement\t1.5"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement 1.05"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement 01.5"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement +1.5"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement 1 .5"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement 1.1_0"}, Version{1, 10}, true, 0, ""},
		{[]string{"placement 1.-0"}, Version{1, 0}, true, 0, ""},
		{[]string{"Placement 1.5"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement latest"}, Version{1, 39}, true, 0, ""},
		{[]string{"compute 2.1, placement 1.20"}, Version{1, 20}, true, 0, ""},
		{[]string{"placement 1.20, placement 1.3"}, Version{1, 3}, true, 0, ""},
		{[]string{"placement 1.3", "placement 1.7"}, Version{1, 7}, true, 0, ""},
		{[]string{"placement 1.5,"}, Version{1, 5}, true, 0, ""},
		{[]string{",placement 1.5"}, Version{1, 5}, true, 0, ""},
		{[]string{"placement"}, Version{1, 0}, false, 0, ""},
		{[]string{"placement "}, Version{1, 0}, false, 0, ""},
		{[]string{"placement1.5"}, Version{1, 0}, false, 0, ""},
		{[]string{"compute 2.1"}, Version{1, 0}, false, 0, ""},
		{[]string{"placement pony.horse"}, Version{}, true, 400, "Invalid microversion: invalid version string: pony.horse; invalid literal for int() with base 10: 'pony'"},
		{[]string{"placement 1.2.3"}, Version{}, true, 400, "Invalid microversion: invalid version string: 1.2.3; invalid literal for int() with base 10: '2.3'"},
		{[]string{"placement LATEST"}, Version{}, true, 400, "invalid literal for int() with base 10: 'LATEST'"},
		{[]string{"placement 1"}, Version{}, true, 400, "Invalid microversion: invalid version string: 1; Version.__new__() missing 1 required positional argument: 'minor'"},
		{[]string{"placement 1."}, Version{}, true, 400, "invalid version string: 1.; invalid literal for int() with base 10: ''"},
		{[]string{"placement .1"}, Version{}, true, 400, "invalid literal for int() with base 10: ''"},
		{[]string{"placement 1.5 extra"}, Version{}, true, 400, "invalid literal for int() with base 10: '5 extra'"},
		{[]string{"placement 1.0e1"}, Version{}, true, 400, "invalid literal for int() with base 10: '0e1'"},
		{[]string{"placement 1.__1"}, Version{}, true, 400, "invalid literal for int() with base 10: '__1'"},
		{[]string{"placement 1.it's"}, Version{}, true, 400, `invalid literal for int() with base 10: "it's"`},
		{[]string{"placement 0.9"}, Version{}, true, 406, "Invalid microversion: Unacceptable version header: 0.9"},
		{[]string{"placement 1.40"}, Version{}, true, 406, "Unacceptable version header: 1.40"},
		{[]string{"placement 2.0"}, Version{}, true, 406, "Unacceptable version header: 2.0"},
		{[]string{"placement -1.5"}, Version{}, true, 406, "Unacceptable version header: -1.5"},
		{[]string{"placement 1.-5"}, Version{}, true, 406, "Unacceptable version header: 1.-5"},
		{[]string{"placement 0.0"}, Version{}, true, 406, "Unacceptable version header: 0.0"},
		{[]string{"placement 99999999999999999999.1"}, Version{}, true, 406, "Unacceptable version header: 99999999999999999999.1"},
		{[]string{"placement 1.99999999999999999999"}, Version{}, true, 406, "Unacceptable version header: 1.99999999999999999999"},
	}
	for _, tc := range cases {
		v, found, err := placementRange.ParseVersion(tc.values)
		if found != tc.found {
			t.Errorf("%q: found=%v, want %v", tc.values, found, tc.found)
		}
		if tc.status == 0 {
			if err != nil || v != tc.want {
				t.Errorf("%q: got %v, %v; want %v", tc.values, v, err, tc.want)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != tc.status || !strings.Contains(e.Detail, tc.detail) {
			t.Errorf("%q: got %v, want %d containing %q", tc.values, err, tc.status, tc.detail)
			continue
		}
		if tc.status == 406 && (e.MaxVersion != "1.39" || e.MinVersion != "1.0") {
			t.Errorf("%q: 406 without the range: %+v", tc.values, e)
		}
	}
}

func TestPyRepr(t *testing.T) {
	for in, want := range map[string]string{
		"pony":      `'pony'`,
		"it's":      `"it's"`,
		`a'b"c`:     `'a\'b"c'`,
		"tab\there": `'tab\there'`,
		"\x01\x7f":  `'\x01\x7f'`,
		"\u00a0é":   `'\xa0é'`,
		`back\`:     `'back\\'`,
	} {
		if got := pyRepr(in); got != want {
			t.Errorf("pyRepr(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzParseVersion: any header value negotiates a version in range or is
// refused with a 400 or 406, never a panic.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"placement 1.5", "placement latest", "placement pony.horse", "compute 2.1, placement 1.2.3",
		"placement 1.99999999999999999999", "placement \xa01.5\x85", ",,,", "placement -_1.+_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		v, found, err := placementRange.ParseVersion([]string{header})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Status != http.StatusBadRequest && e.Status != http.StatusNotAcceptable) || !found {
				t.Fatalf("%q: unexpected error %v (found=%v)", header, err, found)
			}
			return
		}
		if !v.Between(placementRange.Min, placementRange.Max) {
			t.Fatalf("%q: negotiated %v out of range", header, v)
		}
	})
}

package inspect

import (
	"strings"
	"testing"
)

// The parsers read files from untrusted images: any input gives packages
// or an error, never a panic, and what is returned is well formed.
func FuzzParseDpkgStatus(f *testing.F) {
	f.Add("Package: bash\nStatus: install ok installed\nArchitecture: amd64\nSource: bash (5.2.15-2)\nVersion: 5.2.15-2+b13\nDescription: x\n y\n")
	f.Add("Package: a\nStatus: deinstall ok config-files\n\nPackage: b\nStatus: install ok unpacked\nVersion: 1\n")
	f.Add(" x\n")
	// bytes PostgreSQL cannot store (the store makes them U+FFFD)
	f.Add("Package: ba\x00sh\nStatus: install ok installed\nVersion: 1\x00\nSource: s\xff (2)\n")
	f.Fuzz(func(t *testing.T, in string) {
		pkgs, err := ParseDpkgStatus(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Source == "" || !onDisk[p.Status] {
				t.Fatalf("malformed package %+v from %q", p, in)
			}
		}
	})
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add("NAME=\"Debian GNU/Linux\"\nID=debian\n")
	f.Add(`X='a'"b"\c # d`)
	f.Fuzz(func(t *testing.T, in string) {
		vars, err := ParseOSRelease([]byte(in))
		if err != nil {
			return
		}
		for k := range vars {
			if k == "" || strings.ContainsAny(k, "= \t\n") {
				t.Fatalf("bad key %q from %q", k, in)
			}
		}
	})
}

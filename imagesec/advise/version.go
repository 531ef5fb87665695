package advise

import (
	"fmt"
	"strconv"
	"strings"

	debversion "pault.ag/go/debian/version"
)

// Package formats whose version rules Compare knows.
const (
	FormatDeb = "deb"
	FormatRPM = "rpm"
)

// Compare orders two versions of one package by its distribution's rules:
// dpkg's for "deb" (epoch, upstream, revision; "~" before everything, even
// the end), rpm's rpmvercmp for "rpm" (epoch, version, release; "~" before
// and "^" after the end). It returns -1, 0 or 1. A Debian version that does
// not parse is an error rather than an order, so a malformed feed entry is
// never taken for an upgrade.
func Compare(format, a, b string) (int, error) {
	switch format {
	case FormatDeb:
		va, err := debversion.Parse(a)
		if err != nil {
			return 0, fmt.Errorf("version %q: %w", a, err)
		}
		vb, err := debversion.Parse(b)
		if err != nil {
			return 0, fmt.Errorf("version %q: %w", b, err)
		}
		return sign(debversion.Compare(va, vb)), nil
	case FormatRPM:
		return CompareRPM(a, b), nil
	default:
		return 0, fmt.Errorf("no version rules for package format %q (deb or rpm)", format)
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// CompareRPM orders two rpm versions written "[epoch:]version[-release]" as
// rpm does (rpmVersionCompare): the epoch numerically (none is 0), then
// version and release with rpmvercmp; a missing release on either side is
// not compared.
func CompareRPM(a, b string) int {
	ea, va, ra := splitEVR(a)
	eb, vb, rb := splitEVR(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	if c := RPMVerCmp(va, vb); c != 0 {
		return c
	}
	if ra == "" || rb == "" {
		return 0
	}
	return RPMVerCmp(ra, rb)
}

func splitEVR(s string) (epoch int64, version, release string) {
	if e, rest, ok := strings.Cut(s, ":"); ok {
		if n, err := strconv.ParseInt(e, 10, 64); err == nil {
			epoch, s = n, rest
		}
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		return epoch, s[:i], s[i+1:]
	}
	return epoch, s, ""
}

// RPMVerCmp compares two version (or release) strings by rpm's rules: the
// strings are split into runs of digits and runs of letters, anything else
// only separates; digit runs compare as numbers (leading zeros ignored) and
// beat letter runs; letter runs compare bytewise; "~" sorts before
// anything (even the end of the string), "^" after the end but before any
// other run; when one string runs out first the longer one is newer.
func RPMVerCmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		ca, cb := at(a, i), at(b, j)
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if ca == '^' || cb == '^' {
			switch {
			case i >= len(a):
				return -1
			case j >= len(b):
				return 1
			case ca != '^':
				return 1
			case cb != '^':
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		num := isDigit(a[i])
		ei, ej := i, j
		if num {
			for ei < len(a) && isDigit(a[ei]) {
				ei++
			}
			for ej < len(b) && isDigit(b[ej]) {
				ej++
			}
		} else {
			for ei < len(a) && isAlpha(a[ei]) {
				ei++
			}
			for ej < len(b) && isAlpha(b[ej]) {
				ej++
			}
		}
		// b's run is of the other kind (empty here): a number beats letters.
		if ej == j {
			if num {
				return 1
			}
			return -1
		}
		sa, sb := a[i:ei], b[j:ej]
		if num {
			sa, sb = strings.TrimLeft(sa, "0"), strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				if len(sa) > len(sb) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
		i, j = ei, ej
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}

func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

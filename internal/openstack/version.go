package openstack

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// Version is an API microversion such as placement 1.39.
type Version struct {
	Major, Minor int
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// AtLeast reports whether v is major 1 and minor or later; every OpenStack
// service unisched speaks has major version 1 only.
func (v Version) AtLeast(minor int) bool { return v.Minor >= minor }

// Less orders versions.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	return v.Minor < o.Minor
}

// Between reports whether min <= v <= max.
func (v Version) Between(min, max Version) bool { return !v.Less(min) && !max.Less(v) }

// VersionHeader is the one header microversions travel in (the legacy
// service-specific headers are not accepted by Placement or Zun 1.40).
const VersionHeader = "OpenStack-API-Version"

// VersionRange describes what a service accepts.
type VersionRange struct {
	Service string // "placement", "container"
	Min     Version
	Max     Version
	// Default is used when the request carries no version for the service.
	Default Version
}

// ParseVersion negotiates the service's version from the header values
// exactly as microversion_parse 1.0 does, since clients and the conformance
// suite see its quirks: values are comma-joined and scanned from the last
// entry back for "<service> <version>" (service compared case-
// insensitively, entries without a version skipped); no entry means the
// default; "latest" (lower case only) means the maximum; each half of
// "X.Y" is read as Python's int() reads it ("01", "+1", "1_0" and
// surrounding blanks are fine). found reports whether the service was
// named. err is an *Error: 400 for a value that does not parse, 406 (with
// the range) for a version the service does not offer.
func (vr VersionRange) ParseVersion(values []string) (v Version, found bool, err error) {
	raw := ""
	parts := strings.Split(strings.Join(values, ","), ",")
	for i := len(parts) - 1; i >= 0; i-- {
		service, version, ok := pySplitOnce(pyStrip(latin1(parts[i])))
		if ok && pyLower(service) == strings.ToLower(vr.Service) {
			raw, found = pyStrip(version), true
			break
		}
	}
	if !found {
		return vr.Default, false, nil
	}
	if raw == "latest" {
		return vr.Max, true, nil
	}
	major, minor, perr := parsePythonVersion(raw)
	if perr != "" {
		return Version{}, true, &Error{Status: http.StatusBadRequest,
			Detail: "Invalid microversion: invalid version string: " + raw + "; " + perr}
	}
	if v, ok := vr.offered(major, minor); ok {
		return v, true, nil
	}
	return Version{}, true, &Error{Status: http.StatusNotAcceptable,
		Detail:     "Invalid microversion: Unacceptable version header: " + raw,
		MaxVersion: vr.Max.String(), MinVersion: vr.Min.String()}
}

// offered reports whether the normalized decimal major.minor is in range.
func (vr VersionRange) offered(major, minor string) (Version, bool) {
	maj, err1 := strconv.Atoi(major)
	min, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return Version{}, false
	}
	v := Version{maj, min}
	return v, v.Between(vr.Min, vr.Max)
}

// parsePythonVersion splits "X.Y" once on "." and reads both halves as
// Python's int(); the problem is reported in Python's words.
func parsePythonVersion(s string) (major, minor, problem string) {
	halves := strings.SplitN(s, ".", 2)
	nums := make([]string, len(halves))
	for i, h := range halves {
		n, ok := pythonInt(h)
		if !ok {
			return "", "", "invalid literal for int() with base 10: " + pyRepr(h)
		}
		nums[i] = n
	}
	if len(nums) < 2 {
		return "", "", "Version.__new__() missing 1 required positional argument: 'minor'"
	}
	return nums[0], nums[1], ""
}

// pythonInt reads s as int(s) does in base 10 and returns it in canonical
// decimal form: surrounding whitespace, a sign, and single underscores
// between digits are allowed.
func pythonInt(s string) (string, bool) {
	s = pyStrip(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return "", false
	}
	var digits strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits.WriteByte(c)
		case c == '_':
		default:
			return "", false
		}
	}
	d := strings.TrimLeft(digits.String(), "0")
	if d == "" {
		return "0", true
	}
	if neg {
		d = "-" + d
	}
	return d, true
}

// latin1 decodes header bytes as a WSGI server does (ISO-8859-1), so that
// Python's notions of whitespace and printability apply to them.
func latin1(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

func pyStrip(s string) string { return strings.TrimFunc(s, isPySpace) }

func pyLower(s string) string { return strings.ToLower(s) }

// pySplitOnce is s.split(None, 1) on an already stripped s.
func pySplitOnce(s string) (string, string, bool) {
	i := strings.IndexFunc(s, isPySpace)
	if i < 0 {
		return "", "", false
	}
	return s[:i], strings.TrimLeftFunc(s[i:], isPySpace), true
}

// pyRepr renders s as Python 3's repr() of a str.
func pyRepr(s string) string {
	q := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteRune(q)
	for _, r := range s {
		switch {
		case r == '\\' || r == q:
			b.WriteRune('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0xa0) || r == 0xad:
			fmt.Fprintf(&b, `\x%02x`, r)
		case !unicode.IsPrint(r) && r > 0xff:
			if r <= 0xffff {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteRune(q)
	return b.String()
}

type versionKey struct{}

// VersionFrom returns the microversion negotiated for the request.
func VersionFrom(ctx context.Context) Version {
	v, _ := ctx.Value(versionKey{}).(Version)
	return v
}

// WithVersion stores the negotiated microversion in ctx.
func WithVersion(ctx context.Context, v Version) context.Context {
	return context.WithValue(ctx, versionKey{}, v)
}

// VersionMiddleware negotiates the microversion, refuses what the service
// cannot parse (400) or does not offer (406, with max/min so clients such
// as osc-placement can negotiate) without a version header, as upstream's
// middleware raises before it knows one, and echoes the version with Vary
// on every response that passes through it, errors included.
func (vr VersionRange) VersionMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _, err := vr.ParseVersion(r.Header.Values(VersionHeader))
		if err != nil {
			WriteError(w, r, err)
			return
		}
		w.Header().Set(VersionHeader, vr.Service+" "+v.String())
		SetMicroversion(r.Context(), v)
		w.Header().Add("Vary", strings.ToLower(VersionHeader))
		next.ServeHTTP(w, r.WithContext(WithVersion(r.Context(), v)))
	})
}

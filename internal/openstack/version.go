package openstack

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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

// errInvalidVersion is a syntactically broken header value (400), as
// opposed to a well-formed version the service does not offer (406).
type errInvalidVersion struct{ value string }

func (e errInvalidVersion) Error() string { return "invalid version string: " + e.value }

// ParseVersion extracts the service's version from the header values.
// Values may be comma-joined ("placement 1.2, compute 2.1") and repeated;
// the last entry for the service wins, as microversion_parse does.
// found is false when the service is not mentioned at all.
func (vr VersionRange) ParseVersion(values []string) (v Version, found bool, err error) {
	var raw string
	for _, value := range values {
		for _, part := range strings.Split(value, ",") {
			fields := strings.Fields(part)
			if len(fields) == 0 {
				continue
			}
			if strings.EqualFold(fields[0], vr.Service) {
				raw = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(part), fields[0]))
				found = true
			}
		}
	}
	if !found {
		return vr.Default, false, nil
	}
	if strings.EqualFold(raw, "latest") {
		return vr.Max, true, nil
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 2 {
		return Version{}, true, errInvalidVersion{raw}
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return Version{}, true, errInvalidVersion{raw}
	}
	return Version{major, minor}, true, nil
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
// does not offer (400 unparseable, 406 outside the range, with max/min so
// clients such as osc-placement can negotiate), and echoes the version on
// every response that passes through it, errors included.
func (vr VersionRange) VersionMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _, err := vr.ParseVersion(r.Header.Values(VersionHeader))
		if err != nil {
			WriteError(w, r, &Error{Status: http.StatusBadRequest, Detail: err.Error()})
			return
		}
		if !v.Between(vr.Min, vr.Max) {
			w.Header().Set(VersionHeader, vr.Service+" "+vr.Min.String())
			WriteError(w, r, &Error{
				Status:     http.StatusNotAcceptable,
				Detail:     "Invalid microversion: Unacceptable version header: " + v.String(),
				MaxVersion: vr.Max.String(),
				MinVersion: vr.Min.String(),
			})
			return
		}
		w.Header().Set(VersionHeader, vr.Service+" "+v.String())
		w.Header().Add("Vary", VersionHeader)
		next.ServeHTTP(w, r.WithContext(WithVersion(r.Context(), v)))
	})
}

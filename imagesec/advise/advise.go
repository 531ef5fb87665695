// Package advise is imagesec's advise stage: it compares an image's
// installed packages with a fix feed (an apt repository's package index)
// and an advisory file, by the distribution's own version rules, and says
// which packages to upgrade, from and to which version, and why. It reads
// no database and changes nothing: imagesec stores the result and
// imagesec/upgrade applies it.
package advise

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/unisched/unisched/imagesec/inspect"
)

// Target is what advise needs to know of the image besides its packages.
type Target struct {
	PackageFormat string // "deb" or "rpm"
	Distro        string // os-release ID
	Version       string // VERSION_ID
	Codename      string // VERSION_CODENAME
}

// Upgrade is one package to upgrade.
type Upgrade struct {
	Name         string `json:"name"`
	Architecture string `json:"architecture"`
	Source       string `json:"source"`
	From         string `json:"from"`
	// To is the feed's newest version of the package when the feed has
	// a newer one, else the highest fixed version the advisories name.
	To         string `json:"to"`
	Advisories []Ref  `json:"advisories"`
	Severity   string `json:"severity,omitempty"` // the highest of the advisories'
	// Available: the feed has To (Deb says where). False when only an
	// advisory names the fix and no feed offers it: upgrade cannot apply
	// it.
	Available bool   `json:"available"`
	Deb       *Entry `json:"deb,omitempty"`
}

// Ref is an advisory as it applies to one package.
type Ref struct {
	ID       string `json:"id"`
	Fixed    string `json:"fixed"`
	Severity string `json:"severity,omitempty"`
}

// Plan is advise's result for one image.
type Plan struct {
	Upgrades []Upgrade `json:"upgrades"`
	// Checked counts the installed packages compared.
	Checked int `json:"checked"`
	// Current counts installed packages the feed has at the installed
	// version or older.
	Current int `json:"current"`
}

// ErrMismatch: the feed is for another release than the image.
var ErrMismatch = errors.New("feed does not match the image")

// Advise compares the installed packages with the feed (may be nil) and
// the advisories (may be empty). A feed whose Release names a codename
// other than the image's (compared up to the first "-": bookworm-security
// serves bookworm) is refused with ErrMismatch: its versions would not be
// meant for this image.
func Advise(t Target, installed []inspect.Package, feed *Feed, advisories []Advisory) (*Plan, error) {
	format := t.PackageFormat
	if format != FormatDeb && format != FormatRPM {
		return nil, fmt.Errorf("advise: package format %q is not supported (deb or rpm)", format)
	}
	if feed != nil {
		if format != FormatDeb {
			return nil, fmt.Errorf("%w: an apt feed cannot fix %s packages", ErrMismatch, format)
		}
		if fc, _, _ := strings.Cut(feed.Codename, "-"); fc != "" && t.Codename != "" && !strings.EqualFold(fc, t.Codename) {
			return nil, fmt.Errorf("%w: the feed's Release is for %s (suite %s), the image runs %s %s",
				ErrMismatch, feed.Codename, feed.Suite, t.Distro, t.Codename)
		}
	}
	var applicable []Advisory
	for _, a := range advisories {
		if a.Distro != "" && !strings.EqualFold(a.Distro, t.Distro) {
			continue
		}
		if a.Release != "" && !strings.EqualFold(a.Release, t.Codename) && a.Release != t.Version {
			continue
		}
		applicable = append(applicable, a)
	}
	plan := &Plan{Upgrades: []Upgrade{}}
	for _, p := range installed {
		plan.Checked++
		u := Upgrade{Name: p.Name, Architecture: p.Architecture, Source: p.Source, From: p.Version}
		var best *Entry
		if feed != nil {
			for i, e := range feed.Packages[p.Name] {
				if !archMatch(p.Architecture, e.Architecture) {
					continue
				}
				c, err := Compare(format, e.Version, p.Version)
				if err != nil {
					return nil, fmt.Errorf("feed entry %s %s: %w", e.Name, e.Version, err)
				}
				if c <= 0 {
					continue
				}
				if best == nil {
					best = &feed.Packages[p.Name][i]
					continue
				}
				if c, _ := Compare(format, e.Version, best.Version); c > 0 {
					best = &feed.Packages[p.Name][i]
				}
			}
			if best == nil && len(feed.Packages[p.Name]) > 0 {
				plan.Current++
			}
		}
		for _, a := range applicable {
			installedVersion := ""
			switch {
			case a.Package != "" && a.Package == p.Name:
				installedVersion = p.Version
			case (a.Source != "" && a.Source == p.Source) || (a.Package != "" && a.Package == p.Source):
				installedVersion = p.SourceVersion
				if installedVersion == "" {
					installedVersion = p.Version
				}
			default:
				continue
			}
			c, err := Compare(format, installedVersion, a.Fixed)
			if err != nil {
				return nil, fmt.Errorf("advisory %s: %w", a.ID, err)
			}
			if c >= 0 {
				continue
			}
			u.Advisories = append(u.Advisories, Ref{ID: a.ID, Fixed: a.Fixed, Severity: a.Severity})
			u.Severity = maxSeverity(u.Severity, a.Severity)
		}
		if best == nil && len(u.Advisories) == 0 {
			continue
		}
		if best != nil {
			u.To, u.Available, u.Deb = best.Version, true, best
			// A feed version below an advisory's fixed version does not
			// close it: upgrade to it, but say it is not enough.
			for _, r := range u.Advisories {
				if c, _ := Compare(format, best.Version, r.Fixed); c < 0 {
					u.Available = false
				}
			}
		} else {
			for _, r := range u.Advisories {
				if c, _ := Compare(format, r.Fixed, u.To); u.To == "" || c > 0 {
					u.To = r.Fixed
				}
			}
		}
		if u.Advisories == nil {
			u.Advisories = []Ref{}
		}
		plan.Upgrades = append(plan.Upgrades, u)
	}
	sort.Slice(plan.Upgrades, func(i, j int) bool {
		a, b := plan.Upgrades[i], plan.Upgrades[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Architecture < b.Architecture
	})
	return plan, nil
}

// archMatch: the same architecture, or "all" on either side (a package may
// move between arch-specific and arch-independent across versions).
func archMatch(installed, feed string) bool {
	return installed == feed || installed == "all" || feed == "all"
}

package advise

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrAdvisories marks an advisory file that cannot be used.
var ErrAdvisories = errors.New("advisory file")

// Advisory says which version of a package fixes a problem.
type Advisory struct {
	ID string `json:"id" yaml:"id"`
	// Package is a binary package name; Source a source package name.
	// An advisory names one or both; Package also matches a source name,
	// as distributions' advisories name source packages.
	Package  string `json:"package,omitempty" yaml:"package"`
	Source   string `json:"source,omitempty" yaml:"source"`
	Fixed    string `json:"fixed" yaml:"fixed"`
	Severity string `json:"severity,omitempty" yaml:"severity"`
	// Distro (os-release ID) and Release (codename or VERSION_ID) limit
	// the advisory to those images; empty matches any.
	Distro  string `json:"distro,omitempty" yaml:"distro"`
	Release string `json:"release,omitempty" yaml:"release"`
}

// advisoryFile is the file's shape: {"advisories": [...]} or a bare list.
type advisoryFile struct {
	Advisories []Advisory `json:"advisories" yaml:"advisories"`
}

// LoadAdvisories reads an advisory file, YAML or JSON (by content: JSON
// when it starts with "{" or "["). Every entry needs an id, a package or
// source, and a fixed version.
func LoadAdvisories(path string) ([]Advisory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAdvisories, err)
	}
	var list []Advisory
	trimmed := bytes.TrimSpace(b)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		err = json.Unmarshal(trimmed, &list)
	case len(trimmed) > 0 && trimmed[0] == '{':
		var f advisoryFile
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		err = dec.Decode(&f)
		list = f.Advisories
	default:
		var f advisoryFile
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		err = dec.Decode(&f)
		if err != nil && err.Error() == "EOF" {
			err = nil
		}
		list = f.Advisories
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrAdvisories, path, err)
	}
	for i, a := range list {
		var missing []string
		if a.ID == "" {
			missing = append(missing, "id")
		}
		if a.Package == "" && a.Source == "" {
			missing = append(missing, "package or source")
		}
		if a.Fixed == "" {
			missing = append(missing, "fixed")
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%w: %s: entry %d (%s) has no %s", ErrAdvisories, path, i+1, a.ID, strings.Join(missing, ", "))
		}
		if s := strings.ToLower(a.Severity); s != "" && severityRank[s] == 0 {
			return nil, fmt.Errorf("%w: %s: %s: unknown severity %q (negligible, low, medium, high, critical)", ErrAdvisories, path, a.ID, a.Severity)
		}
		list[i].Severity = strings.ToLower(a.Severity)
	}
	return list, nil
}

// severityRank orders severities; 0 is unknown.
var severityRank = map[string]int{"unknown": 1, "negligible": 2, "low": 3, "medium": 4, "high": 5, "critical": 6}

// maxSeverity returns the higher of two severities ("" counts as lowest).
func maxSeverity(a, b string) string {
	if severityRank[b] > severityRank[a] {
		return b
	}
	return a
}

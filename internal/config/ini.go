package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Operators of OpenStack services keep their settings in oslo.config's INI
// files (/etc/nova/nova.conf), so unisched reads the same dialect beside
// YAML. viper no longer ships an INI codec, and gopkg.in/ini.v1 neither
// reports line numbers nor follows oslo's rules, so the small parser below
// follows oslo.config's iniparser instead:
//
//   - "[section]" lines; "key = value" or "key: value" (the first of = and :
//     splits); surrounding whitespace and one pair of matching quotes are
//     stripped from the value;
//   - lines starting with # or ; are comments (a # later in a line is part of
//     the value, as in oslo: passwords may contain it);
//   - a line starting with a space or a tab continues the previous value
//     (joined with a newline); a blank line ends it.
//
// Sections are the YAML file's top-level keys ([database], [placement],
// [container_api], ...). A nested YAML map is a section of its own named by
// its path with "_" (oslo's habit, as in [oslo_messaging_notifications]) or
// with "." between the parts: scheduler.thresholds.* is
// [scheduler_thresholds] or [scheduler.thresholds], nova.notifications.* is
// [nova_notifications], imagesec.glance.* is [imagesec_glance]. [DEFAULT]
// takes oslo.log's `debug` (true sets log.level to debug unless [log] level
// is set) and `use_json` (log.format json).
//
// Values are converted by the type of the key's default: booleans as oslo
// (true/false, yes/no, on/off, 1/0, any case), lists comma-separated (oslo's
// ListOpt; a JSON array is accepted too), durations as Go durations ("90s",
// "2m") or a bare number of seconds (oslo's habit), and the structured
// values (scheduler.filters, scheduler.weighers, agent.cells) as JSON, on
// one line or continued on indented lines. Unknown sections and keys are
// errors naming the file and line: a typo in an INI file is not silently
// ignored.

// iniEntry is one assignment of an INI file.
type iniEntry struct {
	section, key, value string
	line                int
}

// iniSyntaxError names the file and line of what could not be read.
type iniSyntaxError struct {
	file string
	line int
	msg  string
}

func (e *iniSyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
}

// isINI says whether a config file is read as INI (by its extension;
// unisched.conf.sample too).
func isINI(path string) bool {
	switch strings.ToLower(filepath.Ext(strings.TrimSuffix(path, ".sample"))) {
	case ".conf", ".ini":
		return true
	}
	return false
}

// parseINI splits an oslo-style INI file into its assignments, in order.
func parseINI(file string, data []byte) ([]iniEntry, error) {
	var (
		out     []iniEntry
		section string
		cur     *iniEntry
		lines   []string
	)
	flush := func() {
		if cur == nil {
			return
		}
		cur.value = unquote(strings.TrimSpace(strings.Join(lines, "\n")))
		out = append(out, *cur)
		cur, lines = nil, nil
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		line := strings.TrimRight(raw, " \t\r")
		switch {
		case line == "":
			flush()
			continue
		case line[0] == ' ' || line[0] == '\t':
			if cur == nil {
				if t := strings.TrimSpace(line); t[0] == '#' || t[0] == ';' {
					continue // an indented comment outside a value
				}
				return nil, &iniSyntaxError{file, n, fmt.Sprintf("unexpected continuation line %q (no value to continue)", strings.TrimSpace(line))}
			}
			lines = append(lines, strings.TrimSpace(line))
			continue
		}
		flush()
		switch line[0] {
		case '#', ';':
			continue
		case '[':
			if !strings.HasSuffix(line, "]") {
				return nil, &iniSyntaxError{file, n, fmt.Sprintf("invalid section %q (must end with ])", line)}
			}
			section = strings.TrimSpace(line[1 : len(line)-1])
			if section == "" {
				return nil, &iniSyntaxError{file, n, "empty section name"}
			}
			continue
		}
		idx := strings.IndexAny(line, "=:")
		if idx < 0 {
			return nil, &iniSyntaxError{file, n, fmt.Sprintf("%q is not an assignment (key = value)", line)}
		}
		key := strings.TrimSpace(line[:idx])
		if key == "" {
			return nil, &iniSyntaxError{file, n, fmt.Sprintf("empty key in %q", line)}
		}
		if section == "" {
			return nil, &iniSyntaxError{file, n, fmt.Sprintf("%q comes before any [section]", key)}
		}
		cur = &iniEntry{section: section, key: key, line: n}
		lines = []string{line[idx+1:]}
	}
	flush()
	return out, nil
}

// unquote strips one pair of matching quotes, as oslo does.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == s[len(s)-1] && (s[0] == '"' || s[0] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// iniSections maps every accepted section name to the dotted path of the
// keys it holds, from the known keys (the defaults).
func iniSections() map[string]string {
	out := map[string]string{}
	for k := range defaults {
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			continue
		}
		p := k[:i]
		out[p] = p
		out[strings.ReplaceAll(p, ".", "_")] = p
	}
	return out
}

// readINI reads an INI config file into the nested map viper merges, each
// value converted to the type of its key's default.
func readINI(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	entries, err := parseINI(path, data)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return iniToMap(path, entries)
}

func iniToMap(path string, entries []iniEntry) (map[string]any, error) {
	sections := iniSections()
	flat := map[string]any{}
	var debug, useJSON *bool
	for _, e := range entries {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("reading config: %w", &iniSyntaxError{path, e.line, fmt.Sprintf("[%s] %s: ", e.section, e.key) + fmt.Sprintf(format, args...)})
		}
		key := strings.ReplaceAll(strings.ToLower(e.key), "-", "_")
		if strings.EqualFold(e.section, "DEFAULT") {
			if key != "debug" && key != "use_json" {
				return nil, fail("unknown option ([DEFAULT] takes debug and use_json; the others belong in their sections)")
			}
			b, err := parseBool(e.value)
			if err != nil {
				return nil, fail("%v", err)
			}
			if key == "debug" {
				debug = &b
			} else {
				useJSON = &b
			}
			continue
		}
		p, ok := sections[strings.ToLower(e.section)]
		if !ok {
			return nil, fail("unknown section [%s] (known: %s)", e.section, strings.Join(knownSections(sections), ", "))
		}
		full := p + "." + key
		def, ok := defaults[full]
		if !ok {
			return nil, fail("unknown option (no key %s)", full)
		}
		v, err := convertINI(e.value, def)
		if err != nil {
			return nil, fail("%v", err)
		}
		flat[full] = v
	}
	if debug != nil && *debug {
		if _, set := flat["log.level"]; !set {
			flat["log.level"] = "debug"
		}
	}
	if useJSON != nil {
		if _, set := flat["log.format"]; !set {
			flat["log.format"] = map[bool]string{true: "json", false: "text"}[*useJSON]
		}
	}
	return nest(flat), nil
}

// knownSections lists the section names in their oslo (underscore) form.
func knownSections(sections map[string]string) []string {
	var out []string
	for name := range sections {
		if !strings.Contains(name, ".") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return append([]string{"DEFAULT"}, out...)
}

// nest turns dotted keys into the nested maps a YAML file decodes to.
func nest(flat map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range flat {
		parts := strings.Split(k, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

// parseBool accepts oslo.config's boolean spellings.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true/false, yes/no, on/off, 1/0)", s)
}

// convertINI converts a value to the type of def, the key's default.
func convertINI(s string, def any) (any, error) {
	switch def.(type) {
	case string:
		return s, nil
	case bool:
		return parseBool(s)
	case int, int32, int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		switch def.(type) {
		case int32:
			if n < math.MinInt32 || n > math.MaxInt32 {
				return nil, fmt.Errorf("%d is out of range", n)
			}
			return int32(n), nil
		case int64:
			return n, nil
		}
		return int(n), nil
	case float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case time.Duration:
		s = strings.TrimSpace(s)
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(n * float64(time.Second)), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (seconds, or Go's form: 90s, 5m, 1h30m)", s)
		}
		return d, nil
	case []string:
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "[") {
			var l []string
			if err := json.Unmarshal([]byte(s), &l); err != nil {
				return nil, fmt.Errorf("not a JSON list of strings: %v", err)
			}
			return l, nil
		}
		l := []string{}
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				l = append(l, item)
			}
		}
		return l, nil
	}
	// structured values (lists of maps): JSON, with whole numbers as int
	// so that they decode as the same YAML would
	if strings.TrimSpace(s) == "" && reflect.ValueOf(def).Kind() == reflect.Slice {
		return []any{}, nil // "cells =": none
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("not valid JSON (this option takes JSON in an INI file): %v", err)
	}
	if dk, vk := reflect.ValueOf(def).Kind(), reflect.ValueOf(v).Kind(); dk != vk {
		return nil, fmt.Errorf("JSON %s given, a %s is expected", vk, dk)
	}
	return intsFromJSON(v), nil
}

// intsFromJSON turns whole float64 numbers decoded from JSON into ints.
func intsFromJSON(v any) any {
	switch t := v.(type) {
	case []any:
		for i := range t {
			t[i] = intsFromJSON(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = intsFromJSON(t[k])
		}
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int(t)
		}
	}
	return v
}

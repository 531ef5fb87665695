package inspect

import (
	"fmt"
	"strings"
)

// ParseOSRelease reads an os-release(5) file: KEY=value lines with shell
// quoting ("..." with \" \\ \$ \` escapes, '...' literal), comments and
// blank lines. A line that is not an assignment is an error, so a binary or
// truncated file is not taken for an OS description.
func ParseOSRelease(data []byte) (map[string]string, error) {
	vars := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t\"'") {
			return nil, fmt.Errorf("os-release line %d: not a KEY=value assignment: %q", i+1, line)
		}
		val, err := unquote(raw)
		if err != nil {
			return nil, fmt.Errorf("os-release line %d (%s): %w", i+1, key, err)
		}
		vars[key] = val
	}
	return vars, nil
}

func unquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", fmt.Errorf("unterminated double quote")
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case ' ', '\t':
			// An unquoted blank ends the value; anything after it is a
			// comment or junk the format does not allow.
			rest := strings.TrimSpace(s[i:])
			if rest != "" && rest[0] != '#' {
				return "", fmt.Errorf("unquoted blank in value")
			}
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// osFromRelease fills an OS from os-release variables.
func osFromRelease(vars map[string]string) OS {
	o := OS{
		Family:     "linux",
		Distro:     vars["ID"],
		Name:       vars["NAME"],
		Version:    vars["VERSION_ID"],
		Release:    vars["VERSION"],
		Codename:   vars["VERSION_CODENAME"],
		PrettyName: vars["PRETTY_NAME"],
	}
	if o.Distro == "" {
		o.Distro = "linux" // os-release(5): ID defaults to "linux"
	}
	if o.Name == "" {
		o.Name = "Linux"
	}
	if o.Release == "" {
		o.Release = o.Version
	}
	if l := strings.Fields(vars["ID_LIKE"]); len(l) > 0 {
		o.IDLike = l
	}
	return o
}

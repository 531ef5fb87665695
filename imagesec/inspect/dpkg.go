package inspect

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// dpkgStatusPath is dpkg's database of installed packages (dpkg(1) FILES).
const dpkgStatusPath = "var/lib/dpkg/status"

// onDisk are the dpkg package states whose files are in the filesystem
// (dpkg-query(1) "Package states"): not-installed and config-files are not
// listed, everything else is, with its state.
var onDisk = map[string]bool{
	"installed": true, "unpacked": true, "half-configured": true,
	"half-installed": true, "triggers-awaited": true, "triggers-pending": true,
}

// ParseDpkgStatus reads dpkg's status file: paragraphs of "Field: value"
// lines (continuation lines start with a blank) separated by blank lines.
// It returns the packages whose files are present, sorted by name and
// architecture. A malformed line is an error naming the line.
func ParseDpkgStatus(r io.Reader) ([]Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var pkgs []Package
	para := map[string]string{}
	start, lineNo := 0, 0
	flush := func() error {
		defer clear(para)
		if len(para) == 0 {
			return nil
		}
		name := para["package"]
		if name == "" {
			return fmt.Errorf("dpkg status paragraph at line %d has no Package field", start)
		}
		st := strings.Fields(para["status"])
		if len(st) != 3 {
			return fmt.Errorf("dpkg status line %d: package %s: Status %q is not \"want flag state\"", start, name, para["status"])
		}
		if !onDisk[st[2]] {
			return nil
		}
		p := Package{Name: name, Version: para["version"], Architecture: para["architecture"], Status: st[2]}
		if p.Version == "" {
			return fmt.Errorf("dpkg status line %d: package %s in state %s has no Version", start, name, st[2])
		}
		p.Source, p.SourceVersion = p.Name, p.Version
		if src := para["source"]; src != "" {
			// "Source: name" or "Source: name (version)" when the
			// source version differs (binNMUs, renamed binaries).
			n, v, hasV := strings.Cut(src, " ")
			p.Source = n
			if hasV {
				v = strings.TrimSpace(v)
				if !strings.HasPrefix(v, "(") || !strings.HasSuffix(v, ")") {
					return fmt.Errorf("dpkg status line %d: package %s: Source %q is not \"name (version)\"", start, name, src)
				}
				p.SourceVersion = strings.TrimSpace(v[1 : len(v)-1])
			}
		}
		pkgs = append(pkgs, p)
		return nil
	}
	var last string
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			last = ""
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("dpkg status line %d: continuation line without a field", lineNo)
			}
			continue // multi-line values (Description, Conffiles) are not needed
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(k) == 0 {
			return nil, fmt.Errorf("dpkg status line %d: not a \"Field: value\" line: %q", lineNo, truncate(string(line), 80))
		}
		if len(para) == 0 {
			start = lineNo
		}
		last = strings.ToLower(string(k)) // field names are case-insensitive
		para[last] = string(bytes.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Architecture < pkgs[j].Architecture
	})
	return pkgs, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

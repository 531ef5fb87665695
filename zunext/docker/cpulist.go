package docker

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// ParseList parses the Linux list form ("0-3,8,10-11") that sysfs, cgroups
// and Docker's cpusets use. The result is sorted and without duplicates.
func ParseList(s string) ([]int, error) {
	var out []int
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad cpu list %q: %q is not a number", s, lo)
		}
		b := a
		if isRange {
			b, err = strconv.Atoi(strings.TrimSpace(hi))
			if err != nil || b < a {
				return nil, fmt.Errorf("bad cpu list %q: bad range %q", s, part)
			}
		}
		if b-a > 1<<16 {
			return nil, fmt.Errorf("bad cpu list %q: range %q too large", s, part)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// FormatList renders ids in the Linux list form, ranges collapsed, so two
// equal sets always compare equal as strings.
func FormatList(ids []int) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ids[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(ids[j]))
		}
		i = j + 1
	}
	return b.String()
}

// NormalizeList rewrites a list in canonical form; an unparsable list is
// returned as it is (Docker will refuse it with its own message).
func NormalizeList(s string) string {
	ids, err := ParseList(s)
	if err != nil {
		return s
	}
	return FormatList(ids)
}

// clampList keeps the ids of want that are in avail. ok is false when
// nothing is left, and the caller then sets no constraint at all.
func clampList(want string, avail []int) (string, bool) {
	ids, err := ParseList(want)
	if err != nil {
		return want, true
	}
	kept := ids[:0:0]
	for _, id := range ids {
		if slices.Contains(avail, id) {
			kept = append(kept, id)
		}
	}
	if len(kept) == 0 {
		return "", false
	}
	return FormatList(kept), true
}

// machineList reads a sysfs list file (cpu/online, node/online); when it
// is missing it falls back to ids 0..fallback-1.
func machineList(path string, fallback int) []int {
	if b, err := os.ReadFile(path); err == nil {
		if ids, err := ParseList(string(b)); err == nil && len(ids) > 0 {
			return ids
		}
	}
	ids := make([]int, fallback)
	for i := range ids {
		ids[i] = i
	}
	return ids
}

// MachineCPUs and MachineMems are the CPUs and memory nodes this machine
// has online: what a cpuset given to the local dockerd may name.
func MachineCPUs() []int { return machineList("/sys/devices/system/cpu/online", runtime.NumCPU()) }

// MachineMems: see MachineCPUs.
func MachineMems() []int { return machineList("/sys/devices/system/node/online", 1) }

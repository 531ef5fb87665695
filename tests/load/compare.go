package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Candidates is an allocation candidates answer reduced to what must be
// equal between two servers: the allocation requests as a multiset (their
// order is unspecified) and the provider summaries by provider, each in a
// canonical JSON form where every array is sorted (traits, mappings and the
// pre-1.12 allocation lists are sets).
type Candidates struct {
	Requests  map[string]int
	Summaries map[string]string
}

// ParseCandidates reduces a GET /allocation_candidates body.
func ParseCandidates(body []byte) (Candidates, error) {
	var raw struct {
		AR []any          `json:"allocation_requests"`
		PS map[string]any `json:"provider_summaries"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return Candidates{}, fmt.Errorf("decoding allocation candidates: %w", err)
	}
	c := Candidates{Requests: map[string]int{}, Summaries: map[string]string{}}
	for _, ar := range raw.AR {
		c.Requests[canonical(ar)]++
	}
	for rp, s := range raw.PS {
		c.Summaries[rp] = canonical(s)
	}
	return c, nil
}

// Len is the number of allocation requests.
func (c Candidates) Len() int {
	n := 0
	for _, k := range c.Requests {
		n += k
	}
	return n
}

// canonical renders v as JSON with sorted keys (encoding/json sorts map
// keys) and every array sorted by its elements' canonical forms.
func canonical(v any) string {
	switch t := v.(type) {
	case map[string]any:
		keys := slices.Sorted(maps.Keys(t))
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kj, _ := json.Marshal(k)
			b.Write(kj)
			b.WriteByte(':')
			b.WriteString(canonical(t[k]))
		}
		b.WriteByte('}')
		return b.String()
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = canonical(e)
		}
		slices.Sort(parts)
		return "[" + strings.Join(parts, ",") + "]"
	default:
		j, _ := json.Marshal(t)
		return string(j)
	}
}

// DiffCandidates lists, readably, how b differs from a (aName and bName
// label the two sides). names maps provider UUIDs to names for the output;
// an empty result means the answers are equal.
func DiffCandidates(aName string, a Candidates, bName string, b Candidates, names map[string]string) []string {
	var out []string
	show := func(s string) string { return Readable(s, names) }
	onlyA, onlyB := multisetDiff(a.Requests, b.Requests), multisetDiff(b.Requests, a.Requests)
	if len(onlyA)+len(onlyB) > 0 {
		out = append(out, fmt.Sprintf("allocation_requests: %s has %d, %s has %d", aName, a.Len(), bName, b.Len()))
		for _, side := range []struct {
			who  string
			list []string
		}{{aName, onlyA}, {bName, onlyB}} {
			for i, s := range side.list {
				if i == 10 {
					out = append(out, fmt.Sprintf("  ... and %d more only in %s", len(side.list)-10, side.who))
					break
				}
				out = append(out, fmt.Sprintf("  only in %s: %s", side.who, show(s)))
			}
		}
	}
	var rps []string
	for rp := range a.Summaries {
		rps = append(rps, rp)
	}
	for rp := range b.Summaries {
		if _, ok := a.Summaries[rp]; !ok {
			rps = append(rps, rp)
		}
	}
	slices.Sort(rps)
	shown := 0
	for _, rp := range rps {
		sa, inA := a.Summaries[rp]
		sb, inB := b.Summaries[rp]
		if inA && inB && sa == sb {
			continue
		}
		if shown == 10 {
			out = append(out, "  ... more provider_summaries differ")
			break
		}
		shown++
		name := show(rp)
		switch {
		case !inB:
			out = append(out, fmt.Sprintf("provider_summaries[%s] only in %s: %s", name, aName, show(sa)))
		case !inA:
			out = append(out, fmt.Sprintf("provider_summaries[%s] only in %s: %s", name, bName, show(sb)))
		default:
			out = append(out, fmt.Sprintf("provider_summaries[%s]:\n    %s: %s\n    %s: %s", name, aName, show(sa), bName, show(sb)))
		}
	}
	return out
}

// multisetDiff is a minus b, expanded to one entry per surplus copy.
func multisetDiff(a, b map[string]int) []string {
	var out []string
	for k, n := range a {
		for range n - b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Readable replaces provider UUIDs by their names in a canonical form.
func Readable(s string, names map[string]string) string {
	for uuid, name := range names {
		s = strings.ReplaceAll(s, uuid, name)
	}
	return s
}

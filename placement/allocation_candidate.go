package placement

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/placement/candidates"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/qs"
)

// listAllocationCandidates is GET /allocation_candidates (1.10+): the ways
// the requested resources can be allocated, with a summary of every
// provider involved.
func (s *Server) listAllocationCandidates(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, policy.AllocationCandidatesList, policy.Target{}); err != nil {
		return err
	}
	v := version(r)
	params, qerr := qs.ParseQuery(r.URL.RawQuery)
	if qerr != nil {
		return queryError(qerr)
	}
	q, qerr := qs.ParseCandidates(params, v.Minor)
	if qerr != nil {
		return queryError(qerr)
	}

	start := time.Now()
	snap, err := s.candidates.get(r.Context())
	if err != nil {
		return fmt.Errorf("loading allocation candidates snapshot: %w", err)
	}
	s.metrics.since(s.metrics.waitSeconds, start)
	start = time.Now()
	res, err := candidates.Find(r.Context(), snap, candidates.Request{Query: q, NestedAware: v.AtLeast(29)})
	if err == nil {
		s.metrics.found(res, start)
	}
	if err != nil {
		var qe *qs.Error
		if errors.As(err, &qe) {
			return queryError(qe)
		}
		return fmt.Errorf("finding allocation candidates: %w", err)
	}
	if s.cfg.Hooks.Candidates != nil && len(res.Requests) > 0 {
		res = s.orderCandidates(r.Context(), res, q)
	}
	body := renderCandidates(res, q, v)
	setLastModified(w, r, time.Now())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// renderCandidates writes the response body for microversion v: list-form
// allocation requests before 1.12, mappings from 1.34; summaries with only
// the requested classes before 1.27, traits from 1.17, parent and root
// uuids from 1.29.
func renderCandidates(res *candidates.Result, q *qs.CandidatesQuery, v openstack.Version) []byte {
	s := res.Snapshot
	var b bytes.Buffer
	b.WriteString(`{"allocation_requests": [`)
	for i, ar := range res.Requests {
		if i > 0 {
			b.WriteString(", ")
		}
		if !v.AtLeast(12) {
			b.WriteString(`{"allocations": [`)
			for j, al := range ar.Allocations {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(`{"resource_provider": {"uuid": `)
				writeString(&b, s.Provider(al.Provider).UUID)
				b.WriteString(`}, "resources": `)
				writeResources(&b, s, al.Resources)
				b.WriteByte('}')
			}
			b.WriteString("]}")
			continue
		}
		b.WriteString(`{"allocations": {`)
		for j, al := range ar.Allocations {
			if j > 0 {
				b.WriteString(", ")
			}
			writeString(&b, s.Provider(al.Provider).UUID)
			b.WriteString(`: {"resources": `)
			writeResources(&b, s, al.Resources)
			b.WriteByte('}')
		}
		b.WriteByte('}')
		if v.AtLeast(34) {
			b.WriteString(`, "mappings": {`)
			for j, m := range ar.Mappings {
				if j > 0 {
					b.WriteString(", ")
				}
				writeString(&b, m.Suffix)
				b.WriteString(": [")
				for k, p := range m.Providers {
					if k > 0 {
						b.WriteString(", ")
					}
					writeString(&b, s.Provider(p).UUID)
				}
				b.WriteByte(']')
			}
			b.WriteByte('}')
		}
		b.WriteByte('}')
	}
	b.WriteString(`], "provider_summaries": {`)

	var requested map[string]bool
	if !v.AtLeast(27) {
		requested = map[string]bool{}
		for _, g := range q.Groups {
			for _, a := range g.Resources {
				requested[a.Class] = true
			}
		}
	}
	for i, pi := range res.Summaries {
		p := s.Provider(pi)
		if i > 0 {
			b.WriteString(", ")
		}
		writeString(&b, p.UUID)
		b.WriteString(`: {"resources": {`)
		n := 0
		for _, inv := range p.Inventories {
			name := s.ClassName(inv.Class)
			if requested != nil && !requested[name] {
				continue
			}
			if n > 0 {
				b.WriteString(", ")
			}
			n++
			writeString(&b, name)
			b.WriteString(`: {"capacity": `)
			b.WriteString(strconv.FormatInt(inv.Capacity(), 10))
			b.WriteString(`, "used": `)
			b.WriteString(strconv.FormatInt(inv.Used, 10))
			b.WriteByte('}')
		}
		b.WriteByte('}')
		if v.AtLeast(17) {
			b.WriteString(`, "traits": [`)
			for j, t := range p.Traits {
				if j > 0 {
					b.WriteString(", ")
				}
				writeString(&b, s.TraitName(t))
			}
			b.WriteByte(']')
		}
		if v.AtLeast(29) {
			b.WriteString(`, "parent_provider_uuid": `)
			if p.Parent >= 0 {
				writeString(&b, s.Provider(p.Parent).UUID)
			} else {
				b.WriteString("null")
			}
			b.WriteString(`, "root_provider_uuid": `)
			writeString(&b, s.Provider(p.Root).UUID)
		}
		b.WriteByte('}')
	}
	b.WriteString("}}")
	return b.Bytes()
}

func writeResources(b *bytes.Buffer, s *candidates.Snapshot, rs []candidates.Resource) {
	b.WriteByte('{')
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		writeString(b, s.ClassName(r.Class))
		b.WriteString(": ")
		b.WriteString(strconv.FormatInt(r.Amount, 10))
	}
	b.WriteByte('}')
}

// writeString writes s as a JSON string.
func writeString(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			enc, _ := json.Marshal(s)
			b.Write(enc)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

// orderCandidates lets the candidates hook reorder or narrow the answer.
// Summaries keep Placement's order and cover the trees of the requests
// kept; whatever goes wrong in the hook, Placement's answer stands.
func (s *Server) orderCandidates(ctx context.Context, res *candidates.Result, q *qs.CandidatesQuery) *candidates.Result {
	snap := res.Snapshot
	cq := CandidatesQuery{Query: q, GlobalRequestID: globalRequestID(ctx), Requests: make([]CandidateRequest, len(res.Requests))}
	for i, ar := range res.Requests {
		cr := CandidateRequest{Allocations: make(map[string]map[string]int64, len(ar.Allocations))}
		seen := map[int32]bool{}
		for _, al := range ar.Allocations {
			p := snap.Provider(al.Provider)
			if !seen[p.Root] {
				seen[p.Root] = true
				cr.Roots = append(cr.Roots, snap.Provider(p.Root).UUID)
			}
			rs := make(map[string]int64, len(al.Resources))
			for _, r := range al.Resources {
				rs[snap.ClassName(r.Class)] = r.Amount
			}
			cr.Allocations[p.UUID] = rs
		}
		cq.Requests[i] = cr
	}
	order, keep, err := s.cfg.Hooks.Candidates.OrderCandidates(ctx, cq)
	if err != nil {
		s.log.WarnContext(ctx, "allocation candidates hook failed; answering Placement's candidates", "error", err)
		return res
	}
	if !keep {
		return res
	}
	out := &candidates.Result{Snapshot: snap, Requests: make([]candidates.AllocationRequest, 0, len(order))}
	used := map[int32]bool{}
	taken := make([]bool, len(res.Requests))
	for _, i := range order {
		if i < 0 || i >= len(res.Requests) || taken[i] {
			continue
		}
		taken[i] = true
		out.Requests = append(out.Requests, res.Requests[i])
		for _, al := range res.Requests[i].Allocations {
			used[al.Provider] = true
			used[snap.Provider(al.Provider).Root] = true
		}
	}
	for _, p := range res.Summaries {
		if used[snap.Provider(p).Root] {
			out.Summaries = append(out.Summaries, p)
		}
	}
	return out
}

// globalRequestID is the caller's valid X-Openstack-Request-Id, if any.
func globalRequestID(ctx context.Context) string { return openstack.GlobalRequestIDFrom(ctx) }

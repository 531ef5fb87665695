// Package novahook connects the coordinator to Placement's hooks: Nova's
// allocation candidates ordered by the bridge's scheduler, and Nova's
// allocation writes recorded as VMs in the ledger in the same transaction.
// It is the one place that knows both the Placement API package and the
// bridge, so that neither imports the other.
package novahook

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/placement"
	"github.com/unisched/unisched/placement/qs"
)

// New returns Placement's hooks over the coordinator. Mode off leaves the
// candidates alone; allocations are recorded whatever the mode.
func New(c *bridge.Coordinator, mode bridge.CandidatesMode) placement.Hooks {
	h := &hooks{c: c, mode: mode}
	out := placement.Hooks{Allocations: h}
	if mode != bridge.CandidatesOff {
		out.Candidates = h
	}
	return out
}

type hooks struct {
	c    *bridge.Coordinator
	mode bridge.CandidatesMode
}

// OrderCandidates implements placement.CandidatesHook.
func (h *hooks) OrderCandidates(ctx context.Context, q placement.CandidatesQuery) ([]int, bool, error) {
	bq := Query(q.Query)
	bq.RequestID = q.GlobalRequestID
	bq.Roots = make([][]string, len(q.Requests))
	for i, r := range q.Requests {
		bq.Roots[i] = r.Roots
	}
	return h.c.OrderCandidates(ctx, h.mode, bq)
}

// Query reduces a parsed candidates query to the scheduler's terms: the
// amounts of every group summed, the traits and aggregates every group
// asks (a required "any of" list counts only when it names one trait).
func Query(q *qs.CandidatesQuery) bridge.CandidatesQuery {
	out := bridge.CandidatesQuery{Resources: map[string]int64{}}
	if q == nil {
		return out
	}
	for _, g := range q.Groups {
		for _, a := range g.Resources {
			out.Resources[a.Class] += a.Amount
		}
		for _, any := range g.Traits.Required {
			if len(any) == 1 {
				out.RequiredTraits = append(out.RequiredTraits, any[0])
			}
		}
		out.ForbiddenTraits = append(out.ForbiddenTraits, g.Traits.Forbidden...)
		out.MemberOf = append(out.MemberOf, g.MemberOf.Required...)
		out.ForbiddenAggregates = append(out.ForbiddenAggregates, g.MemberOf.Forbidden...)
	}
	out.RequiredTraits = append(out.RequiredTraits, q.RootRequired...)
	out.ForbiddenTraits = append(out.ForbiddenTraits, q.RootForbidden...)
	for _, l := range []*[]string{&out.RequiredTraits, &out.ForbiddenTraits, &out.ForbiddenAggregates} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return out
}

// AllocationsWritten implements placement.AllocationsHook.
func (h *hooks) AllocationsWritten(ctx context.Context, tx pgx.Tx, w placement.AllocationsWrite) error {
	as := make([]bridge.VMAllocations, len(w.Consumers))
	for i, c := range w.Consumers {
		as[i] = bridge.VMAllocations{ConsumerUUID: c.ConsumerUUID, ProjectID: c.ProjectID, UserID: c.UserID, Allocations: c.Allocations}
	}
	return h.c.RecordNovaAllocations(ctx, tx, w.GlobalRequestID, as)
}

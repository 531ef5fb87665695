package placement

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/placement/qs"
)

// Hooks let the coordinator see what Nova asks of Placement without the
// placement package knowing the coordinator: it answers allocation
// candidates with its own scheduler's view, and records in its ledger the
// consumers whose allocations change, in the same transaction. A nil hook
// leaves upstream's behaviour untouched.
type Hooks struct {
	Candidates  CandidatesHook
	Allocations AllocationsHook
}

// CandidatesHook sees GET /allocation_candidates after Placement computed
// its answer.
type CandidatesHook interface {
	// OrderCandidates returns the indexes of the allocation requests to
	// answer, in the order to answer them; keep reports false to leave
	// Placement's answer as it is. An error is logged and Placement's
	// answer is sent: the hook can never make a request fail.
	OrderCandidates(ctx context.Context, q CandidatesQuery) (order []int, keep bool, err error)
}

// CandidatesQuery is one GET /allocation_candidates and Placement's answer.
type CandidatesQuery struct {
	Query *qs.CandidatesQuery
	// GlobalRequestID is the caller's X-Openstack-Request-Id when valid,
	// "" otherwise.
	GlobalRequestID string
	// Requests are Placement's allocation requests, in its order.
	Requests []CandidateRequest
}

// CandidateRequest is one allocation request of the answer.
type CandidateRequest struct {
	// Roots are the root providers (uuids) the request allocates from, in
	// order of first use; usually one, the compute node.
	Roots []string
	// Allocations by provider uuid, then resource class.
	Allocations map[string]map[string]int64
}

// AllocationsHook is called inside the transaction that writes or removes
// consumers' allocations (PUT /allocations/{c}, POST /allocations, DELETE
// /allocations/{c}, POST /reshaper), after the write, before the commit.
// An error rolls the whole write back: return one only when the write
// must not happen, or a retryable database error (the write is retried).
type AllocationsHook interface {
	AllocationsWritten(ctx context.Context, tx pgx.Tx, w AllocationsWrite) error
}

// AllocationsWrite is the new state of the consumers a request wrote.
type AllocationsWrite struct {
	GlobalRequestID string
	Consumers       []ConsumerAllocations
}

// ConsumerAllocations is one consumer after the write; no Allocations
// means the consumer holds nothing any more.
type ConsumerAllocations struct {
	ConsumerUUID string
	ProjectID    string
	UserID       string
	// Allocations by provider uuid (canonical), then resource class.
	Allocations map[string]map[string]int64
}

// hookWrite is the hook's view of the writes of a claim.
func hookWrite(ctx context.Context, writes []consumerWrite) AllocationsWrite {
	out := AllocationsWrite{Consumers: make([]ConsumerAllocations, 0, len(writes))}
	out.GlobalRequestID = globalRequestID(ctx)
	for _, w := range writes {
		ca := ConsumerAllocations{ConsumerUUID: w.uuid, ProjectID: w.projectID, UserID: w.userID}
		for _, p := range w.providers {
			u, ok := parseUUIDLike(p.Key)
			if !ok {
				continue
			}
			for _, r := range p.Value.Resources {
				if r.Value.n == 0 {
					continue
				}
				if ca.Allocations == nil {
					ca.Allocations = map[string]map[string]int64{}
				}
				if ca.Allocations[u] == nil {
					ca.Allocations[u] = map[string]int64{}
				}
				ca.Allocations[u][r.Key] = r.Value.n
			}
		}
		out.Consumers = append(out.Consumers, ca)
	}
	return out
}

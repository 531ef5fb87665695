package load

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
)

// Query is one timed GET /allocation_candidates.
type Query struct {
	Name  string `json:"name"`
	Query string `json:"query"`
}

// Anchor is the request issue 3 measures upstream with.
const Anchor = "resources=VCPU:2,MEMORY_MB:4096"

// StandardQueries are the queries the bench runs at every size: the anchor
// with limit=1000 (what Nova sends), with limit=1 (the cost must not grow
// with the fleet), and filtered by a trait and by an aggregate.
func StandardQueries(f Fleet) []Query {
	return []Query{
		{Name: "limit1000", Query: Anchor + "&limit=1000"},
		{Name: "limit1", Query: Anchor + "&limit=1"},
		{Name: "avx2", Query: Anchor + "&required=" + TraitAVX2 + "&limit=1000"},
		{Name: "member_of", Query: Anchor + "&member_of=" + f.RackAggregate() + "&limit=1000"},
	}
}

// QueryResult measures one query repeated Reps times.
type QueryResult struct {
	Query
	Reps        int `json:"reps"`
	Concurrency int `json:"concurrency"`
	// Candidates and Bytes are from the last good answer.
	Candidates int `json:"allocation_requests"`
	Summaries  int `json:"provider_summaries"`
	Bytes      int `json:"bytes"`
	Stats
}

// TimeQuery sends q reps times with conc clients (1 = sequential, the
// latency a single scheduler sees).
func TimeQuery(ctx context.Context, c *Client, q Query, reps, conc int) QueryResult {
	rec := newRecorder("GET /allocation_candidates?" + q.Query)
	var cands, sums, size atomic.Int64
	wall := parallel(ctx, reps, conc, func(ctx context.Context, _ int) {
		r := c.Do(ctx, "GET", "/allocation_candidates?"+q.Query, MVLatest, nil)
		good := r.Is(http.StatusOK)
		if good {
			var body struct {
				AR []json.RawMessage          `json:"allocation_requests"`
				PS map[string]json.RawMessage `json:"provider_summaries"`
			}
			if err := json.Unmarshal(r.Body, &body); err != nil {
				good = false
			} else {
				cands.Store(int64(len(body.AR)))
				sums.Store(int64(len(body.PS)))
				size.Store(int64(len(r.Body)))
			}
		}
		rec.add(r, good)
	})
	return QueryResult{Query: q, Reps: reps, Concurrency: max(conc, 1),
		Candidates: int(cands.Load()), Summaries: int(sums.Load()), Bytes: int(size.Load()),
		Stats: rec.stats(wall)}
}

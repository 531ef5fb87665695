package load

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Plan is one measurement against one server at one fleet size.
type Plan struct {
	Fleet Fleet
	// Providers is the fleet size to measure at; providers [Have, Providers)
	// are seeded first.
	Providers int
	Have      int
	SeedConc  int
	Queries   []Query
	Reps      int
	QueryConc int
	// Claims are spread one per provider (the anchor's throughput figure);
	// HotClaims all go to the HotProviders last providers of the fleet,
	// which overfills them on purpose so the audit has something to catch.
	Claims       int
	ClaimConc    int
	HotProviders int
	HotClaims    int
}

// Report is everything one Run measured; the bench prints it as a table and
// keeps it as one JSON line.
type Report struct {
	Server     string         `json:"server"`
	URL        string         `json:"url"`
	MaxVersion string         `json:"max_version"`
	Providers  int            `json:"providers"`
	Start      string         `json:"start"`
	Seed       *SeedResult    `json:"seed,omitempty"`
	Queries    []QueryResult  `json:"queries,omitempty"`
	Claims     []ClaimResult  `json:"claims,omitempty"`
	Verify     *Verification  `json:"verify,omitempty"`
	Memory     map[string]int `json:"memory_kib,omitempty"`
	Failures   int64          `json:"failures"`
	Seconds    float64        `json:"seconds"`
}

// Run seeds, queries and claims as the plan says. An error means the fleet
// could not be built (seeding failed, server gone), so later sizes are
// meaningless; failed requests while timing are counted in the report, and
// an audit that could not complete is recorded in Verify.Error.
func Run(ctx context.Context, c *Client, server string, p Plan, progress io.Writer) (Report, error) {
	start := time.Now()
	rep := Report{Server: server, URL: c.Base, Providers: p.Providers, Start: start.UTC().Format(time.RFC3339)}
	logf := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, "[%s %d] "+format+"\n", append([]any{server, p.Providers}, args...)...)
		}
	}
	mv, err := c.MaxVersion(ctx)
	if err != nil {
		return rep, err
	}
	rep.MaxVersion = mv
	if p.Providers > p.Have {
		logf("seeding providers %d..%d with %d clients", p.Have, p.Providers-1, p.SeedConc)
		sr, err := Seed(ctx, c, p.Fleet, p.Have, p.Providers, p.SeedConc)
		rep.Seed = &sr
		rep.Failures += sr.All.Failures
		if err != nil {
			return rep, err
		}
		logf("seeded %d providers: %.1f providers/s (%s)", sr.Created, sr.ProvidersPerSec, sr.All.Line())
	}
	for _, q := range p.Queries {
		if p.Reps <= 0 {
			break
		}
		qr := TimeQuery(ctx, c, q, p.Reps, p.QueryConc)
		rep.Queries = append(rep.Queries, qr)
		rep.Failures += qr.Failures
		logf("%s: %d candidates; %s", q.Name, qr.Candidates, qr.Line())
	}
	var phases []ClaimResult
	if p.Claims > 0 {
		targets := make([]Provider, min(p.Claims, p.Providers))
		for i := range targets {
			targets[i] = p.Fleet.Provider(i)
		}
		cr := Claim(ctx, c, "spread", targets, p.Claims, p.ClaimConc)
		phases = append(phases, cr)
		logf("claims spread: %d accepted, %d rejected; %s", cr.Accepted, cr.Capacity+cr.Conflicts, cr.Line())
	}
	if p.HotClaims > 0 && p.HotProviders > 0 {
		targets := make([]Provider, min(p.HotProviders, p.Providers))
		for i := range targets {
			targets[i] = p.Fleet.Provider(p.Providers - 1 - i)
		}
		cr := Claim(ctx, c, "contended", targets, p.HotClaims, p.ClaimConc)
		phases = append(phases, cr)
		logf("claims contended: %d accepted, %d no room, %d conflicts, %d errors; %s",
			cr.Accepted, cr.Capacity, cr.Conflicts, cr.Errors, cr.Line())
	}
	for _, ph := range phases {
		rep.Claims = append(rep.Claims, ph)
		rep.Failures += ph.Failures
	}
	if len(phases) > 0 {
		v, err := Verify(ctx, c, max(p.ClaimConc, 1), phases...)
		if err != nil {
			v.Error = err.Error()
		}
		rep.Verify = &v
		logf("audit of %d providers: %d over-allocated, %d mismatches", v.Providers, len(v.OverAllocated), len(v.Mismatches))
	}
	rep.Seconds = elapsedSince(start)
	return rep, nil
}

// WriteTable prints a report for a person.
func WriteTable(w io.Writer, rep Report) {
	fmt.Fprintf(w, "%s at %s (max microversion %s), %d providers, %.1fs\n",
		rep.Server, rep.URL, rep.MaxVersion, rep.Providers, rep.Seconds)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "work\tn\tmedian ms\tp99 ms\treq/s\tfailures\tnote\t")
	if s := rep.Seed; s != nil {
		fmt.Fprintf(tw, "seed %d..%d (c=%d)\t%d\t%.2f\t%.2f\t%.1f\t%d\t%.1f providers/s\t\n",
			s.From, s.To-1, s.Concurrency, s.All.Requests, s.All.MedianMS, s.All.P99MS, s.All.ReqPerSec, s.All.Failures, s.ProvidersPerSec)
		for _, k := range sortedKeys(s.PerCall) {
			st := s.PerCall[k]
			if st.Requests > 0 {
				fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.2f\t\t%d\t\t\n", k, st.Requests, st.MedianMS, st.P99MS, st.Failures)
			}
		}
	}
	for _, q := range rep.Queries {
		fmt.Fprintf(tw, "candidates %s (c=%d)\t%d\t%.2f\t%.2f\t%.1f\t%d\t%d candidates, %d bytes\t\n",
			q.Name, q.Concurrency, q.Requests, q.MedianMS, q.P99MS, q.ReqPerSec, q.Failures, q.Candidates, q.Bytes)
	}
	for _, c := range rep.Claims {
		fmt.Fprintf(tw, "claims %s (c=%d)\t%d\t%.2f\t%.2f\t%.1f\t%d\t%d accepted, %d no room, %d conflicts\t\n",
			c.Phase, c.Concurrency, c.Requests, c.MedianMS, c.P99MS, c.ReqPerSec, c.Errors, c.Accepted, c.Capacity, c.Conflicts)
	}
	tw.Flush()
	if v := rep.Verify; v != nil {
		verdict := "OK: no over-allocation, usages match allocations"
		if v.Error != "" {
			verdict = "INCOMPLETE: " + v.Error
		} else if !v.OK() {
			verdict = fmt.Sprintf("FAILED: %d over-allocated, %d mismatches:\n  %s", len(v.OverAllocated), len(v.Mismatches),
				strings.Join(append(append([]string{}, v.OverAllocated...), v.Mismatches...), "\n  "))
		}
		fmt.Fprintf(w, "audit of %d providers: %s\n", v.Providers, verdict)
	}
	if rep.Memory != nil {
		fmt.Fprintf(w, "memory: VmRSS %.1f MiB, VmHWM %.1f MiB (%d processes)\n",
			float64(rep.Memory["VmRSS"])/1024, float64(rep.Memory["VmHWM"])/1024, rep.Memory["processes"])
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

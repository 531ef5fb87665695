// Command loadgen measures one Placement endpoint (upstream or unisched):
// it makes sure the fleet has -n providers, times the standard allocation
// candidates queries (or -q ones), claims with concurrent clients and audits
// the result. It prints a table, then one JSON line (always last on stdout).
//
//	go run ./tests/load/loadgen -url http://127.0.0.1:18880 -n 1000
//	go run ./tests/load/loadgen -url http://127.0.0.1:18788 -n 100000 -seed-c 64 -claims 0
//
// Exit status 1 when a request failed or the audit found over-allocation.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/unisched/unisched/tests/load"
)

type queryFlags []load.Query

func (q *queryFlags) String() string { return fmt.Sprint(*q) }
func (q *queryFlags) Set(v string) error {
	*q = append(*q, load.Query{Name: fmt.Sprintf("q%d", len(*q)+1), Query: v})
	return nil
}

func main() {
	var (
		url     = flag.String("url", envOr("PLACEMENT_URL", "http://127.0.0.1:18880"), "placement endpoint ($PLACEMENT_URL)")
		name    = flag.String("name", "server", "label for the report")
		prefix  = flag.String("prefix", load.DefaultPrefix, "provider name prefix")
		n       = flag.Int("n", 1000, "fleet size: providers missing from 0..n-1 are created first")
		seedC   = flag.Int("seed-c", 8, "concurrent clients while seeding")
		reps    = flag.Int("reps", 20, "repetitions of each allocation_candidates query (0 skips)")
		qc      = flag.Int("qc", 1, "concurrent clients for queries (1 = sequential latency)")
		claims  = flag.Int("claims", 500, "claims spread one per provider (0 skips)")
		claimC  = flag.Int("claim-c", 8, "concurrent clients for claims")
		hot     = flag.Int("hot", 4, "providers the contended claims go to")
		hotN    = flag.Int("hot-claims", 400, "contended claims (64 fit per provider; 0 skips)")
		timeout = flag.Duration("timeout", 2*time.Minute, "per-request timeout")
		queries queryFlags
	)
	flag.Var(&queries, "q", "allocation_candidates query string, repeatable (default: the standard four)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fleet := load.Fleet{Prefix: *prefix}
	if len(queries) == 0 {
		queries = load.StandardQueries(fleet)
	}
	c := load.NewClient(*url, max(*seedC, *qc, *claimC), *timeout)
	have, err := load.Existing(ctx, c, fleet)
	if err != nil {
		fail(err)
	}
	plan := load.Plan{Fleet: fleet, Providers: *n, Have: min(have, *n), SeedConc: *seedC,
		Queries: queries, Reps: *reps, QueryConc: *qc,
		Claims: *claims, ClaimConc: *claimC, HotProviders: *hot, HotClaims: *hotN}
	rep, err := load.Run(ctx, c, *name, plan, os.Stderr)
	load.WriteTable(os.Stdout, rep)
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(rep)
	if err != nil {
		fail(err)
	}
	if rep.Failures > 0 || (rep.Verify != nil && !rep.Verify.OK()) {
		fail(fmt.Errorf("%d failed request(s), audit ok=%v", rep.Failures, rep.Verify == nil || rep.Verify.OK()))
	}
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

// Command bench measures unisched side by side with upstream Placement 8.0.0
// (issue 3): it starts both on fresh databases of the local PostgreSQL,
// grows the same fleet on each through the sizes, runs the same load
// against each, compares their candidate sets, and prints a table of
// medians, p99s and ratios which it also writes to docs/benchmarks.md.
// scripts/bench.sh installs the packages and runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unisched/unisched/tests/harness"
	"github.com/unisched/unisched/tests/load"
)

type config struct {
	UpstreamPort  int           `json:"upstream_port"`
	UnischedPort  int           `json:"unisched_port"`
	Workers       int           `json:"upstream_workers"`
	Sizes         []int         `json:"sizes"`
	UnischedSizes []int         `json:"unisched_sizes"`
	SeedConc      int           `json:"seed_concurrency"`
	BigSeedConc   int           `json:"big_seed_concurrency"`
	Reps          int           `json:"reps"`
	Claims        int           `json:"claims"`
	ClaimConc     int           `json:"claim_concurrency"`
	Hot           int           `json:"hot_providers"`
	HotClaims     int           `json:"hot_claims"`
	Out           string        `json:"-"`
	Artifacts     string        `json:"-"`
	SkipUpstream  bool          `json:"skip_upstream"`
	Timeout       time.Duration `json:"-"`
	UnischedEnv   []string      `json:"unisched_env,omitempty"`
}

func main() {
	var c config
	var sizes, uSizes, uEnv string
	flag.IntVar(&c.UpstreamPort, "upstream-port", 0, "port of upstream placement (0: a free one, another if it is taken before uwsgi binds it)")
	flag.IntVar(&c.UnischedPort, "unisched-port", 0, "port of unisched (0: a free one, another if it is taken before serve binds it)")
	flag.IntVar(&c.Workers, "workers", 4, "uwsgi worker processes of upstream placement")
	flag.StringVar(&sizes, "sizes", "1000,5000", "fleet sizes measured on both servers")
	flag.StringVar(&uSizes, "unisched-sizes", "100000", "further sizes measured on unisched only")
	flag.IntVar(&c.SeedConc, "seed-c", 8, "seeding clients at the sizes both servers run")
	flag.IntVar(&c.BigSeedConc, "big-seed-c", 64, "seeding clients at unisched-only sizes")
	flag.IntVar(&c.Reps, "reps", 20, "repetitions of each candidates query")
	flag.IntVar(&c.Claims, "claims", 500, "claims spread one per provider")
	flag.IntVar(&c.ClaimConc, "claim-c", 8, "claiming clients")
	flag.IntVar(&c.Hot, "hot", 4, "providers the contended claims go to")
	flag.IntVar(&c.HotClaims, "hot-claims", 400, "contended claims (64 fit per provider)")
	flag.StringVar(&c.Out, "out", "docs/benchmarks.md", "markdown report ('' to skip)")
	flag.StringVar(&c.Artifacts, "artifacts", "_artifacts/bench", "logs, configs and the JSON lines of every run")
	flag.BoolVar(&c.SkipUpstream, "skip-upstream", false, "measure unisched only")
	render := flag.String("render", "", "only render the markdown again from a summary.json of an earlier run")
	flag.DurationVar(&c.Timeout, "timeout", 45*time.Minute, "stop the whole run after this long")
	flag.StringVar(&uEnv, "unisched-env", "", "extra UNISCHED_* settings for unisched, comma separated K=V")
	flag.Parse()
	var err error
	if c.Sizes, err = parseSizes(sizes); err == nil {
		c.UnischedSizes, err = parseSizes(uSizes)
	}
	if err != nil {
		fatal(err)
	}
	if len(c.Sizes) == 0 {
		c.SkipUpstream = true // nothing to compare at
	}
	if uEnv != "" {
		c.UnischedEnv = strings.Split(uEnv, ",")
	}
	if *render != "" {
		if err := rerender(*render, c.Out); err != nil {
			fatal(err)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := run(ctx, c); err != nil {
		fatal(err)
	}
}

// rerender writes the markdown of a saved summary.json to out.
func rerender(path, out string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var sum summary
	if err := json.Unmarshal(b, &sum); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	text := renderMarkdown(sum)
	fmt.Println(text)
	if out == "" {
		return nil
	}
	return writeReport(out, text)
}

// keptMarker separates the report this command generates from what other
// benchmarks and people write below it in the same file (the containers
// benchmark's section, analyses): a new run replaces what is above the
// marker and keeps the rest.
const keptMarker = "<!-- Everything above this line is written by tests/bench; everything below it is kept. -->"

// writeReport writes the generated report to out, keeping whatever
// follows keptMarker in the file that is there.
func writeReport(out, report string) error {
	kept := keptMarker + "\n"
	if old, err := os.ReadFile(out); err == nil {
		if i := strings.Index(string(old), keptMarker); i >= 0 {
			kept = string(old[i:])
		}
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", out, err)
	}
	report = strings.TrimRight(report, "\n") + "\n\n"
	if err := os.WriteFile(out, []byte(report+kept), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// side is one server through the sizes.
type side struct {
	name   string
	srv    *harness.Server
	client *load.Client
	have   int    // providers seeded so far
	failed string // first fatal error; later sizes are skipped
}

// result is one size: each side's report and the differential verdict.
type result struct {
	Size     int                    `json:"size"`
	Reports  map[string]load.Report `json:"reports"`
	Errors   map[string]string      `json:"errors,omitempty"`
	Compared []comparison           `json:"compared,omitempty"`
}

type comparison struct {
	Query      string   `json:"query"`
	Candidates int      `json:"candidates"`
	Diff       []string `json:"diff,omitempty"`
	Error      string   `json:"error,omitempty"`
}

func run(ctx context.Context, c config) error {
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	if !filepath.IsAbs(c.Artifacts) {
		c.Artifacts = filepath.Join(root, c.Artifacts)
	}
	if c.Out != "" && !filepath.IsAbs(c.Out) {
		c.Out = filepath.Join(root, c.Out)
	}
	if err := os.MkdirAll(c.Artifacts, 0o755); err != nil {
		return err
	}
	machine := describeMachine(ctx, root)
	started := time.Now()
	fmt.Fprintf(os.Stderr, "bench: building unisched\n")
	bin := filepath.Join(c.Artifacts, "unisched-bench")
	if err := harness.BuildUnisched(ctx, root, bin); err != nil {
		return err
	}

	var sides []*side
	defer func() {
		for _, s := range sides {
			if err := s.srv.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: stopping %s: %v\n", s.name, err)
			}
		}
	}()
	conc := max(c.SeedConc, c.BigSeedConc, c.ClaimConc)
	if !c.SkipUpstream {
		fmt.Fprintf(os.Stderr, "bench: starting upstream placement (%d uwsgi workers)\n", c.Workers)
		srv, err := harness.StartUpstream(ctx, harness.UpstreamOptions{Port: c.UpstreamPort, Workers: c.Workers,
			DB: fmt.Sprintf("bench_upstream_%d", os.Getpid()), Dir: filepath.Join(c.Artifacts, "upstream")})
		if err != nil {
			return err
		}
		c.UpstreamPort = srv.Port
		fmt.Fprintf(os.Stderr, "bench: upstream placement at %s\n", srv.URL)
		sides = append(sides, &side{name: "upstream", srv: srv, client: load.NewClient(srv.URL, conc, 5*time.Minute)})
	}
	fmt.Fprintf(os.Stderr, "bench: starting unisched\n")
	usrv, err := harness.StartUnisched(ctx, harness.UnischedOptions{Bin: bin, Port: c.UnischedPort,
		DB: fmt.Sprintf("bench_unisched_%d", os.Getpid()), Dir: filepath.Join(c.Artifacts, "unisched"), Env: c.UnischedEnv})
	if err != nil {
		return err
	}
	c.UnischedPort = usrv.Port
	fmt.Fprintf(os.Stderr, "bench: unisched at %s\n", usrv.URL)
	sides = append(sides, &side{name: "unisched", srv: usrv, client: load.NewClient(usrv.URL, conc, 5*time.Minute)})

	jsonl, err := os.Create(filepath.Join(c.Artifacts, "bench.jsonl"))
	if err != nil {
		return err
	}
	defer jsonl.Close()
	fleet := load.Fleet{}
	all := slices.Concat(c.Sizes, c.UnischedSizes)
	slices.Sort(all)
	all = slices.Compact(all)
	var results []result
	for _, size := range all {
		res := result{Size: size, Reports: map[string]load.Report{}, Errors: map[string]string{}}
		for _, s := range sides {
			both := slices.Contains(c.Sizes, size)
			if s.failed != "" || (s.name == "upstream" && !both) {
				continue
			}
			seedConc := c.SeedConc
			if !both {
				seedConc = c.BigSeedConc
			}
			plan := load.Plan{Fleet: fleet, Providers: size, Have: s.have, SeedConc: seedConc,
				Queries: load.StandardQueries(fleet), Reps: c.Reps, QueryConc: 1,
				Claims: c.Claims, ClaimConc: c.ClaimConc, HotProviders: c.Hot, HotClaims: c.HotClaims}
			rep, err := load.Run(ctx, s.client, s.name, plan, os.Stderr)
			if mem, merr := s.srv.Memory(); merr == nil {
				rep.Memory = mem
			}
			if rep.Seed != nil {
				s.have += rep.Seed.Created
			}
			res.Reports[s.name] = rep
			if err != nil {
				s.failed = err.Error()
				res.Errors[s.name] = err.Error()
				fmt.Fprintf(os.Stderr, "bench: %s at %d providers failed: %v\n", s.name, size, err)
			}
			load.WriteTable(os.Stderr, rep)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if len(sides) == 2 && sides[0].failed == "" && sides[1].failed == "" && slices.Contains(c.Sizes, size) {
			res.Compared = compare(ctx, sides[0], sides[1], fleet, size)
		}
		results = append(results, res)
		// Upstream has nothing left to do once the common sizes are done:
		// stop it so it does not share the machine with the large runs.
		if !c.SkipUpstream && size >= slices.Max(c.Sizes) && sides[0].name == "upstream" && sides[0].srv.DB != "" {
			fmt.Fprintf(os.Stderr, "bench: stopping upstream placement\n")
			if err := sides[0].srv.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: stopping upstream: %v\n", err)
			}
		}
		line, _ := json.Marshal(res)
		fmt.Fprintf(jsonl, "%s\n", line)
	}
	sum := summary{Machine: machine, Config: c, Results: results, Seconds: time.Since(started).Seconds(),
		LoadAfter: loadAverage()}
	if b, err := json.MarshalIndent(sum, "", " "); err == nil {
		_ = os.WriteFile(filepath.Join(c.Artifacts, "summary.json"), b, 0o644)
	}
	text := renderMarkdown(sum)
	fmt.Println(text)
	if c.Out != "" {
		if err := os.MkdirAll(filepath.Dir(c.Out), 0o755); err != nil {
			return err
		}
		if err := writeReport(c.Out, text); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %s (raw results in %s)\n", c.Out, filepath.Join(c.Artifacts, "bench.jsonl"))
	}
	var problems []string
	for _, r := range results {
		for who, e := range r.Errors {
			problems = append(problems, fmt.Sprintf("%s at %d: %s", who, r.Size, e))
		}
		for who, rep := range r.Reports {
			if rep.Failures > 0 {
				problems = append(problems, fmt.Sprintf("%s at %d: %d failed requests", who, r.Size, rep.Failures))
			}
			if rep.Verify != nil && !rep.Verify.OK() {
				problems = append(problems, fmt.Sprintf("%s at %d: claims audit failed", who, r.Size))
			}
		}
		for _, cmp := range r.Compared {
			if len(cmp.Diff) > 0 || cmp.Error != "" {
				problems = append(problems, fmt.Sprintf("candidates differ at %d providers for %s", r.Size, cmp.Query))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// compare asks both servers the standard queries without a limit (with a
// limit each server may pick a different subset) and diffs the answers.
func compare(ctx context.Context, a, b *side, fleet load.Fleet, size int) []comparison {
	names := map[string]string{}
	if size <= 5000 {
		for i := range size {
			p := fleet.Provider(i)
			names[p.UUID] = p.Name
		}
	}
	var out []comparison
	for _, q := range load.StandardQueries(fleet) {
		if q.Name == "limit1" {
			continue // the same query as limit1000 without its limit
		}
		query := strings.Replace(q.Query, "&limit=1000", "", 1)
		cmp := comparison{Query: query}
		var got [2]load.Candidates
		for i, s := range []*side{a, b} {
			r, err := s.client.Expect(ctx, "GET", "/allocation_candidates?"+query, load.MVLatest, nil, 200)
			if err == nil {
				got[i], err = load.ParseCandidates(r.Body)
			}
			if err != nil {
				cmp.Error = fmt.Sprintf("%s: %v", s.name, err)
				break
			}
		}
		if cmp.Error == "" {
			cmp.Candidates = got[0].Len()
			cmp.Diff = load.DiffCandidates(a.name, got[0], b.name, got[1], names)
		}
		verdict := "identical"
		if cmp.Error != "" {
			verdict = cmp.Error
		} else if len(cmp.Diff) > 0 {
			verdict = "DIFFERENT:\n  " + strings.Join(cmp.Diff, "\n  ")
		}
		fmt.Fprintf(os.Stderr, "bench: %d providers, %s: %d candidates, %s\n", size, query, cmp.Candidates, verdict)
		out = append(out, cmp)
	}
	return out
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

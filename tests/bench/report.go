package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/unisched/unisched/tests/harness"
	"github.com/unisched/unisched/tests/load"
)

// machine describes where the numbers were taken; they mean little without it.
type machine struct {
	Date, CPUModel, Memory, Kernel, OS string
	CPUs                               int
	Go, PostgreSQL, Placement, UWSGI   string
	Commit, LoadBefore                 string
}

func describeMachine(ctx context.Context, root string) machine {
	m := machine{Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), CPUs: runtime.NumCPU(), Go: runtime.Version(),
		LoadBefore: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	m.Kernel = strings.TrimSpace(readFile("/proc/sys/kernel/osrelease"))
	if v := strings.TrimSpace(readFile("/etc/debian_version")); v != "" {
		m.OS = "Debian " + v
	}
	m.PostgreSQL, _ = harness.ServerVersion(ctx, harness.AdminURL())
	m.Placement = output("dpkg-query", "-W", "-f=${Version}", "placement-api")
	m.UWSGI = output("dpkg-query", "-W", "-f=${Version}", "uwsgi-core")
	m.Commit = output("git", "-C", root, "rev-parse", "--short", "HEAD")
	if dirty := output("git", "-C", root, "status", "--porcelain", "--untracked-files=no"); dirty != "" {
		m.Commit += " (with uncommitted changes)"
	}
	return m
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func output(name string, args ...string) string {
	b, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// summary is a whole run; the bench keeps it as summary.json so the
// markdown can be rendered again (-render) without measuring again.
type summary struct {
	Machine   machine  `json:"machine"`
	Config    config   `json:"config"`
	Results   []result `json:"results"`
	Seconds   float64  `json:"seconds"`
	LoadAfter string   `json:"load_after"`
}

// renderMarkdown writes docs/benchmarks.md: the machine, the tables, the
// goals of issue 3 with their verdicts, and how to reproduce.
func renderMarkdown(s summary) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	m := s.Machine
	p("# Benchmarks: unisched vs upstream Placement 8.0.0")
	p("")
	p("Written by `./tox-compat.sh -e bench` (`scripts/bench.sh`, which runs `go run ./tests/bench`) on %s; the run took %.0f s.", m.Date, s.Seconds)
	p("Both servers ran side by side on fresh databases of the same PostgreSQL, were grown through the same fleet")
	p("(provider *i*: VCPU 64 ratio 4, MEMORY_MB 262144, DISK_GB 2000; HW_CPU_X86_SSE42 on all, HW_CPU_X86_AVX2 on even *i*,")
	p("CUSTOM_RACK_A and the rack-A aggregate on every tenth) and received the same requests from the same Go load generator")
	p("(`tests/load`). Ratios are upstream / unisched for latencies and unisched / upstream for throughputs: above 1, unisched is ahead.")
	p("")
	p("## Machine")
	p("")
	p("| | |")
	p("|---|---|")
	p("| CPU | %d × %s |", m.CPUs, m.CPUModel)
	p("| memory | %s |", m.Memory)
	p("| OS, kernel | %s, Linux %s |", m.OS, m.Kernel)
	p("| PostgreSQL | %s (one server for both, unix socket) |", m.PostgreSQL)
	p("| upstream | placement-api %s (Debian), uwsgi %s, %d worker processes × 1 thread, noauth2 |", m.Placement, m.UWSGI, s.Config.Workers)
	p("| unisched | commit %s, %s |", m.Commit, m.Go)
	p("| load average before / after | %s / %s |", m.LoadBefore, s.LoadAfter)
	p("")
	p("Everything (both servers, PostgreSQL, the load generator) shares these cores, and the machine may be shared with")
	p("other work (see the load average): absolute numbers are noisy, ratios from the same run are the meaningful part.")
	p("")

	p("## Allocation candidates (sequential requests, %d each)", s.Config.Reps)
	p("")
	p("| query | providers | upstream median ms | upstream p99 ms | unisched median ms | unisched p99 ms | ratio (median) | candidates |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, q := range load.StandardQueries(load.Fleet{}) {
		for _, r := range s.Results {
			up, uok := findQuery(r, "upstream", q.Name)
			un, nok := findQuery(r, "unisched", q.Name)
			if !uok && !nok {
				continue
			}
			cands := un.Candidates
			if !nok {
				cands = up.Candidates
			}
			p("| `%s` | %d | %s | %s | %s | %s | %s | %d |", displayQuery(q), r.Size,
				msOr(up.MedianMS, uok), msOr(up.P99MS, uok), msOr(un.MedianMS, nok), msOr(un.P99MS, nok),
				ratio(up.MedianMS, un.MedianMS, uok && nok), cands)
		}
	}
	p("")
	p("`member_of` is the rack-A aggregate (a tenth of the fleet). p99 of %d samples is their maximum.", s.Config.Reps)
	p("")

	p("## Writes")
	p("")
	p("| work | providers | upstream | unisched | ratio |")
	p("|---|---:|---:|---:|---:|")
	for _, r := range s.Results {
		up, uok := r.Reports["upstream"]
		un, nok := r.Reports["unisched"]
		if (uok && up.Seed != nil) || (nok && un.Seed != nil) {
			us, ns := seedRate(up, uok), seedRate(un, nok)
			p("| registration, providers/s, c=%d | %d | %s | %s | %s |",
				seedConc(up, un), r.Size, rateOr(us, us >= 0), rateOr(ns, ns >= 0), ratio(ns, us, us > 0 && ns > 0))
		}
		for _, phase := range []string{"spread", "contended"} {
			uc, ucok := findClaims(up, uok, phase)
			nc, ncok := findClaims(un, nok, phase)
			if !ucok && !ncok {
				continue
			}
			p("| claims (%s), requests/s, c=%d | %d | %s | %s | %s |", phase, s.Config.ClaimConc, r.Size,
				rateOr(uc.ReqPerSec, ucok), rateOr(nc.ReqPerSec, ncok), ratio(nc.ReqPerSec, uc.ReqPerSec, ucok && ncok))
		}
	}
	p("")
	p("*registration*: `POST /resource_providers` (1.20), `PUT` inventories, traits and, for rack A, aggregates, per provider;")
	p("rates are over the providers added at that size. *claims*: `PUT /allocations/{new consumer}` (1.39).")
	p("*spread*: %d claims (VCPU 2, MEMORY_MB 4096, DISK_GB 20), one per provider. *contended*: %d claims on the %d last",
		s.Config.Claims, s.Config.HotClaims, s.Config.Hot)
	p("providers of the fleet, which hold 64 each: the rest must be refused with 409.")
	p("")
	p("Registration per call, median / p99 ms (where the write time goes):")
	p("")
	p("| server | providers | clients | POST /resource_providers | PUT inventories | PUT traits | PUT aggregates |")
	p("|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range s.Results {
		for _, who := range []string{"upstream", "unisched"} {
			rep, ok := r.Reports[who]
			if !ok || rep.Seed == nil {
				continue
			}
			cell := func(k string) string {
				st, ok := rep.Seed.PerCall[k]
				if !ok || st.Requests == 0 {
					return "—"
				}
				return fmt.Sprintf("%s / %s", msOr(st.MedianMS, true), msOr(st.P99MS, true))
			}
			p("| %s | %d | %d | %s | %s | %s | %s |", who, r.Size, rep.Seed.Concurrency, cell("POST /resource_providers"),
				cell("PUT inventories"), cell("PUT traits"), cell("PUT aggregates"))
		}
	}
	p("")
	p("### Claims audit")
	p("")
	p("After the claims every touched provider is read back: allocations summed per class must fit the capacity and")
	p("equal the usages, accepted claims must be present and refused ones absent.")
	p("")
	p("| server | providers | accepted | refused (no room) | refused (conflict) | errors | providers audited | verdict |")
	p("|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range s.Results {
		for _, who := range []string{"upstream", "unisched"} {
			rep, ok := r.Reports[who]
			if !ok || rep.Verify == nil {
				continue
			}
			var acc, room, confl, errs int
			for _, c := range rep.Claims {
				acc, room, confl, errs = acc+c.Accepted, room+c.Capacity, confl+c.Conflicts, errs+c.Errors
			}
			verdict := "no over-allocation, usages consistent"
			if rep.Verify.Error != "" {
				verdict = "**INCOMPLETE**: " + strings.ReplaceAll(rep.Verify.Error, "|", "\\|")
			} else if !rep.Verify.OK() {
				verdict = fmt.Sprintf("**FAILED**: %d over-allocated, %d mismatches (e.g. %s)", len(rep.Verify.OverAllocated),
					len(rep.Verify.Mismatches), firstOf(rep.Verify.OverAllocated, rep.Verify.Mismatches))
			}
			p("| %s | %d | %d | %d | %d | %d | %d | %s |", who, r.Size, acc, room, confl, errs, rep.Verify.Providers, verdict)
		}
	}
	p("")

	p("## Memory")
	p("")
	p("Resident memory after each size (VmRSS, and the peak VmHWM, from /proc/*pid*/status; upstream: the uwsgi master and its workers summed).")
	p("")
	p("| providers | unisched VmRSS MiB | unisched VmHWM MiB | upstream VmRSS MiB |")
	p("|---:|---:|---:|---:|")
	for _, r := range s.Results {
		un, nok := r.Reports["unisched"]
		up, uok := r.Reports["upstream"]
		p("| %d | %s | %s | %s |", r.Size, mib(un.Memory, "VmRSS", nok), mib(un.Memory, "VmHWM", nok), mib(up.Memory, "VmRSS", uok))
	}
	p("")

	if hasComparisons(s.Results) {
		p("## Same answers")
		p("")
		p("At each size both servers run, the queries above without `limit` are sent to both and the answers compared as")
		p("sets: allocation requests as provider → resources maps, provider summaries per provider. `tests/differential`")
		p("does the same on small hand-made trees (nested providers, sharing providers, granular groups).")
		p("")
		p("| providers | query | candidates | verdict |")
		p("|---:|---|---:|---|")
		for _, r := range s.Results {
			for _, c := range r.Compared {
				verdict := "identical"
				switch {
				case c.Error != "":
					verdict = "error: " + c.Error
				case len(c.Diff) > 0:
					verdict = fmt.Sprintf("**DIFFERENT** (%d lines, first: %s)", len(c.Diff), strings.ReplaceAll(c.Diff[0], "|", "\\|"))
				}
				p("| %d | `%s` | %d | %s |", r.Size, displayQueryString(c.Query), c.Candidates, verdict)
			}
		}
		p("")
	}

	p("## Goals of issue 3")
	p("")
	p("The verdicts compare the two servers of this run, as the issue asks. The last column sets unisched against the")
	p("upstream figures the issue measured on a quiet machine, for a second reading when this run's machine was busy.")
	p("")
	p("| goal | measured (this run) | verdict | against the issue's upstream anchor |")
	p("|---|---|---|---|")
	for _, g := range goals(s) {
		p("| %s | %s | %s | %s |", g.goal, g.measured, g.verdict, or(g.anchor, "—"))
	}
	p("")

	if errs := allErrors(s.Results); len(errs) > 0 {
		p("## Failures")
		p("")
		for _, e := range errs {
			p("- %s", strings.ReplaceAll(e, "\n", " "))
		}
		p("")
	}

	p("## Reproduce")
	p("")
	p("```sh")
	p("./tox-compat.sh -e bench            # = scripts/bench.sh")
	p("scripts/bench.sh -sizes 1000 -unisched-sizes 10000 -reps 10   # a quicker run; flags go to tests/bench")
	p("go run ./tests/load/loadgen -url http://127.0.0.1:18788 -n 1000   # load one running server")
	p("```")
	p("")
	p("`scripts/bench.sh` installs Debian's `placement-api python3-placement uwsgi-core uwsgi-plugin-python3 python3-psycopg2`")
	p("when missing (as root), then `go run ./tests/bench`: it builds unisched, creates the databases `bench_upstream_<pid>` and")
	p("`bench_unisched_<pid>` (`UNISCHED_TEST_DATABASE_URL`, default the local PostgreSQL over its unix socket), starts upstream")
	p("on port %d (placement-manage db sync, uwsgi) and unisched on port %d (free ports unless given), runs the sizes, writes this file and",
		s.Config.UpstreamPort, s.Config.UnischedPort)
	p("`_artifacts/bench/bench.jsonl` (every measurement as JSON, one line per size), then stops both servers by pid and")
	p("drops the databases. Seeding uses %d clients at the sizes both servers run and %d at unisched-only sizes.",
		s.Config.SeedConc, s.Config.BigSeedConc)
	return b.String()
}

func findQuery(r result, who, name string) (load.QueryResult, bool) {
	rep, ok := r.Reports[who]
	if !ok {
		return load.QueryResult{}, false
	}
	for _, q := range rep.Queries {
		if q.Name == name && q.Requests > 0 && q.Failures == 0 {
			return q, true
		}
	}
	return load.QueryResult{}, false
}

func findClaims(rep load.Report, ok bool, phase string) (load.ClaimResult, bool) {
	if !ok {
		return load.ClaimResult{}, false
	}
	for _, c := range rep.Claims {
		if c.Phase == phase && c.Requests > 0 && c.Errors == 0 && c.Failures == 0 {
			return c, true
		}
	}
	return load.ClaimResult{}, false
}

func seedRate(rep load.Report, ok bool) float64 {
	if !ok || rep.Seed == nil || rep.Seed.All.Failures > 0 {
		return -1
	}
	return rep.Seed.ProvidersPerSec
}

func seedConc(a, b load.Report) int {
	for _, r := range []load.Report{a, b} {
		if r.Seed != nil {
			return r.Seed.Concurrency
		}
	}
	return 0
}

func displayQuery(q load.Query) string { return displayQueryString(q.Query) }

// displayQueryString shortens the aggregate UUID so the tables stay narrow.
func displayQueryString(q string) string {
	return strings.ReplaceAll(q, load.Fleet{}.RackAggregate(), "RACK_A_AGG")
}

func msOr(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func rateOr(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

func ratio(num, den float64, ok bool) string {
	if !ok || den <= 0 || num <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f×", num/den)
}

func mib(mem map[string]int, key string, ok bool) string {
	if !ok || mem[key] == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", float64(mem[key])/1024)
}

func firstOf(lists ...[]string) string {
	for _, l := range lists {
		if len(l) > 0 {
			return l[0]
		}
	}
	return ""
}

func hasComparisons(rs []result) bool {
	for _, r := range rs {
		if len(r.Compared) > 0 {
			return true
		}
	}
	return false
}

func allErrors(rs []result) []string {
	var out []string
	for _, r := range rs {
		for _, who := range []string{"upstream", "unisched"} {
			if e, ok := r.Errors[who]; ok {
				out = append(out, fmt.Sprintf("%s at %d providers: %s", who, r.Size, e))
			}
		}
	}
	return out
}

type goal struct{ goal, measured, verdict, anchor string }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Issue 3's upstream anchor (quiet machine): middles of its measured ranges.
const (
	anchorCandidates5000MS = (964 + 1083) / 2.0
	anchorClaimsPerSec     = (43 + 52) / 2.0
	anchorProvidersPerSec  = (37 + 46) / 2.0
)

// goals judges issue 3's targets from the results; a goal without the
// measurements it needs says so instead of passing.
func goals(s summary) []goal {
	var out []goal
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	missing := "not measured in this run"
	// The largest size both servers ran.
	var common *result
	for i := range s.Results {
		r := &s.Results[i]
		if _, a := r.Reports["upstream"]; a {
			if _, b := r.Reports["unisched"]; b {
				common = r
			}
		}
	}
	var largest, smallest *result
	for i := range s.Results {
		if _, ok := findQuery(s.Results[i], "unisched", "limit1"); ok {
			if smallest == nil {
				smallest = &s.Results[i]
			}
			largest = &s.Results[i]
		}
	}

	g := goal{goal: "candidates (limit=1000) ≥ 50× faster than upstream at 5000 providers", measured: missing, verdict: "—"}
	for _, r := range s.Results {
		if r.Size != 5000 {
			continue
		}
		up, a := findQuery(r, "upstream", "limit1000")
		un, b := findQuery(r, "unisched", "limit1000")
		if a && b && un.MedianMS > 0 {
			x := up.MedianMS / un.MedianMS
			g.measured = fmt.Sprintf("%.1f ms vs %.2f ms: %.1f×", up.MedianMS, un.MedianMS, x)
			g.verdict = verdict(x >= 50)
			g.anchor = fmt.Sprintf("964–1083 ms: %.1f×", anchorCandidates5000MS/un.MedianMS)
		}
	}
	out = append(out, g)

	g = goal{goal: "candidates (limit=1000) median < 50 ms at 100,000 providers", measured: missing, verdict: "—"}
	for _, r := range s.Results {
		if r.Size != 100000 {
			continue
		}
		if un, ok := findQuery(r, "unisched", "limit1000"); ok {
			g.measured = fmt.Sprintf("median %.2f ms, p99 %.2f ms", un.MedianMS, un.P99MS)
			g.verdict = verdict(un.MedianMS < 50)
		}
	}
	out = append(out, g)

	g = goal{goal: "limit=1 cost does not grow with the fleet", measured: missing, verdict: "—"}
	if largest != nil && smallest != nil && largest != smallest {
		a, _ := findQuery(*smallest, "unisched", "limit1")
		z, _ := findQuery(*largest, "unisched", "limit1")
		g.measured = fmt.Sprintf("median %.2f ms at %d providers, %.2f ms at %d (%.1f× for %.0f× the providers)",
			a.MedianMS, smallest.Size, z.MedianMS, largest.Size, z.MedianMS/max(a.MedianMS, 0.001), float64(largest.Size)/float64(smallest.Size))
		// Allow noise and the index walk: at most twice the small-fleet time plus 1 ms.
		g.verdict = verdict(z.MedianMS <= 2*a.MedianMS+1)
	}
	out = append(out, g)

	g = goal{goal: "claims ≥ 20× upstream's throughput (8 clients)", measured: missing, verdict: "—"}
	if common != nil {
		uc, a := findClaims(common.Reports["upstream"], true, "spread")
		nc, b := findClaims(common.Reports["unisched"], true, "spread")
		if a && b && uc.ReqPerSec > 0 {
			x := nc.ReqPerSec / uc.ReqPerSec
			g.measured = fmt.Sprintf("%.1f vs %.1f requests/s at %d providers: %.1f×", nc.ReqPerSec, uc.ReqPerSec, common.Size, x)
			g.verdict = verdict(x >= 20)
			g.anchor = fmt.Sprintf("43–52 requests/s: %.1f×", nc.ReqPerSec/anchorClaimsPerSec)
		}
	}
	out = append(out, g)

	g = goal{goal: "zero over-allocation", measured: missing, verdict: "—"}
	audits, bad := 0, 0
	for _, r := range s.Results {
		if rep, ok := r.Reports["unisched"]; ok && rep.Verify != nil {
			audits++
			if !rep.Verify.OK() {
				bad++
			}
		}
	}
	if audits > 0 {
		g.measured = fmt.Sprintf("%d audits of unisched, %d failed", audits, bad)
		g.verdict = verdict(bad == 0)
	}
	out = append(out, g)

	g = goal{goal: "provider registration ≥ 20× upstream's rate", measured: missing, verdict: "—"}
	if common != nil {
		us, ns := seedRate(common.Reports["upstream"], true), seedRate(common.Reports["unisched"], true)
		if us > 0 && ns > 0 {
			g.measured = fmt.Sprintf("%.1f vs %.1f providers/s (%d → %d providers): %.1f×", ns, us,
				common.Reports["unisched"].Seed.From, common.Size, ns/us)
			g.verdict = verdict(ns/us >= 20)
			g.anchor = fmt.Sprintf("37–46 providers/s: %.1f×", ns/anchorProvidersPerSec)
		}
	}
	out = append(out, g)

	g = goal{goal: "resident memory at 100,000 providers < 2 GiB", measured: missing, verdict: "—"}
	for _, r := range s.Results {
		if rep, ok := r.Reports["unisched"]; ok && r.Size == 100000 && rep.Memory["VmRSS"] > 0 {
			g.measured = fmt.Sprintf("VmRSS %s MiB (peak %s MiB)", mib(rep.Memory, "VmRSS", true), mib(rep.Memory, "VmHWM", true))
			g.verdict = verdict(rep.Memory["VmHWM"] < 2<<20)
		}
	}
	out = append(out, g)

	g = goal{goal: "same answers as upstream", measured: missing, verdict: "—"}
	n, diff := 0, 0
	for _, r := range s.Results {
		for _, c := range r.Compared {
			n++
			if c.Error != "" || len(c.Diff) > 0 {
				diff++
			}
		}
	}
	if n > 0 {
		g.measured = fmt.Sprintf("%d comparisons, %d different", n, diff)
		g.verdict = verdict(diff == 0)
	}
	out = append(out, g)
	return out
}

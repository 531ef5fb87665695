package nova

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/tests/containers"
	"github.com/unisched/unisched/tests/novaharness"
)

// Boot-to-ACTIVE with unisched as Nova's Placement against upstream
// Placement 8.0.0 (Debian's placement-api under uwsgi, 4 workers), the
// same Nova, the same load, in rounds: each round starts one environment
// of each side in turn (unisched first in odd rounds, upstream first in
// even ones, so that a machine getting busier or quieter weighs on both
// sides alike) and, after one warm-up boot, times 20 boots of m1.tiny, 5
// at a time, each from POST /servers to the first ACTIVE seen (polled
// every 50 ms). The comparison is the median over the rounds of each
// round's ratio of medians. Run it alone (scripts/bench-nova.sh):
//
//	go test -run '^$' -bench BootToActive -benchtime 1x -timeout 150m ./tests/nova
//
// UNISCHED_NOVA_BENCH_ROUNDS sets the rounds (3). After its boots are
// timed, a unisched round gives the notify lag more deliveries: it runs
// and deletes benchContainers containers and deletes its servers (agent
// events, container notifications on the bus), then reads every
// delivered event's lag from the outbox table (delivered_at - created_at,
// the very values the histogram observed) for p50/p99 from the raw
// observations, beside the histogram's estimate.
//
// With UNISCHED_NOVA_BENCH_DOC=docs/benchmarks.md the figures replace the
// "Nova: boot to ACTIVE" section below that file's marker line.
func BenchmarkBootToActive(b *testing.B) {
	if env != nil {
		b.Fatal("a test environment runs: run the benchmark alone (-run '^$')")
	}
	const boots, parallel = 20, 5
	rounds := 3
	if v := os.Getenv("UNISCHED_NOVA_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("UNISCHED_NOVA_BENCH_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}
	// UNISCHED_NOVA_BENCH_LAG_ONLY=1 runs the unisched environments alone,
	// for the notify lag (logged per round; no comparison, no doc).
	lagOnly := os.Getenv("UNISCHED_NOVA_BENCH_LAG_ONLY") == "1"
	res := &benchRun{boots: boots, parallel: parallel, load: loadavg()}
	for i := range rounds {
		order := []string{"unisched", "upstream"}
		if i%2 == 1 {
			order = []string{"upstream", "unisched"}
		}
		rd := benchRoundResult{first: order[0], load: loadavg()}
		for _, placement := range order {
			if lagOnly && placement != "unisched" {
				continue
			}
			r, err := benchBoots(b, placement, boots, parallel)
			if err != nil {
				b.Fatalf("round %d, %s: %v", i+1, placement, err)
			}
			if placement == "unisched" {
				rd.u = r
				one := &benchRun{rounds: []benchRoundResult{{u: r}}}
				b.Logf("round %d, unisched (load now %s): median %.2fs p95 %.2fs; notify lag %s", i+1, loadavg(), r.median(), r.p95(), one.lag())
				b.Logf("round %d, unisched: slowest deliveries: %s", i+1, r.slowest(5))
			} else {
				rd.up = r
			}
		}
		if lagOnly {
			continue
		}
		res.rounds = append(res.rounds, rd)
		b.Logf("round %d (%s first, load %s, after %s): unisched median %.2fs p95 %.2fs, upstream median %.2fs p95 %.2fs, ratio %.2f",
			i+1, rd.first, rd.load, loadavg(), rd.u.median(), rd.u.p95(), rd.up.median(), rd.up.p95(), rd.ratio())
	}
	if lagOnly {
		return
	}
	res.loadAfter = loadavg()
	lag := res.lag()
	b.Logf("all rounds: unisched median %.2fs, upstream median %.2fs, median of the rounds' ratios %.2f; %s",
		res.all("unisched").median(), res.all("upstream").median(), res.ratio(), lag)
	b.ReportMetric(res.all("unisched").median(), "unisched-median-s")
	b.ReportMetric(res.all("upstream").median(), "upstream-median-s")
	b.ReportMetric(res.ratio(), "median-ratio")
	if doc := os.Getenv("UNISCHED_NOVA_BENCH_DOC"); doc != "" {
		if err := writeBenchDoc(doc, res); err != nil {
			b.Fatal(err)
		}
	}
}

// benchContainers is how many containers a unisched round runs and
// deletes after its boots, for the notify lag's sake.
const benchContainers = 10

type benchResult struct {
	samples []float64 // seconds, POST to ACTIVE
	start   time.Duration
	// unisched only: every delivered event's lag, and the histogram's
	// buckets (upper bound -> cumulative count) from /metrics.
	lags    []lagObs
	buckets map[float64]float64
}

type lagObs struct {
	id          int64
	topic, kind string // kind: an agent event's type
	attempts    int
	s           float64
}

type benchRoundResult struct {
	first string
	load  string
	u, up *benchResult
}

func (r benchRoundResult) ratio() float64 { return r.u.median() / r.up.median() }

type benchRun struct {
	boots, parallel int
	load, loadAfter string
	rounds          []benchRoundResult
}

// all pools one side's samples over the rounds.
func (r *benchRun) all(placement string) *benchResult {
	out := &benchResult{}
	for _, rd := range r.rounds {
		x := rd.up
		if placement == "unisched" {
			x = rd.u
		}
		out.samples = append(out.samples, x.samples...)
	}
	return out
}

// ratio is the median of the rounds' ratios (the middle one's mean for an
// even count).
func (r *benchRun) ratio() float64 {
	var xs []float64
	for _, rd := range r.rounds {
		xs = append(xs, rd.ratio())
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// lag summarizes the notify lag over the rounds: nearest-rank quantiles
// of the raw observations, overall and by kind, and the histogram's
// estimate of the same deliveries.
func (r *benchRun) lag() string {
	var all, agent, bus []float64
	buckets := map[float64]float64{}
	for _, rd := range r.rounds {
		for _, o := range rd.u.lags {
			all = append(all, o.s)
			if strings.HasPrefix(o.topic, "notification.") {
				bus = append(bus, o.s)
			} else {
				agent = append(agent, o.s)
			}
		}
		for bd, c := range rd.u.buckets {
			buckets[bd] += c
		}
	}
	if len(all) == 0 {
		return "not measured: no delivered event in the outbox"
	}
	ms := func(x float64) string { return fmt.Sprintf("%.1f ms", x*1000) }
	part := func(name string, xs []float64) string {
		if len(xs) == 0 {
			return ""
		}
		return fmt.Sprintf("; %s: %d, p50 %s, p99 %s, max %s", name, len(xs),
			ms(quantile(xs, 0.5)), ms(quantile(xs, 0.99)), ms(slices.Max(xs)))
	}
	out := fmt.Sprintf("%d deliveries: p50 %s, p90 %s, p99 %s, max %s, %d over 100 ms",
		len(all), ms(quantile(all, 0.5)), ms(quantile(all, 0.9)), ms(quantile(all, 0.99)), ms(slices.Max(all)), countOver(all, 0.1))
	out += part("agent events", agent) + part("bus notifications", bus)
	if h := histQuantiles(buckets); h != "" {
		out += "; the histogram's estimate: " + h
	}
	return out
}

// slowest names the n slowest deliveries (id, topic, agent event type,
// attempts, lag): where a tail comes from.
func (r *benchResult) slowest(n int) string {
	obs := slices.Clone(r.lags)
	slices.SortFunc(obs, func(a, b lagObs) int { return cmp.Compare(b.s, a.s) })
	var parts []string
	for _, o := range obs[:min(n, len(obs))] {
		parts = append(parts, fmt.Sprintf("#%d %s %s (attempts %d) %.1f ms", o.id, o.topic, o.kind, o.attempts, o.s*1000))
	}
	return strings.Join(parts, "; ")
}

// lagBrief is one round's notify lag for the rounds' table.
func (r *benchResult) lagBrief() string {
	xs := make([]float64, 0, len(r.lags))
	for _, o := range r.lags {
		xs = append(xs, o.s)
	}
	if len(xs) == 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.1f ms / %.1f ms (%d, %d)", quantile(xs, 0.5)*1000, quantile(xs, 0.99)*1000, len(xs), countOver(xs, 0.1))
}

func countOver(xs []float64, v float64) int {
	n := 0
	for _, x := range xs {
		if x > v {
			n++
		}
	}
	return n
}

func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	// nearest rank
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func (r *benchResult) median() float64 { return quantile(r.samples, 0.5) }
func (r *benchResult) p95() float64    { return quantile(r.samples, 0.95) }

func benchBoots(b *testing.B, placement string, boots, parallel int) (*benchResult, error) {
	dir := ""
	if a := os.Getenv("ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "nova-bench-"+placement)
		_ = os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t0 := time.Now()
	e, err := novaharness.Start(ctx, novaharness.Options{Dir: dir, Computes: computes(), ExtraNovaConf: capacityConf, Placement: placement})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := e.Close(); err != nil {
			b.Errorf("closing the %s environment: %v", placement, err)
		}
	}()
	r := &benchResult{start: time.Since(t0)}
	boot := func(name string) (string, float64, error) {
		var created struct {
			Server struct {
				ID string `json:"id"`
			} `json:"server"`
		}
		t0 := time.Now()
		body := map[string]any{"server": map[string]any{"name": name, "imageRef": e.ImageID, "flavorRef": "1", "networks": "none"}}
		if _, err := e.Nova(ctx, http.MethodPost, "/servers", body, &created); err != nil {
			return "", 0, err
		}
		for {
			s, err := e.GetServer(ctx, created.Server.ID)
			if err != nil {
				return "", 0, err
			}
			switch s.Status {
			case "ACTIVE":
				return created.Server.ID, time.Since(t0).Seconds(), nil
			case "ERROR":
				return "", 0, fmt.Errorf("%s went to ERROR: %v", name, s.Fault)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	warm, _, err := boot("warmup")
	if err != nil {
		return nil, err
	}
	ids := []string{warm}
	var mu sync.Mutex
	var errs []error
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				id, took, err := boot(fmt.Sprintf("bench-%02d", i))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					r.samples = append(r.samples, took)
					ids = append(ids, id)
				}
				mu.Unlock()
			}
		})
	}
	for i := range boots {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d boots failed, first: %w", len(errs), errs[0])
	}
	if placement == "unisched" {
		if err := lagLoad(ctx, e, ids, parallel); err != nil {
			return nil, err
		}
		if r.lags, err = outboxLags(ctx, e); err != nil {
			return nil, err
		}
		r.buckets = notifyLag(ctx, e)
	}
	return r, nil
}

// lagLoad gives the notify lag more deliveries once the boots are timed:
// benchContainers shared containers run and deleted (create, start and
// delete events to the agents; their notifications on the bus), then the
// servers deleted (each release an event to its host's agent), parallel
// at a time, and waits until the outbox has delivered everything.
func lagLoad(ctx context.Context, e *novaharness.Env, servers []string, parallel int) error {
	z := containers.NewZun(e.ContainerURL, novaharness.AdminToken)
	var jobs []func() error
	for i := range benchContainers {
		jobs = append(jobs, func() error {
			c, err := z.Create(ctx, map[string]any{"image": e.Image, "name": fmt.Sprintf("lag-%02d", i),
				"command": []string{"sleep", "3600"}, "cpu": 0.1, "memory": 16}, true)
			if err != nil {
				return err
			}
			if _, err := z.WaitStatus(ctx, c.UUID, "Running"); err != nil {
				return err
			}
			if err := z.Delete(ctx, c.UUID, "force=true"); err != nil {
				return err
			}
			return z.WaitGone(ctx, c.UUID)
		})
	}
	for _, id := range servers {
		jobs = append(jobs, func() error {
			_, err := e.DeleteServer(ctx, id)
			return err
		})
	}
	slots := make(chan struct{}, parallel)
	errs := make(chan error, len(jobs))
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			errs <- job()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("the notify lag's extra load: %w", err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int
		if err := e.DB.QueryRow(ctx, `SELECT count(*) FROM bridge_outbox WHERE delivered_at IS NULL`).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d outbox events still undelivered", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// outboxLags reads every delivered event's lag from serve's outbox: the
// relay stores each event's own delivery time, so delivered_at -
// created_at is exactly what it observed into the histogram (discarded
// events are not delivered and not observed).
func outboxLags(ctx context.Context, e *novaharness.Env) ([]lagObs, error) {
	rows, err := e.DB.Query(ctx, `SELECT id, topic, COALESCE(payload->>'type', ''), attempts,
       EXTRACT(EPOCH FROM delivered_at - created_at)::float8 FROM bridge_outbox
WHERE delivered_at IS NOT NULL AND COALESCE(last_error, '') NOT LIKE 'discarded:%' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("reading the outbox's lags: %w", err)
	}
	defer rows.Close()
	var out []lagObs
	for rows.Next() {
		var o lagObs
		if err := rows.Scan(&o.id, &o.topic, &o.kind, &o.attempts, &o.s); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// notifyLag reads unisched_notify_lag_seconds from serve's /metrics: the
// cumulative count per bucket bound, all topics together (nil when the
// metric is not there).
func notifyLag(ctx context.Context, e *novaharness.Env) map[float64]float64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ContainerURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	buckets := map[float64]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "unisched_notify_lag_seconds_bucket") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		i := strings.Index(f[0], `le="`)
		if i < 0 {
			continue
		}
		le := f[0][i+4:]
		le = le[:strings.IndexByte(le, '"')]
		bound := math.Inf(1)
		if le != "+Inf" {
			if bound, err = strconv.ParseFloat(le, 64); err != nil {
				continue
			}
		}
		buckets[bound] += v
	}
	return buckets
}

// histQuantiles estimates p50 and p99 from cumulative buckets as
// Prometheus' histogram_quantile does (linear inside a bucket); "" when
// empty.
func histQuantiles(buckets map[float64]float64) string {
	count := buckets[math.Inf(1)]
	if count == 0 {
		return ""
	}
	var bounds []float64
	for k := range buckets {
		bounds = append(bounds, k)
	}
	slices.Sort(bounds)
	q := func(p float64) string {
		want := p * count
		prevB, prevC := 0.0, 0.0
		for _, bd := range bounds {
			c := buckets[bd]
			if c >= want {
				if math.IsInf(bd, 1) {
					return fmt.Sprintf("> %.0f ms", prevB*1000)
				}
				frac := 0.0
				if c > prevC {
					frac = (want - prevC) / (c - prevC)
				}
				return fmt.Sprintf("%.1f ms", (prevB+(bd-prevB)*frac)*1000)
			}
			prevB, prevC = bd, c
		}
		return "?"
	}
	return fmt.Sprintf("p50 %s, p99 %s over %d", q(0.5), q(0.99), int(count))
}

const benchMarker = "<!-- Everything above this line is written by tests/bench; everything below it is kept. -->"
const benchHeading = "## Nova: boot to ACTIVE"

// writeBenchDoc replaces (or appends) the section below the marker. A
// paragraph of the old section starting "Runs so far" (the history table
// kept by hand) is carried over, after the new figures.
func writeBenchDoc(path string, res *benchRun) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	i := strings.Index(doc, benchMarker)
	if i < 0 {
		return fmt.Errorf("%s has no marker line %q", path, benchMarker)
	}
	head, tail := doc[:i+len(benchMarker)], doc[i+len(benchMarker):]
	history := ""
	if j := strings.Index(tail, "\n"+benchHeading+"\n"); j >= 0 {
		rest := tail[j+1+len(benchHeading):]
		section := rest
		if k := strings.Index(rest, "\n## "); k >= 0 {
			section = rest[:k]
			tail = tail[:j] + rest[k:]
		} else {
			tail = tail[:j] + "\n"
		}
		if h := strings.Index(section, "\nRuns so far"); h >= 0 {
			history = section[h+1:]
			if r := strings.Index(history, "\nReproduce:"); r >= 0 {
				history = history[:r]
			}
			history = strings.TrimSpace(history) + "\n\n"
		}
	}
	fmtS := func(xs []float64) string {
		s := slices.Clone(xs)
		slices.Sort(s)
		parts := make([]string, len(s))
		for i, x := range s {
			parts[i] = fmt.Sprintf("%.2f", x)
		}
		return strings.Join(parts, " ")
	}
	rev, _ := gitRev()
	u, up := res.all("unisched"), res.all("upstream")
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s\n\n", benchHeading)
	fmt.Fprintf(&sb, "Written by `scripts/bench-nova.sh` (tests/nova `BenchmarkBootToActive`) on %s, revision %s, %d cores (%s), load average before the run %s, after it %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), rev, runtime.NumCPU(), runtime.GOARCH, res.load, res.loadAfter)
	fmt.Fprintf(&sb, "Real Nova Zed (Debian's packages, tests/novaharness: api, conductor, scheduler, two fake computes, RabbitMQ, Glance) with, as its Placement, either unisched (`serve` with the container API, the Nova proxy, the notification consumer and an agent per compute) or upstream Placement 8.0.0 (Debian's placement-api under uwsgi, 4 processes). %d rounds; each round starts one environment of each side in turn (unisched first in odd rounds, upstream first in even ones) and, after a warm-up boot, times %d boots of m1.tiny (1 VCPU, 512 MB, 1 GB), %d at a time, each from `POST /servers` to the first `ACTIVE` seen (polled every 50 ms).\n\n", len(res.rounds), res.boots, res.parallel)
	sb.WriteString("| round (first) | load before | unisched median / p95 | upstream median / p95 | median ratio | notify lag p50 / p99 (deliveries, over 100 ms) |\n|---|---|---|---|---|---|\n")
	for i, rd := range res.rounds {
		fmt.Fprintf(&sb, "| %d (%s) | %s | %.2f s / %.2f s | %.2f s / %.2f s | %.2f | %s |\n", i+1, rd.first, rd.load,
			rd.u.median(), rd.u.p95(), rd.up.median(), rd.up.p95(), rd.ratio(), rd.u.lagBrief())
	}
	fmt.Fprintf(&sb, "| all (%d boots a side) | | %.2f s / %.2f s | %.2f s / %.2f s | %.2f (median of the rounds' ratios) | below |\n\n",
		len(u.samples), u.median(), u.p95(), up.median(), up.p95(), res.ratio())
	fmt.Fprintf(&sb, "Below 1: unisched faster; the goal is no slower than upstream.\n\n")
	fmt.Fprintf(&sb, "Notify lag (`unisched_notify_lag_seconds`: from the event's INSERT (for a VM claim the last statement of its transaction) to the consumer's answer; an agent answers once it journaled the event (fsync), before Docker applies it, the bus once it confirmed the publish), every delivery of the unisched rounds: the boots' claims (an event only when a claim changes a host's shared pool, which these shared VMs on hosts with separate pools never do), then per round %d containers run and deleted and the servers deleted, read from the outbox table (`delivered_at - created_at`, the values the histogram observed): %s.\n\n", benchContainers, res.lag())
	fmt.Fprintf(&sb, "Samples (s), unisched: %s\n\nSamples (s), upstream: %s\n\n", fmtS(u.samples), fmtS(up.samples))
	sb.WriteString(history)
	sb.WriteString("Reproduce: `scripts/bench-nova.sh` (installs placement-api if missing, needs the packages of tests/novaharness/install.sh, root for the private dockerd; about 3 minutes a round on a quiet machine; `UNISCHED_NOVA_BENCH_ROUNDS` sets the rounds). Most of a boot is Nova's own work on this machine (RPC, the fake driver, the periodic polls); Placement's share is a few calls per boot.\n")
	rest := strings.TrimLeft(tail, "\n")
	if rest != "" {
		rest = "\n" + rest
	}
	return os.WriteFile(path, []byte(head+"\n\n"+sb.String()+rest), 0o644)
}

func loadavg() string {
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

func gitRev() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?", err
	}
	return strings.TrimSpace(string(out)), nil
}

package nova

import (
	"bufio"
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

	"github.com/unisched/unisched/tests/novaharness"
)

// Boot-to-ACTIVE with unisched as Nova's Placement against upstream
// Placement 8.0.0 (Debian's placement-api under uwsgi, 4 workers), the
// same Nova, the same load: after one warm-up boot, 20 boots of m1.tiny,
// 5 at a time, each timed from POST /servers to the first ACTIVE seen
// (polled every 50 ms). One environment at a time: unisched's first, then
// upstream's. Run it alone (scripts/bench-nova.sh):
//
//	go test -run '^$' -bench BootToActive -benchtime 1x -timeout 60m ./tests/nova
//
// With UNISCHED_NOVA_BENCH_DOC=docs/benchmarks.md the figures replace the
// "Nova: boot to ACTIVE" section below that file's marker line.
func BenchmarkBootToActive(b *testing.B) {
	if env != nil {
		b.Fatal("a test environment runs: run the benchmark alone (-run '^$')")
	}
	const boots, parallel = 20, 5
	results := map[string]*benchResult{}
	for _, placement := range []string{"unisched", "upstream"} {
		r, err := benchBoots(b, placement, boots, parallel)
		if err != nil {
			b.Fatalf("%s: %v", placement, err)
		}
		results[placement] = r
		b.Logf("%s: median %.2fs p95 %.2fs (n=%d) %s", placement, r.median(), r.p95(), len(r.samples), r.lag)
	}
	u, up := results["unisched"], results["upstream"]
	b.ReportMetric(u.median(), "unisched-median-s")
	b.ReportMetric(up.median(), "upstream-median-s")
	b.ReportMetric(u.median()/up.median(), "median-ratio")
	if doc := os.Getenv("UNISCHED_NOVA_BENCH_DOC"); doc != "" {
		if err := writeBenchDoc(doc, u, up, boots, parallel); err != nil {
			b.Fatal(err)
		}
	}
}

type benchResult struct {
	samples []float64 // seconds, POST to ACTIVE
	start   time.Duration
	lag     string // notify lag from /metrics ("" upstream)
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
	boot := func(name string) (float64, error) {
		var created struct {
			Server struct {
				ID string `json:"id"`
			} `json:"server"`
		}
		t0 := time.Now()
		body := map[string]any{"server": map[string]any{"name": name, "imageRef": e.ImageID, "flavorRef": "1", "networks": "none"}}
		if _, err := e.Nova(ctx, http.MethodPost, "/servers", body, &created); err != nil {
			return 0, err
		}
		for {
			s, err := e.GetServer(ctx, created.Server.ID)
			if err != nil {
				return 0, err
			}
			switch s.Status {
			case "ACTIVE":
				return time.Since(t0).Seconds(), nil
			case "ERROR":
				return 0, fmt.Errorf("%s went to ERROR: %v", name, s.Fault)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if _, err := boot("warmup"); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var errs []error
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				took, err := boot(fmt.Sprintf("bench-%02d", i))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					r.samples = append(r.samples, took)
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
		r.lag = notifyLag(ctx, e)
	}
	return r, nil
}

// notifyLag reads unisched_notify_lag_seconds from serve's /metrics and
// estimates p50 and p99 from its buckets (all topics together); "" when
// the metric is not there.
func notifyLag(ctx context.Context, e *novaharness.Env) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ContainerURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	buckets := map[float64]float64{}
	var count float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "unisched_notify_lag_seconds") {
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
		switch {
		case strings.HasPrefix(f[0], "unisched_notify_lag_seconds_bucket"):
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
		case strings.HasPrefix(f[0], "unisched_notify_lag_seconds_count"):
			count += v
		}
	}
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
				// linear inside the bucket, as Prometheus' histogram_quantile
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
	return fmt.Sprintf("notify lag over %d deliveries: p50 %s, p99 %s", int(count), q(0.5), q(0.99))
}

const benchMarker = "<!-- Everything above this line is written by tests/bench; everything below it is kept. -->"
const benchHeading = "## Nova: boot to ACTIVE"

// writeBenchDoc replaces (or appends) the section below the marker.
func writeBenchDoc(path string, u, up *benchResult, boots, parallel int) error {
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
	if j := strings.Index(tail, "\n"+benchHeading+"\n"); j >= 0 {
		rest := tail[j+1+len(benchHeading):]
		if k := strings.Index(rest, "\n## "); k >= 0 {
			tail = tail[:j] + rest[k:]
		} else {
			tail = tail[:j] + "\n"
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
	lag := u.lag
	if lag == "" {
		lag = "not measured: serve exposed no unisched_notify_lag_seconds on /metrics at this revision"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s\n\n", benchHeading)
	fmt.Fprintf(&sb, "Written by `scripts/bench-nova.sh` (tests/nova `BenchmarkBootToActive`) on %s, revision %s, %d cores (%s), load before the run %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), rev, runtime.NumCPU(), runtime.GOARCH, loadavg())
	fmt.Fprintf(&sb, "Real Nova Zed (Debian's packages, tests/novaharness: api, conductor, scheduler, two fake computes, RabbitMQ, Glance) with, as its Placement, either unisched (`serve` with the container API, the Nova proxy, the notification consumer and an agent per compute) or upstream Placement 8.0.0 (Debian's placement-api under uwsgi, 4 processes), one environment after the other on the same machine. After a warm-up boot, %d boots of m1.tiny (1 VCPU, 512 MB, 1 GB), %d at a time, each timed from `POST /servers` to the first `ACTIVE` seen (polled every 50 ms).\n\n", boots, parallel)
	sb.WriteString("| Placement | boots | median | p95 | environment start |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| unisched | %d | %.2f s | %.2f s | %.0f s |\n", len(u.samples), u.median(), u.p95(), u.start.Seconds())
	fmt.Fprintf(&sb, "| upstream 8.0.0 | %d | %.2f s | %.2f s | %.0f s |\n\n", len(up.samples), up.median(), up.p95(), up.start.Seconds())
	fmt.Fprintf(&sb, "Ratio unisched / upstream: median %.2f, p95 %.2f (below 1: unisched faster; goal: no slower than upstream).\n\n", u.median()/up.median(), u.p95()/up.p95())
	fmt.Fprintf(&sb, "Notify lag (outbox commit to delivery, `unisched_notify_lag_seconds`, estimated from the histogram's buckets after the unisched run): %s.\n\n", lag)
	fmt.Fprintf(&sb, "Samples (s), unisched: %s\n\nSamples (s), upstream: %s\n\n", fmtS(u.samples), fmtS(up.samples))
	sb.WriteString("Reproduce: `scripts/bench-nova.sh` (installs placement-api if missing, needs the packages of tests/novaharness/install.sh, root for the private dockerd; about 10 minutes). Most of a boot is Nova's own work on this machine (RPC, the fake driver, the periodic polls); Placement's share is a few calls per boot.\n")
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

package replicas

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/tests/containers"
)

// placementClient speaks Placement 1.39 through the balancer.
type placementClient struct {
	base string
	http *http.Client
}

type apiResult struct {
	status int
	body   []byte
}

func (p *placementClient) do(ctx context.Context, method, path string, body any) (apiResult, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiResult{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, rd)
	if err != nil {
		return apiResult{}, err
	}
	req.Header.Set("X-Auth-Token", "admin")
	req.Header.Set("OpenStack-API-Version", "placement 1.39")
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return apiResult{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return apiResult{status: resp.StatusCode, body: b}, err
}

// must is do, failing unless the status is one of want.
func (p *placementClient) must(ctx context.Context, t *testing.T, method, path string, body any, want ...int) []byte {
	t.Helper()
	r, err := p.do(ctx, method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if r.status == w {
			return r.body
		}
	}
	t.Fatalf("%s %s: %d %s; want %v", method, path, r.status, r.body, want)
	return nil
}

// conflictCode checks that a 409 carries Placement's error body and
// returns its code.
func conflictCode(body []byte) (string, error) {
	var e struct {
		Errors []struct {
			Status    int    `json:"status"`
			Title     string `json:"title"`
			Detail    string `json:"detail"`
			Code      string `json:"code"`
			RequestID string `json:"request_id"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return "", fmt.Errorf("409 body is not Placement's error body: %q", body)
	}
	if len(e.Errors) != 1 || e.Errors[0].Status != 409 || e.Errors[0].Title != "Conflict" ||
		!strings.HasPrefix(e.Errors[0].Code, "placement.") || e.Errors[0].Detail == "" || e.Errors[0].RequestID == "" {
		return "", fmt.Errorf("409 body is not Placement's error body: %s", body)
	}
	return e.Errors[0].Code, nil
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// TestClaimsAcrossReplicas: allocation writes through the balancer (so
// spread over three replicas) race for little capacity: Placement PUT
// /allocations/{consumer} with consumer generations on plain providers and
// on the agents' hosts, and Zun container creates claiming the same hosts'
// memory. Afterwards no provider is over capacity, every refusal was a 409
// with Placement's error body (the containers refused go to Error with
// Zun's no-host reason), and each provider's usages are exactly the sum of
// the allocations of the consumers the test wrote.
func TestClaimsAcrossReplicas(t *testing.T) {
	const (
		memMB     = 32
		perHost   = 8 // containers of memMB a host fits when nothing else uses it
		creates   = 24
		consumers = 40
		writers   = 12
		opsEach   = 40
	)
	hosts := []containers.AgentSpec{}
	for _, h := range []string{"claim-a", "claim-b"} {
		hosts = append(hosts, containers.AgentSpec{Host: h,
			Cells:      []agentproto.Cell{{ID: 0, CPUs: "0", MemoryMB: perHost * memMB / 2}, {ID: 1, CPUs: "1", MemoryMB: perHost * memMB / 2}},
			SharedCPUs: "0,1", DiskGB: 10, CPUAllocationRatio: 32})
	}
	c := Start(t, Options{Replicas: 3, Agents: hosts})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	pc := &placementClient{base: c.PlacementURL, http: &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}

	// Providers: three plain ones (VCPU 6, MEMORY_MB 600) and the hosts'.
	capacity := map[string]map[string]int{} // provider uuid -> class -> capacity
	var plain, hostRPs []string
	for i := range 3 {
		var rp struct {
			UUID string `json:"uuid"`
		}
		if err := json.Unmarshal(pc.must(ctx, t, "POST", "/resource_providers", map[string]any{"name": fmt.Sprintf("claims-rp-%d", i)}, 200), &rp); err != nil {
			t.Fatal(err)
		}
		pc.must(ctx, t, "PUT", "/resource_providers/"+rp.UUID+"/inventories", map[string]any{
			"resource_provider_generation": 0,
			"inventories":                  map[string]any{"VCPU": map[string]any{"total": 6}, "MEMORY_MB": map[string]any{"total": 600}},
		}, 200)
		plain = append(plain, rp.UUID)
	}
	for _, h := range hosts {
		u, err := c.Placement.ProviderUUID(ctx, h.Host)
		if err != nil {
			t.Fatal(err)
		}
		hostRPs = append(hostRPs, u)
	}
	for _, rp := range append(append([]string{}, plain...), hostRPs...) {
		var inv struct {
			Inventories map[string]containers.Inventory `json:"inventories"`
		}
		if err := json.Unmarshal(pc.must(ctx, t, "GET", "/resource_providers/"+rp+"/inventories", nil, 200), &inv); err != nil {
			t.Fatal(err)
		}
		capacity[rp] = map[string]int{}
		for class, i := range inv.Inventories {
			capacity[rp][class] = int(float64(i.Total-i.Reserved) * i.AllocationRatio)
		}
	}
	if capacity[hostRPs[0]]["MEMORY_MB"] != perHost*memMB {
		t.Fatalf("host memory capacity %d, want %d", capacity[hostRPs[0]]["MEMORY_MB"], perHost*memMB)
	}

	var ids []string
	for range consumers {
		ids = append(ids, newUUID())
	}
	var (
		mu        sync.Mutex
		outcomes  = map[string]int{}
		failures  []string
		createdAs = make([]string, creates)
	)
	note := func(k string) { mu.Lock(); outcomes[k]++; mu.Unlock() }
	fail := func(f string, a ...any) { mu.Lock(); failures = append(failures, fmt.Sprintf(f, a...)); mu.Unlock() }
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := mrand.New(mrand.NewPCG(uint64(w), 7))
			<-start
			for range opsEach {
				id := ids[rnd.IntN(len(ids))]
				if rnd.IntN(6) == 0 {
					r, err := pc.do(ctx, "DELETE", "/allocations/"+id, nil)
					switch {
					case err != nil:
						fail("DELETE %s: %v", id, err)
					case r.status == 204:
						note("delete 204")
					case r.status == 404:
						note("delete 404")
					case r.status == 409:
						if code, err := conflictCode(r.body); err != nil {
							fail("DELETE %s: %v", id, err)
						} else {
							note("delete 409 " + code)
						}
					default:
						fail("DELETE %s: %d %s", id, r.status, r.body)
					}
					continue
				}
				r, err := pc.do(ctx, "GET", "/allocations/"+id, nil)
				if err != nil || r.status != 200 {
					fail("GET /allocations/%s: %v %d %s", id, err, r.status, r.body)
					continue
				}
				var cur struct {
					Generation *int `json:"consumer_generation"`
				}
				if err := json.Unmarshal(r.body, &cur); err != nil {
					fail("GET /allocations/%s: %v", id, err)
					continue
				}
				alloc := map[string]any{}
				if rnd.IntN(2) == 0 {
					alloc[plain[rnd.IntN(len(plain))]] = map[string]any{"resources": map[string]int{"VCPU": 1 + rnd.IntN(2), "MEMORY_MB": 100 * (1 + rnd.IntN(2))}}
				} else {
					alloc[hostRPs[rnd.IntN(len(hostRPs))]] = map[string]any{"resources": map[string]int{"MEMORY_MB": memMB * (1 + rnd.IntN(2))}}
				}
				r, err = pc.do(ctx, "PUT", "/allocations/"+id, map[string]any{
					"allocations": alloc, "project_id": "claims", "user_id": "claims",
					"consumer_generation": cur.Generation, "consumer_type": "INSTANCE",
				})
				switch {
				case err != nil:
					fail("PUT %s: %v", id, err)
				case r.status == 204:
					note("put 204")
				case r.status == 409:
					if code, err := conflictCode(r.body); err != nil {
						fail("PUT %s: %v", id, err)
					} else {
						note("put 409 " + code)
					}
				default:
					fail("PUT %s: %d %s", id, r.status, r.body)
				}
			}
		}()
	}
	zun := containers.NewZun(c.ContainerURL, containers.AdminToken)
	zun.HTTP = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: creates}}
	for i := range creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ct, err := zun.Create(ctx, map[string]any{"image": c.Image, "name": fmt.Sprintf("claim-%02d", i),
				"command": []string{"sleep", "3600"}, "cpu": 0.1, "memory": memMB}, true)
			if err != nil {
				fail("create %d: %v", i, err)
				return
			}
			createdAs[i] = ct.UUID
			note("create " + ct.Status)
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d Placement writes and %d creates in %s: %v", writers*opsEach, creates, time.Since(began).Round(time.Millisecond), outcomes)
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		t.Fatal(c.Logs(30))
	}
	if outcomes["put 204"] == 0 || outcomes["put 409 placement.undefined_code"]+outcomes["put 409 placement.concurrent_update"] == 0 {
		t.Fatalf("the race did not both succeed and conflict: %v", outcomes)
	}

	// Containers settle: each either holds a host (Running) or is in
	// Error with Zun's no-host reason.
	var list []containers.Container
	if err := containers.Eventually(ctx, 5*time.Minute, func(ctx context.Context) error {
		var err error
		if list, err = c.Zun.List(ctx, "limit=1000"); err != nil {
			return err
		}
		n := map[string]int{}
		for _, ct := range list {
			n[ct.Status]++
		}
		if len(list) != creates || n["Running"]+n["Error"] != creates {
			return fmt.Errorf("%d containers, %v: not settled", len(list), n)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs(30))
	}
	running := 0
	for _, ct := range list {
		if ct.Status == "Error" {
			if !strings.HasPrefix(ct.StatusReason, "There are not enough hosts available.") || ct.HostName() != "" {
				t.Errorf("%s in Error on %q: %q; want Zun's no-host reason and no host", ct.Name, ct.HostName(), ct.StatusReason)
			}
			continue
		}
		running++
	}

	// Usages: within capacity, and the sum of the allocations the test's
	// consumers hold (Placement consumers and containers) — nothing more.
	sum := map[string]map[string]int{}
	for _, id := range append(append([]string{}, ids...), createdAs...) {
		allocs, _, err := c.Placement.Allocations(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for rp, res := range allocs {
			if sum[rp] == nil {
				sum[rp] = map[string]int{}
			}
			for class, n := range res {
				sum[rp][class] += n
			}
		}
	}
	rps := make([]string, 0, len(capacity))
	for rp := range capacity {
		rps = append(rps, rp)
	}
	sort.Strings(rps)
	for _, rp := range rps {
		var u struct {
			Usages map[string]int `json:"usages"`
		}
		if err := json.Unmarshal(pc.must(ctx, t, "GET", "/resource_providers/"+rp+"/usages", nil, 200), &u); err != nil {
			t.Fatal(err)
		}
		for class, used := range u.Usages {
			if used > capacity[rp][class] {
				t.Errorf("provider %s: %s used %d > capacity %d", rp, class, used, capacity[rp][class])
			}
			if used != sum[rp][class] {
				t.Errorf("provider %s: %s usage %d, the test's consumers hold %d", rp, class, used, sum[rp][class])
			}
		}
		t.Logf("provider %s: usages %v capacity %v", rp, u.Usages, capacity[rp])
	}
	t.Logf("%d of %d containers running", running, creates)
	if running == 0 {
		t.Error("no container got a host")
	}
	c.checkSpread(t)
}

var servedBy = regexp.MustCompile(`\b(placement|container)/(unisched-r[0-9]+) `)

// checkSpread reads haproxy's log: every replica answered requests of both
// frontends.
func (c *Cluster) checkSpread(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(c.Balancer.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, m := range servedBy.FindAllStringSubmatch(string(b), -1) {
		n[m[1]+"/"+m[2]]++
	}
	t.Logf("requests per backend/replica (haproxy's log): %v", n)
	for _, r := range c.Replicas {
		for _, be := range []string{"placement", "container"} {
			if n[be+"/"+r.Name] == 0 {
				t.Errorf("%s answered no %s request through the balancer", r.Name, be)
			}
		}
	}
}

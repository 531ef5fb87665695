package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

// The write-path benchmarks drive the whole server (HTTP, JSON, schema,
// PostgreSQL) with benchClients concurrent clients, as issue 3's claim and
// registration measurements do, and report requests per second.
//
//	go test ./placement -run '^$' -bench 'Claim|Register' -benchtime 2000x
const benchClients = 8

// benchServer is a server on a fresh database and a client that keeps one
// connection per concurrent caller alive (the default transport keeps two,
// which would make most requests open a new connection).
type benchServer struct {
	srv    *httptest.Server
	client *http.Client
}

func newBenchServer(b *testing.B) *benchServer {
	b.Helper()
	pool := pgtest.Pool(b)
	if err := store.EnsureStandard(context.Background(), pool); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Pool: pool}))
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConns: 2 * benchClients, MaxIdleConnsPerHost: 2 * benchClients, IdleConnTimeout: time.Minute}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchServer{srv: srv, client: &http.Client{Transport: tr}}
}

// send makes one request and returns its status and body.
func (s *benchServer) send(method, path, mv, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Auth-Token", "admin")
	req.Header.Set("OpenStack-API-Version", "placement "+mv)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expect is send that fails on any status but want.
func (s *benchServer) expect(method, path, mv, body string, want int) (string, error) {
	code, out, err := s.send(method, path, mv, body)
	if err != nil {
		return "", err
	}
	if code != want {
		return "", fmt.Errorf("%s %s: %d %s", method, path, code, out)
	}
	return out, nil
}

// register creates a provider the way a compute node does: POST, PUT
// inventories, PUT traits, each at the generation the previous answer gave.
// scale multiplies the inventory totals of issue 3's compute node.
func (s *benchServer) register(name string, scale int) error {
	u := uuid.NewString()
	if _, err := s.expect("POST", "/resource_providers", "1.20", fmt.Sprintf(`{"name": %q, "uuid": %q}`, name, u), 200); err != nil {
		return err
	}
	out, err := s.expect("PUT", "/resource_providers/"+u+"/inventories", "1.39", fmt.Sprintf(`{"resource_provider_generation": 0,
		"inventories": {"VCPU": {"total": %d, "allocation_ratio": 4.0, "max_unit": 64},
		"MEMORY_MB": {"total": %d, "max_unit": 262144}, "DISK_GB": {"total": %d, "max_unit": 2000}}}`,
		64*scale, 262144*scale, 2000*scale), 200)
	if err != nil {
		return err
	}
	var inv struct {
		Generation int `json:"resource_provider_generation"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		return err
	}
	_, err = s.expect("PUT", "/resource_providers/"+u+"/traits", "1.39",
		fmt.Sprintf(`{"resource_provider_generation": %d, "traits": ["HW_CPU_X86_SSE42", "HW_CPU_X86_AVX2"]}`, inv.Generation), 200)
	return err
}

// runClients calls op(i) for i in [0, n) from benchClients goroutines and
// reports requests per second (perOp requests each).
func runClients(b *testing.B, n, perOp int, op func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.ReportMetric(float64(n*perOp)/elapsed.Seconds(), "req/s")
}

// BenchmarkRegisterProvider: one op is a provider registered with three
// requests.
func BenchmarkRegisterProvider(b *testing.B) {
	s := newBenchServer(b)
	runClients(b, b.N, 3, func(i int) error { return s.register(fmt.Sprintf("bench-%d", i), 1) })
}

// BenchmarkClaim: one op is PUT /allocations for a new consumer on one of
// providers providers (large enough never to fill). Spread spreads the
// claims over many providers; Contended sends them all to two.
func BenchmarkClaim(b *testing.B) {
	for _, bc := range []struct {
		name      string
		providers int
	}{{"Spread", 64}, {"Contended", 2}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newBenchServer(b)
			uuids := make([]string, bc.providers)
			for i := range uuids {
				if err := s.register(fmt.Sprintf("claim-%d", i), 1000); err != nil {
					b.Fatal(err)
				}
			}
			out, err := s.expect("GET", "/resource_providers", "1.39", "", 200)
			if err != nil {
				b.Fatal(err)
			}
			var list struct {
				RPs []struct {
					UUID string `json:"uuid"`
				} `json:"resource_providers"`
			}
			if err := json.Unmarshal([]byte(out), &list); err != nil {
				b.Fatal(err)
			}
			for i := range uuids {
				uuids[i] = list.RPs[i].UUID
			}
			runClients(b, b.N, 1, func(i int) error {
				body := fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}}},
					"project_id": "p", "user_id": "u", "consumer_generation": null, "consumer_type": "INSTANCE"}`, uuids[i%len(uuids)])
				_, err := s.expect("PUT", "/allocations/"+uuid.NewString(), "1.39", body, 204)
				return err
			})
		})
	}
}

// BenchmarkPutTraits: one op is PUT /resource_providers/{uuid}/traits
// changing the trait set of one of the client's own providers.
func BenchmarkPutTraits(b *testing.B) {
	s := newBenchServer(b)
	uuids := make([]string, benchClients*4)
	for i := range uuids {
		uuids[i] = uuid.NewString()
		if _, err := s.expect("POST", "/resource_providers", "1.20",
			fmt.Sprintf(`{"name": "traits-%d", "uuid": %q}`, i, uuids[i]), 200); err != nil {
			b.Fatal(err)
		}
	}
	gens := make([]int, len(uuids))
	locks := make([]sync.Mutex, len(uuids))
	sets := []string{`["HW_CPU_X86_SSE42"]`, `["HW_CPU_X86_SSE42", "HW_CPU_X86_AVX2"]`}
	runClients(b, b.N, 1, func(i int) error {
		// A provider's writes are serialized so each knows its generation.
		k := i % len(uuids)
		locks[k].Lock()
		defer locks[k].Unlock()
		_, err := s.expect("PUT", "/resource_providers/"+uuids[k]+"/traits", "1.39",
			fmt.Sprintf(`{"resource_provider_generation": %d, "traits": %s}`, gens[k], sets[gens[k]%2]), 200)
		gens[k]++
		return err
	})
}

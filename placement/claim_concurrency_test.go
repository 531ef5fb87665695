package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// raceRequest is one request of a race and its answer.
type raceRequest struct {
	method, path, mv, body string
	status                 int
	answer                 string
}

// raceAll sends every request at once and fills in the answers.
func raceAll(t *testing.T, base string, client *http.Client, reqs []*raceRequest) {
	t.Helper()
	var start, done sync.WaitGroup
	start.Add(1)
	for _, rq := range reqs {
		done.Add(1)
		go func() {
			defer done.Done()
			req, err := http.NewRequest(rq.method, base+rq.path, strings.NewReader(rq.body))
			if err != nil {
				rq.answer = err.Error()
				return
			}
			req.Header.Set("X-Auth-Token", "admin")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("OpenStack-API-Version", "placement "+rq.mv)
			start.Wait()
			resp, err := client.Do(req)
			if err != nil {
				rq.answer = err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			rq.status, rq.answer = resp.StatusCode, string(b)
		}()
	}
	start.Done()
	done.Wait()
}

// TestConcurrentClaimsMixedWrites races every kind of allocation write on
// three small providers: new consumers claiming (PUT), existing consumers
// moving to another provider with their generation (PUT), and POST
// /allocations writing two new consumers and emptying an existing one, the
// latter racing the moves of the same consumers. Whatever wins, no provider
// ends over capacity, each consumer holds exactly what its winning write
// asked for (or what it held before, or nothing if it was new and lost),
// usages match, and every loser got a 409 saying why.
func TestConcurrentClaimsMixedWrites(t *testing.T) {
	f := newAllocFixture(t)
	rps := []string{f.provider("a"), f.provider("b"), f.provider("c")}
	for _, rp := range rps {
		f.inventory(rp, invRec{class: "VCPU", total: 10}, invRec{class: "MEMORY_MB", total: 1024})
	}
	type holding struct {
		provider string
		vcpu     int
	}
	put := func(consumer, rp string, vcpu int, gen string) *raceRequest {
		return &raceRequest{method: "PUT", path: "/allocations/" + consumer, mv: "1.38", body: fmt.Sprintf(
			`{"allocations": {%q: {"resources": {"VCPU": %d, "MEMORY_MB": 64}}}, "project_id": "p", "user_id": "u",
			"consumer_generation": %s, "consumer_type": "INSTANCE"}`, rp, vcpu, gen)}
	}
	// Eight consumers hold 1 VCPU on provider a.
	existing := make([]string, 8)
	before := map[string]holding{}
	for i := range existing {
		existing[i] = uuid.NewString()
		rq := put(existing[i], rps[0], 1, "null")
		raceAll(t, f.srv.URL, f.srv.Client(), []*raceRequest{rq})
		if rq.status != 204 {
			t.Fatalf("setting up consumer %d: %d %s", i, rq.status, rq.answer)
		}
		before[existing[i]] = holding{rps[0], 1}
	}

	// asks[request][consumer] is what the request writes for the consumer;
	// an empty holding removes everything.
	asks := map[*raceRequest]map[string]holding{}
	var reqs []*raceRequest
	add := func(rq *raceRequest, writes map[string]holding) {
		reqs = append(reqs, rq)
		asks[rq] = writes
	}
	for i := range 24 {
		c := uuid.NewString()
		add(put(c, rps[i%3], 1+i%2, "null"), map[string]holding{c: {rps[i%3], 1 + i%2}})
	}
	for i, c := range existing {
		add(put(c, rps[1+i%2], 2, "1"), map[string]holding{c: {rps[1+i%2], 2}})
	}
	for i := range 4 {
		n1, n2, gone := uuid.NewString(), uuid.NewString(), existing[i]
		body := fmt.Sprintf(`{
			%q: {"allocations": {%q: {"resources": {"VCPU": 1, "MEMORY_MB": 64}}}, "project_id": "p", "user_id": "u", "consumer_generation": null},
			%q: {"allocations": {%q: {"resources": {"VCPU": 2, "MEMORY_MB": 64}}}, "project_id": "p", "user_id": "u", "consumer_generation": null},
			%q: {"allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": 1}}`,
			n1, rps[0], n2, rps[2], gone)
		add(&raceRequest{method: "POST", path: "/allocations", mv: "1.28", body: body},
			map[string]holding{n1: {rps[0], 1}, n2: {rps[2], 2}, gone: {}})
	}
	raceAll(t, f.srv.URL, f.srv.Client(), reqs)

	// The winning write of each consumer: its request got 204.
	won := map[string]holding{}
	statuses := map[string]int{}
	for _, rq := range reqs {
		statuses[fmt.Sprintf("%s %d", rq.method, rq.status)]++
		switch {
		case rq.status == 204:
			for c, h := range asks[rq] {
				if _, dup := won[c]; dup {
					t.Errorf("consumer %s won two writes made at the same generation", c)
				}
				won[c] = h
			}
		case rq.status == 409 && strings.Contains(rq.answer, "exceed the capacity") && strings.Contains(rq.answer, "placement.undefined_code"):
		case rq.status == 409 && strings.Contains(rq.answer, "consumer generation conflict") && strings.Contains(rq.answer, "placement.concurrent_update"):
		default:
			t.Errorf("%s %s: %d %s", rq.method, rq.path, rq.status, rq.answer)
		}
	}
	t.Logf("answers: %v", statuses)
	held := f.holdings()
	const capacity = 10
	usedBy := map[string]int{}
	for _, hs := range held {
		for rp, vcpu := range hs {
			usedBy[rp] += vcpu
		}
	}
	for _, rp := range rps {
		if usedBy[rp] > capacity {
			t.Errorf("provider %s over capacity: %d VCPU > %d", rp, usedBy[rp], capacity)
		}
		if got := f.used(rp, "VCPU"); got != usedBy[rp] {
			t.Errorf("provider %s: usage %d, allocations sum to %d", rp, got, usedBy[rp])
		}
	}
	// Each consumer holds what its winning write asked for or, when none
	// won, what it held before (nothing, if it was new).
	for _, writes := range asks {
		for c := range writes {
			got := held[c]
			h, ok := won[c]
			if !ok {
				h = before[c]
			}
			if h.provider == "" && len(got) != 0 || h.provider != "" && (len(got) != 1 || got[h.provider] != h.vcpu) {
				t.Errorf("consumer %s holds %v, want %v (its write won: %v)", c, got, h, ok)
			}
		}
	}
	if len(won) == 0 {
		t.Error("no write won")
	}
}

// holdings reads every consumer's VCPU per provider from the database.
func (f *allocFixture) holdings() map[string]map[string]int {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT c.uuid::text, rp.uuid::text, a.used
		FROM allocations a JOIN consumers c ON c.id = a.consumer_id
		JOIN resource_providers rp ON rp.id = a.resource_provider_id
		JOIN resource_classes rc ON rc.id = a.resource_class_id WHERE rc.name = 'VCPU'`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var c, rp string
		var used int
		if err := rows.Scan(&c, &rp, &used); err != nil {
			f.t.Fatal(err)
		}
		if out[c] == nil {
			out[c] = map[string]int{}
		}
		out[c][rp] += used
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// TestConcurrentRegistration registers providers from many goroutines the
// way compute nodes do (POST, PUT inventories, PUT traits), two of them
// under every name: one of each pair gets the name, the other a 409, and
// every provider ends with its inventories and traits at generation 2.
func TestConcurrentRegistration(t *testing.T) {
	srv := newTestServer(t)
	const names = 12
	type result struct {
		uuid string
		err  string
	}
	results := make([]result, 2*names)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range 2 * names {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			results[i] = registerOne(srv.URL, srv.Client(), fmt.Sprintf("node-%d", i%names))
		}()
	}
	start.Done()
	done.Wait()
	registered := map[string]string{}
	for i, r := range results {
		name := fmt.Sprintf("node-%d", i%names)
		switch {
		case r.err == "":
			if other, dup := registered[name]; dup {
				t.Errorf("%s registered twice: %s and %s", name, other, r.uuid)
			}
			registered[name] = r.uuid
		case strings.Contains(r.err, "POST /resource_providers: 409") && strings.Contains(r.err, "already exists"):
		default:
			t.Errorf("registering %s: %s", name, r.err)
		}
	}
	if len(registered) != names {
		t.Fatalf("%d names registered, want %d", len(registered), names)
	}
	for name, u := range registered {
		resp, body := do(t, srv, "GET", "/resource_providers/"+u+"/inventories", "1.39", "")
		var inv struct {
			Generation  int                       `json:"resource_provider_generation"`
			Inventories map[string]map[string]any `json:"inventories"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &inv) != nil {
			t.Fatalf("%s inventories: %d %s", name, resp.StatusCode, body)
		}
		if inv.Generation != 2 || len(inv.Inventories) != 3 || fmt.Sprint(inv.Inventories["VCPU"]["total"]) != "64" {
			t.Errorf("%s: generation %d, inventories %v", name, inv.Generation, inv.Inventories)
		}
		resp, body = do(t, srv, "GET", "/resource_providers/"+u+"/traits", "1.39", "")
		if resp.StatusCode != 200 || !strings.Contains(body, "HW_CPU_X86_AVX2") || !strings.Contains(body, `"resource_provider_generation":2`) {
			t.Errorf("%s traits: %d %s", name, resp.StatusCode, body)
		}
	}
}

// registerOne registers a provider under name; err says where it failed.
func registerOne(base string, client *http.Client, name string) (r struct{ uuid, err string }) {
	send := func(method, path, mv, body string, want int) string {
		if r.err != "" {
			return ""
		}
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			r.err = err.Error()
			return ""
		}
		req.Header.Set("X-Auth-Token", "admin")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("OpenStack-API-Version", "placement "+mv)
		resp, err := client.Do(req)
		if err != nil {
			r.err = err.Error()
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			r.err = fmt.Sprintf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	r.uuid = uuid.NewString()
	send("POST", "/resource_providers", "1.20", fmt.Sprintf(`{"name": %q, "uuid": %q}`, name, r.uuid), 200)
	out := send("PUT", "/resource_providers/"+r.uuid+"/inventories", "1.39", `{"resource_provider_generation": 0,
		"inventories": {"VCPU": {"total": 64, "allocation_ratio": 4.0}, "MEMORY_MB": {"total": 262144}, "DISK_GB": {"total": 2000}}}`, 200)
	if r.err != "" {
		return r
	}
	var inv struct {
		Generation int `json:"resource_provider_generation"`
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil || inv.Generation != 1 {
		r.err = "inventories answered " + out
		return r
	}
	send("PUT", "/resource_providers/"+r.uuid+"/traits", "1.39",
		`{"resource_provider_generation": 1, "traits": ["HW_CPU_X86_SSE42", "HW_CPU_X86_AVX2"]}`, 200)
	return r
}

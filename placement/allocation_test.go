package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

// allocFixture is a server on a fresh database plus direct SQL access, so
// the tests can set up providers and inventories without the provider and
// inventory handlers and can check the database after the fact.
type allocFixture struct {
	t    *testing.T
	srv  *httptest.Server
	pool *pgxpool.Pool
}

func newAllocFixture(t *testing.T) *allocFixture {
	t.Helper()
	return newAllocFixtureWith(t, Config{})
}

// newAllocFixtureWith serves cfg (its Pool is filled in).
func newAllocFixtureWith(t *testing.T, cfg Config) *allocFixture {
	t.Helper()
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	cfg.Pool = pool
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return &allocFixture{t: t, srv: srv, pool: pool}
}

// provider inserts a root provider and returns its uuid.
func (f *allocFixture) provider(name string) string {
	f.t.Helper()
	u := uuid.NewString()
	_, err := f.pool.Exec(context.Background(),
		`WITH rp AS (INSERT INTO resource_providers (uuid, name) VALUES ($1, $2) RETURNING id)
		 UPDATE resource_providers SET root_provider_id = rp.id FROM rp WHERE resource_providers.id = rp.id`, u, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

type invRec struct {
	class                           string
	total, reserved, min, max, step int
	ratio                           float64
}

// inventory adds inventory records the way the inventory handler will:
// rows plus one generation bump per class.
func (f *allocFixture) inventory(rp string, invs ...invRec) {
	f.t.Helper()
	for _, i := range invs {
		if i.min == 0 {
			i.min = 1
		}
		if i.max == 0 {
			i.max = i.total
		}
		if i.step == 0 {
			i.step = 1
		}
		if i.ratio == 0 {
			i.ratio = 1
		}
		_, err := f.pool.Exec(context.Background(), `INSERT INTO inventories
			(resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
			SELECT rp.id, rc.id, $3, $4, $5, $6, $7, $8 FROM resource_providers rp, resource_classes rc
			WHERE rp.uuid = $1 AND rc.name = $2`, rp, i.class, i.total, i.reserved, i.min, i.max, i.step, i.ratio)
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err := f.pool.Exec(context.Background(),
			`UPDATE resource_providers SET generation = generation + 1 WHERE uuid = $1`, rp); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *allocFixture) generation(rp string) int {
	f.t.Helper()
	var g int
	if err := f.pool.QueryRow(context.Background(), `SELECT generation FROM resource_providers WHERE uuid = $1`, rp).Scan(&g); err != nil {
		f.t.Fatal(err)
	}
	return g
}

// used sums the allocations of a class on a provider in the database.
func (f *allocFixture) used(rp, class string) int {
	f.t.Helper()
	var n int
	err := f.pool.QueryRow(context.Background(), `SELECT COALESCE(sum(a.used), 0) FROM allocations a
		JOIN resource_providers rp ON rp.id = a.resource_provider_id
		JOIN resource_classes rc ON rc.id = a.resource_class_id
		WHERE rp.uuid = $1 AND rc.name = $2`, rp, class).Scan(&n)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *allocFixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// allocStep is one request of a scenario and what must come back.
type allocStep struct {
	name     string
	method   string
	path     string
	mv       string
	body     string
	status   int
	contains []string
	// json maps a dotted path into the decoded response to its expected
	// JSON text ("$" is the whole body).
	json map[string]string
	// absent lists dotted paths that must not exist.
	absent []string
}

func (f *allocFixture) run(steps []allocStep) {
	f.t.Helper()
	for _, s := range steps {
		resp, body := do(f.t, f.srv, s.method, s.path, s.mv, s.body)
		if resp.StatusCode != s.status {
			f.t.Fatalf("%s: status %d, want %d: %s", s.name, resp.StatusCode, s.status, body)
		}
		for _, c := range s.contains {
			if !strings.Contains(body, c) {
				f.t.Errorf("%s: body %s lacks %q", s.name, body, c)
			}
		}
		if len(s.json) == 0 && len(s.absent) == 0 {
			continue
		}
		var doc any
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			f.t.Fatalf("%s: decoding %q: %v", s.name, body, err)
		}
		for path, want := range s.json {
			got, ok := lookup(doc, path)
			if !ok {
				f.t.Errorf("%s: %s missing in %s", s.name, path, body)
				continue
			}
			gotText, _ := json.Marshal(got)
			var wantDoc any
			if err := json.Unmarshal([]byte(want), &wantDoc); err != nil {
				f.t.Fatalf("%s: bad expectation %q: %v", s.name, want, err)
			}
			wantText, _ := json.Marshal(wantDoc)
			if string(gotText) != string(wantText) {
				f.t.Errorf("%s: %s = %s, want %s", s.name, path, gotText, wantText)
			}
		}
		for _, path := range s.absent {
			if _, ok := lookup(doc, path); ok {
				f.t.Errorf("%s: %s present in %s", s.name, path, body)
			}
		}
	}
}

// lookup follows a dotted path; keys may contain dashes (uuids).
func lookup(doc any, path string) (any, bool) {
	if path == "$" {
		return doc, true
	}
	cur := doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[k]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestConsumerAllocationsLifecycle(t *testing.T) {
	f := newAllocFixture(t)
	rp := f.provider("cn1")
	rp2 := f.provider("cn2")
	f.inventory(rp, invRec{class: "DISK_GB", total: 2048, min: 10, max: 1024}, invRec{class: "VCPU", total: 8, max: 16})
	f.inventory(rp2, invRec{class: "VCPU", total: 4})
	c1, c2 := uuid.NewString(), uuid.NewString()
	missing := uuid.NewString()
	list := func(rpUUID string, res string) string {
		return fmt.Sprintf(`{"allocations": [{"resource_provider": {"uuid": %q}, "resources": %s}]}`, rpUUID, res)
	}
	dict := func(gen string, extra string, allocs string) string {
		return fmt.Sprintf(`{"allocations": %s, "project_id": "p1", "user_id": "u1", "consumer_generation": %s%s}`, allocs, gen, extra)
	}
	f.run([]allocStep{
		{name: "empty get", method: "GET", path: "/allocations/" + c1, status: 200, json: map[string]string{"$": `{"allocations":{}}`}},
		{name: "get non-uuid", method: "GET", path: "/allocations/not-a-uuid", status: 200, json: map[string]string{"$": `{"allocations":{}}`}},
		{name: "malformed consumer", method: "PUT", path: "/allocations/not-a-uuid", body: list(rp, `{"DISK_GB": 10}`), status: 400,
			contains: []string{"Malformed consumer_uuid: not-a-uuid"}},
		{name: "unknown provider", method: "PUT", path: "/allocations/" + c1, body: list(missing, `{"DISK_GB": 10}`), status: 400,
			contains: []string{"Allocation for resource provider '" + missing + "' that does not exist."}},
		{name: "unknown class", method: "PUT", path: "/allocations/" + c1, body: list(rp, `{"COWS": 12}`), status: 400,
			contains: []string{"Unable to allocate inventory for consumer " + c1 + ": No such resource class COWS."}},
		{name: "no inventory of class", method: "PUT", path: "/allocations/" + c1, body: list(rp2, `{"DISK_GB": 10}`), status: 409,
			contains: []string{"Unable to allocate inventory: Inventory for 'DISK_GB' on resource provider '" + rp2 + "' invalid."}},
		{name: "below min_unit", method: "PUT", path: "/allocations/" + c1, body: list(rp, `{"DISK_GB": 5}`), status: 409,
			contains: []string{"would violate inventory constraints"}},
		{name: "over capacity", method: "PUT", path: "/allocations/" + c1, mv: "1.23",
			body: fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 9}}}, "project_id": "p1", "user_id": "u1"}`, rp), status: 409,
			contains: []string{"Unable to allocate inventory: Unable to create allocation for 'VCPU' on resource provider '" + rp +
				"'. The requested amount would exceed the capacity.", `"code":"placement.undefined_code"`}},
		{name: "put list form", method: "PUT", path: "/allocations/" + c1, body: list(rp, `{"DISK_GB": 10, "VCPU": 2}`), status: 204},
		{name: "get 1.0", method: "GET", path: "/allocations/" + c1, status: 200,
			json:   map[string]string{"allocations." + rp + ".resources": `{"DISK_GB":10,"VCPU":2}`, "allocations." + rp + ".generation": "3"},
			absent: []string{"project_id", "consumer_generation"}},
		{name: "get 1.12 incomplete ids", method: "GET", path: "/allocations/" + c1, mv: "1.12", status: 200,
			json:   map[string]string{"project_id": `"00000000-0000-0000-0000-000000000000"`, "user_id": `"00000000-0000-0000-0000-000000000000"`},
			absent: []string{"consumer_generation"}},
		{name: "get 1.38", method: "GET", path: "/allocations/" + c1, mv: "1.38", status: 200,
			json: map[string]string{"consumer_generation": "1", "consumer_type": `"unknown"`}},
		{name: "1.28 null gen for existing", method: "PUT", path: "/allocations/" + c1, mv: "1.28",
			body: dict("null", "", fmt.Sprintf(`{%q: {"resources": {"VCPU": 1}}}`, rp)), status: 409,
			contains: []string{"consumer generation conflict - expected 1 but got None"}},
		{name: "1.28 gen for new", method: "PUT", path: "/allocations/" + c2, mv: "1.28",
			body: dict("5", "", fmt.Sprintf(`{%q: {"resources": {"VCPU": 1}}}`, rp)), status: 409,
			contains: []string{"consumer generation conflict - expected null but got 5", "placement.concurrent_update"}},
		{name: "move c1 to two providers, dashless uuid", method: "PUT", path: "/allocations/" + strings.ReplaceAll(c1, "-", ""), mv: "1.38",
			body: dict("1", `, "consumer_type": "INSTANCE"`, fmt.Sprintf(`{%q: {"resources": {"VCPU": 1}}, %q: {"resources": {"VCPU": 4}}}`, rp, rp2)), status: 204},
		{name: "get moved", method: "GET", path: "/allocations/" + c1, mv: "1.38", status: 200,
			json: map[string]string{"allocations." + rp + ".resources": `{"VCPU":1}`, "allocations." + rp2 + ".resources": `{"VCPU":4}`,
				"allocations." + rp + ".generation": "4", "allocations." + rp2 + ".generation": "2",
				"consumer_generation": "2", "consumer_type": `"INSTANCE"`, "project_id": `"p1"`}},
		{name: "second consumer does not fit rp2", method: "PUT", path: "/allocations/" + c2, mv: "1.28",
			body: dict("null", "", fmt.Sprintf(`{%q: {"resources": {"VCPU": 1}}}`, rp2)), status: 409,
			contains: []string{"exceed the capacity"}},
		{name: "second consumer fits rp", method: "PUT", path: "/allocations/" + c2, mv: "1.28",
			body: dict("null", "", fmt.Sprintf(`{%q: {"resources": {"VCPU": 7}}}`, rp)), status: 204},
		{name: "provider allocations 1.28", method: "GET", path: "/resource_providers/" + rp + "/allocations", mv: "1.28", status: 200,
			json: map[string]string{"resource_provider_generation": "5", "allocations." + c1 + ".resources": `{"VCPU":1}`,
				"allocations." + c1 + ".consumer_generation": "2", "allocations." + c2 + ".resources": `{"VCPU":7}`}},
		{name: "provider allocations 1.0", method: "GET", path: "/resource_providers/" + rp + "/allocations", status: 200,
			absent: []string{"allocations." + c1 + ".consumer_generation"}},
		{name: "provider allocations unknown", method: "GET", path: "/resource_providers/" + missing + "/allocations", status: 404,
			contains: []string{"Resource provider '" + missing + "' not found"}},
		{name: "empty allocations remove consumer", method: "PUT", path: "/allocations/" + c1, mv: "1.28",
			body: dict("2", "", `{}`), status: 204},
		{name: "emptied consumer gone", method: "GET", path: "/allocations/" + c1, mv: "1.28", status: 200,
			json: map[string]string{"$": `{"allocations":{}}`}},
		{name: "emptied consumer is new again", method: "PUT", path: "/allocations/" + c1, mv: "1.28",
			body: dict("null", "", fmt.Sprintf(`{%q: {"resources": {"VCPU": 1}}}`, rp)), status: 204},
		{name: "delete", method: "DELETE", path: "/allocations/" + c1, status: 204},
		{name: "delete again", method: "DELETE", path: "/allocations/" + c1, status: 404,
			contains: []string{"No allocations for consumer '" + c1 + "'"}},
		{name: "delete non-uuid", method: "DELETE", path: "/allocations/nope", status: 404,
			contains: []string{"No allocations for consumer 'nope'"}},
		{name: "wrong content type", method: "PUT", path: "/allocations/" + c1, status: 415},
	})
	// rp: 2 inventory bumps, then c1 (3), move (4), c2 (5), empty c1 (6), c1 again (7); DELETE does not bump.
	if g := f.generation(rp); g != 7 {
		t.Errorf("rp generation %d, want 7", g)
	}
	// rp2: 1 inventory bump, move (2), empty c1 names it via its old allocation (3).
	if g := f.generation(rp2); g != 3 {
		t.Errorf("rp2 generation %d, want 3", g)
	}
	if n := f.count(`SELECT count(*) FROM consumers WHERE uuid = $1`, c1); n != 0 {
		t.Errorf("deleted consumer still has %d rows", n)
	}
	if u := f.used(rp, "VCPU"); u != 7 {
		t.Errorf("VCPU used on rp = %d, want 7", u)
	}
}

func TestPostAllocations(t *testing.T) {
	f := newAllocFixture(t)
	rp := f.provider("cn1")
	f.inventory(rp, invRec{class: "VCPU", total: 2})
	a, b, c := uuid.NewString(), uuid.NewString(), uuid.NewString()
	entry := func(consumer, gen string, vcpu int) string {
		res := `{}`
		if vcpu > 0 {
			res = fmt.Sprintf(`{%q: {"resources": {"VCPU": %d}}}`, rp, vcpu)
		}
		return fmt.Sprintf(`%q: {"allocations": %s, "project_id": "p", "user_id": "u", "consumer_generation": %s}`, consumer, res, gen)
	}
	f.run([]allocStep{
		{name: "below 1.13", method: "POST", path: "/allocations", mv: "1.12", body: "{}", status: 404},
		{name: "sum over consumers exceeds capacity", method: "POST", path: "/allocations", mv: "1.28",
			body: "{" + entry(a, "null", 1) + "," + entry(b, "null", 1) + "," + entry(c, "null", 1) + "}", status: 409,
			contains: []string{"exceed the capacity"}},
		{name: "nothing was written", method: "GET", path: "/resource_providers/" + rp + "/allocations", status: 200,
			json: map[string]string{"allocations": `{}`, "resource_provider_generation": "1"}},
		{name: "two fit", method: "POST", path: "/allocations", mv: "1.28",
			body: "{" + entry(a, "null", 1) + "," + entry(b, "null", 1) + "}", status: 204},
		{name: "first stale generation reported", method: "POST", path: "/allocations", mv: "1.28",
			body: "{" + entry(b, "7", 1) + "," + entry(a, "8", 1) + "}", status: 409,
			contains: []string{"consumer generation conflict - expected 1 but got 7"}},
		{name: "unknown class wording", method: "POST", path: "/allocations", mv: "1.28",
			body:   fmt.Sprintf(`{%q: {"allocations": {%q: {"resources": {"CUSTOM_PONY": 1}}}, "project_id": "p", "user_id": "u", "consumer_generation": 1}}`, a, rp),
			status: 400, contains: []string{"Unable to allocate inventory No such resource class CUSTOM_PONY."}},
		{name: "swap: empty a, move to c", method: "POST", path: "/allocations", mv: "1.28",
			body: "{" + entry(a, "1", 0) + "," + entry(c, "null", 1) + "}", status: 204},
		{name: "a gone", method: "GET", path: "/allocations/" + a, status: 200, json: map[string]string{"$": `{"allocations":{}}`}},
		{name: "c there", method: "GET", path: "/allocations/" + c, mv: "1.28", status: 200,
			json: map[string]string{"consumer_generation": "1", "allocations." + rp + ".resources": `{"VCPU":1}`}},
	})
	if u := f.used(rp, "VCPU"); u != 2 {
		t.Errorf("used %d, want 2", u)
	}
	if n := f.count(`SELECT count(*) FROM consumers`); n != 2 {
		t.Errorf("%d consumers, want 2", n)
	}
	// One bump per successful write; the failed ones rolled back theirs.
	if g := f.generation(rp); g != 3 {
		t.Errorf("generation %d, want 3", g)
	}
}

func TestParseUUIDLike(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"75d0f5f7-75d9-458c-b204-f90ac91604ec", "75d0f5f7-75d9-458c-b204-f90ac91604ec", true},
		{"75D0F5F775D9458CB204F90AC91604EC", "75d0f5f7-75d9-458c-b204-f90ac91604ec", true},
		{"{urn:uuid:75d0f5f7-75d9-458c-b204-f90ac91604ec}", "75d0f5f7-75d9-458c-b204-f90ac91604ec", true},
		{"75d0f5f7-75d9-458c-b204-f90ac91604e", "", false},
		{"------------------------------------", "", false},
		{"not-a-uuid", "", false},
		{"75d0f5f7-75d9-458c-b204-f90ac91604eg", "", false},
	}
	for _, tc := range cases {
		got, ok := parseUUIDLike(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseUUIDLike(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// claimResult is what one racing claimer was told.
type claimResult struct {
	consumer string
	status   int
	body     string
}

// race runs n claimers at once, the i-th PUTting body(i) for a fresh
// consumer, and returns their answers.
func (f *allocFixture) race(n int, body func(i int) string, alongside ...func()) []claimResult {
	results := make([]claimResult, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for _, fn := range alongside {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			fn()
		}()
	}
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			consumer := uuid.NewString()
			req, _ := http.NewRequest("PUT", f.srv.URL+"/allocations/"+consumer, strings.NewReader(body(i)))
			req.Header.Set("X-Auth-Token", "admin")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("OpenStack-API-Version", "placement 1.28")
			start.Wait()
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				results[i] = claimResult{consumer: consumer, body: err.Error()}
				return
			}
			defer resp.Body.Close()
			var b strings.Builder
			_, _ = fmt.Fprint(&b, readAll(resp))
			results[i] = claimResult{consumer: consumer, status: resp.StatusCode, body: b.String()}
		}()
	}
	start.Done()
	done.Wait()
	return results
}

func readAll(resp *http.Response) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// checkLosers asserts every non-204 is a 409 that says why: capacity or a
// lost race.
func checkLosers(t *testing.T, results []claimResult) (winners map[string]bool) {
	t.Helper()
	winners = map[string]bool{}
	for _, r := range results {
		switch {
		case r.status == 204:
			winners[r.consumer] = true
		case r.status == 409 && strings.Contains(r.body, "exceed the capacity") && strings.Contains(r.body, "placement.undefined_code"):
		case r.status == 409 && strings.Contains(r.body, "placement.concurrent_update"):
		default:
			t.Errorf("claimer for %s got %d: %s", r.consumer, r.status, r.body)
		}
	}
	return winners
}

// recorded is the set of consumers holding allocations in the database.
func (f *allocFixture) recorded() map[string]bool {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT DISTINCT c.uuid::text FROM consumers c JOIN allocations a ON a.consumer_id = c.id`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			f.t.Fatal(err)
		}
		out[u] = true
	}
	return out
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestConcurrentClaimsOneProvider: 40 claimers of 1 VCPU on a provider with
// room for 10. Claims are serialized by the provider lock, so exactly 10
// win, every loser hears "exceed the capacity", and the database holds
// exactly the winners.
func TestConcurrentClaimsOneProvider(t *testing.T) {
	f := newAllocFixture(t)
	rp := f.provider("cn1")
	f.inventory(rp, invRec{class: "VCPU", total: 12, reserved: 2})
	results := f.race(40, func(int) string {
		return fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u", "consumer_generation": null}`, rp)
	})
	winners := checkLosers(t, results)
	if len(winners) != 10 {
		t.Errorf("%d winners, want exactly 10", len(winners))
	}
	if u := f.used(rp, "VCPU"); u != 10 {
		t.Errorf("VCPU used %d, want 10", u)
	}
	if !sameSet(winners, f.recorded()) {
		t.Errorf("recorded consumers differ from the winners")
	}
	if g := f.generation(rp); g != 1+len(winners) {
		t.Errorf("generation %d, want %d (one bump per winner)", g, 1+len(winners))
	}
}

// TestConcurrentClaimsFewProviders: 60 claimers each take 1 VCPU on two of
// three providers (capacity 8 each, ratio 1.5 on the third) in varying
// order. No provider may end over capacity, the sums in the database must
// be exactly the winners' claims, and losers must be told 409.
func TestConcurrentClaimsFewProviders(t *testing.T) {
	f := newAllocFixture(t)
	rps := []string{f.provider("a"), f.provider("b"), f.provider("c")}
	f.inventory(rps[0], invRec{class: "VCPU", total: 8}, invRec{class: "MEMORY_MB", total: 4096})
	f.inventory(rps[1], invRec{class: "VCPU", total: 8})
	f.inventory(rps[2], invRec{class: "VCPU", total: 6, ratio: 1.5, max: 2})
	pair := func(i int) (string, string) { return rps[i%3], rps[(i+1+i/3%2)%3] }
	results := f.race(60, func(i int) string {
		x, y := pair(i)
		if x == y {
			y = rps[(i+1)%3]
		}
		return fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 1}}, %q: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u", "consumer_generation": null}`, x, y)
	})
	winners := checkLosers(t, results)
	if !sameSet(winners, f.recorded()) {
		t.Errorf("recorded consumers differ from the winners")
	}
	want := map[string]int{}
	for i, r := range results {
		if r.status != 204 {
			continue
		}
		x, y := pair(i)
		if x == y {
			y = rps[(i+1)%3]
		}
		want[x]++
		want[y]++
	}
	capacity := map[string]int{rps[0]: 8, rps[1]: 8, rps[2]: 9}
	total := 0
	for _, rp := range rps {
		got := f.used(rp, "VCPU")
		total += got
		if got > capacity[rp] {
			t.Errorf("provider %s over capacity: %d > %d", rp, got, capacity[rp])
		}
		if got != want[rp] {
			t.Errorf("provider %s: %d used, winners claimed %d", rp, got, want[rp])
		}
	}
	if total != 2*len(winners) {
		t.Errorf("total used %d, want %d", total, 2*len(winners))
	}
	if len(winners) == 0 {
		t.Error("nobody won")
	}
}

// TestIntegralFloats: python-jsonschema's "integer" accepts 2.0, so
// upstream takes it as an amount and as a consumer generation.
func TestIntegralFloats(t *testing.T) {
	f := newAllocFixture(t)
	rp := f.provider("cn1")
	f.inventory(rp, invRec{class: "VCPU", total: 8})
	c := uuid.NewString()
	put := func(gen, amount string) string {
		return fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": %s}}}, "project_id": "p", "user_id": "u", "consumer_generation": %s}`, rp, amount, gen)
	}
	f.run([]allocStep{
		{name: "amount 2.0", method: "PUT", path: "/allocations/" + c, mv: "1.28", body: put("null", "2.0"), status: 204},
		{name: "generation 1.0", method: "PUT", path: "/allocations/" + c, mv: "1.28", body: put("1.0", "3"), status: 204},
		{name: "generation 7.0 echoed", method: "PUT", path: "/allocations/" + c, mv: "1.28", body: put("7.0", "3"), status: 409,
			contains: []string{"expected 2 but got 7.0"}},
		{name: "amount 2.5", method: "PUT", path: "/allocations/" + c, mv: "1.28", body: put("2", "2.5"), status: 400,
			contains: []string{"JSON does not validate"}},
	})
	if u := f.used(rp, "VCPU"); u != 3 {
		t.Errorf("used %d, want 3", u)
	}
}

// TestClaimsRaceInventoryDelete: claims racing the removal of the inventory
// they draw on. Whatever the interleaving, allocations never outlive their
// inventory: either the delete failed (in use or a lost generation race) or
// no claim got in before it.
func TestClaimsRaceInventoryDelete(t *testing.T) {
	for round, claimers := range []int{1, 2, 4, 15} {
		f := newAllocFixture(t)
		rp := f.provider(fmt.Sprintf("cn%d", round))
		f.inventory(rp, invRec{class: "VCPU", total: 100}, invRec{class: "DISK_GB", total: 100})
		var deleteStatus int
		var deleteBody string
		results := f.race(claimers, func(int) string {
			return fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u", "consumer_generation": null}`, rp)
		}, func() {
			resp, body := do(t, f.srv, "DELETE", "/resource_providers/"+rp+"/inventories/VCPU", "", "")
			deleteStatus, deleteBody = resp.StatusCode, body
		})
		winners := map[string]bool{}
		for _, r := range results {
			switch {
			case r.status == 204:
				winners[r.consumer] = true
			case r.status == 409 && strings.Contains(r.body, "Inventory for 'VCPU' on resource provider"):
			default:
				t.Errorf("claimer got %d: %s", r.status, r.body)
			}
		}
		invLeft := f.count(`SELECT count(*) FROM inventories i JOIN resource_classes rc ON rc.id = i.resource_class_id
			JOIN resource_providers rp ON rp.id = i.resource_provider_id WHERE rp.uuid = $1 AND rc.name = 'VCPU'`, rp)
		used := f.used(rp, "VCPU")
		t.Logf("round %d: delete %d (%.60s), %d claims won", round, deleteStatus, deleteBody, len(winners))
		switch deleteStatus {
		case 204:
			if invLeft != 0 || used != 0 {
				t.Errorf("inventory deleted but %d rows / %d used remain", invLeft, used)
			}
		case 409:
			if invLeft != 1 {
				t.Errorf("delete refused but inventory gone")
			}
		default:
			t.Errorf("delete answered %d", deleteStatus)
		}
		if used != len(winners) || !sameSet(winners, f.recorded()) {
			t.Errorf("used %d with %d winners; recorded consumers differ", used, len(winners))
		}
	}
}

// TestClaimRetriesConsumerRace: a consumer created by another transaction
// while the claim runs makes the claim start over; with no retry left the
// client is told placement.concurrent_update, with one it succeeds on the
// winner's row.
func TestClaimRetriesConsumerRace(t *testing.T) {
	cases := []struct {
		retries    int
		wantStatus int
		wantText   string
	}{
		{1, 409, "Inventory and/or allocations changed while attempting to allocate: Another thread concurrently updated the data. Please retry your update"},
		{2, 204, ""},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("retries=%d", tc.retries), func(t *testing.T) {
			f := newAllocFixtureWith(t, Config{AllocationConflictRetries: tc.retries})
			rp := f.provider("cn1")
			f.inventory(rp, invRec{class: "VCPU", total: 8})
			c := uuid.NewString()
			ctx := context.Background()
			other, err := f.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = other.Rollback(ctx) }()
			if _, err := other.Exec(ctx, `WITH p AS (INSERT INTO projects (external_id) VALUES ('p') RETURNING id),
				u AS (INSERT INTO users (external_id) VALUES ('u') RETURNING id)
				INSERT INTO consumers (uuid, project_id, user_id) SELECT $1, p.id, u.id FROM p, u`, c); err != nil {
				t.Fatal(err)
			}
			type answer struct {
				status int
				body   string
			}
			done := make(chan answer, 1)
			go func() {
				resp, body := do(t, f.srv, "PUT", "/allocations/"+c, "1.27",
					fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u"}`, rp))
				done <- answer{resp.StatusCode, body}
			}()
			time.Sleep(300 * time.Millisecond)
			if err := other.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			got := <-done
			if got.status != tc.wantStatus || !strings.Contains(got.body, tc.wantText) {
				t.Fatalf("got %d %s, want %d %q", got.status, got.body, tc.wantStatus, tc.wantText)
			}
			wantGen := 0
			if tc.wantStatus == 204 {
				wantGen = 1
			}
			if g := f.count(`SELECT generation FROM consumers WHERE uuid = $1`, c); g != wantGen {
				t.Errorf("consumer generation %d, want %d", g, wantGen)
			}
		})
	}
}

package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/placement/store"
)

type inv struct {
	total, reserved int
	ratio           float64
}

func (f *fixture) inventory(rpUUID string) (map[string]inv, int) {
	f.t.Helper()
	p, err := store.GetProvider(f.ctx, f.pool, rpUUID)
	if err != nil {
		f.t.Fatal(err)
	}
	invs, err := store.ListInventories(f.ctx, f.pool, p.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]inv{}
	for _, i := range invs {
		out[i.ResourceClass] = inv{i.Total, i.Reserved, i.AllocationRatio}
	}
	return out, p.Generation
}

func TestRegisterHostOwned(t *testing.T) {
	f := setup(t)
	reg := bridgetest.TwoCells("h1")
	reg.ReservedMemoryMB = 512
	reg.OS, reg.Architecture = "linux", "x86_64"
	res := f.register(reg)
	if !res.OwnsInventory || res.ProviderUUID == "" {
		t.Fatalf("result %+v", res)
	}
	got, gen := f.inventory(res.ProviderUUID)
	want := map[string]inv{"VCPU": {4, 0, 4}, "PCPU": {4, 0, 1}, "MEMORY_MB": {8192, 512, 1}, "DISK_GB": {100, 0, 1}}
	if len(got) != len(want) {
		t.Fatalf("inventory %+v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: %+v, want %+v", k, got[k], v)
		}
	}
	if n := f.scalar(`SELECT count(*) FROM resource_provider_traits rpt JOIN traits t ON t.id = rpt.trait_id JOIN resource_providers rp ON rp.id = rpt.resource_provider_id WHERE rp.uuid = $1 AND t.name = $2`, res.ProviderUUID, bridge.AgentManagedTrait); n != 1 {
		t.Fatal("provider not marked agent-managed")
	}
	h, err := ledger.GetHost(f.ctx, f.pool, "h1")
	if err != nil || h.ProviderUUID != res.ProviderUUID || len(h.Cells) != 2 || h.DedicatedCPUs.String() != "2-3,6-7" || h.HeartbeatAt.IsZero() {
		t.Fatalf("ledger host %+v, %v", h, err)
	}
	if u, err := f.c.AgentURL(f.ctx, "h1"); err != nil || u != reg.AgentURL {
		t.Fatalf("agent url %q, %v", u, err)
	}

	// Unchanged: the provider keeps its generation.
	if again := f.register(reg); again != res {
		t.Fatalf("re-registration %+v, want %+v", again, res)
	}
	if _, g := f.inventory(res.ProviderUUID); g != gen {
		t.Fatalf("unchanged registration moved the generation %d -> %d", gen, g)
	}
	// Changed pools: the inventory follows.
	reg.DedicatedCPUs, reg.SharedCPUs = "1-3,5-7", "0,4"
	f.register(reg)
	got, g := f.inventory(res.ProviderUUID)
	if got["PCPU"].total != 6 || got["VCPU"].total != 2 || g == gen {
		t.Fatalf("after change: %+v generation %d (was %d)", got, g, gen)
	}

	hosts, err := f.c.ListHosts(f.ctx)
	if err != nil || len(hosts) != 1 {
		t.Fatalf("list hosts: %+v, %v", hosts, err)
	}
	if hi := hosts[0]; hi.Name != "h1" || hi.OS != "linux" || hi.Architecture != "x86_64" || hi.Resources["PCPU"].Total != 6 || hi.AgentURL != reg.AgentURL {
		t.Fatalf("host info %+v", hi)
	}
}

// A provider Nova's compute made is found by name; its inventory is never
// written.
func TestRegisterHostNovaOwned(t *testing.T) {
	f := setup(t)
	rp := uuid.NewString()
	p, err := store.CreateProvider(f.ctx, f.pool, rp, "nova1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReplaceInventories(f.ctx, f.pool, p, []store.Inventory{store.NewInventory("VCPU", 16), store.NewInventory("MEMORY_MB", 1000)}); err != nil {
		t.Fatal(err)
	}
	before, gen := f.inventory(rp)
	res := f.register(bridgetest.TwoCells("nova1"))
	if res.OwnsInventory || res.ProviderUUID != rp {
		t.Fatalf("result %+v", res)
	}
	after, g := f.inventory(rp)
	if g != gen || len(after) != len(before) || after["VCPU"] != before["VCPU"] || after["MEMORY_MB"] != before["MEMORY_MB"] {
		t.Fatalf("Nova's inventory touched: %+v gen %d -> %+v gen %d", before, gen, after, g)
	}
	if h, err := ledger.GetHost(f.ctx, f.pool, "nova1"); err != nil || h.ProviderUUID != rp {
		t.Fatalf("ledger host %+v, %v", h, err)
	}
}

func TestRegisterHostInvalid(t *testing.T) {
	f := setup(t)
	for _, tc := range []struct {
		name string
		mod  func(*agentproto.Registration)
	}{
		{"no name", func(r *agentproto.Registration) { r.Host = "" }},
		{"bad cpus", func(r *agentproto.Registration) { r.Cells[0].CPUs = "x" }},
		{"overlapping cells", func(r *agentproto.Registration) { r.Cells[1].CPUs = "3-7" }},
		{"pool outside cells", func(r *agentproto.Registration) { r.DedicatedCPUs = "9" }},
		{"bad url", func(r *agentproto.Registration) { r.AgentURL = "ftp://x" }},
		{"reserved too much", func(r *agentproto.Registration) { r.ReservedMemoryMB = 1 << 20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := bridgetest.TwoCells("h1")
			tc.mod(&reg)
			if _, err := f.c.RegisterHost(f.ctx, reg); !errors.Is(err, bridge.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	if n := f.scalar(`SELECT count(*) FROM resource_providers`); n != 0 {
		t.Fatalf("%d providers left by invalid registrations", n)
	}
}

// createEvent registers reg with its agent at agentURL and creates a
// shared container there: its create event, the one in the outbox.
func (f *fixture) createEvent(reg agentproto.Registration, agentURL string) (outbox.Event, bridge.Workload) {
	f.t.Helper()
	reg.AgentURL = agentURL
	f.register(reg)
	w, err := f.c.Create(f.ctx, shared(1, 64))
	if err != nil {
		f.t.Fatal(err)
	}
	rows, err := outbox.ListKey(f.ctx, f.pool, w.ID)
	if err != nil || len(rows) != 1 {
		f.t.Fatalf("outbox: %+v, %v", rows, err)
	}
	return rows[0].Event, w
}

// The deliverer reads a host's agent URL once per URLTTL, and again at
// once after a delivery there failed: an agent that re-registered
// elsewhere gets the next attempt.
func TestAgentDelivererFollowsAnAgentThatMoved(t *testing.T) {
	f := setup(t)
	agent := func(name string, got *[]string, mu *sync.Mutex) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			*got = append(*got, name)
			mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
		}))
	}
	var mu sync.Mutex
	var got []string
	a, b := agent("a", &got, &mu), agent("b", &got, &mu)
	defer b.Close()
	reg := bridgetest.TwoCells("h1")
	ev, _ := f.createEvent(reg, a.URL)
	d := bridge.NewAgentDeliverer(f.pool, bridge.AgentDelivererOptions{URLTTL: time.Hour})
	deliver := func() error { return d.Deliver(f.ctx, ev) }
	if err := deliver(); err != nil {
		t.Fatal(err)
	}
	reg.AgentURL = b.URL
	f.register(reg)
	if err := deliver(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := deliver(); err == nil {
		t.Fatal("a delivery to the agent's old address succeeded")
	}
	if err := deliver(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The second delivery went to the cached address; the one after the
	// failure read the new one.
	if strings.Join(got, " ") != "a a b" {
		t.Fatalf("deliveries reached %v, want a a b", got)
	}
}

func TestAgentDeliverer(t *testing.T) {
	f := setup(t)
	var mu sync.Mutex
	var got []agentproto.Event
	status := http.StatusOK
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/events" || r.Header.Get("X-Auth-Token") != "admin:admin" {
			http.Error(w, "bad request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		var e agentproto.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
		w.WriteHeader(status)
	}))
	defer agent.Close()
	ev, w := f.createEvent(bridgetest.TwoCells("h1"), agent.URL+"/")
	d := bridge.NewAgentDeliverer(f.pool, bridge.AgentDelivererOptions{Token: "admin:admin"})
	discarded := func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "discarded:") }

	for _, tc := range []struct {
		name    string
		status  int
		ev      func() outbox.Event
		ok      bool
		discard bool
	}{
		{"delivered", http.StatusOK, func() outbox.Event { return ev }, true, false},
		{"accepted", http.StatusAccepted, func() outbox.Event { return ev }, true, false},
		{"agent 404", http.StatusNotFound, func() outbox.Event { return ev }, false, true},
		{"agent 400 refused, not retried", http.StatusBadRequest, func() outbox.Event { return ev }, false, true},
		{"agent 500 retried", http.StatusInternalServerError, func() outbox.Event { return ev }, false, false},
		{"unknown host", http.StatusOK, func() outbox.Event {
			e := ev
			e.Payload = json.RawMessage(`{"type":"container.delete","host":"nowhere"}`)
			return e
		}, false, true},
		{"garbage", http.StatusOK, func() outbox.Event {
			e := ev
			e.Payload = json.RawMessage(`[1]`)
			return e
		}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			status, got = tc.status, nil
			mu.Unlock()
			err := d.Deliver(context.Background(), tc.ev())
			if tc.ok != (err == nil) || tc.discard != discarded(err) {
				t.Fatalf("got %v, want ok=%v discard=%v", err, tc.ok, tc.discard)
			}
			if tc.ok {
				mu.Lock()
				defer mu.Unlock()
				if len(got) != 1 || got[0].ID != ev.ID || got[0].Type != agentproto.EventCreate || got[0].Container.WorkloadID != w.ID {
					t.Fatalf("agent got %+v", got)
				}
			}
		})
	}
	// Through the relay: the event is marked delivered.
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	relay, err := outbox.NewRelay(f.pool, outbox.Config{Deliverer: d})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer relay.Stop()
	for range 200 {
		r, err := outbox.Get(f.ctx, f.pool, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.DeliveredAt != nil {
			return
		}
		relay.Wake()
		sleepMS(25)
	}
	t.Fatal("the relay did not deliver the event")
}

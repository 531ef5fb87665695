package notifications_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/rabbittest"
	"github.com/unisched/unisched/novaext"
	"github.com/unisched/unisched/novaext/notifications"
)

// topologies stands in for nova-api's GET /servers/{id}/topology (the
// client itself is tested against the route in package novaext; real
// Nova in tests/nova): what Nova answers per server.
type topologies struct {
	mu   sync.Mutex
	byID map[string]*novaext.ServerTopology
	// failures makes the next n calls fail as an unreachable Nova would.
	failures int
}

func (tp *topologies) Topology(_ context.Context, id string) (*novaext.ServerTopology, error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.failures > 0 {
		tp.failures--
		return nil, errors.New("dial tcp 127.0.0.1:8774: connection refused")
	}
	if st, ok := tp.byID[id]; ok {
		return st, nil
	}
	return nil, novaext.ErrServerNotFound
}

func (tp *topologies) set(id string, st *novaext.ServerTopology) {
	tp.mu.Lock()
	tp.byID[id] = st
	tp.mu.Unlock()
}

func pinned(cell int, mem int, cpus ...int) *novaext.ServerTopology {
	pin := map[string]int{}
	for i, c := range cpus {
		pin[string(rune('0'+i))] = c
	}
	return &novaext.ServerTopology{Nodes: []novaext.TopologyNode{{HostNode: &cell, MemoryMB: mem, CPUPinning: pin}}}
}

type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	c       *bridge.Coordinator
	rp      string
	nova    novaBus
	topo    *topologies
	metrics *notifications.Metrics
	reg     *prometheus.Registry
	queue   string
}

func newEnv(t *testing.T, durable bool) *env {
	node := rabbittest.Shared(t)
	c, pool := bridgetest.Coordinator(t)
	rp := bridgetest.Register(t, c, bridgetest.TwoCells("compute-1")).ProviderUUID
	reg := prometheus.NewRegistry()
	m, err := notifications.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	e := &env{t: t, ctx: context.Background(), pool: pool, c: c, rp: rp,
		nova: novaBus{t: t, url: node.URL, exchange: "nova-" + name, durable: durable},
		topo: &topologies{byID: map[string]*novaext.ServerTopology{}}, metrics: m, reg: reg, queue: "unisched-" + name}
	e.nova.declare() // Nova's services run before (and declare their exchange)
	return e
}

// start runs a consumer until the test ends (or stop is called).
func (e *env) start() (stop func()) {
	e.t.Helper()
	cons, err := notifications.NewConsumer(notifications.ConsumerConfig{
		URL: e.nova.url, Exchange: e.nova.exchange, Queue: e.queue, Ledger: e.c, Topologies: e.topo,
		Metrics: e.metrics, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second, RetryDelay: 50 * time.Millisecond,
		TopologyAttempts: 3,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	eventually(e.t, 30*time.Second, "the consumer subscribed", cons.Connected)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("consumer: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) workload(id string) (ledger.Workload, bool) {
	w, err := ledger.GetWorkload(e.ctx, e.pool, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return w, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return w, true
}

func (e *env) state(id string) ledger.State {
	w, ok := e.workload(id)
	if !ok {
		return "gone"
	}
	return w.State
}

func (e *env) pins(id string) cpuset.CPUSet {
	a, err := ledger.GetAssignment(e.ctx, e.pool, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Pinned()
}

// Nova's notifications, as its services put them on the bus, update the
// ledger: create.end makes the VM active with the pins Nova reports,
// delete.end forgets it, the conductor's NoValidHost fails it; malformed
// messages are dropped without stopping the consumer, and nothing stays
// queued.
func TestConsumerAppliesNovaNotifications(t *testing.T) {
	e := newEnv(t, false)
	e.start()
	vm1, vm2, vm3 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	vmClaim(t, e.c, e.pool, vm1, e.rp, 1, 1024)
	vmClaim(t, e.c, e.pool, vm2, e.rp, 1, 1024)
	if e.state(vm1) != ledger.StateClaimed {
		t.Fatalf("claimed VM in state %s", e.state(vm1))
	}
	// Nova pinned vm1 to 7 of cell 1, whatever the bridge expected.
	e.topo.set(vm1, pinned(1, 1024, 7))
	e.nova.publish(novaBody("instance.create.end", "INFO", "InstanceCreatePayload", instanceData(vm1, "compute-1", "active")), "info")
	eventually(t, 20*time.Second, "vm1 active", func() bool { return e.state(vm1) == ledger.StateActive })
	if got := e.pins(vm1); !got.Equals(cpuset.New(7)) {
		t.Errorf("vm1 pins %s, want Nova's 7", got)
	}

	// Junk of every kind, then a real notification behind it.
	for _, body := range [][]byte{
		[]byte("not json at all"),
		[]byte(`{"oslo.version": "2.0", "oslo.message": "{broken"}`),
		novaBody("instance.create.end", "INFO", "InstanceCreatePayload", instanceData("not-a-uuid", "compute-1", "active")),
	} {
		e.nova.publish(body, "info")
	}
	data := map[string]any{"instance_uuid": vm2, "state": "error", "request_spec": nil, "reason": map[string]any{
		"nova_object.name": "ExceptionPayload", "nova_object.namespace": "nova", "nova_object.version": "1.1",
		"nova_object.data": map[string]any{"exception": "NoValidHost", "exception_message": "No valid host was found. ",
			"function_name": "select_destinations", "module_name": "nova.conductor.manager"}}}
	e.nova.publish(novaBody("compute_task.build_instances.error", "ERROR", "ComputeTaskPayload", data), "error")
	eventually(t, 20*time.Second, "vm2 failed", func() bool { return e.state(vm2) == ledger.StateError })
	if w, _ := e.workload(vm2); !strings.Contains(w.StatusReason, "NoValidHost") || w.Host != "" {
		t.Errorf("vm2 after NoValidHost: %+v", w)
	}

	e.nova.publish(novaBody("instance.delete.end", "INFO", "InstanceActionPayload", instanceData(vm1, "compute-1", "deleted")), "info")
	eventually(t, 20*time.Second, "vm1 gone", func() bool { return e.state(vm1) == "gone" })

	// A VM the ledger does not know (on no ledger host) is acknowledged
	// and changes nothing; a create.end whose topology Nova fails to give
	// a few times is retried, then recorded with the expected pins.
	e.nova.publish(novaBody("instance.delete.end", "INFO", "InstanceActionPayload", instanceData(uuid.NewString(), "elsewhere", "deleted")), "info")
	vmClaim(t, e.c, e.pool, vm3, e.rp, 1, 512)
	expected := e.pins(vm3)
	e.topo.mu.Lock()
	e.topo.failures = 10
	e.topo.mu.Unlock()
	e.nova.publish(novaBody("instance.create.end", "INFO", "InstanceCreatePayload", instanceData(vm3, "compute-1", "active")), "info")
	eventually(t, 20*time.Second, "vm3 active", func() bool { return e.state(vm3) == ledger.StateActive })
	if got := e.pins(vm3); !got.Equals(expected) || got.Size() != 1 {
		t.Errorf("vm3 pins %s, want the expected %s", got, expected)
	}
	eventually(t, 10*time.Second, "the queue drained", func() bool { return queueDepth(t, e.nova.url, e.queue) == 0 })

	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"malformed", metricValue(e.reg, "unisched_nova_notifications_failed_total", "reason", "malformed"), 3},
		{"created", metricValue(e.reg, "unisched_nova_notifications_consumed_total", "action", "created"), 2},
		{"failed", metricValue(e.reg, "unisched_nova_notifications_consumed_total", "action", "failed"), 1},
		{"deleted", metricValue(e.reg, "unisched_nova_notifications_consumed_total", "action", "deleted"), 2},
		{"retried (topology)", metricValue(e.reg, "unisched_nova_notifications_failed_total", "reason", "retried"), 2},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// metricValue is one labelled series of a registered counter, read back
// through the registry as /metrics would (-1 when absent).
func metricValue(reg *prometheus.Registry, name, label, value string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// A RabbitMQ restart: the consumer reconnects by itself; what Nova
// publishes once the broker is back (before or after the consumer is)
// reaches the ledger, and so does what was queued while no consumer ran
// across a restart (durable queue, persistent messages, an exchange Nova
// declares durable with amqp_durable_queues).
func TestConsumerSurvivesBrokerRestart(t *testing.T) {
	e := newEnv(t, true)
	node := rabbittest.Shared(t)
	stop := e.start()
	a, b := uuid.NewString(), uuid.NewString()
	vmClaim(t, e.c, e.pool, a, e.rp, 1, 512)
	vmClaim(t, e.c, e.pool, b, e.rp, 1, 512)
	e.nova.publish(novaBody("instance.create.end", "INFO", "InstanceCreatePayload", instanceData(a, "compute-1", "active")), "info")
	eventually(t, 20*time.Second, "a active", func() bool { return e.state(a) == ledger.StateActive })

	restart := func() {
		t.Helper()
		if err := node.Stop(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := node.Start(ctx); err != nil {
			t.Fatalf("%v\n%s", err, node.Log(20))
		}
	}
	restart()
	// Published as soon as the broker answers, maybe before the consumer
	// is back.
	e.nova.publish(novaBody("instance.create.end", "INFO", "InstanceCreatePayload", instanceData(b, "compute-1", "active")), "info")
	eventually(t, 60*time.Second, "b active after the restart", func() bool { return e.state(b) == ledger.StateActive })
	reconnects := metricVecPlain(e.reg, "unisched_nova_notifications_reconnects_total")
	if reconnects < 1 {
		t.Errorf("reconnects %v", reconnects)
	}

	// No consumer: the delete waits in the durable queue across a restart.
	stop()
	e.nova.publish(novaBody("instance.delete.end", "INFO", "InstanceActionPayload", instanceData(a, "compute-1", "deleted")), "info")
	restart()
	if n := queueDepth(t, e.nova.url, e.queue); n != 1 {
		t.Fatalf("%d messages queued after the restart, want 1", n)
	}
	e.start()
	eventually(t, 30*time.Second, "a deleted", func() bool { return e.state(a) == "gone" })
}

func metricVecPlain(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// A move's end: the ledger follows the allocations to the new host, and
// when the server has landed there, Nova's pins on it replace the expected
// ones.
func TestConsumerFollowsMoves(t *testing.T) {
	e := newEnv(t, false)
	rp2 := bridgetest.Register(t, e.c, bridgetest.TwoCells("compute-2")).ProviderUUID
	e.start()
	vm := uuid.NewString()
	vmClaim(t, e.c, e.pool, vm, e.rp, 1, 1024)
	e.nova.publish(novaBody("instance.create.end", "INFO", "InstanceCreatePayload", instanceData(vm, "compute-1", "active")), "info")
	eventually(t, 20*time.Second, "vm active", func() bool { return e.state(vm) == ledger.StateActive })

	// Nova's resize to compute-2: the instance's allocations move there
	// (the hook records it), then the destination reports resize_finish.
	vmClaim(t, e.c, e.pool, vm, rp2, 1, 1024)
	e.topo.set(vm, pinned(0, 1024, 3))
	e.nova.publish(novaBody("instance.resize_finish.end", "INFO", "InstanceActionResizePayload", instanceData(vm, "compute-2", "resized")), "info")
	eventually(t, 20*time.Second, "vm on compute-2 with Nova's pins", func() bool {
		w, ok := e.workload(vm)
		return ok && w.Host == "compute-2" && e.pins(vm).Equals(cpuset.New(3))
	})
	if got := metricValue(e.reg, "unisched_nova_notifications_consumed_total", "action", "moved"); got != 1 {
		t.Errorf("moved: %v", got)
	}
}

// A shared VM migrated to another host: Nova hands its old allocations to
// the migration's consumer (the ledger forgets the instance there), claims
// the destination (a new VM, claimed), and the move's end finds no pins
// to read (a shared VM has no NUMA topology). The ledger must still know
// the VM runs again, as Nova has it: active on the destination while the
// migration's consumer holds the source until Nova deletes it, or, after
// a live migration's rollback or a failed migrate task (the allocations
// given back to the instance), active on the source again.
func TestConsumerActivatesMovedSharedVM(t *testing.T) {
	for _, tc := range []struct {
		event string
		// dest: the scheduler claimed the destination; back: the move
		// was undone
		dest, back bool
	}{
		{"instance.resize_finish.end", true, false},
		{"instance.live_migration_post_dest.end", true, false},
		{"instance.live_migration_rollback.end", true, true},
		{"compute_task.migrate_server.error", false, true},
	} {
		t.Run(tc.event, func(t *testing.T) {
			e := newEnv(t, false)
			rp2 := bridgetest.Register(t, e.c, bridgetest.TwoCells("compute-2")).ProviderUUID
			e.start()
			vm, mig := uuid.NewString(), uuid.NewString()
			res := map[string]int64{"VCPU": 1, "MEMORY_MB": 512}
			vmClaimOf(t, e.c, e.pool, vm, e.rp, res)
			e.topo.set(vm, &novaext.ServerTopology{}) // GET /servers/{id}/topology: no nodes
			e.nova.publish(novaBody("instance.create.end", "INFO", "InstanceCreatePayload", instanceData(vm, "compute-1", "active")), "info")
			eventually(t, 20*time.Second, "vm active", func() bool { return e.state(vm) == ledger.StateActive })

			handOver(t, e.c, e.pool, vm, mig, e.rp, res)
			if tc.dest {
				vmClaimOf(t, e.c, e.pool, vm, rp2, res)
				if w, ok := e.workload(vm); !ok || w.Host != "compute-2" || w.State != ledger.StateClaimed {
					t.Fatalf("after the destination's claim: %+v (found %v), want claimed on compute-2", w, ok)
				}
			}
			if w, ok := e.workload(mig); !ok || w.Host != "compute-1" {
				t.Fatalf("the migration's consumer: %+v (found %v), want it holding compute-1", w, ok)
			}
			host, migHeld := "compute-2", true
			if tc.back {
				handBack(t, e.c, e.pool, vm, mig, e.rp, res)
				host, migHeld = "compute-1", false
			}
			prio := "INFO"
			if strings.HasSuffix(tc.event, ".error") {
				prio = "ERROR"
			}
			e.nova.publish(novaBody(tc.event, prio, "InstanceActionPayload", instanceData(vm, host, "active")), strings.ToLower(prio))
			eventually(t, 20*time.Second, "vm active on "+host, func() bool {
				w, ok := e.workload(vm)
				return ok && w.Host == host && w.State == ledger.StateActive
			})
			if w, ok := e.workload(mig); ok != migHeld || ok && w.Host != "compute-1" {
				t.Fatalf("the migration's consumer after the move's end: %+v (found %v), want found %v on compute-1", w, ok, migHeld)
			}
		})
	}
}

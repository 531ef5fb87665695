package nova

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/unisched/unisched/tests/novaharness"
)

// c1024 is the flavor TestMoves resizes to.
var c1024 = novaharness.Flavor{Name: "m1.c1024", ID: "c1024", VCPUs: 1, RAM: 1024, Disk: 1}

// TestMoves: a shared VM resized by real Nova and confirmed, then resized
// again and reverted. While a resize waits for its confirmation Placement
// holds the instance's new flavor and, under the migration's uuid, its old
// one; the ledger must follow: the VM with the new flavor's resources, the
// migration record with the old ones. Once confirmed or reverted the four
// views agree again and the VM holds the flavor Nova says. The resizes stay
// on their host (allow_resize_to_same_host): the harness's shared VMs fit
// compute-1 only, compute-2 having dedicated CPUs only.
func TestMoves(t *testing.T) {
	start(t)
	need(t, partSched, partNotify)
	ensureFlavors(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := env.EnsureFlavor(ctx, c1024); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteAll(t) })
	agree(t, "before", time.Minute)

	s := boot(t, "vm-moves", "m1.c512")
	small := map[string]int{"DISK_GB": 1, "MEMORY_MB": 512, "VCPU": 1}
	large := map[string]int{"DISK_GB": 1, "MEMORY_MB": 1024, "VCPU": 1}
	host := s.Hypervisor

	// 1. resize to m1.c1024, confirmed
	resize(t, s.ID, c1024.Name)
	moving(t, ctx, s.ID, host, small, large)
	if _, err := openstack(t, "server", "resize", "confirm", s.ID); err != nil {
		t.Fatalf("openstack server resize confirm: %v", err)
	}
	settled(t, ctx, s.ID, host, large, "after the resize's confirm")

	// 2. resize back to m1.c512, reverted: it keeps m1.c1024
	resize(t, s.ID, "m1.c512")
	moving(t, ctx, s.ID, host, large, small)
	if _, err := openstack(t, "server", "resize", "revert", s.ID); err != nil {
		t.Fatalf("openstack server resize revert: %v", err)
	}
	settled(t, ctx, s.ID, host, large, "after the resize's revert")

	remove(t, s)
	agree(t, "after the delete", time.Minute)
}

func resize(t *testing.T, id, flavor string) {
	t.Helper()
	if _, err := openstack(t, "server", "resize", "--flavor", flavor, "--wait", id); err != nil {
		t.Fatalf("openstack server resize --flavor %s: %v\n%s", flavor, err, env.Logs(30))
	}
}

// moving waits until server id is in VERIFY_RESIZE, then requires
// Placement and the ledger to hold the move as Nova made it: the instance's
// new resources on its (new) host, the old ones under the migration's uuid
// on src. It returns the instance's host.
func moving(t *testing.T, ctx context.Context, id, src string, before, after map[string]int) string {
	t.Helper()
	s := waitStatus(t, ctx, id, "VERIFY_RESIZE")
	dst := s.Hypervisor
	if dst == "" {
		t.Fatalf("server %s in VERIFY_RESIZE on no host", id)
	}
	mig, err := migrationUUID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		host string
		res  map[string]int
	}{id: {dst, after}, mig: {src, before}}
	var last string
	for {
		ws, err := ledgerWorkloads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last = ""
		for consumer, w := range want {
			rp, err := env.ProviderByName(ctx, w.host)
			if err != nil || rp == nil {
				t.Fatalf("provider of %s: %v %v", w.host, rp, err)
			}
			allocs, err := env.Allocations(ctx, consumer)
			if err != nil {
				t.Fatal(err)
			}
			if len(allocs) != 1 || !maps.Equal(allocs[rp.UUID], w.res) {
				t.Fatalf("placement: consumer %s holds %v, want %v on %s only", consumer, allocs, w.res, w.host)
			}
			l := ws[consumer]
			if l == nil || !l.holds() || l.Kind != "vm" || l.Host != w.host || !maps.Equal(l.resources(), w.res) {
				last += fmt.Sprintf("\n  consumer %s: ledger %+v, want a vm holding %v on %s", consumer, l, w.res, w.host)
			}
		}
		if last == "" {
			t.Logf("%s in VERIFY_RESIZE: %v on %s (instance), %v on %s (migration %s), in Placement and the ledger", id, after, dst, before, src, mig)
			return dst
		}
		if ctx.Err() != nil {
			t.Fatalf("the ledger does not follow the move of %s:%s", id, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settled waits until server id is ACTIVE on host, the four views agree
// and the ledger holds it there with res, and no migration record holds
// anything any more.
func settled(t *testing.T, ctx context.Context, id, host string, res map[string]int, step string) {
	t.Helper()
	s := waitStatus(t, ctx, id, "ACTIVE")
	if s.Hypervisor != host {
		t.Fatalf("%s: server %s ACTIVE on %s, want %s", step, id, s.Hypervisor, host)
	}
	v := agree(t, step, 2*time.Minute)
	w := v.Ledger[id]
	if w == nil || w.Host != host || !maps.Equal(w.resources(), res) {
		t.Fatalf("%s: the ledger has %+v for server %s, want it on %s with %v", step, w, id, host, res)
	}
	for wid, w := range v.Ledger {
		if wid != id && w.Kind == "vm" && w.holds() {
			t.Fatalf("%s: the ledger still holds %+v for another vm consumer", step, w)
		}
	}
	t.Logf("%s: %s ACTIVE on %s with %v; the views agree", step, id, host, res)
}

func waitStatus(t *testing.T, ctx context.Context, id, status string) novaharness.Server {
	t.Helper()
	for {
		s, err := env.GetServer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		switch s.Status {
		case status:
			return s
		case "ERROR":
			t.Fatalf("server %s in ERROR waiting for %s: fault %v\n%s", id, status, s.Fault, env.Logs(30))
		}
		if ctx.Err() != nil {
			t.Fatalf("server %s still %s, want %s", id, s.Status, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// migrationUUID is the uuid of the server's newest migration (compute
// 2.59 shows it): Nova's consumer for the source's allocation during a
// move.
func migrationUUID(ctx context.Context, id string) (string, error) {
	var out struct {
		Migrations []struct {
			UUID string `json:"uuid"`
			ID   int    `json:"id"`
		} `json:"migrations"`
	}
	if _, err := env.Nova(ctx, http.MethodGet, "/os-migrations?instance_uuid="+id, nil, &out, "2.59"); err != nil {
		return "", err
	}
	best := -1
	for i, m := range out.Migrations {
		if best < 0 || m.ID > out.Migrations[best].ID {
			best = i
		}
	}
	if best < 0 || out.Migrations[best].UUID == "" {
		return "", fmt.Errorf("server %s: no migration with a uuid in %+v", id, out.Migrations)
	}
	return out.Migrations[best].UUID, nil
}

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
// views agree again and the VM holds the flavor Nova says, active. A resize
// may stay on its host (allow_resize_to_same_host) or go to the other one
// (both computes have shared CPUs): the test follows the scheduler.
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
	host = moving(t, ctx, s.ID, host, small, large)
	if _, err := openstack(t, "server", "resize", "confirm", s.ID); err != nil {
		t.Fatalf("openstack server resize confirm: %v", err)
	}
	settled(t, ctx, s.ID, host, large, "after the resize's confirm")

	// 2. resize back to m1.c512, reverted: it keeps m1.c1024 where it was
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
	held(t, ctx, id, dst, after, mig, src, before)
	t.Logf("%s in VERIFY_RESIZE: %v on %s (instance), %v on %s (migration %s), in Placement and the ledger", id, after, dst, before, src, mig)
	return dst
}

// held requires Placement to hold a move in progress as Nova makes it,
// instance id's resources after on dst and the migration's consumer mig's
// before on src, and waits until the ledger holds the same.
func held(t *testing.T, ctx context.Context, id, dst string, after map[string]int, mig, src string, before map[string]int) {
	t.Helper()
	want := map[string]struct {
		host string
		res  map[string]int
	}{id: {dst, after}, mig: {src, before}}
	for {
		ws, err := ledgerWorkloads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := ""
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
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the ledger does not follow the move of %s:%s", id, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settled waits until server id is ACTIVE on host, the four views agree
// and the ledger has it active there with res, and no migration record
// holds anything any more.
func settled(t *testing.T, ctx context.Context, id, host string, res map[string]int, step string) {
	t.Helper()
	s := waitStatus(t, ctx, id, "ACTIVE")
	if s.Hypervisor != host {
		t.Fatalf("%s: server %s ACTIVE on %s, want %s", step, id, s.Hypervisor, host)
	}
	var v *views
	var w *workload
	// the move's end (instance.*.end, after the allocations) makes it
	// active again
	for deadline := time.Now().Add(30 * time.Second); ; {
		v = agree(t, step, 2*time.Minute)
		if w = v.Ledger[id]; w == nil || w.State != "claimed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if w == nil || w.State != "active" || w.Host != host || !maps.Equal(w.resources(), res) {
		t.Fatalf("%s: the ledger has %+v for server %s, want it active on %s with %v", step, w, id, host, res)
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

// migration is one of a server's migrations as GET /os-migrations shows it
// (2.59).
type migration struct {
	ID     int    `json:"id"`
	UUID   string `json:"uuid"`
	Status string `json:"status"`
	Type   string `json:"migration_type"`
	Source string `json:"source_compute"`
	Dest   string `json:"dest_compute"`
}

// lastMigration is the server's newest migration.
func lastMigration(ctx context.Context, id string) (migration, error) {
	var out struct {
		Migrations []migration `json:"migrations"`
	}
	if _, err := env.Nova(ctx, http.MethodGet, "/os-migrations?instance_uuid="+id, nil, &out, "2.59"); err != nil {
		return migration{}, err
	}
	best := -1
	for i, m := range out.Migrations {
		if best < 0 || m.ID > out.Migrations[best].ID {
			best = i
		}
	}
	if best < 0 || out.Migrations[best].UUID == "" {
		return migration{}, fmt.Errorf("server %s: no migration with a uuid in %+v", id, out.Migrations)
	}
	return out.Migrations[best], nil
}

// migrationUUID is the uuid of the server's newest migration: Nova's
// consumer for the source's allocation during a move.
func migrationUUID(ctx context.Context, id string) (string, error) {
	m, err := lastMigration(ctx, id)
	return m.UUID, err
}

// TestMigrations: a shared VM moved between the computes by real Nova
// (both have shared CPUs: a 1-VCPU flavor fits either). A cold migration
// to the other host waits in VERIFY_RESIZE with the instance's allocation
// on the new host and the source's under the migration's uuid, in
// Placement and in the ledger; confirmed, the VM is on the new host
// everywhere and the source holds nothing for it. A cold migration back,
// reverted, leaves it where it was. A live migration home, aborted while
// it runs, is rolled back: the VM stays. Another, seen while it runs
// (Placement and the ledger hold the instance on the destination and the
// source under the migration's uuid) then completed, brings it back to the
// host it booted on. Last, a dedicated VM's migration to the host without
// dedicated CPUs finds no host: the conductor rolls it back and the VM is
// active where it was, with Nova's pins, in the ledger.
func TestMigrations(t *testing.T) {
	start(t)
	need(t, partSched, partNotify)
	ensureFlavors(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Cleanup(func() { deleteAll(t) })
	agree(t, "before", time.Minute)

	s := boot(t, "vm-migrations", "m1.c512")
	small := map[string]int{"DISK_GB": 1, "MEMORY_MB": 512, "VCPU": 1}
	home := s.Hypervisor
	away := otherCompute(t, home)

	// 1. cold migration to the other host, confirmed
	coldMigrate(t, ctx, s.ID, away)
	if got := moving(t, ctx, s.ID, home, small, small); got != away {
		t.Fatalf("cold migration of %s to %s: in VERIFY_RESIZE on %s", s.ID, away, got)
	}
	mig := mustMigrationUUID(t, ctx, s.ID)
	if _, err := openstack(t, "server", "resize", "confirm", s.ID); err != nil {
		t.Fatalf("openstack server resize confirm: %v", err)
	}
	settled(t, ctx, s.ID, away, small, "after the cold migration's confirm")
	released(t, ctx, mig, home)

	// 2. cold migration back, reverted: the VM stays where it was
	coldMigrate(t, ctx, s.ID, home)
	if got := moving(t, ctx, s.ID, away, small, small); got != home {
		t.Fatalf("cold migration of %s to %s: in VERIFY_RESIZE on %s", s.ID, home, got)
	}
	mig = mustMigrationUUID(t, ctx, s.ID)
	if _, err := openstack(t, "server", "resize", "revert", s.ID); err != nil {
		t.Fatalf("openstack server resize revert: %v", err)
	}
	settled(t, ctx, s.ID, away, small, "after the cold migration's revert")
	released(t, ctx, mig, home)

	// 3. live migration home, aborted while it runs: rolled back, the VM
	// stays where it was
	m := startLive(t, ctx, s.ID, home)
	abortLive(t, ctx, s.ID, m)
	settled(t, ctx, s.ID, away, small, "after the live migration's abort")
	released(t, ctx, m.UUID, home)

	// 4. live migration home, seen while it runs, then completed
	m = startLive(t, ctx, s.ID, home)
	held(t, ctx, s.ID, home, small, m.UUID, away, small)
	t.Logf("%s live-migrating: %v on %s (instance), %v on %s (migration %s), in Placement and the ledger", s.ID, small, home, small, away, m.UUID)
	finishLive(t, ctx, s.ID, m)
	settled(t, ctx, s.ID, home, small, "after the live migration")
	released(t, ctx, m.UUID, away)

	remove(t, s)
	agree(t, "after the delete", time.Minute)

	// 5. a dedicated VM (compute-2 alone has PCPU) migrated to compute-1:
	// no valid host; the conductor gives the instance its allocations back
	d := boot(t, "vm-migrations-ded", "m1.ded2")
	if d.Hypervisor != "compute-2" {
		t.Fatalf("dedicated server on %s, want compute-2", d.Hypervisor)
	}
	failedMigrate(t, ctx, d.ID, "compute-1")
	mig = mustMigrationUUID(t, ctx, d.ID)
	settled(t, ctx, d.ID, "compute-2", map[string]int{"DISK_GB": 1, "MEMORY_MB": 512, "PCPU": 2}, "after a cold migration no host could take")
	released(t, ctx, mig, "compute-2")
	remove(t, d)
	agree(t, "after the deletes", time.Minute)
}

// failedMigrate asks Nova to migrate server id to host, which cannot take
// it: the API accepts (it casts to the conductor), the conductor finds no
// valid host, rolls its task back (the migration in error, the instance's
// allocations given back) and sets the server ACTIVE again, with no task,
// where it was.
func failedMigrate(t *testing.T, ctx context.Context, id, host string) {
	t.Helper()
	prev, _ := lastMigration(ctx, id)
	body := map[string]any{"migrate": map[string]any{"host": host}}
	if _, err := env.Nova(ctx, http.MethodPost, "/servers/"+id+"/action", body, nil, "2.56"); err != nil {
		t.Fatalf("cold migration of %s to %s: %v", id, host, err)
	}
	for {
		s, err := env.GetServer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := lastMigration(ctx, id)
		switch {
		case m.ID > prev.ID && m.Status == "error" && s.Status == "ACTIVE" && s.TaskState == "":
			t.Logf("cold migration %s of %s to %s: in error, the server ACTIVE on %s, fault %v", m.UUID, id, host, s.Hypervisor, s.Fault)
			return
		case m.ID > prev.ID && m.Status != "error" && m.Status != "pre-migrating" && m.Status != "accepted":
			t.Fatalf("cold migration of %s to %s, which cannot take it: migration %+v, server %s (task %q)", id, host, m, s.Status, s.TaskState)
		case s.Status == "ERROR" || ctx.Err() != nil:
			t.Fatalf("server %s after a migration no host could take: %s (task %q), migration %+v, fault %v", id, s.Status, s.TaskState, m, s.Fault)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// otherCompute is the environment's compute that is not host.
func otherCompute(t *testing.T, host string) string {
	t.Helper()
	for _, c := range env.Computes {
		if c.Host != host {
			return c.Host
		}
	}
	t.Fatalf("no compute other than %s in %+v", host, env.Computes)
	return ""
}

// coldMigrate asks Nova, as the admin, to migrate server id to host
// (2.56: a target host, checked by the scheduler).
func coldMigrate(t *testing.T, ctx context.Context, id, host string) {
	t.Helper()
	t0 := time.Now()
	body := map[string]any{"migrate": map[string]any{"host": host}}
	if _, err := env.Nova(ctx, http.MethodPost, "/servers/"+id+"/action", body, nil, "2.56"); err != nil {
		t.Fatalf("cold migration of %s to %s: %v", id, host, err)
	}
	waitStatus(t, ctx, id, "VERIFY_RESIZE")
	t.Logf("cold migration of %s to %s: VERIFY_RESIZE in %.1fs", id, host, time.Since(t0).Seconds())
}

// startLive asks Nova, as the admin, to live-migrate server id to host
// (2.68: a target host always checked by the scheduler, block migration
// as the hosts allow) and waits until the migration runs: the computes'
// FakeLiveMigrateDriver keeps it running for 5 s, or until it is aborted
// or forced to complete.
func startLive(t *testing.T, ctx context.Context, id, host string) migration {
	t.Helper()
	t0 := time.Now()
	prev, _ := lastMigration(ctx, id)
	body := map[string]any{"os-migrateLive": map[string]any{"host": host, "block_migration": "auto"}}
	if _, err := env.Nova(ctx, http.MethodPost, "/servers/"+id+"/action", body, nil, "2.68"); err != nil {
		t.Fatalf("live migration of %s to %s: %v", id, host, err)
	}
	for {
		m, err := lastMigration(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID > prev.ID {
			switch m.Status {
			case "running":
				t.Logf("live migration %s of %s to %s: running after %.1fs", m.UUID, id, host, time.Since(t0).Seconds())
				return m
			case "queued", "preparing", "accepted", "pre-migrating":
			default:
				s, _ := env.GetServer(ctx, id)
				t.Fatalf("live migration of %s to %s: migration %+v, not seen running; server %s (task %q) on %s, fault %v\n%s",
					id, host, m, s.Status, s.TaskState, s.Hypervisor, s.Fault, env.Logs(40))
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("live migration of %s to %s: never running (last migration %+v)\n%s", id, host, m, env.Logs(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// abortLive aborts running live migration m of server id (2.24) and
// waits until Nova has rolled it back: the server ACTIVE with no task,
// the migration cancelled.
func abortLive(t *testing.T, ctx context.Context, id string, m migration) {
	t.Helper()
	t0 := time.Now()
	if _, err := env.Nova(ctx, http.MethodDelete, fmt.Sprintf("/servers/%s/migrations/%d", id, m.ID), nil, nil, "2.24"); err != nil {
		t.Fatalf("aborting live migration %s of %s: %v", m.UUID, id, err)
	}
	waitLive(t, ctx, id, m, "cancelled", m.Source)
	t.Logf("live migration %s of %s aborted: rolled back, ACTIVE on %s, in %.1fs", m.UUID, id, m.Source, time.Since(t0).Seconds())
}

// finishLive waits until live migration m of server id has completed: the
// server ACTIVE on the destination with no task.
func finishLive(t *testing.T, ctx context.Context, id string, m migration) {
	t.Helper()
	t0 := time.Now()
	waitLive(t, ctx, id, m, "completed", m.Dest)
	t.Logf("live migration %s of %s completed: ACTIVE on %s, %.1fs later", m.UUID, id, m.Dest, time.Since(t0).Seconds())
}

// waitLive waits until live migration m of server id has ended in status,
// the server ACTIVE on host with no task.
func waitLive(t *testing.T, ctx context.Context, id string, m migration, status, host string) {
	t.Helper()
	for {
		s, err := env.GetServer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		now, err := lastMigration(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ended := now.ID == m.ID && (now.Status == "completed" || now.Status == "cancelled" || now.Status == "error" || now.Status == "failed")
		switch {
		case s.Status == "ERROR" || ended && now.Status != status:
			t.Fatalf("live migration %s of %s: server %s (task %q) on %s, migration %+v (want %s), fault %v\n%s",
				m.UUID, id, s.Status, s.TaskState, s.Hypervisor, now, status, s.Fault, env.Logs(40))
		case ended && s.Status == "ACTIVE" && s.TaskState == "":
			if s.Hypervisor != host {
				t.Fatalf("live migration %s of %s %s with the server on %s, want %s", m.UUID, id, status, s.Hypervisor, host)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("live migration %s of %s: server %s (task %q) on %s, migration %+v, want %s\n%s",
				m.UUID, id, s.Status, s.TaskState, s.Hypervisor, now, status, env.Logs(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// released requires that migration consumer mig holds nothing any more,
// in Placement and in the ledger, and that the ledger holds on src (the
// move's source) exactly what Placement uses there.
func released(t *testing.T, ctx context.Context, mig, src string) {
	t.Helper()
	allocs, err := env.Allocations(ctx, mig)
	if err != nil {
		t.Fatal(err)
	}
	if len(allocs) != 0 {
		t.Fatalf("migration %s still holds %v in Placement", mig, allocs)
	}
	ws, err := ledgerWorkloads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := ws[mig]; w != nil && w.holds() {
		t.Fatalf("migration %s still holds %+v in the ledger", mig, w)
	}
	rp, err := env.ProviderByName(ctx, src)
	if err != nil || rp == nil {
		t.Fatalf("provider of %s: %v %v", src, rp, err)
	}
	var u struct {
		Usages map[string]int `json:"usages"`
	}
	if _, err := env.Placement(ctx, http.MethodGet, "/resource_providers/"+rp.UUID+"/usages", nil, &u); err != nil {
		t.Fatal(err)
	}
	held := map[string]int{}
	for _, w := range ws {
		if w.holds() && w.Host == src {
			for c, n := range w.resources() {
				held[c] += n
			}
		}
	}
	for c, n := range u.Usages {
		if n != held[c] {
			t.Fatalf("%s after the move: Placement uses %v, the ledger's workloads there hold %v", src, u.Usages, held)
		}
	}
	t.Logf("migration %s holds nothing; %s uses %v", mig, src, u.Usages)
}

func mustMigrationUUID(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	m, err := lastMigration(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return m.UUID
}

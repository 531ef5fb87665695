package placement

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// TestReshape moves VCPU inventory and its allocations from a root to a
// child provider, after checking that every failing reshape leaves the
// database as it was.
func TestReshape(t *testing.T) {
	f := newAllocFixture(t)
	root := f.provider("root")
	child := f.provider("child")
	f.inventory(root, invRec{class: "DISK_GB", total: 100}, invRec{class: "VCPU", total: 8})
	vm1, vm2 := uuid.NewString(), uuid.NewString()
	f.run([]allocStep{
		{name: "vm1", method: "PUT", path: "/allocations/" + vm1, mv: "1.28", status: 204,
			body: fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 2, "DISK_GB": 10}}}, "project_id": "p", "user_id": "u", "consumer_generation": null}`, root)},
		{name: "vm2", method: "PUT", path: "/allocations/" + vm2, mv: "1.28", status: 204,
			body: fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 3}}}, "project_id": "p", "user_id": "u", "consumer_generation": null}`, root)},
	})
	// root: 2 inventory bumps + 2 claims = 4; child: 0.
	body := func(rootGen, childGen int, rootInv, childInv, vm1Gen, vm2Gen string) string {
		return fmt.Sprintf(`{"inventories": {
			%q: {"resource_provider_generation": %d, "inventories": %s},
			%q: {"resource_provider_generation": %d, "inventories": %s}},
		 "allocations": {
			%q: {"allocations": {%q: {"resources": {"DISK_GB": 10}}, %q: {"resources": {"VCPU": 2}}},
			     "project_id": "p", "user_id": "u", "consumer_generation": %s},
			%q: {"allocations": {%q: {"resources": {"VCPU": 3}}}, "project_id": "p", "user_id": "u", "consumer_generation": %s}}}`,
			root, rootGen, rootInv, child, childGen, childInv, vm1, root, child, vm1Gen, vm2, child, vm2Gen)
	}
	const rootAfter = `{"DISK_GB": {"total": 100}}`
	const childAfter = `{"VCPU": {"total": 8}}`
	missing := uuid.NewString()
	f.run([]allocStep{
		{name: "below 1.30", method: "POST", path: "/reshaper", mv: "1.29", body: "{}", status: 404},
		{name: "empty body", method: "POST", path: "/reshaper", mv: "1.30", body: "{}", status: 400,
			contains: []string{"JSON does not validate"}},
		{name: "unknown provider", method: "POST", path: "/reshaper", mv: "1.30", status: 400,
			body:     fmt.Sprintf(`{"inventories": {%q: {"resource_provider_generation": 0, "inventories": {}}}, "allocations": {}}`, missing),
			contains: []string{`"code":"placement.resource_provider.not_found"`, "Resource provider " + missing + " in inventories not found"}},
		{name: "stale provider generation", method: "POST", path: "/reshaper", mv: "1.30", status: 409,
			body:     body(3, 0, rootAfter, childAfter, "1", "1"),
			contains: []string{"resource provider generation conflict for provider " + root + ": actual: 4, given: 3", "placement.concurrent_update"}},
		{name: "stale consumer generation", method: "POST", path: "/reshaper", mv: "1.30", status: 409,
			body:     body(4, 0, rootAfter, childAfter, "1", "null"),
			contains: []string{"consumer generation conflict - expected 1 but got None"}},
		{name: "unknown class", method: "POST", path: "/reshaper", mv: "1.30", status: 400,
			body:     body(4, 0, `{"DISK_GB": {"total": 100}, "DISK_OF_STEEL": {"total": 1}}`, childAfter, "1", "1"),
			contains: []string{"malformed reshaper data: No such resource class DISK_OF_STEEL."}},
		{name: "allocations do not fit", method: "POST", path: "/reshaper", mv: "1.30", status: 409,
			body:     body(4, 0, rootAfter, `{"VCPU": {"total": 4}}`, "1", "1"),
			contains: []string{"Unable to allocate inventory: Unable to create allocation for 'VCPU' on resource provider '" + child + "'. The requested amount would exceed the capacity."}},
		{name: "inventory left in use", method: "POST", path: "/reshaper", mv: "1.30", status: 409,
			body:     fmt.Sprintf(`{"inventories": {%q: {"resource_provider_generation": 4, "inventories": %s}}, "allocations": {}}`, root, rootAfter),
			contains: []string{"update conflict: Inventory for 'VCPU' on resource provider '" + root + "' in use.", "placement.inventory.inuse"}},
	})
	if g := f.generation(root); g != 4 {
		t.Fatalf("failed reshapes changed root generation to %d", g)
	}
	if g := f.generation(child); g != 0 {
		t.Fatalf("failed reshapes changed child generation to %d", g)
	}
	if u := f.used(root, "VCPU"); u != 5 {
		t.Fatalf("failed reshapes changed root VCPU usage to %d", u)
	}
	f.run([]allocStep{
		{name: "move VCPU to child", method: "POST", path: "/reshaper", mv: "1.30", status: 204,
			body: body(4, 0, rootAfter, childAfter, "1", "1")},
		{name: "vm1 split", method: "GET", path: "/allocations/" + vm1, mv: "1.28", status: 200,
			json: map[string]string{"allocations." + root + ".resources": `{"DISK_GB":10}`,
				"allocations." + child + ".resources": `{"VCPU":2}`, "consumer_generation": "2"}},
	})
	// root: interim (5), allocations (6), final (7). child: interim (1),
	// allocations (2), final (3).
	if g := f.generation(root); g != 7 {
		t.Errorf("root generation %d, want 7", g)
	}
	if g := f.generation(child); g != 3 {
		t.Errorf("child generation %d, want 3", g)
	}
	if u := f.used(child, "VCPU"); u != 5 {
		t.Errorf("child VCPU used %d, want 5", u)
	}
	if n := f.count(`SELECT count(*) FROM inventories i JOIN resource_providers rp ON rp.id = i.resource_provider_id WHERE rp.uuid = $1`, root); n != 1 {
		t.Errorf("root has %d inventories, want 1", n)
	}
}

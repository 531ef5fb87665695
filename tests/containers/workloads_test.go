package containers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// nativeWorkload is the fields of a /v1/workloads view this test reads.
type nativeWorkload struct {
	ID         string  `json:"id"`
	Kind       string  `json:"kind"`
	State      string  `json:"state"`
	Host       *string `json:"host"`
	PinnedCPUs string  `json:"pinned_cpus"`
	Runtime    *struct {
		Status string `json:"status"`
	} `json:"runtime"`
	Decision *struct {
		Host *string `json:"host"`
	} `json:"decision"`
}

// The native API end to end: one instruction with a dedicated container
// and a VM; the container runs on the host the decision names, pinned to
// that host's dedicated CPU; the VM is a claim; deletes release both.
func TestNativeWorkloadsAPI(t *testing.T) {
	NeedAgent(t)
	env := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	api := env.Zun.As("alice:projA")

	res, err := api.Do(ctx, "POST", "/v1/workloads", map[string]any{"workloads": []map[string]any{
		{"kind": "container", "name": "pinned", "cpu_policy": "dedicated", "cpu": 1, "memory_mb": 32,
			"image": env.Image, "command": []string{"sleep", "300"}},
		{"kind": "vm", "name": "vm1", "cpu": 1, "memory_mb": 64},
	}})
	if err != nil || res.Status != http.StatusAccepted {
		t.Fatalf("create: %v %d %s", err, nativeStatus(res), nativeBody(res))
	}
	var created struct {
		Workloads []nativeWorkload `json:"workloads"`
	}
	if err := res.JSON(&created); err != nil || len(created.Workloads) != 2 {
		t.Fatalf("create body: %v %s", err, nativeBody(res))
	}
	ct, vm := created.Workloads[0], created.Workloads[1]
	if ct.Host == nil || ct.Decision == nil || ct.Decision.Host == nil || *ct.Decision.Host != *ct.Host {
		t.Fatalf("container not placed where its decision says: %+v", ct)
	}
	if vm.Kind != "vm" || vm.State != "claimed" || vm.Host == nil {
		t.Fatalf("vm: %+v", vm)
	}
	spec := specOf(t, *ct.Host)
	if ct.PinnedCPUs != spec.DedicatedCPUs {
		t.Fatalf("pinned %q, want the host's dedicated CPU %s", ct.PinnedCPUs, spec.DedicatedCPUs)
	}

	// the agent runs it and reports: the native view says Running
	err = Eventually(ctx, time.Minute, func(ctx context.Context) error {
		res, err := api.Do(ctx, "GET", "/v1/workloads/"+ct.ID, nil)
		if err != nil {
			return err
		}
		var w nativeWorkload
		if err := res.JSON(&w); err != nil {
			return err
		}
		if w.Runtime == nil || w.Runtime.Status != "Running" || w.State != "active" {
			return fmt.Errorf("state %s runtime %+v", w.State, w.Runtime)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("container never running: %v\n%s", err, env.Logs(40))
	}
	ins, err := env.Inspect(ctx, ct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ins.HostConfig.CpusetCpus != ct.PinnedCPUs || !ins.State.Running {
		t.Fatalf("docker: cpuset %q running %v, want %q running", ins.HostConfig.CpusetCpus, ins.State.Running, ct.PinnedCPUs)
	}

	// another project does not see it; a running container needs stop
	if res, _ := env.Zun.As("bob:projB").Do(ctx, "GET", "/v1/workloads/"+ct.ID, nil); nativeStatus(res) != http.StatusNotFound {
		t.Errorf("bob reads alice's workload: %d", nativeStatus(res))
	}
	if res, _ := api.Do(ctx, "DELETE", "/v1/workloads/"+ct.ID, nil); nativeStatus(res) != http.StatusConflict {
		t.Errorf("delete of a running container without stop: %d %s", nativeStatus(res), nativeBody(res))
	}
	for _, id := range []string{ct.ID + "?stop=true", vm.ID} {
		if res, err := api.Do(ctx, "DELETE", "/v1/workloads/"+id, nil); err != nil || res.Status != http.StatusNoContent {
			t.Fatalf("delete %s: %v %d %s", id, err, nativeStatus(res), nativeBody(res))
		}
	}
	err = Eventually(ctx, time.Minute, func(ctx context.Context) error {
		res, err := api.Do(ctx, "GET", "/v1/workloads", nil)
		if err != nil {
			return err
		}
		if s := string(res.Body); !strings.Contains(s, `"workloads":[]`) {
			return fmt.Errorf("still listed: %s", s)
		}
		for _, h := range []string{"host-a", "host-b"} {
			u, err := env.Placement.Usages(ctx, h)
			if err != nil {
				return err
			}
			if u["PCPU"] != 0 || u["MEMORY_MB"] != 0 || u["VCPU"] != 0 {
				return fmt.Errorf("usages of %s: %v", h, u)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the deletes: %v\n%s", err, env.Logs(40))
	}
	if _, err := env.Inspect(ctx, ct.ID); err == nil {
		t.Errorf("docker container %s still there", DockerName(ct.ID))
	}
}

func nativeStatus(r *Response) int {
	if r == nil {
		return 0
	}
	return r.Status
}

func nativeBody(r *Response) string {
	if r == nil {
		return ""
	}
	return truncate(r.Body)
}

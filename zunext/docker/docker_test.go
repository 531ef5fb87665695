package docker

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/dockertest"
)

const testImage = "unisched/busybox:latest"

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// testDockerHost is the test binary's dockerd (internal/dockertest: a
// private one, or UNISCHED_TEST_DOCKER_HOST), with the busybox image.
func testDockerHost(t *testing.T) string {
	t.Helper()
	dockertest.Image(t)
	return dockertest.Host(t)
}

func newTestDriver(t *testing.T, host string) *Driver {
	t.Helper()
	d, err := New(Options{Host: host, DockerHost: testDockerHost(t), ClampCpusets: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// remove whatever this test's host left behind
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if obs, err := d.List(ctx); err == nil {
			for _, o := range obs {
				_ = d.Remove(ctx, o.WorkloadID, true)
			}
		}
		d.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("docker at %s: %v", testDockerHost(t), err)
	}
	return d
}

func testHost() string { return "test-" + uuid.NewString()[:8] }

func sleeper(policy string) *agentproto.Container {
	c := &agentproto.Container{
		WorkloadID: uuid.NewString(), Name: "c1", ProjectID: "p1", Image: testImage,
		Command: []string{"sh", "-c", "echo hello; echo oops >&2; exec sleep 600"}, CPUPolicy: policy, CPU: 0.5, MemoryMB: 64,
		Env: map[string]string{"FOO": "bar"}, Labels: map[string]string{"user": "label"}, Workdir: "/tmp", Hostname: "box1",
	}
	if policy == "dedicated" {
		c.CPU, c.CpusetCpus, c.CpusetMems = 1, "1", "0"
	} else {
		c.CpusetCpus = "0-1"
	}
	return c
}

func TestCreateDedicatedAndShared(t *testing.T) {
	d := newTestDriver(t, testHost())
	ctx := context.Background()

	ded := sleeper("dedicated")
	if _, err := d.Create(ctx, ded, ""); err != nil {
		t.Fatal(err)
	}
	info, err := d.cli.ContainerInspect(ctx, Name(ded.WorkloadID))
	if err != nil {
		t.Fatal(err)
	}
	hc := info.HostConfig
	if hc.CpusetCpus != "1" || hc.CpusetMems != "0" || hc.Memory != 64<<20 || hc.NanoCPUs != 0 || string(hc.NetworkMode) != "none" {
		t.Fatalf("dedicated host config: cpus %q mems %q memory %d nano %d net %q", hc.CpusetCpus, hc.CpusetMems, hc.Memory, hc.NanoCPUs, hc.NetworkMode)
	}
	lb := info.Config.Labels
	if lb[agentproto.LabelWorkload] != ded.WorkloadID || lb[agentproto.LabelHost] != d.host || lb[agentproto.LabelProject] != "p1" ||
		lb[LabelCPUPolicy] != "dedicated" || lb["user"] != "label" {
		t.Fatalf("labels %v", lb)
	}
	if info.Config.WorkingDir != "/tmp" || info.Config.Hostname != "box1" || !contains(info.Config.Env, "FOO=bar") {
		t.Fatalf("config: workdir %q hostname %q env %v", info.Config.WorkingDir, info.Config.Hostname, info.Config.Env)
	}
	o, err := d.Inspect(ctx, ded.WorkloadID)
	if err != nil || o.Status != agentproto.StatusCreated {
		t.Fatalf("inspect after create: %+v, %v", o, err)
	}

	sh := sleeper("shared")
	sh.CPU = 1.5
	if _, err := d.Create(ctx, sh, "0"); err != nil {
		t.Fatal(err)
	}
	info, err = d.cli.ContainerInspect(ctx, Name(sh.WorkloadID))
	if err != nil {
		t.Fatal(err)
	}
	hc = info.HostConfig
	if hc.CpusetCpus != "0" || hc.CpusetMems != "" || hc.NanoCPUs != 1_500_000_000 || hc.Memory != 64<<20 {
		t.Fatalf("shared host config: cpus %q mems %q nano %d memory %d", hc.CpusetCpus, hc.CpusetMems, hc.NanoCPUs, hc.Memory)
	}

	// a second create of the same workload is refused, not duplicated
	if _, err := d.Create(ctx, sh, ""); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	obs, err := d.List(ctx)
	if err != nil || len(obs) != 2 {
		t.Fatalf("list: %d containers, %v", len(obs), err)
	}
}

func TestMissingImage(t *testing.T) {
	d := newTestDriver(t, testHost())
	c := sleeper("shared")
	c.Image = "unisched/does-not-exist:1"
	_, err := d.Create(context.Background(), c, "")
	var ie *ImageNotFoundError
	if !errors.As(err, &ie) || err.Error() != "image unisched/does-not-exist:1 not found" {
		t.Fatalf("create with a missing image: %v", err)
	}
	if _, err := d.Inspect(context.Background(), c.WorkloadID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nothing may be created: %v", err)
	}
}

func TestLifecycleAndSyncCalls(t *testing.T) {
	d := newTestDriver(t, testHost())
	ctx := context.Background()
	c := sleeper("shared")
	if _, err := d.Create(ctx, c, ""); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, c.WorkloadID); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, c.WorkloadID, agentproto.StatusRunning)

	// logs: both streams, demultiplexed (no 8-byte frame headers)
	var logs string
	for i := 0; i < 50; i++ {
		logs, _ = d.Logs(ctx, c.WorkloadID, LogOptions{})
		if strings.Contains(logs, "oops") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if logs != "hello\noops\n" && logs != "oops\nhello\n" {
		t.Fatalf("logs %q", logs)
	}
	if out, _ := d.Logs(ctx, c.WorkloadID, LogOptions{Stdout: true}); out != "hello\n" {
		t.Fatalf("stdout only: %q", out)
	}

	res, err := d.Exec(ctx, c.WorkloadID, []string{"sh", "-c", "echo $FOO; pwd; exit 7"})
	if err != nil || res.Output != "bar\n/tmp\n" || res.ExitCode != 7 {
		t.Fatalf("exec: %+v, %v", res, err)
	}

	top, err := d.Top(ctx, c.WorkloadID, "")
	if err != nil || len(top.Processes) != 1 || !strings.Contains(strings.Join(top.Processes[0], " "), "sleep 600") {
		t.Fatalf("top: %+v, %v", top, err)
	}

	st, err := d.Stats(ctx, c.WorkloadID)
	if err != nil || st.MemLimit != 64 || st.MemUsage <= 0 || st.MemPercent <= 0 || st.BlockIO == "" || st.NetIO == "" {
		t.Fatalf("stats: %+v, %v", st, err)
	}

	// update: cpuset, quota, memory (up past the swap limit set at create, and down)
	for _, mem := range []int64{512, 96} {
		if err := d.Update(ctx, c.WorkloadID, d.Resources(&agentproto.Container{CPUPolicy: "shared", CPU: 0.25, MemoryMB: mem, CpusetCpus: "1"}, "")); err != nil {
			t.Fatal(err)
		}
		info, _ := d.cli.ContainerInspect(ctx, Name(c.WorkloadID))
		if hc := info.HostConfig; hc.CpusetCpus != "1" || hc.NanoCPUs != 250_000_000 || hc.Memory != mem<<20 {
			t.Fatalf("after update to %d MiB: cpus %q nano %d memory %d", mem, hc.CpusetCpus, hc.NanoCPUs, hc.Memory)
		}
	}

	if err := d.Pause(ctx, c.WorkloadID); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, c.WorkloadID, agentproto.StatusPaused)
	if err := d.Unpause(ctx, c.WorkloadID); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, c.WorkloadID, agentproto.StatusRunning)
	if err := d.Stop(ctx, c.WorkloadID, 1); err != nil {
		t.Fatal(err)
	}
	o := wantStatus(t, d, c.WorkloadID, agentproto.StatusStopped)
	if o.ExitCode == nil {
		t.Fatal("stopped container without exit code")
	}
	if err := d.Restart(ctx, c.WorkloadID, 1); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, c.WorkloadID, agentproto.StatusRunning)
	if err := d.Kill(ctx, c.WorkloadID, "KILL"); err != nil {
		t.Fatal(err)
	}
	o = wantStatus(t, d, c.WorkloadID, agentproto.StatusStopped)
	if *o.ExitCode != 137 {
		t.Fatalf("exit code after kill: %d", *o.ExitCode)
	}

	if err := d.Remove(ctx, c.WorkloadID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Inspect(ctx, c.WorkloadID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	if err := d.Remove(ctx, c.WorkloadID, true); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if _, err := d.Logs(ctx, c.WorkloadID, LogOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("logs of a removed container: %v", err)
	}
}

// TestHostScoping: a driver never sees nor touches another host's container.
func TestHostScoping(t *testing.T) {
	a := newTestDriver(t, testHost())
	b := newTestDriver(t, testHost())
	ctx := context.Background()
	c := sleeper("shared")
	if _, err := a.Create(ctx, c, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Inspect(ctx, c.WorkloadID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other host inspect: %v", err)
	}
	if err := b.Remove(ctx, c.WorkloadID, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, c.WorkloadID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other host start: %v", err)
	}
	if obs, _ := b.List(ctx); len(obs) != 0 {
		t.Fatalf("other host lists %d", len(obs))
	}
	if _, err := a.Inspect(ctx, c.WorkloadID); err != nil {
		t.Fatalf("own container gone: %v", err)
	}
}

func TestEvents(t *testing.T) {
	d := newTestDriver(t, testHost())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, errc := d.Events(ctx)
	time.Sleep(100 * time.Millisecond) // the subscription is made asynchronously
	c := sleeper("shared")
	c.Command = []string{"true"}
	if _, err := d.Create(ctx, c, ""); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, c.WorkloadID); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case e := <-evs:
			if e.WorkloadID != c.WorkloadID {
				t.Fatalf("event of another workload: %+v", e)
			}
			got = append(got, e.Action)
		case err := <-errc:
			t.Fatalf("event stream: %v", err)
		case <-ctx.Done():
			t.Fatalf("events so far %v", got)
		}
	}
	if strings.Join(got, ",") != "create,start,die" {
		t.Fatalf("events %v", got)
	}
}

func TestLists(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""}, {"0", "0"}, {"3,1,2", "1-3"}, {"0-3,8,10-11", "0-3,8,10-11"}, {"5, 4 ,4", "4-5"},
	} {
		ids, err := ParseList(tc.in)
		if err != nil || FormatList(ids) != tc.want {
			t.Errorf("%q -> %v %q, %v", tc.in, ids, FormatList(ids), err)
		}
	}
	for _, bad := range []string{"a", "3-1", "-1", "1-"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if got, ok := clampList("0-5", []int{0, 1}); got != "0-1" || !ok {
		t.Errorf("clamp %q %v", got, ok)
	}
	if got, ok := clampList("7", []int{0, 1}); got != "" || ok {
		t.Errorf("clamp %q %v", got, ok)
	}
}

func wantStatus(t *testing.T, d *Driver, wid, status string) *Observed {
	t.Helper()
	var o *Observed
	var err error
	for i := 0; i < 100; i++ {
		if o, err = d.Inspect(context.Background(), wid); err == nil && o.Status == status {
			return o
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("status of %s: %+v, %v; want %s", wid, o, err, status)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

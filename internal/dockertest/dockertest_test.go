package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// run creates, starts and waits for one container and returns its stdout.
func run(t *testing.T, cli *client.Client, cfg *container.Config, hc *container.HostConfig) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, "")
	if err != nil {
		t.Fatalf("creating container: %v", err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting container: %v", err)
	}
	waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		t.Fatalf("waiting for container: %v", err)
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		t.Fatalf("demultiplexing logs: %v", err)
	}
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return stdout.String(), code
}

func TestRunEchoOK(t *testing.T) {
	img := Image(t)
	cli := Client(t)
	out, code := run(t, cli, &container.Config{Image: img, Cmd: []string{"echo", "ok"}}, nil)
	if out != "ok\n" || code != 0 {
		t.Fatalf("echo ok: output %q, exit %d; want \"ok\\n\", 0", out, code)
	}
	// The image's CMD and PATH: sh -c finds applets through /bin.
	out, code = run(t, cli, &container.Config{Image: img, Cmd: []string{"sh", "-c", "id -u; cat /etc/passwd | head -1; test -d /tmp && echo tmp; exit 3"}}, nil)
	if want := "0\nroot:x:0:0:root:/root:/bin/sh\ntmp\n"; out != want || code != 3 {
		t.Fatalf("sh -c: output %q, exit %d; want %q, 3", out, code, want)
	}
}

func TestCgroupLimits(t *testing.T) {
	img := Image(t)
	cli := Client(t)
	out, code := run(t, cli, &container.Config{Image: img, Cmd: []string{"sh", "-c",
		"cat /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || cat /sys/fs/cgroup/cpuset.cpus.effective"}},
		&container.HostConfig{Resources: container.Resources{CpusetCpus: "0", Memory: 64 << 20}})
	if strings.TrimSpace(out) != "0" || code != 0 {
		t.Fatalf("cpuset inside the container: %q (exit %d), want 0", out, code)
	}
}

func TestImageIdempotentAndLabelled(t *testing.T) {
	Image(t)
	cli := Client(t)
	ctx := context.Background()
	before, err := cli.ImageInspect(ctx, ImageName)
	if err != nil {
		t.Fatal(err)
	}
	id, err := EnsureImage(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	if id != before.ID {
		t.Fatalf("EnsureImage rebuilt the image: %s, was %s", id, before.ID)
	}
	version, err := BusyboxVersion(ctx, BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := before.Config
	if cfg == nil || cfg.Labels[VersionLabel] != version || len(cfg.Cmd) != 1 || cfg.Cmd[0] != "/bin/sh" ||
		!containsString(cfg.Env, "PATH=/bin") {
		t.Fatalf("image config %+v: want label %s=%s, CMD [/bin/sh], ENV PATH=/bin", cfg, VersionLabel, version)
	}
	if before.Size > 4<<20 {
		t.Errorf("image is %d bytes, expected about 2 MB", before.Size)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRootfs(t *testing.T) {
	if err := checkStatic(BusyboxPath); err != nil {
		Unavailable(t, err)
	}
	b, err := Rootfs(context.Background(), BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
		entries[h.Name] = h
	}
	checks := []struct {
		name     string
		typ      byte
		mode     int64
		linkname string
	}{
		{"bin/busybox", tar.TypeReg, 0o755, ""},
		{"bin/sh", tar.TypeSymlink, 0o777, "busybox"},
		{"bin/echo", tar.TypeSymlink, 0o777, "busybox"},
		{"bin/sleep", tar.TypeSymlink, 0o777, "busybox"},
		{"tmp/", tar.TypeDir, 0o1777, ""},
		{"root/", tar.TypeDir, 0o700, ""},
		{"etc/passwd", tar.TypeReg, 0o644, ""},
		{"etc/group", tar.TypeReg, 0o644, ""},
	}
	for _, c := range checks {
		h, ok := entries[c.name]
		if !ok {
			t.Errorf("rootfs lacks %s", c.name)
			continue
		}
		if h.Typeflag != c.typ || h.Mode != c.mode || h.Linkname != c.linkname {
			t.Errorf("%s: type %c mode %o link %q; want %c %o %q", c.name, h.Typeflag, h.Mode, h.Linkname, c.typ, c.mode, c.linkname)
		}
	}
	if len(entries) < 100 {
		t.Errorf("only %d entries: the applet symlinks are missing", len(entries))
	}
}

// A daemon of its own (with --live-restore, as a fault test would use it),
// restarted after a crash and gracefully: images survive both, and the
// container the crash left running is still running under the new daemon.
func TestDaemonRestartAndKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second dockerd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d, err := StartDaemon(ctx, Options{ExtraArgs: []string{"--live-restore"}})
	if errors.Is(err, ErrUnavailable) {
		Unavailable(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = d.Close(context.Background())
		}
	})
	cli, err := NewClient(d.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	id, err := EnsureImage(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: ImageName, Cmd: []string{"sleep", "300"}}, nil, nil, nil, "sleeper")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}

	// Crash: dockerd dies, containerd keeps the container; a new dockerd
	// picks it up again.
	if err := d.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Pid() != 0 || pingSocket(ctx, d.Socket()) == nil {
		t.Fatal("dockerd still answers after Kill")
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if again, err := EnsureImage(ctx, cli); err != nil || again != id {
		t.Fatalf("image after a crash restart: %s, %v; want %s", again, err, id)
	}
	if inspect, err := cli.ContainerInspect(ctx, created.ID); err != nil || inspect.State == nil || !inspect.State.Running {
		t.Fatalf("container after the crash: %+v, %v; want it running", inspect.State, err)
	}

	// Graceful stop: every process of the daemon is gone afterwards.
	if err := cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if left := d.processes(); len(left) > 0 {
		t.Fatalf("processes left after Stop: %v", left)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if again, err := EnsureImage(ctx, cli); err != nil || again != id {
		t.Fatalf("image after a restart: %s, %v; want %s", again, err, id)
	}
	dir := d.Dir
	closed = true
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after Close (%v)", dir, err)
	}
	if left := d.processes(); len(left) > 0 {
		t.Fatalf("processes left after Close: %v", left)
	}
}

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/tmp/a", "/tmp/a"},
		{`/tmp/a\040b`, "/tmp/a b"},
		{`/x\134y`, `/x\y`},
		{`/bad\9`, `/bad\9`},
	}
	for _, tt := range tests {
		if got := unescapeMount(tt.in); got != tt.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUnavailableWithoutMain(t *testing.T) {
	// The shared host is already set up by other tests or not; what must
	// hold is that Required follows the variable.
	t.Setenv(EnvRequire, "1")
	if !Required() {
		t.Fatal("Required() false with UNISCHED_REQUIRE_DOCKER=1")
	}
	t.Setenv(EnvRequire, "0")
	if Required() {
		t.Fatal("Required() true with UNISCHED_REQUIRE_DOCKER=0")
	}
}

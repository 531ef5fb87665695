package upgrade_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/imagesec/upgrade"
	"github.com/unisched/unisched/internal/dockertest"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := dockertest.Main(m)
	pgtest.DropTemplate()
	os.Exit(code)
}

// serve serves dir over HTTP on loopback, on a port of 20500-20599.
func serve(t testing.TB, dir string) string {
	t.Helper()
	var ln net.Listener
	var err error
	for port := 20599; port >= 20500; port-- {
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
	}
	if ln == nil {
		t.Fatalf("no free port in 20500-20599: %v", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

func sandbox(t testing.TB) *upgrade.Sandbox {
	t.Helper()
	cli := dockertest.Client(t)
	img, err := upgrade.EnsureImage(context.Background(), cli, upgrade.Busybox)
	if err != nil {
		dockertest.Unavailable(t, err)
	}
	return &upgrade.Sandbox{Client: cli, Image: img}
}

func sum(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// plan advises the image against a feed location.
func plan(t testing.TB, image, feedLoc string) []advise.Upgrade {
	t.Helper()
	ctx := context.Background()
	r, err := inspect.Inspect(ctx, image, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	feed, err := advise.LoadFeed(ctx, feedLoc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := advise.Advise(advise.Target{PackageFormat: r.PackageFormat, Distro: r.OS.Distro, Version: r.OS.Version, Codename: r.OS.Codename}, r.Packages, feed, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.Upgrades
}

// TestUpgradeQcow2 upgrades the real qcow2 test image from the test feed
// over HTTP with the guest's own dpkg in the sandbox, then checks the
// result by re-inspection and the dpkg output; the source is unchanged. A
// second upgrade (the raw MBR image, same base) takes every .deb from the
// cache.
func TestUpgradeQcow2(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	sb := sandbox(t)
	base := serve(t, im.Feed.Dir)
	cache, err := upgrade.NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srcSum := sum(t, im.QcowGPT)
	out := filepath.Join(t.TempDir(), "upgraded.qcow2")
	var events []upgrade.Event
	res, err := upgrade.Upgrade(ctx, im.QcowGPT, out, plan(t, im.QcowGPT, base), upgrade.Options{
		Sandbox: sb, Cache: cache, WorkDir: t.TempDir(), Progress: func(e upgrade.Event) { events = append(events, e) }})
	if err != nil {
		t.Fatalf("%v\ndpkg output:\n%s", err, resOrNil(res))
	}
	t.Logf("timings %v; dpkg output:\n%s", res.Timings, res.DpkgLog)
	if sum(t, im.QcowGPT) != srcSum {
		t.Error("the source image changed")
	}
	after, err := inspect.Inspect(ctx, out, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if after.Format != "qcow2" || after.PartitionTable != "gpt" || after.RootPartition != im.RootPartitionGPT {
		t.Errorf("result: format %s table %s root %d", after.Format, after.PartitionTable, after.RootPartition)
	}
	fixed := map[string]string{}
	for _, f := range im.Feed.Fixes {
		fixed[f.Name] = f.To
	}
	if len(after.Packages) != len(im.Packages) {
		t.Errorf("%d packages after, %d before", len(after.Packages), len(im.Packages))
	}
	for i, p := range after.Packages {
		want := im.Packages[i].Version
		if to, ok := fixed[p.Name]; ok {
			want = to
		}
		if p.Name != im.Packages[i].Name || p.Version != want || p.Status != "installed" {
			t.Errorf("package %s %s (%s), want %s %s", p.Name, p.Version, p.Status, im.Packages[i].Name, want)
		}
	}
	before, err := inspect.Inspect(ctx, im.QcowGPT, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range after.Partitions {
		b := before.Partitions[i]
		if p.Start != b.Start || p.Size != b.Size || p.Type != b.Type || p.Label != b.Label || p.Filesystem != b.Filesystem {
			t.Errorf("partition %d: %+v, before %+v", p.Number, p, b)
		}
	}
	// The maintainer script ran in the sandbox: its uname -n is the
	// sandbox's, not this host's.
	host, _ := os.Hostname()
	if !strings.Contains(res.DpkgLog, testimage.PostinstMarker+upgrade.SandboxHostname) || host == upgrade.SandboxHostname {
		t.Errorf("postinst marker %q not in the dpkg output (host %s):\n%s", testimage.PostinstMarker+upgrade.SandboxHostname, host, res.DpkgLog)
	}
	stages := map[string]bool{}
	for _, e := range events {
		stages[e.Stage] = true
		if e.Steps == 0 || e.Step > e.Steps {
			t.Errorf("event %+v", e)
		}
	}
	for _, s := range []string{"inspect", "download", "copy", "extract", "dpkg", "rebuild", "write", "convert", "verify", "done"} {
		if !stages[s] {
			t.Errorf("no %s progress event", s)
		}
	}
	if h, m, _ := cache.Stats(); h != 0 || m != len(im.Feed.Fixes) {
		t.Errorf("cache hits %d misses %d, want 0 and %d", h, m, len(im.Feed.Fixes))
	}

	out2 := filepath.Join(t.TempDir(), "upgraded.raw")
	res2, err := upgrade.Upgrade(ctx, im.RawMBR, out2, plan(t, im.RawMBR, im.Feed.Dir), upgrade.Options{Sandbox: sb, Cache: cache, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatalf("%v\n%s", err, resOrNil(res2))
	}
	if h, m, _ := cache.Stats(); h != len(im.Feed.Fixes) || m != len(im.Feed.Fixes) {
		t.Errorf("after the second image: cache hits %d misses %d, want %d each", h, m, len(im.Feed.Fixes))
	}
	if res2.Report.Format != "raw" || res2.Report.PartitionTable != "mbr" {
		t.Errorf("second result: %s %s", res2.Report.Format, res2.Report.PartitionTable)
	}
}

func resOrNil(r *upgrade.Result) string {
	if r == nil {
		return "(no result)"
	}
	return r.DpkgLog
}

// TestSandboxIsolated asserts from inside the sandbox that it has no
// network but loopback and cannot reach a server listening on the host's
// loopback, and that it runs in its own UTS namespace.
func TestSandboxIsolated(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	url := serve(t, im.Feed.Dir)
	// Reachable from the host...
	if resp, err := http.Get(url + "Release"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("host GET: %v", err)
	}
	root := t.TempDir()
	out, code, err := sandbox(t).Run(ctx, root, "", `cat /proc/net/dev; echo "host=$(hostname)"
wget -T 5 -q -O - `+url+`Release >/dev/null 2>&1; echo "wget=$?"`)
	if err != nil || code != 0 {
		t.Fatalf("sandbox: %v exit %d\n%s", err, code, out)
	}
	var ifaces []string
	for _, l := range strings.Split(out, "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(l, "|") && !strings.HasPrefix(l, "host=") {
			ifaces = append(ifaces, strings.TrimSpace(name))
		}
	}
	if strings.Join(ifaces, ",") != "lo" {
		t.Errorf("interfaces in the sandbox: %v\n%s", ifaces, out)
	}
	if strings.Contains(out, "wget=0") || !strings.Contains(out, "wget=") {
		t.Errorf("the sandbox reached the host's %s:\n%s", url, out)
	}
	if !strings.Contains(out, "host="+upgrade.SandboxHostname) {
		t.Errorf("hostname in the sandbox:\n%s", out)
	}
}

// TestUpgradeBadInputs: a .deb that does not match the index, a package
// whose postinst fails, an unreachable feed and a plan for another image
// are clear errors; no output is left and the source is unchanged.
func TestUpgradeBadInputs(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	sb := sandbox(t)
	srcSum := sum(t, im.RawGPT)

	// A feed whose tar .deb was replaced after its index was written.
	tampered := t.TempDir()
	if err := os.CopyFS(tampered, os.DirFS(im.Feed.Dir)); err != nil {
		t.Fatal(err)
	}
	for _, f := range im.Feed.Fixes {
		if f.Name == "tar" {
			fp := filepath.Join(tampered, f.Filename)
			b, err := os.ReadFile(fp)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(fp, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	good := plan(t, im.RawGPT, im.Feed.Dir)
	unreachable := append([]advise.Upgrade(nil), good...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()
	for i := range unreachable {
		d := *unreachable[i].Deb
		d.URL = closed + d.Filename
		unreachable[i].Deb = &d
	}
	other := append([]advise.Upgrade(nil), good...)
	other[0].From = "0.0-0"

	cases := []struct {
		name string
		plan []advise.Upgrade
		kind error
		text string
	}{
		{"checksum", plan(t, im.RawGPT, serve(t, tampered)), upgrade.ErrChecksum, "tar"},
		{"postinst", plan(t, im.RawGPT, im.Feed.BadPostinst), upgrade.ErrDpkg, "this postinst fails"},
		{"unreachable", unreachable, advise.ErrFeed, "connect"},
		{"other image", other, nil, "plan was made for another image"},
		{"nothing", nil, upgrade.ErrNothing, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache, err := upgrade.NewCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out.raw")
			_, err = upgrade.Upgrade(ctx, im.RawGPT, out, c.plan, upgrade.Options{Sandbox: sb, Cache: cache, WorkDir: t.TempDir()})
			if err == nil || (c.kind != nil && !errors.Is(err, c.kind)) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("err = %v, want %v containing %q", err, c.kind, c.text)
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
	if sum(t, im.RawGPT) != srcSum {
		t.Error("the source image changed")
	}
}

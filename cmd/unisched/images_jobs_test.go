package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/tests/novaharness"
)

// TestImagesCollectPublishCLI runs `unisched images collect`, `publish`
// and `jobs` against a real Glance and database: progress on stderr,
// the job's result on stdout, a failed job as the command's error.
func TestImagesCollectPublishCLI(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	g, err := novaharness.StartGlance(ctx, novaharness.GlanceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_CONFIG", "")
	t.Setenv("UNISCHED_IMAGESEC_GLANCE_ENDPOINT", g.URL)
	t.Setenv("UNISCHED_IMAGESEC_WORK_DIR", t.TempDir())
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := imagesCLI{stdout: &out, stderr: &errOut}.run(ctx, args)
		return out.String(), errOut.String(), err
	}
	c, err := collect.NewClient(ctx, collect.Auth{Endpoint: g.URL})
	if err != nil {
		t.Fatal(err)
	}
	img, err := images.Create(ctx, c, images.CreateOpts{Name: "debian-mbr", DiskFormat: "qcow2", ContainerFormat: "bare"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(im.QcowMBR)
	if err := imagedata.Upload(ctx, c, img.ID, f).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	out, progress, err := run("collect")
	if err != nil {
		t.Fatalf("collect: %v\n%s", err, progress)
	}
	for _, want := range []string{"collect: job 1", "download [0/1] ", "job 1 succeeded after"} {
		if !strings.Contains(progress, want) {
			t.Errorf("collect's progress lacks %q:\n%s", want, progress)
		}
	}
	for _, want := range []string{"job 1: collect succeeded", "1 listed, 1 inspected, 0 skipped, 0 failed", img.ID + "  debian-mbr  qcow2   inspected  1"} {
		if !strings.Contains(out, want) {
			t.Errorf("collect's output lacks %q:\n%s", want, out)
		}
	}
	if out, _, err := run("collect", "-q"); err != nil || !strings.Contains(out, "1 listed, 0 inspected, 1 skipped") {
		t.Errorf("second collect: %v\n%s", err, out)
	}

	out, progress, err = run("publish", "--file", im.Truncate, "--parent", img.ID, "--hide-parent", "--name", "debian-mbr patched")
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, progress)
	}
	if !strings.Contains(out, `"debian-mbr patched" (family `+img.ID+", parent hidden: true)") {
		t.Errorf("publish output:\n%s", out)
	}
	if p, _ := images.Get(ctx, c, img.ID).Extract(); !p.Hidden {
		t.Error("parent not hidden")
	}
	// a failed job is the command's error
	if _, _, err := run("publish", "--file", im.Truncate, "--parent", "c0ffee00-0000-4000-8000-000000000000", "-q"); err == nil ||
		!strings.Contains(err.Error(), "job 4 (publish) failed: parent image not found in glance") {
		t.Errorf("publish to a missing parent: %v", err)
	}
	out, _, err = run("jobs")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[1], "4   publish  failed") || !strings.HasPrefix(lines[4], "1   collect  succeeded") {
		t.Errorf("jobs:\n%s", out)
	}
	if out, _, err := run("jobs", "1", "--watch", "-f", "json"); err != nil || !strings.Contains(out, `"state": "succeeded"`) {
		t.Errorf("jobs 1 --watch: %v\n%s", err, out)
	}
	for _, bad := range [][]string{{"collect", "x"}, {"publish"}, {"jobs", "--watch"}, {"jobs", "x"}, {"jobs", "99"}} {
		if _, _, err := run(bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

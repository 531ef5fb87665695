package publish_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/unisched/unisched/imagesec"
	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/publish"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/tests/novaharness"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func qcow2(t *testing.T, size string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk-"+size+".qcow2")
	if b, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, size).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, b)
	}
	return p
}

// TestPublish publishes patched images of a parent in a real Glance and
// checks the new images, their properties, the hidden parent, the
// lineage and family resolution; bad requests create nothing.
func TestPublish(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Pool(t)
	g, err := novaharness.StartGlance(ctx, novaharness.GlanceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("glance log:\n%s", g.Log(40))
		}
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	}()
	c, err := collect.NewClient(ctx, collect.Auth{Endpoint: g.URL})
	if err != nil {
		t.Fatal(err)
	}
	parent, err := images.Create(ctx, c, images.CreateOpts{Name: "debian-12", DiskFormat: "qcow2", ContainerFormat: "bare",
		MinDisk: 2, Properties: map[string]string{"hw_disk_bus": "virtio", "os_distro": "debian", "owner_note": "not copied"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(qcow2(t, "64M"))
	if err := imagedata.Upload(ctx, c, parent.ID, f).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	count := func() int {
		n := 0
		for _, hidden := range []bool{false, true} {
			l, err := images.List(c, images.ListOpts{Hidden: hidden}).AllPages(ctx)
			if err != nil {
				t.Fatal(err)
			}
			imgs, _ := images.ExtractImages(l)
			n += len(imgs)
		}
		return n
	}

	// bad requests: nothing is created
	file := qcow2(t, "80M")
	for _, bad := range []struct {
		req  publish.Request
		want error
	}{
		{publish.Request{File: file}, publish.ErrInvalid},
		{publish.Request{File: filepath.Join(t.TempDir(), "missing"), ParentGlanceID: parent.ID}, publish.ErrInvalid},
		{publish.Request{File: t.TempDir(), ParentGlanceID: parent.ID}, publish.ErrInvalid},
		{publish.Request{File: file, ParentGlanceID: "7d3ac0a6-6a31-4b0e-9d8e-000000000000"}, publish.ErrParentNotFound},
	} {
		if _, err := publish.Publish(ctx, db, c, bad.req); !errors.Is(err, bad.want) {
			t.Errorf("Publish(%+v) = %v, want %v", bad.req, err, bad.want)
		}
	}
	if n := count(); n != 1 {
		t.Errorf("after bad requests glance has %d images, want 1", n)
	}
	if _, err := imagesec.ResolveFamily(ctx, db, parent.ID); !errors.Is(err, store.ErrNoPatchedImage) {
		t.Errorf("ResolveFamily before any publish: %v", err)
	}
	if id, err := imagesec.ResolveImage(ctx, db, parent.ID); err != nil || id != parent.ID {
		t.Errorf("ResolveImage before any publish: %q, %v", id, err)
	}

	var many []store.Fix
	for i := 0; i < 30; i++ {
		many = append(many, store.Fix{Name: "libexample" + strings.Repeat("x", i%7), From: "1.0-1", To: "1.0-1+deb12u1"})
	}
	day := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	var steps []store.Progress
	t0 := time.Now()
	res, err := publish.Publish(ctx, db, c, publish.Request{File: file, ParentGlanceID: parent.ID,
		Fixes:      []store.Fix{{Name: "libc6", From: "2.36-9+deb12u7", To: "2.36-9+deb12u9"}, {Name: "bash", From: "5.2.15-2+b2", To: "5.2.15-2+b3"}},
		Advisories: []string{"DSA-5001-1", "DSA-5002-1"}, ImageID: 0, Now: func() time.Time { return day },
		Progress: func(p store.Progress) { steps = append(steps, p) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("published in %v", time.Since(t0).Round(time.Millisecond))
	img, err := images.Get(ctx, c, res.GlanceID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(file)
	prop := func(k string) string { s, _ := img.Properties[k].(string); return s }
	if img.Name != "debian-12 (patched 2026-11-27)" || img.DiskFormat != "qcow2" || img.ContainerFormat != "bare" ||
		img.Status != images.ImageStatusActive || img.SizeBytes != st.Size() || img.MinDiskGigabytes != 2 {
		t.Errorf("published image: %+v", img)
	}
	for k, want := range map[string]string{
		"unisched_parent_image": parent.ID, "unisched_family": parent.ID,
		"unisched_fixes":      "bash 5.2.15-2+b2->5.2.15-2+b3, libc6 2.36-9+deb12u7->2.36-9+deb12u9",
		"unisched_advisories": "DSA-5001-1, DSA-5002-1", "unisched_patched_at": "2026-11-27T05:00:00Z",
		"hw_disk_bus": "virtio", "os_distro": "debian", "owner_note": "",
	} {
		if got := prop(k); got != want {
			t.Errorf("property %s = %q, want %q", k, got, want)
		}
	}
	if p, _ := images.Get(ctx, c, parent.ID).Extract(); p.Hidden {
		t.Error("parent hidden without HideParent")
	}
	if len(steps) == 0 || steps[len(steps)-1].Step != "publish" {
		t.Errorf("progress: %+v", steps)
	}
	if got, err := imagesec.ResolveFamily(ctx, db, parent.ID); err != nil || got != res.GlanceID {
		t.Errorf("ResolveFamily = %q, %v; want %s", got, err, res.GlanceID)
	}

	// the next patch, of the patched image: same family, parent hidden,
	// a long fix list cut to Glance's 255 characters
	res2, err := publish.Publish(ctx, db, c, publish.Request{File: qcow2(t, "96M"), ParentGlanceID: res.GlanceID,
		Name: "debian-12 current", Fixes: many, HideParent: true, Now: func() time.Time { return day.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	img2, _ := images.Get(ctx, c, res2.GlanceID).Extract()
	fixes, _ := img2.Properties["unisched_fixes"].(string)
	if img2.Name != "debian-12 current" || img2.Properties["unisched_family"] != parent.ID || len(fixes) > 255 ||
		!strings.HasSuffix(fixes, " more") || !strings.HasPrefix(fixes, "libexample 1.0-1->1.0-1+deb12u1, ") {
		t.Errorf("second patch: %q, properties %v", img2.Name, img2.Properties)
	}
	if p, _ := images.Get(ctx, c, res.GlanceID).Extract(); !p.Hidden || !res2.ParentHidden {
		t.Errorf("parent %s not hidden: %+v", res.GlanceID, p)
	}
	for _, id := range []string{parent.ID, res.GlanceID, res2.GlanceID} {
		if got, err := imagesec.ResolveImage(ctx, db, id); err != nil || got != res2.GlanceID {
			t.Errorf("ResolveImage(%s) = %q, %v; want %s", id, got, err, res2.GlanceID)
		}
	}
	lin, err := store.ListLineage(ctx, db, parent.ID)
	if err != nil || len(lin) != 2 || len(lin[0].Fixes) != 30 || lin[1].Advisories[1] != "DSA-5002-1" || !lin[0].ParentHidden {
		t.Errorf("lineage: %+v, %v", lin, err)
	}
}

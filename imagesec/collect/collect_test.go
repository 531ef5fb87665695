package collect_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/tests/novaharness"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// upload creates a Glance image from a file and waits until it is active.
func upload(t *testing.T, c *gophercloud.ServiceClient, name, diskFormat, path string) *images.Image {
	t.Helper()
	ctx := context.Background()
	img, err := images.Create(ctx, c, images.CreateOpts{Name: name, DiskFormat: diskFormat, ContainerFormat: "bare"}).Extract()
	if err != nil {
		t.Fatalf("creating glance image %s: %v", name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := imagedata.Upload(ctx, c, img.ID, f).ExtractErr(); err != nil {
		t.Fatalf("uploading %s: %v", path, err)
	}
	img, err = images.Get(ctx, c, img.ID).Extract()
	if err != nil || img.Status != images.ImageStatusActive {
		t.Fatalf("glance image %s after upload: %+v, %v", name, img, err)
	}
	return img
}

func startGlance(t *testing.T) (*novaharness.Glance, *gophercloud.ServiceClient) {
	t.Helper()
	g, err := novaharness.StartGlance(context.Background(), novaharness.GlanceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("glance log:\n%s", g.Log(40))
		}
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("glance started in %v", g.Took.Round(time.Millisecond))
	c, err := collect.NewClient(context.Background(), collect.Auth{Endpoint: g.URL + "/v2"})
	if err != nil {
		t.Fatal(err)
	}
	return g, c
}

// xfsQcow2 is the XFS test disk as a (small) qcow2.
func xfsQcow2(t *testing.T, im *testimage.Images) string {
	t.Helper()
	if im.XFS == "" {
		t.Fatal("no XFS test image: install xfsprogs")
	}
	out := filepath.Join(t.TempDir(), "xfs.qcow2")
	if b, err := exec.Command("qemu-img", "convert", "-O", "qcow2", im.XFS, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, b)
	}
	return out
}

// TestCollect runs collections against a real Glance on a real database:
// the first finds the uploaded images, downloads them (one resumed from a
// partial file, one from a damaged partial file), inspects the good ones
// and records the bad ones with their reasons; the second downloads
// nothing.
func TestCollect(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	db := pgtest.Pool(t)
	g, c := startGlance(t)

	t0 := time.Now()
	mbr := upload(t, c, "debian-mbr", "qcow2", im.QcowMBR)
	gpt := upload(t, c, "debian-gpt", "qcow2", im.QcowGPT)
	trunc := upload(t, c, "truncated", "qcow2", im.Truncate)
	xfs := upload(t, c, "xfs", "qcow2", xfsQcow2(t, im))
	iso := upload(t, c, "an-iso", "iso", im.Truncate)
	t.Logf("uploaded 5 images in %v", time.Since(t0).Round(time.Millisecond))

	work := t.TempDir()
	// gpt: the first 40% already downloaded; mbr: a partial file of
	// garbage (resumed, fails the hash, downloaded again whole).
	gptHash, _ := collect.HashOf(gpt)
	gptPartial := gpt.SizeBytes * 2 / 5
	copyPrefix(t, im.QcowGPT, collect.PartialPath(work, gpt.ID, gptHash), gptPartial)
	mbrHash, _ := collect.HashOf(mbr)
	if err := os.WriteFile(collect.PartialPath(work, mbr.ID, mbrHash), []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	if gptHash.Algo != "sha512" || len(gptHash.Value) != 128 {
		t.Errorf("glance's multihash: %+v", gptHash)
	}

	var steps []store.Progress
	t1 := time.Now()
	res, err := collect.Collect(ctx, db, c, collect.Options{WorkDir: work, PageSize: 2, Progress: func(p store.Progress) { steps = append(steps, p) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first collection: %v, %d bytes", time.Since(t1).Round(time.Millisecond), res.Bytes)
	by := map[string]collect.ImageResult{}
	for _, r := range res.Images {
		by[r.GlanceID] = r
	}
	if res.Listed != 5 || res.Inspected != 2 || res.Failed != 2 || res.Skipped != 1 {
		t.Errorf("first collection: %+v", res)
	}
	want := map[string]string{mbr.ID: collect.ActionInspected, gpt.ID: collect.ActionInspected,
		trunc.ID: collect.ActionFailed, xfs.ID: collect.ActionFailed, iso.ID: collect.ActionSkipped}
	for id, action := range want {
		if by[id].Action != action {
			t.Errorf("image %s: %+v, want %s", id, by[id], action)
		}
	}
	if r := by[trunc.ID]; !strings.Contains(r.Reason, "invalid image") {
		t.Errorf("truncated qcow2: reason %q", r.Reason)
	}
	if r := by[xfs.ID]; !strings.Contains(r.Reason, "filesystem xfs is not supported") {
		t.Errorf("xfs: reason %q", r.Reason)
	}
	if r := by[iso.ID]; !strings.Contains(r.Reason, `disk format "iso"`) {
		t.Errorf("iso: reason %q", r.Reason)
	}
	// bytes: gpt only from where its partial file ended; mbr's garbage
	// (8 KiB) resumed, then the whole image again
	if got, wantB := by[gpt.ID].Bytes, gpt.SizeBytes-gptPartial; got != wantB {
		t.Errorf("gpt resumed: %d bytes transferred, want %d", got, wantB)
	}
	if got, wantB := by[mbr.ID].Bytes, mbr.SizeBytes-8192+mbr.SizeBytes; got != wantB {
		t.Errorf("mbr from a damaged partial file: %d bytes transferred, want %d", got, wantB)
	}
	if n, _ := g.AwaitRequests(1, 10*time.Second, "GET /v2/images/"+gpt.ID+"/file", " 206 "); n != 1 {
		t.Errorf("glance served %d range requests for %s, want 1", n, gpt.ID)
	}
	if n, _ := g.AwaitRequests(1, 10*time.Second, "GET /v2/images/"+mbr.ID+"/file", " 206 "); n != 1 {
		t.Errorf("glance served %d range requests for %s, want 1", n, mbr.ID)
	}
	if n, _ := g.Requests("GET /v2/images/" + iso.ID + "/file"); n != 0 {
		t.Errorf("the iso was downloaded %d times", n)
	}
	left, _ := filepath.Glob(filepath.Join(work, "*"))
	if len(left) != 0 {
		t.Errorf("work dir not cleaned: %v", left)
	}
	var sawBytes bool
	for _, p := range steps {
		sawBytes = sawBytes || (p.Step == "download" && p.BytesTotal == gpt.SizeBytes && p.BytesDone > gptPartial)
	}
	if !sawBytes {
		t.Errorf("no download progress in %d steps", len(steps))
	}

	// what was stored: the OS and the exact package list testimage put in
	for _, glanceImg := range []*images.Image{mbr, gpt} {
		d, err := store.ImageBySource(ctx, db, collect.ImageSource(glanceImg.ID))
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != by[glanceImg.ID].ImageID || d.Name != glanceImg.Name || d.Format != "qcow2" ||
			d.Info.OS.Distro != im.OSID || d.Info.OS.Version != im.OSVersionID || d.Info.OS.Release != im.DebianVersion {
			t.Errorf("stored %s: %+v", glanceImg.Name, d)
		}
		pkgs, err := store.ListPackages(ctx, db, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got, wantPkgs []string
		for _, p := range pkgs {
			got = append(got, p.Name+"="+p.Version+"/"+p.Architecture)
		}
		for _, p := range im.Packages {
			wantPkgs = append(wantPkgs, p.Name+"="+p.Version+"/"+p.Architecture)
		}
		sort.Strings(got)
		sort.Strings(wantPkgs)
		if strings.Join(got, " ") != strings.Join(wantPkgs, " ") {
			t.Errorf("packages of %s:\n got %v\nwant %v", glanceImg.Name, got, wantPkgs)
		}
	}
	list, err := store.ListImages(ctx, db)
	if err != nil || len(list) != 2 {
		t.Errorf("store after the first collection: %d images (%v), want 2", len(list), err)
	}
	for id, status := range map[string]string{trunc.ID: store.GlanceFailed, xfs.ID: store.GlanceFailed, mbr.ID: store.GlanceInspected} {
		r, err := store.GetGlanceImage(ctx, db, id)
		if err != nil || r == nil || r.Status != status || (status == store.GlanceFailed) != (r.Error != "") {
			t.Errorf("glance record of %s: %+v, %v", id, r, err)
		}
	}

	// the second collection downloads nothing
	t2 := time.Now()
	res2, err := collect.Collect(ctx, db, c, collect.Options{WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second collection: %v", time.Since(t2).Round(time.Millisecond))
	if res2.Listed != 5 || res2.Skipped != 5 || res2.Bytes != 0 {
		t.Errorf("second collection: %+v", res2)
	}
	for _, r := range res2.Images {
		if r.GlanceID == trunc.ID && !strings.Contains(r.Reason, "unchanged since it was failed: ") {
			t.Errorf("truncated on the second collection: %+v", r)
		}
	}
	for _, img := range []*images.Image{mbr, gpt, trunc, xfs} {
		want := 1
		if img == mbr {
			want = 2
		}
		if n, _ := g.AwaitRequests(want, 10*time.Second, "GET /v2/images/"+img.ID+"/file"); n != want {
			t.Errorf("glance image %s downloaded %d times", img.Name, n)
		}
	}
}

func copyPrefix(t *testing.T, src, dst string, n int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.CopyN(out, in, n); err != nil {
		t.Fatal(err)
	}
}

// TestCollectUnreachable: a Glance that does not answer is the
// collection's error, and nothing is recorded.
func TestCollectUnreachable(t *testing.T) {
	db := pgtest.Pool(t)
	c, err := collect.NewClient(context.Background(), collect.Auth{Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = collect.Collect(context.Background(), db, c, collect.Options{WorkDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "listing glance images") {
		t.Errorf("Collect against nothing: %v", err)
	}
	if _, err := collect.NewClient(context.Background(), collect.Auth{}); err == nil {
		t.Error("NewClient without an endpoint or auth_url: no error")
	}
	if _, err := collect.Collect(context.Background(), db, c, collect.Options{}); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Collect without a work dir: %v", err)
	}
}

package imagesec_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/imagesec"
	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
)

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func copyFile(t *testing.T, src, dst string) {
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
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBenchmarkImages measures inspect and offline upgrade of the test
// qcow2 image, alone and for 10 images sharing a base (their .debs
// downloaded once), on a real database and a private dockerd. It writes
// its table to the log (docs/benchmarks.md keeps a run's). Opt-in:
// UNISCHED_IMAGESEC_BENCH=1 (it takes minutes).
func TestBenchmarkImages(t *testing.T) {
	if os.Getenv("UNISCHED_IMAGESEC_BENCH") != "1" {
		t.Skip("set UNISCHED_IMAGESEC_BENCH=1 to run the image benchmark")
	}
	ctx := context.Background()
	im := testimage.ForTest(t)
	env := e2eDocker(t)
	db := pgtest.Pool(t)
	dir := t.TempDir()
	const n = 10
	var paths []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("base-%02d.qcow2", i))
		copyFile(t, im.QcowGPT, p)
		paths = append(paths, p)
	}
	st, _ := os.Stat(im.QcowGPT)
	var lines []string
	logf := func(format string, args ...any) {
		l := fmt.Sprintf(format, args...)
		lines = append(lines, l)
		t.Log(l)
	}
	logf("image: qcow2 %d MiB, GPT, ext4 root, %d packages; %d copies", st.Size()>>20, len(im.Packages), n)

	// inspect: each copy once (a new image each: the source differs)
	var inspects []time.Duration
	var ids []int64
	t0 := time.Now()
	for _, p := range paths {
		t1 := time.Now()
		d, err := imagesec.InspectFile(ctx, db, p, inspect.Options{WorkDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		inspects = append(inspects, time.Since(t1))
		ids = append(ids, d.ID)
	}
	total := time.Since(t0)
	logf("inspect (+ store): first %v, median %v, min %v, max %v; %d images %v",
		inspects[0].Round(time.Millisecond), median(inspects).Round(time.Millisecond), minD(inspects).Round(time.Millisecond), maxD(inspects).Round(time.Millisecond), n, total.Round(time.Millisecond))

	// upgrade: advise each, then upgrade them one after the other with one
	// shared .deb cache (the first downloads, the others hit)
	opts, done, err := env(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	var upgrades []time.Duration
	stages := map[string]time.Duration{}
	t0 = time.Now()
	for i, id := range ids {
		if _, err := imagesec.AdviseImage(ctx, db, id, imagesec.AdviseOptions{Feed: im.Feed.Dir, Advisories: im.Feed.Advisories}); err != nil {
			t.Fatal(err)
		}
		o := opts
		o.WorkDir = dir
		t1 := time.Now()
		res, err := imagesec.UpgradeImage(ctx, db, id, imagesec.UpgradeOptions{Upgrade: o, Out: filepath.Join(dir, fmt.Sprintf("fixed-%02d.qcow2", i))})
		if err != nil {
			t.Fatal(err)
		}
		upgrades = append(upgrades, time.Since(t1))
		for k, v := range res.Upgrade.Timings {
			stages[k] += v
		}
		os.Remove(res.Record.Path)
	}
	total = time.Since(t0)
	hits, misses, bytes := opts.Cache.Stats()
	logf("upgrade (advise excluded; %d packages, re-inspection and store included): first %v, median %v, min %v, max %v; %d images %v",
		len(im.Feed.Fixes), upgrades[0].Round(time.Millisecond), median(upgrades).Round(time.Millisecond), minD(upgrades).Round(time.Millisecond), maxD(upgrades).Round(time.Millisecond), n, total.Round(time.Millisecond))
	logf(".deb cache over the %d upgrades: %d misses (%d bytes downloaded), %d hits", n, misses, bytes, hits)
	var ks []string
	for k := range stages {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %v", k, (stages[k]/n).Round(time.Millisecond)))
	}
	logf("upgrade stages, mean per image: %s", strings.Join(parts, ", "))
}

func minD(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

func maxD(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

package upgrade_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/imagesec/upgrade"
)

// BenchmarkUpgrade is one offline upgrade of the qcow2 test image (the
// three fixes of the test feed), from an empty .deb cache each time: the
// whole pipeline, inspection and verification included. Stage times are
// reported as metrics (seconds).
func BenchmarkUpgrade(b *testing.B) {
	im := testimage.ForTest(b)
	for _, img := range []struct {
		name string
		path string
	}{{"qcow2", im.QcowGPT}, {"raw", im.RawMBR}} {
		b.Run(img.name, func(b *testing.B) {
			sb := sandbox(b)
			p := plan(b, img.path, im.Feed.Dir)
			stages := map[string]time.Duration{}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cache, err := upgrade.NewCache(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				res, err := upgrade.Upgrade(context.Background(), img.path, filepath.Join(b.TempDir(), "out"), p,
					upgrade.Options{Sandbox: sb, Cache: cache, WorkDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				for k, v := range res.Timings {
					stages[k] += v
				}
			}
			for k, v := range stages {
				b.ReportMetric(v.Seconds()/float64(b.N), k+"-s")
			}
		})
	}
}

// BenchmarkUpgradeTenSharingABase upgrades ten images of the same base (the
// four test disks, qcow2 and raw, GPT and MBR, in turn) with one shared
// cache: the fixes are downloaded for the first image only.
func BenchmarkUpgradeTenSharingABase(b *testing.B) {
	im := testimage.ForTest(b)
	sb := sandbox(b)
	base := serve(b, im.Feed.Dir)
	disks := []string{im.QcowGPT, im.RawMBR, im.QcowMBR, im.RawGPT}
	plans := map[string][]advise.Upgrade{}
	for _, d := range disks {
		plans[d] = plan(b, d, base)
	}
	b.ResetTimer()
	var first, rest time.Duration
	for i := 0; i < b.N; i++ {
		cache, err := upgrade.NewCache(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < 10; n++ {
			d := disks[n%len(disks)]
			start := time.Now()
			_, err := upgrade.Upgrade(context.Background(), d, filepath.Join(b.TempDir(), fmt.Sprintf("out-%d", n)), plans[d],
				upgrade.Options{Sandbox: sb, Cache: cache, WorkDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				first += time.Since(start)
			} else {
				rest += time.Since(start)
			}
		}
		hits, misses, bytes := cache.Stats()
		if misses != len(im.Feed.Fixes) || hits != 9*len(im.Feed.Fixes) {
			b.Fatalf("cache: %d hits %d misses, want %d and %d", hits, misses, 9*len(im.Feed.Fixes), len(im.Feed.Fixes))
		}
		b.ReportMetric(float64(bytes), "downloaded-bytes")
	}
	b.ReportMetric(first.Seconds()/float64(b.N), "first-image-s")
	b.ReportMetric(rest.Seconds()/float64(9*b.N), "next-image-s")
}

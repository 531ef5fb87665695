// Package upgrade is imagesec's offline upgrade stage: it applies advised
// upgrades to a copy of a VM image without booting it. The root filesystem
// is extracted without mounting (debugfs), the fixed .debs (downloaded once
// into a cache shared by all images) are installed by the guest's own dpkg
// inside a sandbox with no network (a Docker container, see Sandbox), the
// filesystem is rebuilt with the same UUID, label and size (mke2fs -d) and
// written back into a copy of the disk (same partition table, checked with
// sfdisk), converted back to qcow2 when the source was qcow2; the result is
// re-inspected and verified: every planned package at its new version and
// no other package changed. Any failure removes the output; the source
// image is only ever read.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/inspect"
)

// ErrVerify: the upgraded image does not hold what was planned.
var ErrVerify = errors.New("upgraded image failed verification")

// ErrNothing: no planned upgrade can be applied (none, or none available
// from a feed).
var ErrNothing = errors.New("nothing to upgrade")

// Event reports progress: Step of Steps overall, and within a stage Bytes
// of Total when known (downloads, copies).
type Event struct {
	Stage   string `json:"stage"` // inspect, download, copy, extract, dpkg, rebuild, write, convert, verify, done
	Step    int    `json:"step"`
	Steps   int    `json:"steps"`
	Bytes   int64  `json:"bytes,omitempty"`
	Total   int64  `json:"total,omitempty"`
	Message string `json:"message"`
}

// Options of one upgrade.
type Options struct {
	Sandbox *Sandbox
	Cache   *Cache
	// WorkDir holds the raw copy and the extracted root (the image's
	// virtual size plus its used space, at most); the system temp dir when
	// empty.
	WorkDir string
	// Progress, when set, is called from the upgrading goroutine.
	Progress func(Event)
}

// Result says what an upgrade did.
type Result struct {
	Path    string           `json:"path"`
	Report  *inspect.Report  `json:"report"`  // the re-inspection of Path
	Before  *inspect.Report  `json:"-"`       // the source's inspection
	Applied []advise.Upgrade `json:"applied"` // the upgrades installed
	// Skipped are planned upgrades no feed offers (advisory only).
	Skipped  []advise.Upgrade         `json:"skipped,omitempty"`
	DpkgLog  string                   `json:"dpkg_log"`
	Timings  map[string]time.Duration `json:"timings"`
	Download struct {
		Hits, Misses int
		Bytes        int64
	} `json:"download"`
}

const steps = 9

// Upgrade applies plan's available upgrades to a copy of the image at src,
// written to out (which must not exist). The source is never written.
func Upgrade(ctx context.Context, src, out string, plan []advise.Upgrade, opts Options) (res *Result, err error) {
	if opts.Sandbox == nil || opts.Cache == nil {
		return nil, errors.New("upgrade: a sandbox and a package cache are needed")
	}
	res = &Result{Path: out, Timings: map[string]time.Duration{}}
	for _, u := range plan {
		if u.Deb != nil && u.Deb.URL != "" {
			res.Applied = append(res.Applied, u)
		} else {
			res.Skipped = append(res.Skipped, u)
		}
	}
	if len(res.Applied) == 0 {
		return nil, fmt.Errorf("%w: %d planned upgrades, none offered by a feed", ErrNothing, len(plan))
	}
	if _, err := os.Lstat(out); err == nil {
		return nil, fmt.Errorf("upgrade: %s already exists", out)
	}
	step := 0
	progress := func(stage string, b, total int64, format string, args ...any) {
		if opts.Progress != nil {
			opts.Progress(Event{Stage: stage, Step: step, Steps: steps, Bytes: b, Total: total, Message: fmt.Sprintf(format, args...)})
		}
	}
	timed := func(stage string, f func() error) error {
		step++
		start := time.Now()
		progress(stage, 0, 0, "%s", stage)
		err := f()
		res.Timings[stage] += time.Since(start)
		return err
	}
	work, err := os.MkdirTemp(opts.WorkDir, "imagesec-upgrade-")
	if err != nil {
		return nil, fmt.Errorf("upgrade: work dir: %w", err)
	}
	defer os.RemoveAll(work)
	tmpOut := out + ".partial"
	defer func() {
		os.Remove(tmpOut)
		if err != nil {
			os.Remove(out)
		}
	}()

	var before *inspect.Report
	if err := timed("inspect", func() (err error) {
		before, err = inspect.Inspect(ctx, src, inspect.Options{WorkDir: work})
		return err
	}); err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", src, err)
	}
	res.Before = before
	if before.PackageFormat != "deb" {
		return nil, fmt.Errorf("upgrade: %s packages cannot be upgraded yet (deb only)", before.PackageFormat)
	}
	installed := map[string]inspect.Package{}
	for _, p := range before.Packages {
		installed[p.Name+":"+p.Architecture] = p
	}
	for _, u := range res.Applied {
		p, ok := installed[u.Name+":"+u.Architecture]
		if !ok || p.Version != u.From {
			return nil, fmt.Errorf("upgrade: the plan was made for another image: %s %s is at %q, the plan says %q", u.Name, u.Architecture, p.Version, u.From)
		}
	}

	debDir := filepath.Join(work, "debs")
	var debNames []string
	if err := timed("download", func() error {
		if err := os.MkdirAll(debDir, 0o755); err != nil {
			return err
		}
		var total, done int64
		for _, u := range res.Applied {
			total += u.Deb.Size
		}
		for i, u := range res.Applied {
			p, err := opts.Cache.Get(ctx, u.Deb, func(n int64) {
				done += n
				progress("download", done, total, "%s %s", u.Name, u.To)
			})
			if err != nil {
				return err
			}
			// Hard links keep the cache read-only to the sandbox and cost
			// nothing; a copy where the cache is on another filesystem.
			name := fmt.Sprintf("%02d_%s", i, filepath.Base(p))
			if err := os.Link(p, filepath.Join(debDir, name)); err != nil {
				if err := copyRegionFile(p, filepath.Join(debDir, name)); err != nil {
					return err
				}
			}
			debNames = append(debNames, name)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	res.Download.Hits, res.Download.Misses, res.Download.Bytes = opts.Cache.Stats()

	disk := filepath.Join(work, "disk.raw")
	if err := timed("copy", func() error { return toRaw(ctx, src, before.Format, disk) }); err != nil {
		return nil, fmt.Errorf("copying %s: %w", src, err)
	}
	var root inspect.Partition
	for _, p := range before.Partitions {
		if p.Number == before.RootPartition {
			root = p
		}
	}
	if root.Size == 0 || !strings.HasPrefix(root.Filesystem, "ext") {
		return nil, fmt.Errorf("upgrade: root partition %d (%s) is not an ext filesystem", before.RootPartition, root.Filesystem)
	}
	tableBefore := ""
	if before.PartitionTable != "none" {
		if tableBefore, err = partitionTable(ctx, disk); err != nil {
			return nil, err
		}
	}
	fsImg := filepath.Join(work, "root.ext4")
	rootDir := filepath.Join(work, "root")
	var params *fsParams
	if err := timed("extract", func() error {
		if err := copyRegion(disk, root.Start, root.Size, fsImg, 0, true); err != nil {
			return err
		}
		var err error
		if params, err = readParams(ctx, fsImg); err != nil {
			return err
		}
		if err := os.Mkdir(rootDir, 0o755); err != nil {
			return err
		}
		return extract(ctx, fsImg, rootDir)
	}); err != nil {
		return nil, fmt.Errorf("extracting the root of %s: %w", src, err)
	}

	if err := timed("dpkg", func() error {
		log, code, err := opts.Sandbox.Run(ctx, rootDir, debDir, dpkgScript(debNames))
		res.DpkgLog = log
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("%w (exit %d): %s", ErrDpkg, code, tail(log, 15))
		}
		return nil
	}); err != nil {
		return nil, err
	}

	newFS := filepath.Join(work, "root.new.ext4")
	if err := timed("rebuild", func() error {
		if err := os.Remove(fsImg); err != nil {
			return err
		}
		return rebuild(ctx, rootDir, newFS, params)
	}); err != nil {
		return nil, err
	}
	if err := timed("write", func() error {
		if err := os.RemoveAll(rootDir); err != nil {
			return err
		}
		if err := replaceRegion(disk, root.Start, root.Size, newFS); err != nil {
			return err
		}
		if tableBefore != "" {
			after, err := partitionTable(ctx, disk)
			if err != nil {
				return err
			}
			if after != tableBefore {
				return fmt.Errorf("%w: the partition table changed:\n%s\n%s", ErrVerify, tableBefore, after)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := timed("convert", func() error {
		if before.Format == "qcow2" {
			if _, err := run(ctx, "", "qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk, tmpOut); err != nil {
				return fmt.Errorf("converting back to qcow2: %w", err)
			}
		} else if err := os.Rename(disk, tmpOut); err != nil {
			if err := copyRegionFile(disk, tmpOut); err != nil {
				return err
			}
		}
		return os.Rename(tmpOut, out)
	}); err != nil {
		return nil, err
	}
	if err := timed("verify", func() error {
		after, err := inspect.Inspect(ctx, out, inspect.Options{WorkDir: work})
		if err != nil {
			return fmt.Errorf("%w: re-inspecting %s: %v", ErrVerify, out, err)
		}
		res.Report = after
		return Verify(before, after, res.Applied)
	}); err != nil {
		return nil, err
	}
	step = steps
	progress("done", 0, 0, "%d packages upgraded in %s", len(res.Applied), out)
	return res, nil
}

// Verify checks the re-inspection: every applied upgrade installed at its
// new version, every other package exactly as before, none added or
// removed, and the same OS.
func Verify(before, after *inspect.Report, applied []advise.Upgrade) error {
	want := map[string]inspect.Package{}
	for _, p := range before.Packages {
		want[p.Name+":"+p.Architecture] = p
	}
	planned := map[string]string{}
	for _, u := range applied {
		planned[u.Name+":"+u.Architecture] = u.To
	}
	var problems []string
	got := map[string]bool{}
	for _, p := range after.Packages {
		k := p.Name + ":" + p.Architecture
		got[k] = true
		old, had := want[k]
		switch to, isPlanned := planned[k]; {
		case !had:
			problems = append(problems, fmt.Sprintf("%s %s appeared", k, p.Version))
		case isPlanned && (p.Version != to || p.Status != "installed"):
			problems = append(problems, fmt.Sprintf("%s is %s (%s), planned %s", k, p.Version, p.Status, to))
		case !isPlanned && (p.Version != old.Version || p.Status != old.Status):
			problems = append(problems, fmt.Sprintf("%s changed from %s (%s) to %s (%s) unplanned", k, old.Version, old.Status, p.Version, p.Status))
		}
	}
	for k := range want {
		if !got[k] {
			problems = append(problems, k+" disappeared")
		}
	}
	if before.OS.Distro != after.OS.Distro || before.OS.Version != after.OS.Version {
		problems = append(problems, fmt.Sprintf("the OS changed from %s %s to %s %s", before.OS.Distro, before.OS.Version, after.OS.Distro, after.OS.Version))
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%w: %s", ErrVerify, strings.Join(problems, "; "))
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func copyRegionFile(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	return copyRegion(src, 0, st.Size(), dst, 0, true)
}

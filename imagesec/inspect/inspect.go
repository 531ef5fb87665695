// Package inspect is imagesec's inspection stage: it reads a VM image
// without booting it and without mounting anything (no root needed) and
// reports the disk layout, the OS, the kernels and every installed package.
//
// Pipeline: the file's sha256 → raw view (qcow2 converted to a sparse raw
// temp file by qemu-img after qemu-img check; a backing file is refused) →
// partition table (GPT, MBR, or a filesystem on the whole disk) → each
// partition's signature (ext2/3/4 read; XFS, btrfs, LVM, LUKS, ... named and
// reported as not supported) → the OS root (the ext filesystem holding
// os-release) → os-release, /etc/debian_version, kernels in /boot and
// /lib/modules → the package database (dpkg status, or rpm's SQLite, NDB or
// Berkeley DB database; apk reported as not supported yet).
package inspect

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/diskfs/go-diskfs/backend/file"
)

// Event reports progress of one long step.
type Event struct {
	Stage   string  // "checksum", "convert", "partitions", "filesystem", "packages"
	Percent float64 // 0..100 within the stage, when known; -1 otherwise
	Message string
}

// Options of one inspection.
type Options struct {
	// WorkDir receives the temporary raw copy of a qcow2 image (as large as
	// the image's allocated data); the system temp dir when empty.
	WorkDir string
	// Progress, when set, is called from the inspecting goroutine.
	Progress func(Event)
	// Now stamps the report; time.Now when nil.
	Now func() time.Time
}

// Inspect reads the image at path. The image file is only read. Errors wrap
// ErrUnsupported (*UnsupportedError), ErrInvalidImage, ErrNoOS or
// ErrNoPackageDB where one of them is the cause.
func Inspect(ctx context.Context, path string, opts Options) (*Report, error) {
	progress := func(stage string, pct float64, format string, args ...any) {
		if opts.Progress != nil {
			opts.Progress(Event{Stage: stage, Percent: pct, Message: fmt.Sprintf(format, args...)})
		}
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	progress("checksum", -1, "computing sha256 of %s", path)
	sum, fileSize, err := fileChecksum(path)
	if err != nil {
		return nil, err
	}
	r := &Report{Checksum: sum, FileSize: fileSize, InspectedAt: now().UTC()}
	d, err := openDisk(ctx, path, opts.WorkDir, func(pct float64) { progress("convert", pct, "qcow2 to raw") })
	if err != nil {
		return nil, err
	}
	defer d.close()
	r.Format, r.VirtualSize = d.format, d.size
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	progress("partitions", -1, "reading the partition table")
	b := file.New(d.f, true)
	r.PartitionTable, r.Partitions, err = readPartitions(b, d.size)
	if err != nil {
		return nil, err
	}
	if r.PartitionTable == "none" {
		fs, label := probe(d, d.size)
		switch {
		case fs == "":
			return nil, invalid("no partition table (GPT or MBR) and no known filesystem on the whole disk")
		case !readable(fs):
			return nil, unsupportedFS(fs, "whole disk (no partition table)")
		}
		r.Partitions = []Partition{{Number: 0, Start: 0, Size: d.size, Filesystem: fs, Label: label}}
	}
	var unsupported *UnsupportedError
	var root *guestFS
	var damaged error // the first ext filesystem that failed to read
	for i := range r.Partitions {
		p := &r.Partitions[i]
		if p.Filesystem == "" {
			p.Filesystem, p.Label = probe(section(d, *p), p.Size)
		}
		where := fmt.Sprintf("partition %d", p.Number)
		if p.Number == 0 {
			where = "whole disk"
		}
		switch {
		case p.Filesystem == "":
			continue
		case !readable(p.Filesystem):
			u := unsupportedFS(p.Filesystem, where)
			p.Note = "not read: " + strings.TrimPrefix(u.Error(), where+": ")
			if unsupported == nil && p.Filesystem != fsSwap && p.Filesystem != fsVFAT {
				unsupported = u
			}
			continue
		case root != nil:
			continue
		}
		progress("filesystem", -1, "reading %s of %s", p.Filesystem, where)
		g, err := openExt4(b, *p)
		if err != nil {
			p.Note = "not read: " + err.Error()
			if damaged == nil {
				damaged = fmt.Errorf("%w: %s: %v", ErrInvalidImage, where, err)
			}
			continue
		}
		for _, osr := range []string{"/etc/os-release", "/usr/lib/os-release"} {
			ok, err := g.Exists(osr)
			if err != nil {
				p.Note = "not read: " + err.Error()
				if damaged == nil {
					damaged = fmt.Errorf("%s: %w", where, err)
				}
				break
			}
			if ok {
				root, r.RootPartition = g, p.Number
				break
			}
		}
	}
	if root == nil {
		if unsupported != nil {
			return nil, unsupported
		}
		if damaged != nil {
			return nil, damaged
		}
		return nil, fmt.Errorf("%w: no ext2/3/4 filesystem of the %s disk holds /etc/os-release or /usr/lib/os-release (%s)", ErrNoOS, r.PartitionTable, describe(r.Partitions))
	}
	if err := readOS(root, r); err != nil {
		return nil, err
	}
	progress("packages", -1, "reading the package database")
	if err := readPackages(root, r, opts.WorkDir); err != nil {
		return nil, err
	}
	progress("packages", 100, "%d packages", len(r.Packages))
	return r, nil
}

func describe(parts []Partition) string {
	if len(parts) == 0 {
		return "no partitions"
	}
	var s []string
	for _, p := range parts {
		fs := p.Filesystem
		if fs == "" {
			fs = "unknown"
		}
		s = append(s, fmt.Sprintf("partition %d: %s", p.Number, fs))
	}
	return strings.Join(s, ", ")
}

func readOS(g *guestFS, r *Report) error {
	data, err := g.ReadFile("/etc/os-release")
	if err != nil {
		data, err = g.ReadFile("/usr/lib/os-release")
	}
	if err != nil {
		return fmt.Errorf("%w: reading os-release: %v", ErrNoOS, err)
	}
	vars, err := ParseOSRelease(data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoOS, err)
	}
	r.OS = osFromRelease(vars)
	if r.OS.Distro == "debian" {
		// os-release says "12"; the point release is in debian_version.
		if dv, err := g.ReadFile("/etc/debian_version"); err == nil {
			if v := strings.TrimSpace(string(dv)); v != "" && unicode.IsDigit(rune(v[0])) {
				r.OS.Release = v
			}
		}
	}
	kernels := map[string]bool{}
	if boot, err := g.ReadDir("/boot"); err == nil {
		for name, e := range boot {
			for _, prefix := range []string{"vmlinuz-", "vmlinux-"} {
				if v, ok := strings.CutPrefix(name, prefix); ok && v != "" && !e.IsDir() {
					kernels[v] = true
				}
			}
		}
	}
	if mods, err := g.ReadDir("/lib/modules"); err == nil {
		for name, e := range mods {
			if e.IsDir() {
				kernels[name] = true
			}
		}
	}
	for k := range kernels {
		r.Kernels = append(r.Kernels, k)
	}
	sort.Slice(r.Kernels, func(i, j int) bool { return naturalLess(r.Kernels[i], r.Kernels[j]) })
	return nil
}

// apkDB is Alpine's package database; finding it names apk in the
// unsupported error.
const apkDB = "/lib/apk/db/installed"

func readPackages(g *guestFS, r *Report, workDir string) error {
	data, err := g.ReadFile("/" + dpkgStatusPath)
	switch {
	case err == nil:
		pkgs, err := ParseDpkgStatus(strings.NewReader(string(data)))
		if err != nil {
			return fmt.Errorf("%w: /%s: %v", ErrInvalidImage, dpkgStatusPath, err)
		}
		if len(pkgs) == 0 {
			return fmt.Errorf("%w: /%s lists no installed package", ErrNoPackageDB, dpkgStatusPath)
		}
		r.Packages, r.PackageFormat, r.PackageManager = pkgs, "deb", "dpkg"
		if ok, _ := g.Exists("/usr/bin/apt-get"); ok {
			r.PackageManager = "apt"
		}
		return nil
	case !isNotExist(err):
		return fmt.Errorf("reading /%s: %w", dpkgStatusPath, err)
	}
	db, err := findRPMDB(g)
	if err != nil {
		return fmt.Errorf("looking for an rpm database: %w", err)
	}
	if db != "" {
		pkgs, err := readRPM(g, db, workDir)
		if err != nil {
			return err
		}
		if len(pkgs) == 0 {
			return fmt.Errorf("%w: %s lists no installed package", ErrNoPackageDB, db)
		}
		r.Packages, r.PackageFormat, r.PackageManager = pkgs, "rpm", rpmManager(g)
		return nil
	}
	if ok, _ := g.Exists(apkDB); ok {
		return &UnsupportedError{What: "package database", Name: "apk (" + apkDB + ")", Hint: "dpkg and rpm are read"}
	}
	return fmt.Errorf("%w: %s %s has no /%s, rpm or apk database", ErrNoPackageDB, r.OS.Name, r.OS.Version, dpkgStatusPath)
}

// naturalLess orders version-like strings by their runs of digits as
// numbers ("6.1.0-9" < "6.1.0-10"), the rest bytewise.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := unicode.IsDigit(rune(a[0])), unicode.IsDigit(rune(b[0]))
		if da && db {
			na, ra := digits(a)
			nb, rb := digits(b)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// IsBadInput reports whether err comes from the image rather than from this
// host (unsupported content, corrupt image, no OS or no package database).
func IsBadInput(err error) bool {
	return errors.Is(err, ErrUnsupported) || errors.Is(err, ErrInvalidImage) ||
		errors.Is(err, ErrNoOS) || errors.Is(err, ErrNoPackageDB)
}

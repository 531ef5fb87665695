// Package testimage builds the real disk images imagesec's tests inspect: a
// small Debian root made of real .deb files from the configured apt archive
// (apt-get download, dpkg-deb -x, and a dpkg status file written from the
// packages' own control fields), put into an ext4 filesystem without mounting
// it (mke2fs -d), inside GPT and MBR partitioned raw disks (sfdisk), each also
// converted to qcow2 (qemu-img). It also makes the bad inputs: an XFS
// partition, a disk with no partition table, a root without a package
// database, a truncated qcow2.
//
// Builds are cached under a directory keyed by every input (the builder's
// version, the architecture and the exact package versions apt resolves), so
// test runs after the first cost one apt-cache call. A file lock lets several
// test binaries share the cache.
package testimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// builderVersion changes whenever the layout of the built images changes, so
// that stale caches are not reused.
const builderVersion = "12"

// BasePackages are unpacked into every test root: real packages with real
// control data, chosen to be small and to cover epochs (zlib1g), binNMU
// versions (bash) and Source fields that differ from the name. With
// coreutils, dash, debianutils, diffutils, libc-bin and the libraries below they are
// the dependency closure of the guest's own dpkg (sh, rm, tar, ldconfig,
// diff, dpkg-deb, start-stop-daemon), so imagesec/upgrade can run it in a
// sandbox; apt's own libraries are left out (apt is only listed).
var BasePackages = []string{
	"apt", "base-files", "base-passwd", "bash", "dpkg", "gcc-12-base", "libc6",
	"libgcc-s1", "tar", "zlib1g", "liblzma5", "libzstd1", "libbz2-1.0",
	"coreutils", "dash", "debianutils", "libacl1", "libattr1", "libc-bin",
	"libgmp10", "libmd0", "libpcre2-8-0", "libselinux1", "diffutils",
}

// Package is one package put into the image, as its .deb declares it.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	Source       string `json:"source"` // as in the control file ("" when the same as Name)
}

// Images are the built files and what was put into them.
type Images struct {
	Dir string `json:"-"`

	RawGPT string `json:"raw_gpt"` // GPT: p1 BIOS boot (empty), p2 ext4 root
	RawMBR string `json:"raw_mbr"` // MBR: p1 ext4 root, bootable
	// MBR: p1 extended, p5 (logical) ext4 root
	RawLogical string `json:"raw_logical"`
	QcowGPT    string `json:"qcow_gpt"`  // RawGPT converted to qcow2
	QcowMBR    string `json:"qcow_mbr"`  // RawMBR converted to qcow2
	WholeFS    string `json:"whole_fs"`  // the ext4 root with no partition table
	NoPkgDB    string `json:"no_pkgdb"`  // GPT, ext4 holding base-files only (no dpkg status)
	Blank      string `json:"blank"`     // zeros: no partition table, no filesystem
	XFS        string `json:"xfs"`       // GPT, one XFS partition; "" when mkfs.xfs is missing
	Truncate   string `json:"truncated"` // QcowGPT cut to its first 64 KiB
	// GPT, ext4 holding base-files and RPMPackages installed by rpm into
	// its SQLite database; "" when rpmbuild is missing.
	RPM string `json:"rpm"`

	RootPartitionGPT int       `json:"root_partition_gpt"` // 2
	RootPartitionMBR int       `json:"root_partition_mbr"` // 1
	Architecture     string    `json:"architecture"`
	Packages         []Package `json:"packages"`
	RPMPackages      []Package `json:"rpm_packages"`   // Version as [epoch:]version-release, Source the source rpm
	OSID             string    `json:"os_id"`          // os-release ID of the unpacked base-files
	OSVersionID      string    `json:"os_version_id"`  // os-release VERSION_ID
	DebianVersion    string    `json:"debian_version"` // /etc/debian_version
	Kernel           string    `json:"kernel"`         // /lib/modules/<Kernel>; "" without a kernel package
	// Feed is the test fix feed for advise and upgrade (paths made
	// absolute by load).
	Feed Feed `json:"feed"`
}

// Tools are the programs Build needs, with the Debian package providing each
// (the CI's apt list carries the packages).
var Tools = map[string]string{
	"apt-get": "apt", "apt-cache": "apt", "dpkg-deb": "dpkg", "mke2fs": "e2fsprogs",
	"sfdisk": "fdisk", "qemu-img": "qemu-utils",
}

// Optional tools make the XFS and rpm images; the tests that need them
// fail naming the package when they are missing.
var Optional = map[string]string{"mkfs.xfs": "xfsprogs", "rpmbuild": "rpm"}

// ForTest returns the test images, building them on first use. The cache
// directory is $UNISCHED_IMAGESEC_CACHE, else <tmp>/unisched-imagesec-images.
// A machine without the tools fails the test with the package to install.
func ForTest(t testing.TB) *Images {
	t.Helper()
	forTest.once.Do(func() { forTest.im, forTest.err = forTestBuild(t) })
	if forTest.err != nil {
		t.Fatalf("building test images: %v", forTest.err)
	}
	return forTest.im
}

// forTest shares one lookup among the tests of a binary.
var forTest struct {
	once sync.Once
	im   *Images
	err  error
}

func forTestBuild(t testing.TB) (*Images, error) {
	dir := os.Getenv("UNISCHED_IMAGESEC_CACHE")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "unisched-imagesec-images")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	im, built, err := Build(ctx, dir)
	if err != nil {
		return nil, err
	}
	if built {
		t.Logf("built test images in %s (%v)", im.Dir, time.Since(start).Round(time.Millisecond))
	}
	return im, nil
}

// Build returns the images under cacheDir, building them when no complete
// build for the current inputs exists; built reports whether it did.
func Build(ctx context.Context, cacheDir string) (im *Images, built bool, err error) {
	im, built, err = build1(ctx, cacheDir)
	// Package lists older than the archive name versions it no longer
	// has: refresh them once (as root, which CI is) and resolve again.
	if errors.Is(err, errDownload) && os.Geteuid() == 0 {
		if _, uerr := output(ctx, "", "apt-get", "update", "-q"); uerr != nil {
			return nil, false, fmt.Errorf("%w (and apt-get update failed: %v)", err, uerr)
		}
		return build1(ctx, cacheDir)
	}
	return im, built, err
}

// errDownload marks a failed apt-get download.
var errDownload = errors.New("downloading packages")

func build1(ctx context.Context, cacheDir string) (im *Images, built bool, err error) {
	for tool, pkg := range Tools {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, false, fmt.Errorf("%s not found: install the Debian package %s", tool, pkg)
		}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, false, fmt.Errorf("creating cache dir: %w", err)
	}
	arch, err := output(ctx, "", "dpkg", "--print-architecture")
	if err != nil {
		return nil, false, err
	}
	arch = strings.TrimSpace(arch)
	names := append([]string(nil), BasePackages...)
	kernelMeta := "linux-image-cloud-" + arch
	resolved, err := resolve(ctx, append(names, kernelMeta))
	if err != nil {
		return nil, false, err
	}
	// The kernel metapackage pins the versioned image package ("= version"),
	// so the key needs only this one apt-cache call (it costs seconds);
	// the image package is resolved when building.
	hasKernel := resolved[kernelMeta].Depends != ""
	if hasKernel {
		names = append(names, kernelMeta)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "v%s %s\n", builderVersion, arch)
	for _, n := range names {
		fmt.Fprintf(h, "%s=%s\n", n, resolved[n].Version)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir := filepath.Join(cacheDir, key)

	unlock, err := lock(ctx, filepath.Join(cacheDir, ".lock"))
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if im, err := load(dir); err == nil {
		return im, false, nil
	}
	if hasKernel {
		kimg, _, _ := strings.Cut(strings.TrimSpace(strings.Split(resolved[kernelMeta].Depends, ",")[0]), " ")
		more, err := resolve(ctx, []string{kimg})
		if err != nil {
			return nil, false, err
		}
		resolved[kimg] = more[kimg]
		names = append(names, kimg)
	}
	tmp, err := os.MkdirTemp(cacheDir, "build-")
	if err != nil {
		return nil, false, fmt.Errorf("creating build dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	im, err = build(ctx, tmp, arch, names, resolved)
	if err != nil {
		return nil, false, err
	}
	// Builds for other inputs are stale (each is a few hundred MB).
	if old, _ := os.ReadDir(cacheDir); len(old) > 0 {
		for _, e := range old {
			if e.IsDir() && e.Name() != filepath.Base(tmp) {
				_ = os.RemoveAll(filepath.Join(cacheDir, e.Name()))
			}
		}
	}
	if err := os.Rename(filepath.Join(tmp, "out"), dir); err != nil {
		return nil, false, fmt.Errorf("moving build into the cache: %w", err)
	}
	im, err = load(dir)
	return im, true, err
}

func load(dir string) (*Images, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var im Images
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, err
	}
	im.Dir = dir
	for _, p := range []*string{&im.RawGPT, &im.RawMBR, &im.RawLogical, &im.QcowGPT, &im.QcowMBR, &im.WholeFS, &im.NoPkgDB, &im.Blank, &im.XFS, &im.Truncate, &im.RPM, &im.Feed.Dir, &im.Feed.Advisories, &im.Feed.BadPostinst} {
		if *p == "" {
			continue
		}
		*p = filepath.Join(dir, *p)
		if _, err := os.Stat(*p); err != nil {
			return nil, err
		}
	}
	return &im, nil
}

func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening build lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another build of the test images: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type candidate struct{ Version, Depends string }

// resolve asks apt which version of each package it would download.
func resolve(ctx context.Context, names []string) (map[string]candidate, error) {
	out, err := output(ctx, "", "apt-cache", append([]string{"show", "--no-all-versions"}, names...)...)
	if err != nil {
		return nil, err
	}
	res := map[string]candidate{}
	for _, para := range strings.Split(out, "\n\n") {
		f := fields(para)
		if f["Package"] != "" {
			res[f["Package"]] = candidate{Version: f["Version"], Depends: f["Depends"]}
		}
	}
	for _, n := range names {
		if _, ok := res[n]; !ok && !strings.HasPrefix(n, "linux-image-cloud-") {
			return nil, fmt.Errorf("apt has no candidate for %s (run apt-get update)", n)
		}
	}
	return res, nil
}

// fields reads the single-line fields of one control paragraph.
func fields(para string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(para, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && line != "" && line[0] != ' ' && line[0] != '\t' {
			f[k] = strings.TrimSpace(v)
		}
	}
	return f
}

func build(ctx context.Context, tmp, arch string, names []string, resolved map[string]candidate) (*Images, error) {
	debs := filepath.Join(tmp, "debs")
	root := filepath.Join(tmp, "root")
	out := filepath.Join(tmp, "out")
	for _, d := range []string{debs, root, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	args := []string{"download", "-q"}
	for _, n := range names {
		args = append(args, n+"="+resolved[n].Version)
	}
	if _, err := output(ctx, debs, "apt-get", args...); err != nil {
		return nil, fmt.Errorf("%w: %v", errDownload, err)
	}
	files, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil || len(files) != len(names) {
		return nil, fmt.Errorf("apt-get download gave %d .deb files for %d packages", len(files), len(names))
	}
	sort.Strings(files)
	im := &Images{Architecture: arch, RootPartitionGPT: 2, RootPartitionMBR: 1}
	var status bytes.Buffer
	for _, deb := range files {
		control, err := output(ctx, "", "dpkg-deb", "-f", deb)
		if err != nil {
			return nil, err
		}
		f := fields(control)
		im.Packages = append(im.Packages, Package{Name: f["Package"], Version: f["Version"], Architecture: f["Architecture"], Source: f["Source"]})
		if _, err := output(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
			return nil, err
		}
		conffiles, err := writeInfo(ctx, deb, root, f)
		if err != nil {
			return nil, fmt.Errorf("dpkg database entry of %s: %w", filepath.Base(deb), err)
		}
		writeStatus(&status, control, conffiles)
		if f["Package"] == "base-files" {
			// The no-package-database image: base-files alone, as
			// unpacked, with no dpkg status.
			if _, err := output(ctx, "", "dpkg-deb", "-x", deb, filepath.Join(tmp, "bare")); err != nil {
				return nil, err
			}
		}
	}
	// bookworm's debootstrap merges /usr: /bin, /sbin, /lib* are links into
	// /usr, so paths such as /lib/modules go through a symlink.
	if err := mergeUsr(root); err != nil {
		return nil, fmt.Errorf("merging /usr: %w", err)
	}
	if err := dpkgDirs(root); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), status.Bytes(), 0o644); err != nil {
		return nil, err
	}
	osr, err := os.ReadFile(filepath.Join(root, "usr/lib/os-release"))
	if err != nil {
		return nil, fmt.Errorf("base-files gave no os-release: %w", err)
	}
	for _, line := range strings.Split(string(osr), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "ID":
			im.OSID = strings.Trim(v, `"`)
		case "VERSION_ID":
			im.OSVersionID = strings.Trim(v, `"`)
		}
	}
	dv, err := os.ReadFile(filepath.Join(root, "etc/debian_version"))
	if err != nil {
		return nil, err
	}
	im.DebianVersion = strings.TrimSpace(string(dv))
	if mods, _ := filepath.Glob(filepath.Join(root, "usr/lib/modules/*")); len(mods) == 1 {
		im.Kernel = filepath.Base(mods[0])
	}

	rootFS := filepath.Join(out, "root.ext4")
	if err := mkext4(ctx, root, rootFS); err != nil {
		return nil, err
	}
	im.WholeFS = "root.ext4"
	bareFS := filepath.Join(tmp, "bare.ext4")
	if err := mkext4(ctx, filepath.Join(tmp, "bare"), bareFS); err != nil {
		return nil, err
	}

	biosBoot := "21686148-6449-6E6F-744E-656564454649"
	linuxFS := "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	type part struct {
		typ, name, src string
		sizeMiB        int64
		bootable       bool
	}
	steps := []struct {
		file, label string
		parts       []part
		field       *string
	}{
		{"gpt.raw", "gpt", []part{{typ: biosBoot, name: "bios", sizeMiB: 1}, {typ: linuxFS, name: "root", src: rootFS}}, &im.RawGPT},
		{"mbr.raw", "dos", []part{{typ: "83", src: rootFS, bootable: true}}, &im.RawMBR},
		{"nopkgdb.raw", "gpt", []part{{typ: linuxFS, name: "root", src: bareFS}}, &im.NoPkgDB},
	}
	if _, err := exec.LookPath("mkfs.xfs"); err == nil {
		xfs := filepath.Join(tmp, "part.xfs")
		if err := truncate(xfs, 300<<20); err != nil {
			return nil, err
		}
		if _, err := output(ctx, "", "mkfs.xfs", "-q", "-L", "data", xfs); err != nil {
			return nil, err
		}
		steps = append(steps, struct {
			file, label string
			parts       []part
			field       *string
		}{"xfs.raw", "gpt", []part{{typ: linuxFS, name: "data", src: xfs}}, &im.XFS})
	}
	if _, err := exec.LookPath("rpmbuild"); err == nil {
		rpmFS, pkgs, err := buildRPMRoot(ctx, tmp, files)
		if err != nil {
			return nil, err
		}
		im.RPMPackages = pkgs
		steps = append(steps, struct {
			file, label string
			parts       []part
			field       *string
		}{"rpm.raw", "gpt", []part{{typ: linuxFS, name: "root", src: rpmFS}}, &im.RPM})
	}
	for _, s := range steps {
		var script strings.Builder
		fmt.Fprintf(&script, "label: %s\n", s.label)
		offset := int64(1 << 20)
		type place struct {
			src string
			at  int64
		}
		var places []place
		for _, p := range s.parts {
			size := p.sizeMiB << 20
			if p.src != "" {
				st, err := os.Stat(p.src)
				if err != nil {
					return nil, err
				}
				size = st.Size()
				places = append(places, place{p.src, offset})
			}
			fmt.Fprintf(&script, "start=%d, size=%d, type=%s", offset/512, size/512, p.typ)
			if p.name != "" {
				fmt.Fprintf(&script, ", name=%s", p.name)
			}
			if p.bootable {
				script.WriteString(", bootable")
			}
			script.WriteString("\n")
			offset += size
		}
		disk := filepath.Join(out, s.file)
		// 1 MiB at the end for GPT's backup header.
		if err := truncate(disk, offset+1<<20); err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, "sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk)
		cmd.Stdin = strings.NewReader(script.String())
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("sfdisk %s: %v: %s", s.file, err, b)
		}
		for _, pl := range places {
			if err := copySparse(disk, pl.src, pl.at); err != nil {
				return nil, err
			}
		}
		*s.field = s.file
	}
	// MBR with the root in logical partition 5 inside extended partition 1,
	// its boot record one MiB before it.
	{
		st, err := os.Stat(rootFS)
		if err != nil {
			return nil, err
		}
		rootSectors := st.Size() / 512
		disk := filepath.Join(out, "logical.raw")
		if err := truncate(disk, (4096+rootSectors)*512+1<<20); err != nil {
			return nil, err
		}
		script := fmt.Sprintf("label: dos\nstart=2048, size=%d, type=5\nstart=4096, size=%d, type=83\n", 2048+rootSectors, rootSectors)
		cmd := exec.CommandContext(ctx, "sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk)
		cmd.Stdin = strings.NewReader(script)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("sfdisk logical.raw: %v: %s", err, b)
		}
		if err := copySparse(disk, rootFS, 4096*512); err != nil {
			return nil, err
		}
		im.RawLogical = "logical.raw"
	}
	for _, c := range []struct {
		from, to string
		field    *string
	}{{"gpt.raw", "gpt.qcow2", &im.QcowGPT}, {"mbr.raw", "mbr.qcow2", &im.QcowMBR}} {
		if _, err := output(ctx, "", "qemu-img", "convert", "-f", "raw", "-O", "qcow2", filepath.Join(out, c.from), filepath.Join(out, c.to)); err != nil {
			return nil, err
		}
		*c.field = c.to
	}
	if err := truncate(filepath.Join(out, "blank.raw"), 64<<20); err != nil {
		return nil, err
	}
	im.Blank = "blank.raw"
	if err := copyPrefix(filepath.Join(out, "gpt.qcow2"), filepath.Join(out, "truncated.qcow2"), 64<<10); err != nil {
		return nil, err
	}
	im.Truncate = "truncated.qcow2"

	feed, err := buildFeed(ctx, tmp, out, files, im.Packages)
	if err != nil {
		return nil, fmt.Errorf("building the fix feed: %w", err)
	}
	im.Feed = *feed

	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return nil, err
	}
	return im, os.WriteFile(filepath.Join(out, "manifest.json"), b, 0o644)
}

// rpmSpecs are two small packages built with rpmbuild for the rpm image:
// one noarch with an epoch, one for the host architecture without.
var rpmSpecs = map[string]string{
	"imagesec-hello": `Name: imagesec-hello
Version: 1.2.3
Release: 4
Epoch: 2
Summary: imagesec test package
License: MIT
BuildArch: noarch
%description
Built by imagesec's tests.
%install
mkdir -p %{buildroot}/usr/share/imagesec-hello
echo hello > %{buildroot}/usr/share/imagesec-hello/hello
%files
/usr/share/imagesec-hello/hello
`,
	"imagesec-tools": `%define debug_package %{nil}
Name: imagesec-tools
Version: 0.9
Release: 1.el9
Summary: imagesec test package
License: MIT
%description
Built by imagesec's tests.
%install
mkdir -p %{buildroot}/usr/lib/imagesec-tools
echo tools > %{buildroot}/usr/lib/imagesec-tools/data
%files
/usr/lib/imagesec-tools/data
`,
}

// buildRPMRoot builds the rpmSpecs, installs them with rpm into a root
// holding base-files (for os-release), and writes it into an ext4 image.
// It returns the image and the packages as rpm describes the .rpm files.
func buildRPMRoot(ctx context.Context, tmp string, debs []string) (string, []Package, error) {
	top := filepath.Join(tmp, "rpmbuild")
	root := filepath.Join(tmp, "rpmroot")
	for _, d := range []string{top, root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, err
		}
	}
	for _, deb := range debs {
		if strings.HasPrefix(filepath.Base(deb), "base-files_") {
			if _, err := output(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
				return "", nil, err
			}
		}
	}
	for name, spec := range rpmSpecs {
		sp := filepath.Join(top, name+".spec")
		if err := os.WriteFile(sp, []byte(spec), 0o644); err != nil {
			return "", nil, err
		}
		if _, err := output(ctx, "", "rpmbuild", "-bb", "--quiet", "--define", "_topdir "+top, sp); err != nil {
			return "", nil, err
		}
	}
	rpms, err := filepath.Glob(filepath.Join(top, "RPMS", "*", "*.rpm"))
	if err != nil || len(rpms) != len(rpmSpecs) {
		return "", nil, fmt.Errorf("rpmbuild gave %d packages for %d specs", len(rpms), len(rpmSpecs))
	}
	sort.Strings(rpms)
	var pkgs []Package
	for _, f := range rpms {
		q, err := output(ctx, "", "rpm", "-qp", "--qf", "%{NAME}|%{EPOCHNUM}|%{VERSION}-%{RELEASE}|%{ARCH}|%{SOURCERPM}", f)
		if err != nil {
			return "", nil, err
		}
		p := strings.Split(strings.TrimSpace(q), "|")
		if len(p) != 5 {
			return "", nil, fmt.Errorf("rpm -qp %s: %q", f, q)
		}
		v := p[2]
		if p[1] != "0" {
			v = p[1] + ":" + v
		}
		pkgs = append(pkgs, Package{Name: p[0], Version: v, Architecture: p[3], Source: p[4]})
	}
	args := []string{"--root", root, "--dbpath", "/var/lib/rpm", "--nodeps", "--noscripts", "-i"}
	if _, err := output(ctx, "", "rpm", append(args, rpms...)...); err != nil {
		return "", nil, err
	}
	img := filepath.Join(tmp, "rpm.ext4")
	if err := mkext4(ctx, root, img); err != nil {
		return "", nil, err
	}
	return img, pkgs, nil
}

// mergeUsr moves /bin, /sbin, /lib and /lib64 into /usr and leaves
// relative symlinks in their place, as usrmerge and debootstrap do.
func mergeUsr(root string) error {
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		from := filepath.Join(root, d)
		st, err := os.Lstat(from)
		if errors.Is(err, os.ErrNotExist) || (err == nil && !st.IsDir()) {
			continue
		}
		if err != nil {
			return err
		}
		if err := moveInto(from, filepath.Join(root, "usr", d)); err != nil {
			return err
		}
		if err := os.Symlink("usr/"+d, from); err != nil {
			return err
		}
	}
	return nil
}

// moveInto moves the tree at from into to, merging directories.
func moveInto(from, to string) error {
	st, err := os.Lstat(to)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.Rename(from, to)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s exists and is not a directory", to)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range ents {
		src, dst := filepath.Join(from, e.Name()), filepath.Join(to, e.Name())
		if _, err := os.Lstat(dst); err == nil && !e.IsDir() {
			return fmt.Errorf("both %s and %s exist", src, dst)
		}
		if err := moveInto(src, dst); err != nil {
			return err
		}
	}
	return os.Remove(from)
}

// writeStatus appends the dpkg status paragraph of an unpacked package: its
// control fields with "Status: install ok installed" after Package, as dpkg
// writes them (Description and other multi-line fields kept as they are).
func writeStatus(w *bytes.Buffer, control, conffiles string) {
	sc := bufio.NewScanner(strings.NewReader(strings.TrimRight(control, "\n")))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		w.WriteString(line + "\n")
		if strings.HasPrefix(line, "Package:") {
			w.WriteString("Status: install ok installed\n")
		}
	}
	w.WriteString(conffiles)
	w.WriteString("\n")
}

// mkext4 writes dir into a new ext4 image file sized for it, without
// mounting anything.
func mkext4(ctx context.Context, dir, img string) error {
	var used int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		used += (fi.Size() + 4095) / 4096 * 4096
		return nil
	})
	if err != nil {
		return err
	}
	mib := (used*5/4)>>20 + 32
	if _, err := output(ctx, "", "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "rootfs", "-d", dir, img, fmt.Sprintf("%dM", mib)); err != nil {
		return err
	}
	return nil
}

func truncate(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copySparse writes src into dst at offset, skipping all-zero blocks so the
// disk stays sparse.
func copySparse(dst, src string, offset int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for pos := int64(0); ; {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := out.WriteAt(buf[:n], offset+pos); werr != nil {
				out.Close()
				return werr
			}
		}
		pos += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

func copyPrefix(src, dst string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(out, in, n); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func output(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(b), nil
}

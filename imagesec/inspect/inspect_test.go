package inspect

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/imagesec/testimage"
)

// TestInspectImages inspects the real Debian images in all four layouts and
// checks what was found against what the builder put in.
func TestInspectImages(t *testing.T) {
	im := testimage.ForTest(t)
	cases := []struct {
		name, path, format, table string
		root, parts               int
	}{
		{"raw GPT", im.RawGPT, "raw", "gpt", im.RootPartitionGPT, 2},
		{"qcow2 GPT", im.QcowGPT, "qcow2", "gpt", im.RootPartitionGPT, 2},
		{"raw MBR", im.RawMBR, "raw", "mbr", im.RootPartitionMBR, 1},
		{"qcow2 MBR", im.QcowMBR, "qcow2", "mbr", im.RootPartitionMBR, 1},
		{"whole-disk ext4", im.WholeFS, "raw", "none", 0, 1},
		{"MBR logical partition", im.RawLogical, "raw", "mbr", 5, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			var stages []string
			r, err := Inspect(context.Background(), c.path, Options{WorkDir: work, Progress: func(e Event) {
				if len(stages) == 0 || stages[len(stages)-1] != e.Stage {
					stages = append(stages, e.Stage)
				}
			}})
			if err != nil {
				t.Fatalf("Inspect(%s): %v", c.path, err)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Errorf("work dir not cleaned: %v", left)
			}
			if r.Format != c.format || r.PartitionTable != c.table || r.RootPartition != c.root || len(r.Partitions) != c.parts {
				t.Errorf("format %s table %s root %d partitions %d, want %s %s %d %d",
					r.Format, r.PartitionTable, r.RootPartition, len(r.Partitions), c.format, c.table, c.root, c.parts)
			}
			if !strings.HasPrefix(r.Checksum, "sha256:") || len(r.Checksum) != 71 {
				t.Errorf("checksum %q", r.Checksum)
			}
			if st, _ := os.Stat(c.path); r.FileSize != st.Size() {
				t.Errorf("file size %d, want %d", r.FileSize, st.Size())
			}
			var rootPart *Partition
			for i := range r.Partitions {
				if r.Partitions[i].Number == r.RootPartition {
					rootPart = &r.Partitions[i]
				}
			}
			if rootPart == nil || rootPart.Filesystem != "ext4" || rootPart.Label != "rootfs" {
				t.Errorf("root partition %+v, want ext4 labelled rootfs", rootPart)
			}
			if c.table == "gpt" && (r.Partitions[0].Type != "21686148-6449-6E6F-744E-656564454649" || r.Partitions[0].Filesystem != "" || r.Partitions[1].Name != "root") {
				t.Errorf("GPT partitions %+v", r.Partitions)
			}
			if c.root == 5 && (r.Partitions[0].Type != "0x05" || r.Partitions[0].Note != "extended partition" || r.Partitions[1].Number != 5 || r.Partitions[1].Start != 4096*512) {
				t.Errorf("extended/logical partitions %+v", r.Partitions)
			}
			if c.table == "mbr" && c.root == 1 && (!r.Partitions[0].Bootable || r.Partitions[0].Type != "0x83" || r.Partitions[0].Start != 1<<20) {
				t.Errorf("MBR partition %+v", r.Partitions[0])
			}
			want := OS{Family: "linux", Distro: im.OSID, Name: "Debian GNU/Linux", Version: im.OSVersionID,
				Release: im.DebianVersion, Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}
			if r.OS.Family != want.Family || r.OS.Distro != want.Distro || r.OS.Name != want.Name || r.OS.Version != want.Version ||
				r.OS.Release != want.Release || r.OS.Codename != want.Codename || r.OS.PrettyName != want.PrettyName {
				t.Errorf("OS %+v, want %+v", r.OS, want)
			}
			if im.Kernel != "" && (len(r.Kernels) != 1 || r.Kernel() != im.Kernel) {
				t.Errorf("kernels %v, want [%s]", r.Kernels, im.Kernel)
			}
			if r.PackageFormat != "deb" || r.PackageManager != "apt" {
				t.Errorf("package format %q manager %q, want deb apt", r.PackageFormat, r.PackageManager)
			}
			assertPackages(t, r.Packages, im.Packages)
			if c.format == "qcow2" && (len(stages) < 2 || stages[1] != "convert") {
				t.Errorf("progress stages %v: want convert after checksum", stages)
			}
		})
	}
}

// assertPackages compares the inspected packages with the .debs unpacked.
func assertPackages(t *testing.T, got []Package, want []testimage.Package) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d packages, want %d", len(got), len(want))
	}
	byName := map[string]Package{}
	for _, p := range got {
		byName[p.Name+":"+p.Architecture] = p
	}
	for _, w := range want {
		g, ok := byName[w.Name+":"+w.Architecture]
		if !ok {
			t.Errorf("package %s:%s not found", w.Name, w.Architecture)
			continue
		}
		src := w.Source
		if src == "" {
			src = w.Name
		}
		srcName, _, _ := strings.Cut(src, " ")
		if g.Version != w.Version || g.Source != srcName || g.Status != "installed" {
			t.Errorf("package %s: version %q source %q status %q, want %q %q installed", w.Name, g.Version, g.Source, g.Status, w.Version, srcName)
		}
	}
}

// TestInspectRPM reads the rpm database (SQLite, as rpm 4.18 writes it) of
// the image whose packages rpm installed.
func TestInspectRPM(t *testing.T) {
	im := testimage.ForTest(t)
	if im.RPM == "" {
		t.Fatal("rpmbuild missing: install the Debian package rpm (CI does) so the rpm image is built")
	}
	r, err := Inspect(context.Background(), im.RPM, Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if r.PackageFormat != "rpm" || r.PackageManager != "rpm" || r.OS.Distro != im.OSID {
		t.Errorf("format %q manager %q distro %q", r.PackageFormat, r.PackageManager, r.OS.Distro)
	}
	if len(r.Packages) != len(im.RPMPackages) {
		t.Fatalf("%d packages %+v, want %+v", len(r.Packages), r.Packages, im.RPMPackages)
	}
	for i, w := range im.RPMPackages {
		g := r.Packages[i]
		wantSrc, wantSrcVer := rpmSource(w.Source)
		if g.Name != w.Name || g.Version != w.Version || g.Architecture != w.Architecture ||
			g.Source != wantSrc || g.SourceVersion != wantSrcVer || g.Status != "installed" {
			t.Errorf("package %+v, want %+v", g, w)
		}
	}
	if r.Packages[0].Source != "imagesec-hello" || r.Packages[0].Version != "2:1.2.3-4" || r.Packages[0].SourceVersion != "1.2.3-4" {
		t.Errorf("epoch or source of %+v", r.Packages[0])
	}
}

// TestInspectBadImages: each bad input ends in the error kind and a message
// that says what is wrong, and leaves nothing in the work dir.
func TestInspectBadImages(t *testing.T) {
	im := testimage.ForTest(t)
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notImage, []byte("hello, not a disk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vmdk := filepath.Join(dir, "disk.vmdk")
	if err := os.WriteFile(vmdk, append([]byte("KDMV"), make([]byte, 1020)...), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "overlay.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", im.QcowGPT, "-F", "qcow2", overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	encrypted := filepath.Join(dir, "encrypted.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "--object", "secret,id=sec0,data=imagesec",
		"-f", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", encrypted, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create (encrypted): %v: %s", err, out)
	}
	cases := []struct {
		name, path string
		kind       error
		msg        string
	}{
		{"qcow2 with a backing file", overlay, ErrUnsupported, "image format qcow2 with a backing file (" + im.QcowGPT + ") is not supported yet (flatten it first"},
		{"encrypted qcow2", encrypted, ErrUnsupported, "image format encrypted qcow2 is not supported yet"},
		{"truncated qcow2", im.Truncate, ErrInvalidImage, "qemu-img check found the qcow2 damaged"},
		{"blank disk", im.Blank, ErrInvalidImage, "no partition table (GPT or MBR) and no known filesystem"},
		{"not a disk", notImage, ErrInvalidImage, "no partition table"},
		{"vmdk", vmdk, ErrUnsupported, "image format vmdk is not supported yet"},
		{"no package database", im.NoPkgDB, ErrNoPackageDB, "Debian GNU/Linux 12 has no /var/lib/dpkg/status, rpm or apk database"},
		{"missing file", filepath.Join(dir, "nope.qcow2"), os.ErrNotExist, "no such file"},
	}
	if im.XFS != "" {
		cases = append(cases, struct {
			name, path string
			kind       error
			msg        string
		}{"xfs partition", im.XFS, ErrUnsupported, "partition 1: filesystem xfs is not supported yet (supported: ext2, ext3, ext4)"})
	} else {
		t.Error("mkfs.xfs missing: install xfsprogs (CI does) so the XFS case runs")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			r, err := Inspect(context.Background(), c.path, Options{WorkDir: work})
			if err == nil {
				t.Fatalf("Inspect(%s) = %+v, want an error", c.path, r)
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q (%T), want %v containing %q", err, err, c.kind, c.msg)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Errorf("work dir not cleaned: %v", left)
			}
		})
	}
}

// TestInspectCorruptExt4 overwrites random blocks of the root filesystem's
// metadata area: whatever the damage, inspect returns a report or a
// bad-input error, never panics or hangs.
func TestInspectCorruptExt4(t *testing.T) {
	im := testimage.ForTest(t)
	src, err := os.ReadFile(im.WholeFS)
	if err != nil {
		t.Fatal(err)
	}
	// One copy; each round damages it and then puts the bytes back.
	path := filepath.Join(t.TempDir(), "corrupt.ext4")
	if err := writeSparse(path, src); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	failed := 0
	for seed := int64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewSource(seed))
		type span struct{ off, n int }
		var spans []span
		for i := 0; i < 50; i++ {
			sp := span{4096 + rng.Intn(8<<20), 1 + rng.Intn(4096)}
			junk := make([]byte, sp.n)
			rng.Read(junk)
			if _, err := f.WriteAt(junk, int64(sp.off)); err != nil {
				t.Fatal(err)
			}
			spans = append(spans, sp)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		_, err := Inspect(ctx, path, Options{WorkDir: t.TempDir()})
		cancel()
		t.Logf("seed %d: %v (%v)", seed, err, time.Since(start).Round(time.Millisecond))
		if err != nil {
			failed++
			if !IsBadInput(err) {
				t.Errorf("seed %d: error %v is not classified as bad input", seed, err)
			}
		}
		for _, sp := range spans {
			if _, err := f.WriteAt(src[sp.off:sp.off+sp.n], int64(sp.off)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d of 8 damaged filesystems were rejected, the rest still read", failed)
}

// writeSparse writes data leaving its all-zero 64 KiB blocks as holes.
func writeSparse(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return err
	}
	zero := make([]byte, 64<<10)
	for off := 0; off < len(data); off += len(zero) {
		end := min(off+len(zero), len(data))
		if !bytes.Equal(data[off:end], zero[:end-off]) {
			if _, err := f.WriteAt(data[off:end], int64(off)); err != nil {
				f.Close()
				return err
			}
		}
	}
	return f.Close()
}

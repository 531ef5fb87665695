package inspect

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
)

// TestGuestSymlinks builds a small ext4 (mke2fs -d, no mount) holding
// links of every kind and checks they resolve inside the guest only.
func TestGuestSymlinks(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"usr/lib/modules/6.1.0-9-amd64", "etc", "boot", "deep/a/b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"usr/lib/os-release": "ID=guest\n", "etc/hostname": "guest\n"}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"lib":                        "usr/lib",                     // merged /usr, relative
		"etc/os-release":             "../usr/lib/os-release",       // Debian's own link
		"etc/abs-os-release":         "/usr/lib/os-release",         // absolute: from the guest root
		"etc/escape":                 "../../../../../etc/hostname", // ".." stops at the guest root
		"etc/host-passwd":            "/etc/passwd",                 // exists on the host, not in the guest
		"loop1":                      "loop2",
		"loop2":                      "loop1",
		"self":                       "self",
		"deep/a/b/up":                "../../../etc",
		"boot/vmlinuz-6.1.0-9-amd64": "/nonexistent", // a dangling link still names a kernel
	}
	for p, target := range links {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "fs.ext4")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v: %s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	g, err := openExt4(file.New(f, true), Partition{Size: st.Size()})
	if err != nil {
		t.Fatal(err)
	}
	reads := []struct{ path, want, err string }{
		{"/etc/os-release", "ID=guest\n", ""},
		{"/etc/abs-os-release", "ID=guest\n", ""},
		{"/lib/os-release", "ID=guest\n", ""},
		{"/etc/escape", "guest\n", ""},
		{"/deep/a/b/up/hostname", "guest\n", ""},
		{"/deep/a/b/up/../usr/lib/os-release", "ID=guest\n", ""},
		{"/etc/host-passwd", "", "file does not exist"},
		{"/loop1", "", "too many levels of symbolic links"},
		{"/self/x", "", "too many levels of symbolic links"},
		{"/etc/hostname/x", "", "not a directory"},
		{"/usr/lib", "", "not a regular file"},
	}
	for _, r := range reads {
		got, err := g.ReadFile(r.path)
		if r.err != "" {
			if err == nil || !strings.Contains(err.Error(), r.err) {
				t.Errorf("ReadFile(%s) = %q, %v; want error %q", r.path, got, err, r.err)
			}
			continue
		}
		if err != nil || string(got) != r.want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", r.path, got, err, r.want)
		}
	}
	mods, err := g.ReadDir("/lib/modules")
	if err != nil || len(mods) != 1 || mods["6.1.0-9-amd64"] == nil {
		t.Errorf("ReadDir(/lib/modules) through the /lib link = %v, %v", mods, err)
	}
	rep := &Report{}
	if err := readOS(g, rep); err != nil || rep.OS.Distro != "guest" || strings.Join(rep.Kernels, ",") != "6.1.0-9-amd64" {
		t.Errorf("readOS: %+v %v", rep, err)
	}
}

// TestOtherPackageDatabases: an rpm database that cannot be read is an
// invalid image naming it, apk is reported as not supported yet, none at
// all is ErrNoPackageDB.
func TestOtherPackageDatabases(t *testing.T) {
	cases := []struct {
		name, db string
		kind     error
		msg      string
	}{
		{"rpm sqlite, not a database", "var/lib/rpm/rpmdb.sqlite", ErrInvalidImage, "rpm database /var/lib/rpm/rpmdb.sqlite"},
		{"rpm bdb, not a database", "var/lib/rpm/Packages", ErrInvalidImage, "rpm database /var/lib/rpm/Packages"},
		{"rpm ndb in /usr, not a database", "usr/lib/sysimage/rpm/Packages.db", ErrInvalidImage, "rpm database /usr/lib/sysimage/rpm/Packages.db"},
		{"apk", "lib/apk/db/installed", ErrUnsupported, "package database apk (/lib/apk/db/installed) is not supported yet"},
		{"none", "", ErrNoPackageDB, "has no /var/lib/dpkg/status, rpm or apk database"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			files := map[string]string{"etc/os-release": "ID=x\nNAME=X\nVERSION_ID=1\n"}
			if c.db != "" {
				files[c.db] = "not a package database\n"
			}
			for p, content := range files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img := filepath.Join(dir, "fs.ext4")
			if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, "8M").CombinedOutput(); err != nil {
				t.Fatalf("mke2fs: %v: %s", err, out)
			}
			_, err := Inspect(context.Background(), img, Options{})
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %v, want %v with %q", err, c.kind, c.msg)
			}
		})
	}
}

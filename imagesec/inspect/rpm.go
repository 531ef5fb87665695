package inspect

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	// rpmdb.sqlite (RHEL 9, Fedora 33+) is read through database/sql's
	// "sqlite" driver: this pure-Go one keeps the build free of cgo.
	_ "github.com/glebarez/go-sqlite"
	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
)

// rpmDBs are where rpm keeps its database, newest layout first: SQLite
// (rpm >= 4.16), NDB (SUSE) and Berkeley DB (RHEL <= 8), under /var/lib/rpm
// or /usr/lib/sysimage/rpm.
var rpmDBs = []string{
	"/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite",
	"/var/lib/rpm/Packages.db", "/usr/lib/sysimage/rpm/Packages.db",
	"/var/lib/rpm/Packages", "/usr/lib/sysimage/rpm/Packages",
}

// findRPMDB returns the first rpm database path present in the guest.
func findRPMDB(g *guestFS) (string, error) {
	for _, p := range rpmDBs {
		ok, err := g.Exists(p)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
	}
	return "", nil
}

// readRPM lists the packages of the rpm database at dbPath in the guest.
// The reader opens files by host path, so the database (with SQLite's
// write-ahead log, if any) is copied into a private temp dir first.
func readRPM(g *guestFS, dbPath, workDir string) (pkgs []Package, err error) {
	if workDir == "" {
		workDir = os.TempDir()
	}
	tmp, err := os.MkdirTemp(workDir, "imagesec-rpmdb-")
	if err != nil {
		return nil, fmt.Errorf("creating a dir for the rpm database: %w", err)
	}
	defer os.RemoveAll(tmp)
	local := filepath.Join(tmp, path.Base(dbPath))
	data, err := g.ReadFile(dbPath)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(local, data, 0o600); err != nil {
		return nil, fmt.Errorf("copying %s: %w", dbPath, err)
	}
	if strings.HasSuffix(dbPath, ".sqlite") {
		if wal, err := g.ReadFile(dbPath + "-wal"); err == nil && len(wal) > 0 {
			if err := os.WriteFile(local+"-wal", wal, 0o600); err != nil {
				return nil, fmt.Errorf("copying %s-wal: %w", dbPath, err)
			}
		}
	}
	defer recoverTo(&err, "reading the rpm database "+dbPath)
	db, err := rpmdb.Open(local)
	if err != nil {
		return nil, fmt.Errorf("%w: opening rpm database %s: %v", ErrInvalidImage, dbPath, err)
	}
	defer db.Close()
	infos, err := db.ListPackages()
	if err != nil {
		return nil, fmt.Errorf("%w: reading rpm database %s: %v", ErrInvalidImage, dbPath, err)
	}
	for _, p := range infos {
		if p.Name == "" || p.Name == "gpg-pubkey" {
			continue // imported signing keys are headers, not packages
		}
		pkg := Package{Name: p.Name, Version: rpmEVR(p.Epoch, p.Version, p.Release), Architecture: p.Arch, Status: "installed"}
		pkg.Source, pkg.SourceVersion = rpmSource(p.SourceRpm)
		if pkg.Source == "" {
			pkg.Source, pkg.SourceVersion = pkg.Name, pkg.Version
		}
		if pkg.Architecture == "" {
			pkg.Architecture = "(none)"
		}
		pkgs = append(pkgs, pkg)
	}
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Architecture < pkgs[j].Architecture
	})
	return pkgs, nil
}

// rpmEVR writes rpm's [epoch:]version-release; an absent epoch is left out
// (rpm compares it as 0).
func rpmEVR(epoch *int, version, release string) string {
	v := version
	if release != "" {
		v += "-" + release
	}
	if epoch != nil && *epoch != 0 {
		v = strconv.Itoa(*epoch) + ":" + v
	}
	return v
}

// rpmSource splits a source rpm file name, "name-version-release.src.rpm",
// into the source package name and "version-release".
func rpmSource(srpm string) (name, versionRelease string) {
	base, ok := strings.CutSuffix(srpm, ".src.rpm")
	if !ok {
		base, ok = strings.CutSuffix(srpm, ".nosrc.rpm")
	}
	if !ok {
		return "", ""
	}
	r := strings.LastIndexByte(base, '-')
	if r <= 0 {
		return "", ""
	}
	v := strings.LastIndexByte(base[:r], '-')
	if v <= 0 {
		return "", ""
	}
	return base[:v], base[v+1:]
}

// rpmManager names the front end that manages an rpm system.
func rpmManager(g *guestFS) string {
	for _, m := range []struct{ bin, name string }{
		{"/usr/bin/dnf", "dnf"}, {"/usr/bin/yum", "yum"}, {"/usr/bin/zypper", "zypper"},
	} {
		if ok, _ := g.Exists(m.bin); ok {
			return m.name
		}
	}
	return "rpm"
}

package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

// A guest's dpkg status, os-release or partition label may hold NUL bytes
// or bytes that are not UTF-8, which PostgreSQL stores in neither text nor
// jsonb: they become U+FFFD and the inspection is stored, rather than the
// whole store failing with the database's encoding error.
func TestSaveInspectionUnstorableBytes(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Pool(t)
	pkg := func(name, version string) inspect.Package {
		return inspect.Package{Name: name, Version: version, Architecture: "amd64", Source: name, SourceVersion: version, Status: "installed"}
	}
	r := &inspect.Report{
		Format: "raw", Checksum: "sha256:00", InspectedAt: time.Now().UTC(), PartitionTable: "gpt",
		Partitions:    []inspect.Partition{{Number: 1, Type: "0x83", Filesystem: "ext4", Label: "root\x00"}},
		RootPartition: 1,
		OS:            inspect.OS{Family: "linux", Distro: "debian", Version: "12", PrettyName: "Debian\x00 \xff", IDLike: []string{"x\x00"}},
		Kernels:       []string{"6.1\x00"},
		PackageFormat: "deb", PackageManager: "dpkg",
		Packages: []inspect.Package{
			pkg("bash", "5.2"), pkg("ba\x00sh", "1\x00"), pkg("lat\xe9n", "1"),
			pkg("ba\xffsh", "2"), // the same name as ba\x00sh once stored
		},
	}
	var id int64
	err := pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		id, err = SaveInspection(ctx, tx, "file:///images/odd.raw", "odd\x00.raw", r)
		return err
	})
	if err != nil {
		t.Fatalf("storing an inspection with unstorable bytes: %v", err)
	}
	if r.Packages[1].Name != "ba\x00sh" || len(r.Packages) != 4 {
		t.Errorf("the caller's report was changed: %+v", r.Packages)
	}
	pkgs, err := ListPackages(ctx, db, id)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range pkgs {
		got[p.Name] = p.Version
	}
	want := map[string]string{"bash": "5.2", "ba\uFFFDsh": "1\uFFFD", "lat\uFFFDn": "1"}
	if len(got) != len(want) {
		t.Fatalf("packages %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("package %q: version %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	d, err := GetImage(ctx, db, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "odd\uFFFD.raw" || d.Info.OS.PrettyName != "Debian\uFFFD \uFFFD" || d.Info.Kernel != "6.1\uFFFD" ||
		len(d.Info.Partitions) != 1 || d.Info.Partitions[0].Label != "root\uFFFD" || d.Info.OS.IDLike[0] != "x\uFFFD" {
		t.Errorf("image %+v info %+v", d.Image, d.Info)
	}
}

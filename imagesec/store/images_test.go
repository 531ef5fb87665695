package store

import (
	"context"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.DropTemplate()
	os.Exit(code)
}

// TestSaveAndRead stores a real inspection and reads every part back.
func TestSaveAndRead(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	r, err := inspect.Inspect(ctx, im.RawGPT, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	db := pgtest.Pool(t)
	save := func(source string, r *inspect.Report) int64 {
		t.Helper()
		var id int64
		err := pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var err error
			id, err = SaveInspection(ctx, tx, source, "gpt.raw", r)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	id := save("file:///images/gpt.raw", r)

	d, err := GetImage(ctx, db, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Source != "file:///images/gpt.raw" || d.Name != "gpt.raw" || d.Checksum != r.Checksum || d.Format != "raw" ||
		d.Size != r.FileSize || d.VirtualSize != r.VirtualSize || d.Status != StatusInspected ||
		!d.InspectedAt.Equal(r.InspectedAt.Truncate(time.Microsecond)) || d.Packages != len(im.Packages) ||
		d.Distro != "debian" || d.Release != im.DebianVersion {
		t.Errorf("image row %+v", d.Image)
	}
	want := Info{OS: r.OS, Kernel: r.Kernel(), Kernels: r.Kernels, PackageFormat: "deb", PackageManager: "apt",
		PartitionTable: "gpt", RootPartition: im.RootPartitionGPT, Partitions: r.Partitions}
	if !reflect.DeepEqual(d.Info, want) {
		t.Errorf("info\n got %+v\nwant %+v", d.Info, want)
	}
	pkgs, err := ListPackages(ctx, db, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pkgs, r.Packages) {
		t.Errorf("packages read back differ:\n got %+v\nwant %+v", pkgs, r.Packages)
	}

	// The same content again from the same source updates the row and
	// replaces the packages; another source is another image.
	r2 := *r
	r2.Packages = r.Packages[1:]
	r2.InspectedAt = r.InspectedAt.Add(time.Hour)
	if again := save("file:///images/gpt.raw", &r2); again != id {
		t.Errorf("re-inspection got id %d, want %d", again, id)
	}
	if pkgs, _ := ListPackages(ctx, db, id); len(pkgs) != len(r.Packages)-1 {
		t.Errorf("after re-inspection %d packages, want %d", len(pkgs), len(r.Packages)-1)
	}
	other := save("file:///elsewhere/gpt.raw", r)
	list, err := ListImages(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != id || list[1].ID != other || list[1].Packages != len(r.Packages) {
		t.Errorf("list %+v", list)
	}

	if _, err := GetImage(ctx, db, 999999); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetImage(missing) = %v, want ErrNotFound", err)
	}
	if _, err := ListPackages(ctx, db, 999999); !errors.Is(err, ErrNotFound) {
		t.Errorf("ListPackages(missing) = %v, want ErrNotFound", err)
	}
}

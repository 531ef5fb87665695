package imagesec

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.DropTemplate()
	os.Exit(code)
}

// TestInspectFile stores a real qcow2 image, then shows that bad images
// store nothing and leave the earlier rows as they were.
func TestInspectFile(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	db := pgtest.Pool(t)
	d, err := InspectFile(ctx, db, im.QcowMBR, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := FileSource(im.QcowMBR)
	if d.Source != src || d.Format != "qcow2" || d.Info.PartitionTable != "mbr" || d.Info.OS.Version != im.OSVersionID ||
		d.Packages != len(im.Packages) {
		t.Errorf("stored %+v", d)
	}
	bad := []struct {
		path string
		kind error
	}{{im.Truncate, inspect.ErrInvalidImage}, {im.XFS, inspect.ErrUnsupported}, {im.NoPkgDB, inspect.ErrNoPackageDB}, {im.Blank, inspect.ErrInvalidImage}}
	for _, b := range bad {
		if _, err := InspectFile(ctx, db, b.path, inspect.Options{WorkDir: t.TempDir()}); !errors.Is(err, b.kind) {
			t.Errorf("InspectFile(%s) = %v, want %v", b.path, err, b.kind)
		}
	}
	list, err := store.ListImages(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != d.ID || list[0].Packages != len(im.Packages) {
		t.Errorf("after bad images the store holds %+v, want only image %d", list, d.ID)
	}
}

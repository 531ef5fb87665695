package imagesec

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/imagesec/upgrade"
	"github.com/unisched/unisched/imagesec/upgrade/upgradetest"
	"github.com/unisched/unisched/internal/pgtest"
)

// privateDocker starts a dockerd for one test (this package's TestMain
// does not run dockertest.Main) and returns the upgrade options for it.
func privateDocker(t *testing.T) upgrade.Options {
	t.Helper()
	opts := upgradetest.Options(t)
	opts.WorkDir = t.TempDir()
	return opts
}

// TestUpgradeImage upgrades a stored real image from its stored advice,
// stores the result as a new image linked to its parent, and shows that a
// failing upgrade stores nothing and leaves the parent as it was.
func TestUpgradeImage(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	db := pgtest.Pool(t)
	opts := privateDocker(t)
	d, err := InspectFile(ctx, db, im.RawGPT, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UpgradeImage(ctx, db, d.ID, UpgradeOptions{Upgrade: opts, Out: filepath.Join(t.TempDir(), "x.raw")}); !errors.Is(err, upgrade.ErrNothing) {
		t.Errorf("upgrade without advice: %v", err)
	}
	// A postinst that fails: nothing stored, no file left.
	out := filepath.Join(t.TempDir(), "bad.raw")
	if _, err := UpgradeImage(ctx, db, d.ID, UpgradeOptions{Feed: im.Feed.BadPostinst, Upgrade: opts, Out: out}); !errors.Is(err, upgrade.ErrDpkg) {
		t.Errorf("failing postinst: %v", err)
	}
	if list, _ := store.ListImages(ctx, db); len(list) != 1 {
		t.Errorf("after a failed upgrade the store holds %d images", len(list))
	}
	if ups, err := store.ListUpgrades(ctx, db, d.ID); err != nil || len(ups) != 0 {
		t.Errorf("upgrade records after a failure: %+v %v", ups, err)
	}

	if _, err := AdviseImage(ctx, db, d.ID, AdviseOptions{Feed: im.Feed.Dir, Advisories: im.Feed.Advisories}); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(t.TempDir(), "fixed.raw")
	res, err := UpgradeImage(ctx, db, d.ID, UpgradeOptions{Upgrade: opts, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image.ID == d.ID || res.Record.ResultImageID != res.Image.ID || res.Record.Path != out || len(res.Record.Applied) != len(im.Feed.Fixes) {
		t.Errorf("result %+v record %+v", res.Image.Image, res.Record)
	}
	pkgs, err := store.ListPackages(ctx, db, res.Image.ID)
	if err != nil {
		t.Fatal(err)
	}
	to := map[string]string{}
	for _, f := range im.Feed.Fixes {
		to[f.Name] = f.To
	}
	for i, p := range pkgs {
		want := im.Packages[i].Version
		if v, ok := to[p.Name]; ok {
			want = v
		}
		if p.Version != want {
			t.Errorf("stored %s %s, want %s", p.Name, p.Version, want)
		}
	}
	parent, err := store.ListPackages(ctx, db, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parent {
		if p.Version != im.Packages[i].Version {
			t.Errorf("parent's %s changed to %s", p.Name, p.Version)
		}
	}
	ups, err := store.ListUpgrades(ctx, db, d.ID)
	if err != nil || len(ups) != 1 || ups[0].ResultImageID != res.Image.ID || ups[0].Status != store.UpgradeDone || ups[0].Applied[0].Deb == nil {
		t.Errorf("upgrade records %+v %v", ups, err)
	}
}

package imagesec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/upgrade"
	"github.com/unisched/unisched/internal/pg"
)

// UpgradeOptions of UpgradeImage.
type UpgradeOptions struct {
	// Feed and/or Advisories: advise afresh (in memory; the stored advice
	// is left as it is). Both empty: apply the stored advice.
	Feed, Advisories string
	// Out is the upgraded image's path; default beside the source,
	// "<name>.upgraded-<UTC time><ext>".
	Out string
	// SourcePath is the image's file when its source is not a local file
	// (a Glance image, downloaded by the job runner); "" uses file://.
	SourcePath string
	Upgrade    upgrade.Options
	// Now stamps the default output name and the record; time.Now when nil.
	Now func() time.Time
}

// UpgradeResult is an upgrade and the image it produced, as stored.
type UpgradeResult struct {
	Upgrade *upgrade.Result `json:"upgrade"`
	Image   *store.Detail   `json:"image"`
	Record  *store.Upgrade  `json:"record"`
}

// UpgradeImage upgrades a stored image offline (imagesec/upgrade) into a
// new file, then stores the result as a new image (inspected like any
// other) with a record linking it to its parent, in one transaction. A
// failure stores nothing and removes the new file; the source image and
// its rows are never changed.
func UpgradeImage(ctx context.Context, db pg.Beginner, id int64, opts UpgradeOptions) (*UpgradeResult, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	started := now()
	var d *store.Detail
	var plan []advise.Upgrade
	feedName := opts.Feed
	err := pg.WithTx(ctx, db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if d, err = store.GetImage(ctx, tx, id); err != nil {
			return err
		}
		if opts.Feed == "" && opts.Advisories == "" {
			a, err := store.GetAdvice(ctx, tx, id)
			if err != nil {
				return err
			}
			plan, feedName = a.Upgrades, a.Feed
			return nil
		}
		pkgs, err := store.ListPackages(ctx, tx, id)
		if err != nil {
			return err
		}
		var feed *advise.Feed
		var advs []advise.Advisory
		if opts.Feed != "" {
			if feed, err = advise.LoadFeed(ctx, opts.Feed); err != nil {
				return err
			}
		}
		if opts.Advisories != "" {
			if advs, err = advise.LoadAdvisories(opts.Advisories); err != nil {
				return err
			}
		}
		p, err := advise.Advise(advise.Target{PackageFormat: d.Info.PackageFormat, Distro: d.Info.OS.Distro,
			Version: d.Info.OS.Version, Codename: d.Info.OS.Codename}, pkgs, feed, advs)
		if err != nil {
			return err
		}
		plan = p.Upgrades
		return nil
	})
	if err != nil {
		return nil, err
	}
	src, ok := strings.CutPrefix(d.Source, "file://")
	if opts.SourcePath != "" {
		src, ok = opts.SourcePath, true
	}
	if !ok {
		return nil, fmt.Errorf("image %d comes from %s: only local files (file://) can be upgraded", id, d.Source)
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("image %d: %w (advise it first, or give --feed)", id, upgrade.ErrNothing)
	}
	out := opts.Out
	if out == "" {
		ext := filepath.Ext(src)
		out = strings.TrimSuffix(src, ext) + ".upgraded-" + started.UTC().Format("20060102T150405") + ext
	}
	res, err := upgrade.Upgrade(ctx, src, out, plan, opts.Upgrade)
	if err != nil {
		return nil, fmt.Errorf("upgrading image %d: %w", id, err)
	}
	result := &UpgradeResult{Upgrade: res}
	err = pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		source, err := FileSource(out)
		if err != nil {
			return err
		}
		newID, err := store.SaveInspection(ctx, tx, source, filepath.Base(out), res.Report)
		if err != nil {
			return err
		}
		if newID == id {
			return errors.New("the upgraded image is identical to its source")
		}
		rec := &store.Upgrade{ImageID: id, ResultImageID: newID, Path: out, Status: store.UpgradeDone,
			Applied: res.Applied, Feed: feedName, StartedAt: started}
		if _, err := store.RecordUpgrade(ctx, tx, rec); err != nil {
			return err
		}
		result.Record = rec
		result.Image, err = store.GetImage(ctx, tx, newID)
		return err
	})
	if err != nil {
		os.Remove(out)
		return nil, fmt.Errorf("storing the upgrade of image %d: %w", id, err)
	}
	return result, nil
}

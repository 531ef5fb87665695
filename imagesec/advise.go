package imagesec

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pg"
)

// AdviseOptions names the fix sources; at least one is needed.
type AdviseOptions struct {
	Feed       string // apt repository index location (advise.LoadFeed)
	Advisories string // advisory file (advise.LoadAdvisories)
	// Now stamps the advice; time.Now when nil.
	Now func() time.Time
}

// AdviseImage compares a stored image's packages with the fix sources and
// replaces its stored advice with the result. A feed or advisory file that
// cannot be read fails before anything is written.
func AdviseImage(ctx context.Context, db pg.Beginner, id int64, opts AdviseOptions) (*advise.Plan, error) {
	if opts.Feed == "" && opts.Advisories == "" {
		return nil, fmt.Errorf("advise: no fix feed and no advisory file given")
	}
	var feed *advise.Feed
	var advs []advise.Advisory
	var err error
	if opts.Feed != "" {
		if feed, err = advise.LoadFeed(ctx, opts.Feed); err != nil {
			return nil, err
		}
	}
	if opts.Advisories != "" {
		if advs, err = advise.LoadAdvisories(opts.Advisories); err != nil {
			return nil, err
		}
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	var plan *advise.Plan
	err = pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		d, err := store.GetImage(ctx, tx, id)
		if err != nil {
			return err
		}
		pkgs, err := store.ListPackages(ctx, tx, id)
		if err != nil {
			return err
		}
		t := advise.Target{PackageFormat: d.Info.PackageFormat, Distro: d.Info.OS.Distro,
			Version: d.Info.OS.Version, Codename: d.Info.OS.Codename}
		plan, err = advise.Advise(t, pkgs, feed, advs)
		if err != nil {
			return fmt.Errorf("advising image %d: %w", id, err)
		}
		source := opts.Feed
		if opts.Advisories != "" {
			if source != "" {
				source += " "
			}
			source += "advisories:" + opts.Advisories
		}
		return store.SaveAdvice(ctx, tx, id, source, now(), plan.Upgrades)
	})
	if err != nil {
		return nil, err
	}
	return plan, nil
}

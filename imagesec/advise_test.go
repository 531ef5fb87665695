package imagesec

import (
	"context"
	"errors"
	"testing"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
)

// TestAdviseImage advises a stored real image against the test feed and
// advisories, reads the advice back, and shows that a bad feed or advisory
// file changes nothing.
func TestAdviseImage(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	db := pgtest.Pool(t)
	d, err := InspectFile(ctx, db, im.RawGPT, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := AdviseImage(ctx, db, d.ID, AdviseOptions{Feed: im.Feed.Dir, Advisories: im.Feed.Advisories})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Upgrades) != len(im.Feed.Fixes) {
		t.Fatalf("plan %+v, want the %d fixes", plan.Upgrades, len(im.Feed.Fixes))
	}
	stored, err := store.GetAdvice(ctx, db, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Upgrades) != len(plan.Upgrades) || stored.Feed == "" || stored.AdvisedAt.IsZero() {
		t.Fatalf("stored advice %+v", stored)
	}
	for i, u := range stored.Upgrades {
		p := plan.Upgrades[i]
		if u.Name != p.Name || u.From != p.From || u.To != p.To || u.Severity != p.Severity || len(u.Advisories) != len(p.Advisories) ||
			u.Available != p.Available || u.Deb == nil || u.Deb.SHA256 != p.Deb.SHA256 || u.Deb.URL != p.Deb.URL || u.Deb.Size != p.Deb.Size {
			t.Errorf("stored %+v, advised %+v", u, p)
		}
	}
	if _, err := AdviseImage(ctx, db, d.ID, AdviseOptions{Feed: t.TempDir()}); !errors.Is(err, advise.ErrFeed) {
		t.Errorf("empty feed: %v", err)
	}
	if _, err := AdviseImage(ctx, db, d.ID, AdviseOptions{Advisories: "/nonexistent.yaml"}); !errors.Is(err, advise.ErrAdvisories) {
		t.Errorf("missing advisory file: %v", err)
	}
	if _, err := AdviseImage(ctx, db, d.ID+100, AdviseOptions{Feed: im.Feed.Dir}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no such image: %v", err)
	}
	again, err := store.GetAdvice(ctx, db, d.ID)
	if err != nil || len(again.Upgrades) != len(stored.Upgrades) || !again.AdvisedAt.Equal(stored.AdvisedAt) {
		t.Errorf("advice after bad inputs: %+v %v", again, err)
	}
	// Advisories alone replace the advice: only the advised packages,
	// not available.
	plan, err = AdviseImage(ctx, db, d.ID, AdviseOptions{Advisories: im.Feed.Advisories})
	if err != nil {
		t.Fatal(err)
	}
	again, err = store.GetAdvice(ctx, db, d.ID)
	if err != nil || len(again.Upgrades) != len(plan.Upgrades) || len(plan.Upgrades) != 2 || again.Upgrades[0].Available || again.Upgrades[0].Deb != nil {
		t.Errorf("advisories-only advice: %+v %v", again, err)
	}
}

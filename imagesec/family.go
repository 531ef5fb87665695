package imagesec

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pg"
)

// ResolveFamily is the Glance id of the newest patched image published in
// family (publish's unisched_family); store.ErrNoPatchedImage when none
// was. The coordinator calls it to boot a family's current image.
func ResolveFamily(ctx context.Context, db pg.DBTX, family string) (string, error) {
	l, err := store.NewestInFamily(ctx, db, family)
	if err != nil {
		return "", err
	}
	return l.GlanceID, nil
}

// ResolveImage is the Glance id to boot instead of glanceID: the newest
// patched image of the family glanceID belongs to (as a parent or as a
// patched image), or glanceID itself when nothing was published from it.
func ResolveImage(ctx context.Context, db pg.DBTX, glanceID string) (string, error) {
	var family string
	err := db.QueryRow(ctx, `SELECT family FROM imagesec_lineage WHERE glance_id = $1 OR parent_glance_id = $1
		ORDER BY (glance_id = $1) DESC LIMIT 1`, glanceID).Scan(&family)
	if errors.Is(err, pgx.ErrNoRows) {
		return glanceID, nil
	}
	if err != nil {
		return "", fmt.Errorf("resolving image %s: %w", glanceID, err)
	}
	id, err := ResolveFamily(ctx, db, family)
	if errors.Is(err, store.ErrNoPatchedImage) {
		return glanceID, nil
	}
	return id, err
}

package store

import (
	"context"
	"fmt"

	"github.com/unisched/unisched/internal/pg"
)

// Inventory is the image security status in a few numbers, for /metrics.
type Inventory struct {
	// Images counts the stored images.
	Images int64
	// Outdated counts the images with advised upgrades not yet acted on:
	// no upgrade of the image succeeded since it was advised.
	Outdated int64
	// OutdatedPackages counts those images' advised upgrades.
	OutdatedPackages int64
}

// GetInventory counts the images and their pending advice.
func GetInventory(ctx context.Context, db pg.DBTX) (Inventory, error) {
	var inv Inventory
	err := db.QueryRow(ctx, `
WITH pending AS (
    SELECT a.image_id, count(*) AS n
    FROM imagesec_advice a
    WHERE NOT EXISTS (SELECT 1 FROM imagesec_upgrades u
                      WHERE u.image_id = a.image_id AND u.status = 'done' AND u.finished_at >= a.advised_at)
    GROUP BY a.image_id)
SELECT (SELECT count(*) FROM imagesec_images), (SELECT count(*) FROM pending), (SELECT coalesce(sum(n), 0) FROM pending)`).
		Scan(&inv.Images, &inv.Outdated, &inv.OutdatedPackages)
	if err != nil {
		return inv, fmt.Errorf("counting images and their advice: %w", err)
	}
	return inv, nil
}

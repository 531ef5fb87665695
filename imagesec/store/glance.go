package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// Statuses of a Glance image collect has handled.
const (
	GlanceInspected = "inspected"
	GlanceFailed    = "failed"
)

// GlanceImage is what collect last did with one Glance image
// (imagesec_glance_images).
type GlanceImage struct {
	GlanceID    string    `json:"glance_id"`
	Name        string    `json:"name"`
	DiskFormat  string    `json:"disk_format"`
	HashAlgo    string    `json:"hash_algo"`
	HashValue   string    `json:"hash_value"`
	Size        int64     `json:"size"`
	Status      string    `json:"status"`
	Error       string    `json:"error,omitempty"`
	ImageID     int64     `json:"image_id,omitempty"` // 0 when the inspection failed
	CollectedAt time.Time `json:"collected_at"`
}

// GetGlanceImage returns the row of a Glance image; nil, nil when collect
// never handled it.
func GetGlanceImage(ctx context.Context, db pg.DBTX, glanceID string) (*GlanceImage, error) {
	var g GlanceImage
	var imageID *int64
	err := db.QueryRow(ctx, `SELECT glance_id, name, disk_format, hash_algo, hash_value, size, status, error,
		image_id, collected_at FROM imagesec_glance_images WHERE glance_id = $1`, glanceID).Scan(
		&g.GlanceID, &g.Name, &g.DiskFormat, &g.HashAlgo, &g.HashValue, &g.Size, &g.Status, &g.Error, &imageID, &g.CollectedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading glance image %s: %w", glanceID, err)
	}
	if imageID != nil {
		g.ImageID = *imageID
	}
	return &g, nil
}

// SaveGlanceImage records what collect did with a Glance image, replacing
// the earlier record.
func SaveGlanceImage(ctx context.Context, db pg.DBTX, g GlanceImage) error {
	var imageID *int64
	if g.ImageID != 0 {
		imageID = &g.ImageID
	}
	_, err := db.Exec(ctx, `INSERT INTO imagesec_glance_images
		(glance_id, name, disk_format, hash_algo, hash_value, size, status, error, image_id, collected_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
		ON CONFLICT (glance_id) DO UPDATE SET name = EXCLUDED.name, disk_format = EXCLUDED.disk_format,
		    hash_algo = EXCLUDED.hash_algo, hash_value = EXCLUDED.hash_value, size = EXCLUDED.size,
		    status = EXCLUDED.status, error = EXCLUDED.error, image_id = EXCLUDED.image_id,
		    collected_at = now()`,
		g.GlanceID, g.Name, g.DiskFormat, g.HashAlgo, g.HashValue, g.Size, g.Status, g.Error, imageID)
	if err != nil {
		return fmt.Errorf("recording glance image %s: %w", g.GlanceID, err)
	}
	return nil
}

// ImageBySource returns the newest image stored from source (e.g.
// "glance:<uuid>"); ErrNotFound when there is none.
func ImageBySource(ctx context.Context, db pg.DBTX, source string) (*Detail, error) {
	var id int64
	err := db.QueryRow(ctx, `SELECT id FROM imagesec_images WHERE source = $1 ORDER BY updated_at DESC, id DESC LIMIT 1`, source).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("image from %s: %w", source, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading image from %s: %w", source, err)
	}
	return GetImage(ctx, db, id)
}

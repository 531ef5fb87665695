package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// ErrNoPatchedImage: the family has no published patched image.
var ErrNoPatchedImage = errors.New("no patched image in the family")

// Fix is one package a patched image has at a newer version.
type Fix struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Lineage is a patched image published to Glance (imagesec_lineage).
type Lineage struct {
	GlanceID       string    `json:"glance_id"`
	ParentGlanceID string    `json:"parent_glance_id"`
	Family         string    `json:"family"`
	Name           string    `json:"name"`
	ImageID        int64     `json:"image_id,omitempty"`
	ParentImageID  int64     `json:"parent_image_id,omitempty"`
	Fixes          []Fix     `json:"fixes"`
	Advisories     []string  `json:"advisories"`
	ParentHidden   bool      `json:"parent_hidden"`
	PatchedAt      time.Time `json:"patched_at"`
}

// SaveLineage records a published patched image.
func SaveLineage(ctx context.Context, db pg.DBTX, l Lineage) error {
	fixes := l.Fixes
	if fixes == nil {
		fixes = []Fix{}
	}
	b, err := json.Marshal(fixes)
	if err != nil {
		return fmt.Errorf("encoding fixes: %w", err)
	}
	adv := l.Advisories
	if adv == nil {
		adv = []string{}
	}
	_, err = db.Exec(ctx, `INSERT INTO imagesec_lineage (glance_id, parent_glance_id, family, name, image_id,
		parent_image_id, fixes, advisories, parent_hidden, patched_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		l.GlanceID, l.ParentGlanceID, l.Family, l.Name, nullID(l.ImageID), nullID(l.ParentImageID), b, adv,
		l.ParentHidden, l.PatchedAt)
	if err != nil {
		return fmt.Errorf("recording lineage of glance image %s: %w", l.GlanceID, err)
	}
	return nil
}

const selectLineage = `SELECT glance_id, parent_glance_id, family, name, coalesce(image_id, 0),
	coalesce(parent_image_id, 0), fixes, advisories, parent_hidden, patched_at FROM imagesec_lineage`

func scanLineage(row pgx.Row) (*Lineage, error) {
	var l Lineage
	var fixes []byte
	if err := row.Scan(&l.GlanceID, &l.ParentGlanceID, &l.Family, &l.Name, &l.ImageID, &l.ParentImageID,
		&fixes, &l.Advisories, &l.ParentHidden, &l.PatchedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(fixes, &l.Fixes); err != nil {
		return nil, fmt.Errorf("decoding fixes of %s: %w", l.GlanceID, err)
	}
	return &l, nil
}

// NewestInFamily returns the newest patched image of a family;
// ErrNoPatchedImage when it has none.
func NewestInFamily(ctx context.Context, db pg.DBTX, family string) (*Lineage, error) {
	l, err := scanLineage(db.QueryRow(ctx, selectLineage+` WHERE family = $1 ORDER BY patched_at DESC, created_at DESC LIMIT 1`, family))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("family %q: %w", family, ErrNoPatchedImage)
	}
	if err != nil {
		return nil, fmt.Errorf("resolving family %q: %w", family, err)
	}
	return l, nil
}

// ListLineage returns the patched images of a family ("" for all), newest first.
func ListLineage(ctx context.Context, db pg.DBTX, family string) ([]*Lineage, error) {
	rows, err := db.Query(ctx, selectLineage+` WHERE $1 = '' OR family = $1 ORDER BY patched_at DESC, created_at DESC`, family)
	if err != nil {
		return nil, fmt.Errorf("listing lineage: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Lineage, error) { return scanLineage(r) })
	if err != nil {
		return nil, fmt.Errorf("listing lineage: %w", err)
	}
	return out, nil
}

// UpgradeByResult returns the upgrade that produced image resultID;
// ErrNotFound when that image is no upgrade's result.
func UpgradeByResult(ctx context.Context, db pg.DBTX, resultID int64) (*Upgrade, error) {
	var u Upgrade
	var applied []byte
	err := db.QueryRow(ctx, `
SELECT id, image_id, coalesce(result_image_id, 0), path, status, applied, error, feed, started_at, finished_at
FROM imagesec_upgrades WHERE result_image_id = $1 AND status = $2 ORDER BY id DESC LIMIT 1`, resultID, UpgradeDone).Scan(
		&u.ID, &u.ImageID, &u.ResultImageID, &u.Path, &u.Status, &applied, &u.Error, &u.Feed, &u.StartedAt, &u.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("image %d is not the result of an upgrade: %w", resultID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the upgrade that made image %d: %w", resultID, err)
	}
	if err := json.Unmarshal(applied, &u.Applied); err != nil {
		return nil, fmt.Errorf("decoding the upgrade that made image %d: %w", resultID, err)
	}
	return &u, nil
}

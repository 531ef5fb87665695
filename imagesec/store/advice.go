package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/internal/pg"
)

// Advice is an image's stored advice (migrations/000011_imagesec_advise).
type Advice struct {
	ImageID   int64            `json:"image_id"`
	Feed      string           `json:"feed"`
	AdvisedAt time.Time        `json:"advised_at"`
	Upgrades  []advise.Upgrade `json:"upgrades"`
}

const deleteAdvice = `DELETE FROM imagesec_advice WHERE image_id = $1`

// SaveAdvice replaces an image's advice with plan's upgrades.
func SaveAdvice(ctx context.Context, tx pgx.Tx, imageID int64, feed string, at time.Time, ups []advise.Upgrade) error {
	n := len(ups)
	names, archs, sources, froms, tos := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	advs, sevs, urls, sums := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	avail, sizes := make([]bool, n), make([]int64, n)
	for i, u := range ups {
		names[i], archs[i], sources[i], froms[i], tos[i] = u.Name, u.Architecture, u.Source, u.From, u.To
		refs := u.Advisories
		if refs == nil {
			refs = []advise.Ref{}
		}
		b, err := json.Marshal(refs)
		if err != nil {
			return fmt.Errorf("encoding advisories of %s: %w", u.Name, err)
		}
		advs[i], sevs[i], avail[i] = string(b), u.Severity, u.Available
		if u.Deb != nil {
			urls[i], sums[i], sizes[i] = u.Deb.URL, u.Deb.SHA256, u.Deb.Size
		}
	}
	if _, err := tx.Exec(ctx, deleteAdvice, imageID); err != nil {
		return fmt.Errorf("replacing advice of image %d: %w", imageID, err)
	}
	_, err := tx.Exec(ctx, `
INSERT INTO imagesec_advice (image_id, name, architecture, source, from_version, to_version, advisories,
    severity, available, deb_url, deb_sha256, deb_size, feed, advised_at)
SELECT $1, u.n, u.a, u.s, u.f, u.t, u.adv, u.sev, u.av, u.url, u.sum, u.size, $12, $13
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::text[],
    $9::boolean[], $10::text[], $11::text[], $14::bigint[]) AS u(n, a, s, f, t, adv, sev, av, url, sum, size)`,
		imageID, names, archs, sources, froms, tos, advs, sevs, avail, urls, sums, feed, at, sizes)
	if err != nil {
		return fmt.Errorf("storing %d upgrades advised for image %d: %w", n, imageID, err)
	}
	return nil
}

const selectAdvice = `
SELECT name, architecture, source, from_version, to_version, advisories, severity, available,
       deb_url, deb_sha256, deb_size, feed, advised_at
FROM imagesec_advice WHERE image_id = $1 ORDER BY name, architecture`

// GetAdvice returns an image's stored advice (no upgrades when it was never
// advised or nothing is outdated); ErrNotFound when there is no such image.
func GetAdvice(ctx context.Context, db pg.DBTX, imageID int64) (*Advice, error) {
	if err := imageExists(ctx, db, imageID); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, selectAdvice, imageID)
	if err != nil {
		return nil, fmt.Errorf("reading advice of image %d: %w", imageID, err)
	}
	a := &Advice{ImageID: imageID, Upgrades: []advise.Upgrade{}}
	ups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (advise.Upgrade, error) {
		var u advise.Upgrade
		var advs []byte
		var url, sum string
		var size int64
		err := r.Scan(&u.Name, &u.Architecture, &u.Source, &u.From, &u.To, &advs, &u.Severity, &u.Available,
			&url, &sum, &size, &a.Feed, &a.AdvisedAt)
		if err != nil {
			return u, err
		}
		if err := json.Unmarshal(advs, &u.Advisories); err != nil {
			return u, fmt.Errorf("decoding advisories of %s: %w", u.Name, err)
		}
		if url != "" {
			u.Deb = &advise.Entry{Name: u.Name, Version: u.To, Architecture: u.Architecture, URL: url, SHA256: sum, Size: size}
		}
		return u, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading advice of image %d: %w", imageID, err)
	}
	a.Upgrades = append(a.Upgrades, ups...)
	return a, nil
}

func imageExists(ctx context.Context, db pg.DBTX, id int64) error {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM imagesec_images WHERE id = $1)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("reading image %d: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("image %d: %w", id, ErrNotFound)
	}
	return nil
}

// Upgrade is one row of imagesec_upgrades.
type Upgrade struct {
	ID            int64            `json:"id"`
	ImageID       int64            `json:"image_id"`
	ResultImageID int64            `json:"result_image_id,omitempty"` // 0 when it failed
	Path          string           `json:"path"`
	Status        string           `json:"status"` // "done" or "failed"
	Applied       []advise.Upgrade `json:"applied"`
	Error         string           `json:"error,omitempty"`
	Feed          string           `json:"feed"`
	StartedAt     time.Time        `json:"started_at"`
	FinishedAt    time.Time        `json:"finished_at"`
}

// Upgrade statuses.
const (
	UpgradeDone   = "done"
	UpgradeFailed = "failed"
)

// RecordUpgrade stores an upgrade's outcome and returns its id.
func RecordUpgrade(ctx context.Context, db pg.DBTX, u *Upgrade) (int64, error) {
	applied := u.Applied
	if applied == nil {
		applied = []advise.Upgrade{}
	}
	b, err := json.Marshal(applied)
	if err != nil {
		return 0, fmt.Errorf("encoding the applied upgrades: %w", err)
	}
	var result *int64
	if u.ResultImageID != 0 {
		result = &u.ResultImageID
	}
	err = db.QueryRow(ctx, `
INSERT INTO imagesec_upgrades (image_id, result_image_id, path, status, applied, error, feed, started_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, finished_at`,
		u.ImageID, result, u.Path, u.Status, b, u.Error, u.Feed, u.StartedAt).Scan(&u.ID, &u.FinishedAt)
	if err != nil {
		return 0, fmt.Errorf("recording the upgrade of image %d: %w", u.ImageID, err)
	}
	return u.ID, nil
}

// ListUpgrades returns the upgrades made from an image, newest first.
func ListUpgrades(ctx context.Context, db pg.DBTX, imageID int64) ([]Upgrade, error) {
	if err := imageExists(ctx, db, imageID); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `
SELECT id, image_id, coalesce(result_image_id, 0), path, status, applied, error, feed, started_at, finished_at
FROM imagesec_upgrades WHERE image_id = $1 ORDER BY id DESC`, imageID)
	if err != nil {
		return nil, fmt.Errorf("listing upgrades of image %d: %w", imageID, err)
	}
	ups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Upgrade, error) {
		var u Upgrade
		var applied []byte
		err := r.Scan(&u.ID, &u.ImageID, &u.ResultImageID, &u.Path, &u.Status, &applied, &u.Error, &u.Feed, &u.StartedAt, &u.FinishedAt)
		if err == nil {
			err = json.Unmarshal(applied, &u.Applied)
		}
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing upgrades of image %d: %w", imageID, err)
	}
	return ups, nil
}

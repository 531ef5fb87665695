// Package imagesec is the image security server (ARCHITECTURE.md section 7,
// issue 6): it keeps an inventory of VM images and what they run, to find
// and patch outdated packages offline, without booting the images.
//
// One package per stage, each testable alone: inspect (image → report, no
// database), store (all SQL). This package joins them into the operations
// the CLI and, later, the API and the collector call. Collect, advise,
// upgrade and publish are the next stages (docs/imagesec.md).
package imagesec

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pg"
)

// FileSource is the source recorded for a local image file.
func FileSource(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", path, err)
	}
	return "file://" + abs, nil
}

// InspectFile inspects the image at path and stores the result in one
// transaction. When inspection fails nothing is written: the error says why
// (inspect's error kinds) and the database keeps what it had.
func InspectFile(ctx context.Context, db pg.Beginner, path string, opts inspect.Options) (*store.Detail, error) {
	source, err := FileSource(path)
	if err != nil {
		return nil, err
	}
	r, err := inspect.Inspect(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", path, err)
	}
	var d *store.Detail
	err = pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		id, err := store.SaveInspection(ctx, tx, source, filepath.Base(path), r)
		if err != nil {
			return err
		}
		d, err = store.GetImage(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// batch sends many statements in one round trip and reports the first
// failure.
type batch struct{ b pgx.Batch }

func (b *batch) Queue(sql string, args ...any) { b.b.Queue(sql, args...) }

func (b *batch) Run(ctx context.Context, db pg.DBTX) error {
	if b.b.Len() == 0 {
		return nil
	}
	return db.SendBatch(ctx, &b.b).Close()
}

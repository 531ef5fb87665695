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

// Send runs a batch and returns its first error. Store functions that
// queue several statements take one, so the caller decides where they go:
// SendOn a pool or transaction, or into a pg.BatchTx (its Send, or its
// Commit to commit in the same round trip).
type Send func(ctx context.Context, b *pgx.Batch) error

// SendOn sends batches on db.
func SendOn(db pg.DBTX) Send {
	return func(ctx context.Context, b *pgx.Batch) error { return db.SendBatch(ctx, b).Close() }
}

// Package pg holds the PostgreSQL plumbing shared by unisched's stores: the
// DBTX seam that lets one store function run on a pool or inside a caller's
// transaction, the transaction helper, and SQLSTATE classification.
package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what store functions take, so the caller decides whether a query
// joins a transaction. Both *pgxpool.Pool and pgx.Tx satisfy it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

var (
	_ DBTX = (*pgxpool.Pool)(nil)
	_ DBTX = (pgx.Tx)(nil)
)

// Beginner starts transactions; *pgxpool.Pool and pgx.Tx (savepoints) satisfy it.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// WithTx runs fn in a transaction and commits it when fn returns nil. The
// rollback runs under context.WithoutCancel so that a cancelled request still
// releases its locks promptly.
func WithTx(ctx context.Context, db Beginner, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// SQLSTATE codes the stores react to.
const (
	CodeNotNullViolation     = "23502"
	CodeUniqueViolation      = "23505"
	CodeForeignKeyViolation  = "23503"
	CodeSerializationFailure = "40001"
	CodeDeadlockDetected     = "40P01"
)

// HasCode reports whether err carries the given SQLSTATE.
func HasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// IsRetryable reports whether a transaction failed only because of a
// concurrent one (serialization failure or deadlock) and may be re-run.
func IsRetryable(err error) bool {
	return HasCode(err, CodeSerializationFailure) || HasCode(err, CodeDeadlockDetected)
}

package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BatchTx is a transaction sent as a few batches on one pooled connection.
// Its BEGIN travels in front of the first batch and its COMMIT behind the
// last, so a transaction of n batches costs n round trips rather than n+2;
// on a busy server every round trip is a wake-up of the backend and of the
// caller, which is what the write paths of a request spend most time on.
//
// The statements of the committing batch all run before its COMMIT, and an
// error in any of them makes the server skip the rest, COMMIT included. A
// committing batch must therefore make its failure conditions SQL errors:
// result callbacks run only after the COMMIT has been sent.
type BatchTx struct {
	conn  *pgxpool.Conn
	begun bool
	done  bool
}

const (
	sqlBegin    = "begin"
	sqlCommit   = "commit"
	sqlRollback = "rollback"
)

// WithBatchTx runs fn in a BatchTx. fn sends its batches with Send and may
// end with Commit; when it returns nil without having committed, the
// transaction is committed then. On error the transaction is rolled back.
func WithBatchTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx *BatchTx) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring a database connection: %w", err)
	}
	// Release destroys a connection left inside a transaction, so a
	// failed rollback cannot leak one into the pool.
	defer conn.Release()
	t := &BatchTx{conn: conn}
	err = fn(t)
	if err == nil && !t.done {
		err = t.Commit(ctx, &pgx.Batch{})
	}
	if err != nil && t.begun && !t.done && !conn.Conn().IsClosed() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), sqlRollback)
	}
	return err
}

// prepend puts BEGIN in front of b unless the transaction has begun.
func (t *BatchTx) prepend(b *pgx.Batch) {
	if t.begun {
		return
	}
	b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: sqlBegin}}, b.QueuedQueries...)
	t.begun = true
}

// Send runs the statements of b in the transaction, calling their result
// callbacks; it returns the first error.
func (t *BatchTx) Send(ctx context.Context, b *pgx.Batch) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	if b.Len() == 0 {
		return nil
	}
	t.prepend(b)
	return t.conn.SendBatch(ctx, b).Close()
}

// Commit runs the statements of b and commits, in one round trip.
func (t *BatchTx) Commit(ctx context.Context, b *pgx.Batch) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	if !t.begun && b.Len() == 0 {
		t.done = true
		return nil
	}
	t.prepend(b)
	b.Queue(sqlCommit).Exec(func(ct pgconn.CommandTag) error {
		if ct.String() != "COMMIT" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	})
	err := t.conn.SendBatch(ctx, b).Close()
	// A failing statement makes the server skip the COMMIT, leaving the
	// transaction to roll back; a failing callback cannot stop it, which
	// the connection's idle state tells.
	t.done = err == nil || t.conn.Conn().PgConn().TxStatus() == 'I'
	return err
}

// DB gives the transaction's connection for statements sent one at a time,
// beginning the transaction first if no batch has.
func (t *BatchTx) DB(ctx context.Context) (DBTX, error) {
	if t.done {
		return nil, pgx.ErrTxClosed
	}
	if !t.begun {
		t.begun = true
		if _, err := t.conn.Exec(ctx, sqlBegin); err != nil {
			return nil, fmt.Errorf("beginning transaction: %w", err)
		}
	}
	return t.conn, nil
}

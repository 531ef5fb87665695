package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/unisched/unisched/internal/pg"
)

// Backlog is the outbox as an operator reads it: what waits and since
// when, what keeps failing, and how long the deliveries of a recent window
// took. It is read from the table, so every replica sees the same figures
// whichever one leads the relay (the notify-lag histogram lives only in
// the leader's process).
type Backlog struct {
	// Pending counts the events not delivered yet; Failing those of them
	// whose last attempt failed (they wait for a retry).
	Pending int64
	Failing int64
	// OldestPending is the write time of the oldest pending event; zero
	// when none waits.
	OldestPending time.Time
	// Window is the period the delivery figures cover: the deliveries
	// since the time Stats was given less Window. No upper bound, so that
	// a relay on a replica whose clock is a little ahead still counts.
	Window time.Duration
	// Delivered counts the events delivered (or discarded) in the window;
	// LagP50, LagP99 and LagMax are their times from write to delivery.
	Delivered              int64
	LagP50, LagP99, LagMax time.Duration
}

const selectBacklog = `SELECT
	count(*) FILTER (WHERE delivered_at IS NULL),
	count(*) FILTER (WHERE delivered_at IS NULL AND attempts > 0),
	min(created_at) FILTER (WHERE delivered_at IS NULL),
	count(*) FILTER (WHERE delivered_at >= $1),
	COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at))
		FILTER (WHERE delivered_at >= $1), 0),
	COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at))
		FILTER (WHERE delivered_at >= $1), 0),
	COALESCE(max(extract(epoch FROM delivered_at - created_at)) FILTER (WHERE delivered_at >= $1), 0)::float8
FROM bridge_outbox WHERE delivered_at IS NULL OR delivered_at >= $1`

// Stats reads the backlog, with the deliveries of the window before now.
func Stats(ctx context.Context, db pg.DBTX, now time.Time, window time.Duration) (Backlog, error) {
	b := Backlog{Window: window}
	var oldest *time.Time
	var p50, p99, lagMax float64
	err := db.QueryRow(ctx, selectBacklog, now.Add(-window)).Scan(&b.Pending, &b.Failing, &oldest, &b.Delivered, &p50, &p99, &lagMax)
	if err != nil {
		return Backlog{}, fmt.Errorf("reading the outbox backlog: %w", err)
	}
	if oldest != nil {
		b.OldestPending = *oldest
	}
	b.LagP50, b.LagP99, b.LagMax = seconds(p50), seconds(p99), seconds(lagMax)
	return b, nil
}

func seconds(s float64) time.Duration {
	if s < 0 {
		return 0 // the writer's clock behind the relay's
	}
	return time.Duration(s * float64(time.Second))
}

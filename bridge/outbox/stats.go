package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unisched/unisched/internal/pg"
)

// Backlog is the outbox as an operator reads it: what waits and since
// when, what keeps failing, and how long the deliveries of a recent window
// took, in all and by topic. It is read from the table, so every replica
// sees the same figures whichever one leads the relay (the notify-lag
// histogram lives only in the leader's process). The dashboard shows the
// totals; serve's /metrics exports the pending figures by topic
// (Collector): one query serves both.
type Backlog struct {
	// Figures are the totals over every topic.
	Figures
	// Window is the period the delivery figures cover: the deliveries
	// since the time Stats was given less Window. No upper bound, so that
	// a relay on a replica whose clock is a little ahead still counts.
	Window time.Duration
	// Topics are the figures by topic, in topic order, of the topics with
	// an event pending or delivered in the window.
	Topics []TopicFigures
}

// Figures are the backlog and delivery figures of a set of events.
type Figures struct {
	// Pending counts the events not delivered yet; Failing those of them
	// whose last attempt failed (they wait for a retry).
	Pending int64
	Failing int64
	// OldestPending is the write time of the oldest pending event; zero
	// when none waits. OldestPendingAge is its age by the database's clock
	// at the read (the clock that wrote it, so no skew between hosts).
	OldestPending    time.Time
	OldestPendingAge time.Duration
	// Delivered counts the events delivered (or discarded) in the window;
	// LagP50, LagP99 and LagMax are their times from write to delivery.
	Delivered              int64
	LagP50, LagP99, LagMax time.Duration
}

// TopicFigures are one topic's Figures.
type TopicFigures struct {
	Topic string
	Figures
}

// selectBacklog reads the pending rows (bridge_outbox_pending_idx) and the
// window's deliveries (bridge_outbox_delivered_idx): by topic, and in all
// (the empty grouping set, the last row, present even with no rows).
const selectBacklog = `SELECT
	COALESCE(topic, ''), GROUPING(topic) = 1,
	count(*) FILTER (WHERE delivered_at IS NULL),
	count(*) FILTER (WHERE delivered_at IS NULL AND attempts > 0),
	min(created_at) FILTER (WHERE delivered_at IS NULL),
	COALESCE(extract(epoch FROM now() - min(created_at) FILTER (WHERE delivered_at IS NULL)), 0)::float8,
	count(*) FILTER (WHERE delivered_at >= $1),
	COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at))
		FILTER (WHERE delivered_at >= $1), 0),
	COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at))
		FILTER (WHERE delivered_at >= $1), 0),
	COALESCE(max(extract(epoch FROM delivered_at - created_at)) FILTER (WHERE delivered_at >= $1), 0)::float8
FROM bridge_outbox WHERE delivered_at IS NULL OR delivered_at >= $1
GROUP BY GROUPING SETS ((topic), ())
ORDER BY GROUPING(topic), topic`

// Stats reads the backlog, with the deliveries of the window before now
// (a window of 0: the pending events alone, which is what a scrape needs).
func Stats(ctx context.Context, db pg.DBTX, now time.Time, window time.Duration) (Backlog, error) {
	b := Backlog{Window: window}
	rows, err := db.Query(ctx, selectBacklog, now.Add(-window))
	if err != nil {
		return Backlog{}, fmt.Errorf("reading the outbox backlog: %w", err)
	}
	defer rows.Close()
	total := false
	for rows.Next() {
		var t TopicFigures
		var all bool
		var oldest *time.Time
		var age, p50, p99, lagMax float64
		if err := rows.Scan(&t.Topic, &all, &t.Pending, &t.Failing, &oldest, &age, &t.Delivered, &p50, &p99, &lagMax); err != nil {
			return Backlog{}, fmt.Errorf("reading the outbox backlog: %w", err)
		}
		if oldest != nil {
			t.OldestPending = *oldest
		}
		t.OldestPendingAge, t.LagP50, t.LagP99, t.LagMax = seconds(age), seconds(p50), seconds(p99), seconds(lagMax)
		if all {
			b.Figures, total = t.Figures, true
		} else {
			b.Topics = append(b.Topics, t)
		}
	}
	if err := rows.Err(); err != nil {
		return Backlog{}, fmt.Errorf("reading the outbox backlog: %w", err)
	}
	if !total {
		return Backlog{}, errors.New("reading the outbox backlog: no totals row")
	}
	return b, nil
}

func seconds(s float64) time.Duration {
	if s < 0 {
		return 0 // the writer's clock behind the relay's
	}
	return time.Duration(s * float64(time.Second))
}

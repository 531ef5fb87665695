package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

// Stats reads the backlog from the table: pending, failing, the oldest
// pending write, and the write-to-delivery lag of the window's deliveries,
// in all and by topic.
func TestStats(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	now := time.Now()
	b, err := outbox.Stats(ctx, pool, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if b.Figures != (outbox.Figures{}) || b.Window != time.Minute || len(b.Topics) != 0 {
		t.Errorf("empty outbox: %+v", b)
	}
	err = pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for i := 0; i < 6; i++ {
			if _, err := outbox.Insert(ctx, tx, outbox.Message{Topic: "t", Key: "k", Payload: map[string]int{"i": i}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Ids 1-4 delivered 10, 20, 30 and 400 ms after their write, 1 of
	// them two hours ago (outside the window); 5 failed once; 6 waits.
	// 4 and 6 are of topic u.
	for _, q := range []string{
		`UPDATE bridge_outbox SET created_at = $1::timestamptz - interval '2 hours', delivered_at = $1::timestamptz - interval '2 hours' + interval '10 ms' WHERE id = 1`,
		`UPDATE bridge_outbox SET created_at = $1::timestamptz - interval '1 second', delivered_at = $1::timestamptz - interval '1 second' + interval '20 ms' WHERE id = 2`,
		`UPDATE bridge_outbox SET created_at = $1::timestamptz - interval '1 second', delivered_at = $1::timestamptz - interval '1 second' + interval '30 ms' WHERE id = 3`,
		`UPDATE bridge_outbox SET created_at = $1::timestamptz - interval '1 second', delivered_at = $1::timestamptz - interval '1 second' + interval '400 ms' WHERE id = 4`,
		`UPDATE bridge_outbox SET created_at = $1::timestamptz - interval '30 seconds', attempts = 1, last_error = 'down' WHERE id = 5`,
		`UPDATE bridge_outbox SET created_at = $1::timestamptz - interval '5 seconds' WHERE id = 6`,
	} {
		if _, err := pool.Exec(ctx, q, now); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE bridge_outbox SET topic = 'u' WHERE id IN (4, 6)`); err != nil {
		t.Fatal(err)
	}
	if b, err = outbox.Stats(ctx, pool, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	near := func(got, want time.Duration) bool { return got > want-time.Millisecond && got < want+time.Millisecond }
	if b.Pending != 2 || b.Failing != 1 || b.Delivered != 3 || !b.OldestPending.Equal(now.Add(-30*time.Second).Truncate(time.Microsecond)) ||
		!near(b.LagP50, 30*time.Millisecond) || !near(b.LagMax, 400*time.Millisecond) || b.LagP99 < 390*time.Millisecond || b.LagP99 > 400*time.Millisecond {
		t.Errorf("backlog %+v (now %v)", b, now)
	}
	// the database's clock and ours are the same machine's here
	if age := b.OldestPendingAge; age < 29*time.Second || age > time.Minute {
		t.Errorf("oldest pending age %s, want about 30s", age)
	}
	if len(b.Topics) != 2 || b.Topics[0].Topic != "t" || b.Topics[1].Topic != "u" {
		t.Fatalf("topics %+v, want t and u", b.Topics)
	}
	bt, bu := b.Topics[0], b.Topics[1]
	if bt.Pending != 1 || bt.Failing != 1 || bt.Delivered != 2 || !near(bt.LagMax, 30*time.Millisecond) || !near(bt.LagP50, 25*time.Millisecond) ||
		!bt.OldestPending.Equal(b.OldestPending) || bt.OldestPendingAge != b.OldestPendingAge {
		t.Errorf("topic t: %+v", bt)
	}
	if bu.Pending != 1 || bu.Failing != 0 || bu.Delivered != 1 || !near(bu.LagMax, 400*time.Millisecond) ||
		bu.OldestPendingAge < 4*time.Second || bu.OldestPendingAge > 30*time.Second {
		t.Errorf("topic u: %+v", bu)
	}
	// A window that starts after the deliveries sees none of them; one
	// that starts before the first sees all four.
	if b, err = outbox.Stats(ctx, pool, now.Add(time.Hour), time.Minute); err != nil || b.Delivered != 0 || b.LagMax != 0 || b.Pending != 2 {
		t.Errorf("later window: %+v (%v)", b, err)
	}
	if b, err = outbox.Stats(ctx, pool, now, 3*time.Hour); err != nil || b.Delivered != 4 || !near(b.LagMax, 400*time.Millisecond) {
		t.Errorf("3 hour window: %+v (%v)", b, err)
	}
}

package outbox_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/pgtest"
)

// The outbox gauges are the database's pending rows, read on scrape (the
// topics named to the collector at 0 when idle); a database that fails the
// query leaves them out and counts the error, and the scrape still
// answers.
func TestCollector(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	reg := metrics.NewRegistry()
	if _, err := outbox.NewCollector(reg, pool, slog.New(slog.DiscardHandler), "agent"); err != nil {
		t.Fatal(err)
	}
	get := func() metrics.Samples {
		t.Helper()
		rec := httptest.NewRecorder()
		metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
		}
		ss, err := metrics.ParseText(rec.Body.String())
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}
	ss := get()
	if got := ss.Find("unisched_outbox_pending_events", map[string]string{"topic": "agent"}); len(got) != 1 || got[0].Value != 0 {
		t.Errorf("idle outbox: %+v", got)
	}
	_, err = pool.Exec(ctx, `INSERT INTO bridge_outbox (topic, key, payload, created_at, delivered_at) VALUES
		('agent', 'w1', '{}', now() - interval '90 seconds', NULL),
		('agent', 'w1', '{}', now() - interval '10 seconds', NULL),
		('agent', 'w2', '{}', now() - interval '1 hour', now()),
		('notification.container.create', 'w3', '{}', now() - interval '5 seconds', NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	ss = get()
	for _, tc := range []struct {
		name, topic string
		min, max    float64
	}{
		{"unisched_outbox_pending_events", "agent", 2, 2},
		{"unisched_outbox_pending_events", "notification.container.create", 1, 1},
		{"unisched_outbox_oldest_pending_age_seconds", "agent", 89, 300},
		{"unisched_outbox_oldest_pending_age_seconds", "notification.container.create", 4, 200},
	} {
		got := ss.Find(tc.name, map[string]string{"topic": tc.topic})
		if len(got) != 1 || got[0].Value < tc.min || got[0].Value > tc.max {
			t.Errorf("%s{topic=%q} = %+v, want in [%v, %v]", tc.name, tc.topic, got, tc.min, tc.max)
		}
	}

	pool.Close()
	ss = get()
	if got := ss.Find("unisched_outbox_pending_events", nil); len(got) != 0 {
		t.Errorf("outbox gauges with the database gone: %+v", got)
	}
	if got := ss.Sum("unisched_outbox_scrape_errors_total", nil); got != 1 {
		t.Errorf("scrape errors: %v, want 1", got)
	}
	if len(ss.Find("go_goroutines", nil)) != 1 {
		t.Error("the rest of the scrape went missing")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/reconcile"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/store"
)

// `unisched reconcile` on a database with one leaked allocation: the dry
// run reports it and leaves it, the real run deletes it, and both print
// their report.
func TestReconcileCommand(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := store.EnsureStandard(ctx, pool); err != nil {
		t.Fatal(err)
	}
	c := bridge.New(pool, bridgetest.Engine(t), bridge.Options{})
	res := bridgetest.Register(t, c, bridgetest.TwoCells("h1"))
	leak := uuid.NewString()
	err = pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return claims.Replace(ctx, tx, claims.Claim{ConsumerUUID: leak, ProjectID: "p", UserID: "u", ConsumerType: bridge.ConsumerTypeContainer,
			Allocations: []claims.Amount{{ProviderUUID: res.ProviderUUID, Class: "MEMORY_MB", Used: 64}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNISCHED_DATABASE_URL", url)
	t.Setenv("UNISCHED_RECONCILE_GRACE", "1ns")
	t.Setenv("UNISCHED_LOG_LEVEL", "error")

	var out bytes.Buffer
	if err := reconcileCommand(ctx, []string{"--dry-run"}, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "(dry run)") || !strings.Contains(s, "allocation_leak        1") ||
		!strings.Contains(s, leak) || !strings.Contains(s, "dry_run") {
		t.Errorf("dry run printed:\n%s", s)
	}
	out.Reset()
	if err := reconcileCommand(ctx, []string{"--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var rep reconcile.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Total != 1 || rep.Repaired != 1 || rep.Divergences[0].ConsumerUUID != leak || rep.Stats.Servers != -1 {
		t.Errorf("report %+v", rep)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM allocations`).Scan(&n); err != nil || n != 0 {
		t.Errorf("allocations left: %d %v", n, err)
	}
}

// serve's reconciler runs at once and exports its counts to serve's
// registry.
func TestStartReconcilerMetrics(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	t.Setenv("UNISCHED_DATABASE_URL", url)
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	lead := newLeadership(cfg.Leader, reg, slog.New(slog.DiscardHandler))
	rec := startReconciler(ctx, pool, cfg, bridge.New(pool, bridgetest.Engine(t), bridge.Options{}), reg, lead, slog.New(slog.DiscardHandler))
	if rec == nil {
		t.Fatal("reconcile.enabled is on by default, yet no reconciler")
	}
	defer rec.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		runs, leading := -1.0, -1.0
		for _, f := range fams {
			switch f.GetName() {
			case "unisched_reconcile_runs_total":
				runs = f.GetMetric()[0].GetCounter().GetValue()
			case "unisched_leader":
				// the only replica leads: unisched_leader{role="reconciler"} 1
				leading = f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if runs == 1 && leading == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unisched_reconcile_runs_total = %v, unisched_leader{role=reconciler} = %v after 30s, want 1 and 1", runs, leading)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

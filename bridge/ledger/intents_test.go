package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/placement/store"
)

func reqID() string { return "req-" + uuid.NewString() }

func TestIntentRecordAndLookup(t *testing.T) {
	ctx, pool := setup(t)
	in := &ledger.Intent{
		RequestID: reqID(), ProjectID: "proj", UserID: "user", FlavorRef: "42",
		Flavor: &ledger.IntentFlavor{ID: "42", Name: "m1.pinned", VCPUs: 2, RAMMB: 1024, DiskGB: 10,
			ExtraSpecs: map[string]string{"hw:cpu_policy": "dedicated"}},
		ImageRef: "img-1", SchedulerHints: map[string]any{"group": "g1", "same_host": []any{"a", "b"}},
		ServerName: "vm1", MinCount: 2, MaxCount: 3,
	}
	if err := ledger.RecordIntent(ctx, pool, in); err != nil {
		t.Fatal(err)
	}
	if in.CreatedAt.IsZero() {
		t.Error("CreatedAt not set")
	}
	got, err := ledger.IntentByRequestID(ctx, pool, in.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ProjectID != "proj" || got.UserID != "user" || got.FlavorRef != "42" || got.ImageRef != "img-1" ||
		got.ServerName != "vm1" || got.MinCount != 2 || got.MaxCount != 3 || got.ResponseStatus != 0 ||
		!got.AnsweredAt.IsZero() || got.Aliases != nil {
		t.Errorf("got %+v", got)
	}
	if got.Flavor == nil || got.Flavor.VCPUs != 2 || got.Flavor.RAMMB != 1024 || got.Flavor.DiskGB != 10 ||
		got.Flavor.Name != "m1.pinned" || got.Flavor.ExtraSpecs["hw:cpu_policy"] != "dedicated" {
		t.Errorf("flavor %+v", got.Flavor)
	}
	if got.SchedulerHints["group"] != "g1" || len(got.SchedulerHints["same_host"].([]any)) != 2 {
		t.Errorf("hints %v", got.SchedulerHints)
	}

	// defaults: no flavor (lookup failed), no hints, counts 1
	bare := &ledger.Intent{RequestID: reqID(), FlavorRef: "gone"}
	if err := ledger.RecordIntent(ctx, pool, bare); err != nil {
		t.Fatal(err)
	}
	got, err = ledger.IntentByRequestID(ctx, pool, bare.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Flavor != nil || len(got.SchedulerHints) != 0 || got.MinCount != 1 || got.MaxCount != 1 {
		t.Errorf("bare intent %+v", got)
	}

	if err := ledger.RecordIntent(ctx, pool, &ledger.Intent{RequestID: in.RequestID}); !errors.Is(err, ledger.ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	for _, bad := range []*ledger.Intent{{}, {RequestID: reqID(), MinCount: 3, MaxCount: 2}, {RequestID: reqID(), MinCount: -1}} {
		if err := ledger.RecordIntent(ctx, pool, bad); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := ledger.IntentByRequestID(ctx, pool, reqID()); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

func TestIntentAliases(t *testing.T) {
	ctx, pool := setup(t)
	a, b := &ledger.Intent{RequestID: reqID()}, &ledger.Intent{RequestID: reqID()}
	for _, in := range []*ledger.Intent{a, b} {
		if err := ledger.RecordIntent(ctx, pool, in); err != nil {
			t.Fatal(err)
		}
	}
	local := reqID()
	if err := ledger.AliasIntent(ctx, pool, a.RequestID, local); err != nil {
		t.Fatal(err)
	}
	// the same alias again, and the id itself, are no-ops
	for _, alias := range []string{local, a.RequestID} {
		if err := ledger.AliasIntent(ctx, pool, a.RequestID, alias); err != nil {
			t.Errorf("alias %s again: %v", alias, err)
		}
	}
	if err := ledger.AliasIntent(ctx, pool, b.RequestID, local); !errors.Is(err, ledger.ErrExists) {
		t.Errorf("alias of another intent: %v", err)
	}
	if err := ledger.AliasIntent(ctx, pool, reqID(), reqID()); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("alias of an unknown intent: %v", err)
	}
	if err := ledger.AliasIntent(ctx, pool, a.RequestID, ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("empty alias: %v", err)
	}
	got, err := ledger.IntentByRequestID(ctx, pool, local)
	if err != nil {
		t.Fatal(err)
	}
	if got.RequestID != a.RequestID || len(got.Aliases) != 1 || got.Aliases[0] != local {
		t.Errorf("by alias: %+v", got)
	}
	if err := ledger.AnswerIntent(ctx, pool, a.RequestID, 202); err != nil {
		t.Fatal(err)
	}
	if got, _ = ledger.IntentByRequestID(ctx, pool, a.RequestID); got.ResponseStatus != 202 || got.AnsweredAt.IsZero() {
		t.Errorf("answered: %+v", got)
	}
	if err := ledger.AnswerIntent(ctx, pool, reqID(), 202); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("answer to unknown: %v", err)
	}
}

func TestTrimIntents(t *testing.T) {
	ctx, pool := setup(t)
	old, young := &ledger.Intent{RequestID: reqID()}, &ledger.Intent{RequestID: reqID()}
	for _, in := range []*ledger.Intent{old, young} {
		if err := ledger.RecordIntent(ctx, pool, in); err != nil {
			t.Fatal(err)
		}
	}
	alias := reqID()
	if err := ledger.AliasIntent(ctx, pool, old.RequestID, alias); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, pool, `UPDATE bridge_vm_intents SET created_at = now() - interval '2 hours' WHERE request_id = $1`, old.RequestID)
	n, err := ledger.TrimIntents(ctx, pool, time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("trimmed %d (%v)", n, err)
	}
	for _, id := range []string{old.RequestID, alias} {
		if _, err := ledger.IntentByRequestID(ctx, pool, id); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("%s after trim: %v", id, err)
		}
	}
	if _, err := ledger.IntentByRequestID(ctx, pool, young.RequestID); err != nil {
		t.Errorf("young intent trimmed: %v", err)
	}
	var aliases int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM bridge_vm_intent_aliases`).Scan(&aliases); err != nil || aliases != 0 {
		t.Errorf("aliases left: %d (%v)", aliases, err)
	}

	// the test reset empties the intents with every other bridge table
	if err := store.Reset(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.IntentByRequestID(ctx, pool, young.RequestID); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after reset: %v", err)
	}
}

func TestAwaitIntent(t *testing.T) {
	ctx, pool := setup(t)

	t.Run("nothing in flight answers at once", func(t *testing.T) {
		start := time.Now()
		if _, err := ledger.AwaitIntent(ctx, pool, reqID(), 5*time.Second); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("waited %v with nothing in flight", d)
		}
	})

	t.Run("known id answers at once", func(t *testing.T) {
		in := &ledger.Intent{RequestID: reqID(), ServerName: "known"}
		if err := ledger.RecordIntent(ctx, pool, in); err != nil {
			t.Fatal(err)
		}
		got, err := ledger.AwaitIntent(ctx, pool, in.RequestID, time.Second)
		if err != nil || got.ServerName != "known" {
			t.Fatalf("got %+v, %v", got, err)
		}
		if err := ledger.AnswerIntent(ctx, pool, in.RequestID, 202); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("alias written while waiting", func(t *testing.T) {
		in := &ledger.Intent{RequestID: reqID(), ServerName: "late"}
		if err := ledger.RecordIntent(ctx, pool, in); err != nil {
			t.Fatal(err)
		}
		local := reqID()
		done := make(chan error, 1)
		go func() {
			time.Sleep(150 * time.Millisecond)
			if err := ledger.AliasIntent(ctx, pool, in.RequestID, local); err != nil {
				done <- err
				return
			}
			done <- ledger.AnswerIntent(ctx, pool, in.RequestID, 202)
		}()
		start := time.Now()
		got, err := ledger.AwaitIntent(ctx, pool, local, 10*time.Second)
		if err != nil || got.RequestID != in.RequestID || got.ServerName != "late" {
			t.Fatalf("got %+v, %v", got, err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("found after %v, before the alias was written", d)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("in flight but never aliased times out", func(t *testing.T) {
		in := &ledger.Intent{RequestID: reqID()}
		if err := ledger.RecordIntent(ctx, pool, in); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := ledger.AwaitIntent(ctx, pool, reqID(), 200*time.Millisecond); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("gave up after %v, before the timeout", d)
		}
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := ledger.AwaitIntent(cctx, pool, reqID(), 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ended context: %v", err)
		}
		// an answer (here a refusal) ends the wait of everyone else
		if err := ledger.AnswerIntent(ctx, pool, in.RequestID, 400); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if _, err := ledger.AwaitIntent(ctx, pool, reqID(), 5*time.Second); !errors.Is(err, ledger.ErrNotFound) || time.Since(start) > 2*time.Second {
			t.Errorf("after the answer: %v after %v", err, time.Since(start))
		}
	})

	t.Run("a stale unanswered intent does not hold waiters", func(t *testing.T) {
		in := &ledger.Intent{RequestID: reqID()}
		if err := ledger.RecordIntent(ctx, pool, in); err != nil {
			t.Fatal(err)
		}
		mustExec(t, ctx, pool, `UPDATE bridge_vm_intents SET created_at = now() - interval '1 hour' WHERE request_id = $1`, in.RequestID)
		start := time.Now()
		if _, err := ledger.AwaitIntent(ctx, pool, reqID(), 5*time.Second); !errors.Is(err, ledger.ErrNotFound) || time.Since(start) > 2*time.Second {
			t.Errorf("stale: %v after %v", err, time.Since(start))
		}
	})
}

func TestReplaceIntent(t *testing.T) {
	ctx, pool := setup(t)
	id := reqID()
	first := &ledger.Intent{RequestID: id, ServerName: "first", Flavor: &ledger.IntentFlavor{ID: "1", VCPUs: 1}}
	if err := ledger.RecordIntent(ctx, pool, first); err != nil {
		t.Fatal(err)
	}
	oldAlias := reqID()
	if err := ledger.AliasIntent(ctx, pool, id, oldAlias); err != nil {
		t.Fatal(err)
	}
	if err := ledger.AnswerIntent(ctx, pool, id, 202); err != nil {
		t.Fatal(err)
	}
	second := &ledger.Intent{RequestID: id, ServerName: "second", ImageRef: "img", MinCount: 2}
	if err := ledger.ReplaceIntent(ctx, pool, second); err != nil {
		t.Fatal(err)
	}
	got, err := ledger.IntentByRequestID(ctx, pool, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ServerName != "second" || got.Flavor != nil || got.ImageRef != "img" || got.MinCount != 2 || got.MaxCount != 2 ||
		got.ResponseStatus != 0 || !got.AnsweredAt.IsZero() || got.Aliases != nil || !got.CreatedAt.After(first.CreatedAt) {
		t.Errorf("replaced: %+v", got)
	}
	if _, err := ledger.IntentByRequestID(ctx, pool, oldAlias); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("the earlier create's alias still leads somewhere: %v", err)
	}
	// a new id: ReplaceIntent records it
	third := &ledger.Intent{RequestID: reqID(), ServerName: "third"}
	if err := ledger.ReplaceIntent(ctx, pool, third); err != nil {
		t.Fatal(err)
	}
	if got, err := ledger.IntentByRequestID(ctx, pool, third.RequestID); err != nil || got.ServerName != "third" {
		t.Errorf("new id through ReplaceIntent: %+v %v", got, err)
	}
}

package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/unisched/unisched/internal/pg"
)

// Intent is what a user asked Nova for in one POST /servers, as the Nova
// API proxy saw it before nova-api did. Nova's scheduler later asks
// Placement for candidates with only resource amounts and traits; the
// intent gives the bridge the rest (the flavor's extra specs, the image,
// the hints) under the request's global id.
type Intent struct {
	// RequestID is the X-OpenStack-Request-ID the proxy forwarded.
	RequestID string
	ProjectID string
	UserID    string
	// FlavorRef is the body's flavorRef (an id or a link); Flavor is what
	// Nova answered for it, nil when the lookup failed.
	FlavorRef      string
	Flavor         *IntentFlavor
	ImageRef       string
	SchedulerHints map[string]any
	ServerName     string
	MinCount       int
	MaxCount       int
	// ResponseStatus is nova-api's answer to the POST; 0 while in flight.
	ResponseStatus int
	// Aliases are other ids of the request (nova-api's local id), sorted.
	Aliases    []string
	CreatedAt  time.Time
	AnsweredAt time.Time
}

// IntentFlavor is a flavor as Nova's API describes it (extra_specs from
// compute microversion 2.61).
type IntentFlavor struct {
	ID          string            `json:"id"`
	Name        string            `json:"name,omitempty"`
	VCPUs       int               `json:"vcpus"`
	RAMMB       int64             `json:"ram"`
	DiskGB      int64             `json:"disk"`
	EphemeralGB int64             `json:"ephemeral,omitempty"`
	SwapMB      int64             `json:"swap,omitempty"`
	ExtraSpecs  map[string]string `json:"extra_specs,omitempty"`
}

// IntentInFlightWindow bounds how long an unanswered intent counts as a
// POST in flight: a proxy that died mid-request leaves a row nobody will
// answer, and AwaitIntent must not wait on it for ever.
const IntentInFlightWindow = 2 * time.Minute

// awaitPoll is how often AwaitIntent looks again. Nova's scheduler is
// waiting on the answer, so it is short; each look is one indexed query.
const awaitPoll = 20 * time.Millisecond

const (
	insertIntent = `INSERT INTO bridge_vm_intents (request_id, project_id, user_id, flavor_ref, flavor, image_ref,
	scheduler_hints, server_name, min_count, max_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING created_at`

	selectIntent = `SELECT i.request_id, i.project_id, i.user_id, i.flavor_ref, i.flavor, i.image_ref, i.scheduler_hints,
	i.server_name, i.min_count, i.max_count, COALESCE(i.response_status, 0), i.created_at, i.answered_at,
	COALESCE((SELECT array_agg(a.alias ORDER BY a.alias) FROM bridge_vm_intent_aliases a WHERE a.request_id = i.request_id), '{}')
FROM bridge_vm_intents i
WHERE i.request_id = $1 OR i.request_id = (SELECT a.request_id FROM bridge_vm_intent_aliases a WHERE a.alias = $1)`

	// A request id used again: the newest create is the one Nova schedules
	// next, so its intent replaces the old one, and the old one's aliases
	// (nova-api's ids of the earlier create) go rather than lead to the
	// new content. One statement: both happen or neither.
	replaceIntent = `WITH gone AS (DELETE FROM bridge_vm_intent_aliases WHERE request_id = $1)
INSERT INTO bridge_vm_intents (request_id, project_id, user_id, flavor_ref, flavor, image_ref,
	scheduler_hints, server_name, min_count, max_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (request_id) DO UPDATE SET project_id = EXCLUDED.project_id, user_id = EXCLUDED.user_id,
	flavor_ref = EXCLUDED.flavor_ref, flavor = EXCLUDED.flavor, image_ref = EXCLUDED.image_ref,
	scheduler_hints = EXCLUDED.scheduler_hints, server_name = EXCLUDED.server_name,
	min_count = EXCLUDED.min_count, max_count = EXCLUDED.max_count,
	response_status = NULL, answered_at = NULL, created_at = now()
RETURNING created_at`

	insertAlias = `INSERT INTO bridge_vm_intent_aliases (alias, request_id) VALUES ($1, $2)
ON CONFLICT (alias) DO NOTHING`

	selectAliasOwner = `SELECT request_id FROM bridge_vm_intent_aliases WHERE alias = $1`

	updateAnswer = `UPDATE bridge_vm_intents SET response_status = $2, answered_at = now() WHERE request_id = $1`

	// One statement, one snapshot: the id's intent (if any) and whether a
	// POST is still in flight are read together, so an alias written and
	// answered between two separate reads cannot be missed.
	probeIntent = `SELECT
	(SELECT i.request_id FROM bridge_vm_intents i
	  WHERE i.request_id = $1 OR i.request_id = (SELECT a.request_id FROM bridge_vm_intent_aliases a WHERE a.alias = $1)),
	EXISTS (SELECT 1 FROM bridge_vm_intents WHERE response_status IS NULL AND created_at > now() - $2::bigint * interval '1 millisecond')`

	deleteIntentsBefore = `DELETE FROM bridge_vm_intents WHERE created_at < $1`
)

// RecordIntent stores a new intent and sets its CreatedAt. ErrExists when
// the request id is taken (as an id or an alias is not checked: aliases
// are nova-api's ids, which no client sends).
func RecordIntent(ctx context.Context, db pg.DBTX, in *Intent) error {
	return writeIntent(ctx, db, in, insertIntent)
}

// ReplaceIntent is RecordIntent for a request id that may be taken: a
// client that gives every call of a session one global id (openstacksdk's
// global_request_id) sends several creates under it. The newest create
// replaces the intent, unanswered again, without the old aliases.
func ReplaceIntent(ctx context.Context, db pg.DBTX, in *Intent) error {
	return writeIntent(ctx, db, in, replaceIntent)
}

func writeIntent(ctx context.Context, db pg.DBTX, in *Intent, sql string) error {
	what := fmt.Sprintf("recording the intent of request %s", in.RequestID)
	if in.RequestID == "" {
		return invalid("an intent needs a request id")
	}
	minCount, maxCount := in.MinCount, in.MaxCount
	if minCount == 0 {
		minCount = 1
	}
	if maxCount == 0 {
		maxCount = minCount
	}
	if minCount < 1 || maxCount < minCount {
		return invalid("intent %s: min_count %d, max_count %d", in.RequestID, in.MinCount, in.MaxCount)
	}
	var flavor []byte
	if in.Flavor != nil {
		var err error
		if flavor, err = json.Marshal(in.Flavor); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	hints := in.SchedulerHints
	if hints == nil {
		hints = map[string]any{}
	}
	hintsJSON, err := json.Marshal(hints)
	if err != nil {
		return fmt.Errorf("%s: scheduler hints: %w", what, err)
	}
	err = db.QueryRow(ctx, sql, in.RequestID, in.ProjectID, in.UserID, in.FlavorRef, flavor, in.ImageRef,
		hintsJSON, in.ServerName, minCount, maxCount).Scan(&in.CreatedAt)
	if err != nil {
		return interpretError(err, what)
	}
	in.MinCount, in.MaxCount = minCount, maxCount
	return nil
}

// AliasIntent records alias as another id of the intent requestID (the
// local id nova-api answered with). Idempotent; an alias equal to the
// request id is nothing to record. ErrNotFound when the intent does not
// exist, ErrExists when the alias already names another intent.
func AliasIntent(ctx context.Context, db pg.DBTX, requestID, alias string) error {
	what := fmt.Sprintf("aliasing %s to the intent of request %s", alias, requestID)
	if alias == "" {
		return invalid("%s: empty alias", what)
	}
	if alias == requestID {
		return nil
	}
	tag, err := db.Exec(ctx, insertAlias, alias, requestID)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pg.CodeForeignKeyViolation {
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
		return interpretError(err, what)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var owner string
	if err := db.QueryRow(ctx, selectAliasOwner, alias).Scan(&owner); err != nil {
		return interpretError(err, what)
	}
	if owner != requestID {
		return fmt.Errorf("%s: %w (it names request %s)", what, ErrExists, owner)
	}
	return nil
}

// AnswerIntent records nova-api's response status to the intent's POST:
// the POST is no longer in flight. Write the aliases first, so that a
// reader who sees the answer sees them too.
func AnswerIntent(ctx context.Context, db pg.DBTX, requestID string, status int) error {
	tag, err := db.Exec(ctx, updateAnswer, requestID, status)
	if err != nil {
		return interpretError(err, fmt.Sprintf("recording the answer to request %s", requestID))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("recording the answer to request %s: %w", requestID, ErrNotFound)
	}
	return nil
}

// IntentByRequestID returns the intent whose request id or alias is id;
// ErrNotFound when none.
func IntentByRequestID(ctx context.Context, db pg.DBTX, id string) (Intent, error) {
	what := fmt.Sprintf("reading the intent of request %s", id)
	var in Intent
	var flavor, hints []byte
	var answered *time.Time
	err := db.QueryRow(ctx, selectIntent, id).Scan(&in.RequestID, &in.ProjectID, &in.UserID, &in.FlavorRef, &flavor,
		&in.ImageRef, &hints, &in.ServerName, &in.MinCount, &in.MaxCount, &in.ResponseStatus, &in.CreatedAt, &answered,
		&in.Aliases)
	if err != nil {
		return Intent{}, interpretError(err, what)
	}
	if flavor != nil {
		in.Flavor = new(IntentFlavor)
		if err := json.Unmarshal(flavor, in.Flavor); err != nil {
			return Intent{}, fmt.Errorf("%s: flavor: %w", what, err)
		}
	}
	if err := json.Unmarshal(hints, &in.SchedulerHints); err != nil {
		return Intent{}, fmt.Errorf("%s: scheduler hints: %w", what, err)
	}
	if answered != nil {
		in.AnsweredAt = *answered
	}
	if len(in.Aliases) == 0 {
		in.Aliases = nil
	}
	return in, nil
}

// AwaitIntent is IntentByRequestID for a caller that may be ahead of the
// proxy: Nova's scheduler can ask for candidates before the proxy has
// seen nova-api's 202 and aliased the local id Nova uses. While the id is
// unknown and some proxied POST /servers is still in flight (unanswered,
// younger than IntentInFlightWindow), it looks again every few
// milliseconds, for at most timeout. It returns ErrNotFound at once when
// nothing is in flight (the request did not come through the proxy), and
// when timeout passes; ctx's error when ctx ends first. Call it with the
// pool, outside a transaction: a transaction's snapshot (repeatable read
// or above) would never see the alias arrive, and holding one open while
// waiting would keep a connection from the others.
func AwaitIntent(ctx context.Context, db pg.DBTX, id string, timeout time.Duration) (Intent, error) {
	deadline := time.Now().Add(timeout)
	var timer *time.Timer
	for {
		var found *string
		var inFlight bool
		if err := db.QueryRow(ctx, probeIntent, id, IntentInFlightWindow.Milliseconds()).Scan(&found, &inFlight); err != nil {
			return Intent{}, interpretError(err, fmt.Sprintf("looking for the intent of request %s", id))
		}
		if found != nil {
			return IntentByRequestID(ctx, db, *found)
		}
		wait := time.Until(deadline)
		if !inFlight || wait <= 0 {
			return Intent{}, fmt.Errorf("intent of request %s: %w", id, ErrNotFound)
		}
		wait = min(wait, awaitPoll)
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return Intent{}, fmt.Errorf("waiting for the intent of request %s: %w", id, ctx.Err())
		case <-timer.C:
		}
	}
}

// TrimIntents deletes the intents (and their aliases) recorded before
// before and says how many. An intent matters only until Nova has
// scheduled the request, seconds after the POST.
func TrimIntents(ctx context.Context, db pg.DBTX, before time.Time) (int64, error) {
	tag, err := db.Exec(ctx, deleteIntentsBefore, before)
	if err != nil {
		return 0, interpretError(err, "trimming intents")
	}
	return tag.RowsAffected(), nil
}

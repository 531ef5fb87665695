package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// Consumer is a consumers row with its project and user resolved to their
// external ids.
type Consumer struct {
	ID                int64
	UUID              string
	Generation        int
	ProjectID         int64
	UserID            int64
	ProjectExternalID string
	UserExternalID    string
	// ConsumerTypeID is nil for consumers written before microversion 1.38.
	ConsumerTypeID *int
}

// The ensure* statements insert without DO UPDATE: an upsert that updates
// would lock the shared project/user row and serialize every claim of one
// project. DO NOTHING plus a second read in a new statement (which sees the
// racing insert once it committed) gets the id without holding that lock.
const (
	selectProjectID      = `SELECT id FROM projects WHERE external_id = $1`
	insertProject        = `INSERT INTO projects (external_id) VALUES ($1) ON CONFLICT (external_id) DO NOTHING RETURNING id`
	selectUserID         = `SELECT id FROM users WHERE external_id = $1`
	insertUser           = `INSERT INTO users (external_id) VALUES ($1) ON CONFLICT (external_id) DO NOTHING RETURNING id`
	selectConsumerTypeID = `SELECT id FROM consumer_types WHERE name = $1`
	insertConsumerType   = `INSERT INTO consumer_types (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id`
)

// ensureID returns the id of the row selected by sel, inserting it with ins
// when it does not exist yet.
func ensureID(ctx context.Context, db pg.DBTX, sel, ins, what, key string) (int64, error) {
	for range 3 {
		var id int64
		err := db.QueryRow(ctx, sel, key).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("looking up %s %q: %w", what, key, err)
		}
		err = db.QueryRow(ctx, ins, key).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("creating %s %q: %w", what, key, err)
		}
		// Lost the insert race; the winner's row is visible to the next
		// statement.
	}
	return 0, fmt.Errorf("creating %s %q: row vanished after a conflicting insert", what, key)
}

// EnsureProject returns the id of the project with the external id,
// creating it: projects appear implicitly with their first allocation.
func EnsureProject(ctx context.Context, db pg.DBTX, externalID string) (int64, error) {
	return ensureID(ctx, db, selectProjectID, insertProject, "project", externalID)
}

// EnsureUser is EnsureProject for users.
func EnsureUser(ctx context.Context, db pg.DBTX, externalID string) (int64, error) {
	return ensureID(ctx, db, selectUserID, insertUser, "user", externalID)
}

// EnsureConsumerType returns the id of the named consumer type, creating it.
func EnsureConsumerType(ctx context.Context, db pg.DBTX, name string) (int, error) {
	id, err := ensureID(ctx, db, selectConsumerTypeID, insertConsumerType, "consumer type", name)
	return int(id), err
}

const selectConsumerColumns = `SELECT c.id, c.uuid::text, c.generation, c.project_id, c.user_id,
	p.external_id, u.external_id, c.consumer_type_id
FROM consumers c
JOIN projects p ON p.id = c.project_id
JOIN users u ON u.id = c.user_id`

// Rows are locked in uuid order so that two writers naming the same
// consumers cannot deadlock on them. Only the consumer rows are locked
// (OF c): projects and users are shared by many consumers.
const lockConsumers = selectConsumerColumns + ` WHERE c.uuid = ANY($1::uuid[]) ORDER BY c.uuid FOR NO KEY UPDATE OF c`

func scanConsumer(row pgx.Row) (*Consumer, error) {
	var c Consumer
	var typeID *int32
	if err := row.Scan(&c.ID, &c.UUID, &c.Generation, &c.ProjectID, &c.UserID,
		&c.ProjectExternalID, &c.UserExternalID, &typeID); err != nil {
		return nil, err
	}
	if typeID != nil {
		t := int(*typeID)
		c.ConsumerTypeID = &t
	}
	return &c, nil
}

// LockConsumers loads the existing consumers among uuids (canonical form)
// and locks them until the transaction ends, keyed by uuid.
func LockConsumers(ctx context.Context, db pg.DBTX, uuids []string) (map[string]*Consumer, error) {
	rows, err := db.Query(ctx, lockConsumers, uuids)
	if err != nil {
		return nil, fmt.Errorf("locking consumers: %w", err)
	}
	defer rows.Close()
	out := make(map[string]*Consumer, len(uuids))
	for rows.Next() {
		c, err := scanConsumer(rows)
		if err != nil {
			return nil, fmt.Errorf("reading consumer: %w", err)
		}
		out[c.UUID] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("locking consumers: %w", err)
	}
	return out, nil
}

const insertConsumer = `INSERT INTO consumers (uuid, project_id, user_id, consumer_type_id)
VALUES ($1, $2, $3, $4) ON CONFLICT (uuid) DO NOTHING RETURNING id, generation`

// InsertConsumer creates a consumer at generation 0. ErrExists means a
// concurrent transaction created it first; the caller starts over so that it
// sees (and checks the generation of) the winner's row.
func InsertConsumer(ctx context.Context, db pg.DBTX, uuid string, projectID, userID int64, typeID *int) (*Consumer, error) {
	c := &Consumer{UUID: uuid, ProjectID: projectID, UserID: userID, ConsumerTypeID: typeID}
	err := db.QueryRow(ctx, insertConsumer, uuid, projectID, userID, typeID).Scan(&c.ID, &c.Generation)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrExists
	}
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s: %w", uuid, err)
	}
	return c, nil
}

const updateConsumer = `UPDATE consumers
SET project_id = $2, user_id = $3, consumer_type_id = $4, generation = generation + 1, updated_at = now()
WHERE id = $1 AND generation = $5`

// WriteConsumer stores the consumer's project, user and type and bumps its
// generation from expected, failing with ErrConcurrentUpdate when another
// writer moved it.
func WriteConsumer(ctx context.Context, db pg.DBTX, c *Consumer, expected int) error {
	tag, err := db.Exec(ctx, updateConsumer, c.ID, c.ProjectID, c.UserID, c.ConsumerTypeID, expected)
	if err != nil {
		return fmt.Errorf("updating consumer %s: %w", c.UUID, err)
	}
	if tag.RowsAffected() != 1 {
		return ErrConcurrentUpdate
	}
	c.Generation = expected + 1
	return nil
}

const deleteConsumersWithoutAllocations = `DELETE FROM consumers c
WHERE c.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.consumer_id = c.id)`

// DeleteConsumersWithoutAllocations removes those of the consumers that no
// longer hold any allocation: a consumer exists only through its
// allocations, so the next write for it must again say it is new.
func DeleteConsumersWithoutAllocations(ctx context.Context, db pg.DBTX, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := db.Exec(ctx, deleteConsumersWithoutAllocations, ids); err != nil {
		return fmt.Errorf("deleting consumers without allocations: %w", err)
	}
	return nil
}

const deleteConsumerByUUID = `DELETE FROM consumers WHERE uuid = $1`

// DeleteConsumer removes the consumer and, by cascade, its allocations. It
// reports whether there was one.
func DeleteConsumer(ctx context.Context, db pg.DBTX, uuid string) (bool, error) {
	tag, err := db.Exec(ctx, deleteConsumerByUUID, uuid)
	if err != nil {
		return false, fmt.Errorf("deleting consumer %s: %w", uuid, err)
	}
	return tag.RowsAffected() > 0, nil
}

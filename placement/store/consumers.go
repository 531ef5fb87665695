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

// The batched form of the ensure statements: existing rows and the ones
// inserted now, in one statement each. A row another transaction is
// inserting at the same moment is missing from the answer (the insert
// waits for it, then does nothing, and the snapshot predates it);
// EnsureOwners then falls back to the Ensure functions, whose later
// statements see it. New rows are inserted in key order so that two claims
// creating the same rows cannot deadlock.
const (
	ensureProjects = `WITH want AS (SELECT DISTINCT unnest($1::text[]) AS k),
ins AS (INSERT INTO projects (external_id)
	SELECT k FROM want WHERE NOT EXISTS (SELECT 1 FROM projects WHERE external_id = want.k)
	ORDER BY k ON CONFLICT (external_id) DO NOTHING RETURNING external_id, id)
SELECT external_id, id FROM projects WHERE external_id = ANY($1::text[])
UNION ALL SELECT external_id, id FROM ins`
	ensureUsers = `WITH want AS (SELECT DISTINCT unnest($1::text[]) AS k),
ins AS (INSERT INTO users (external_id)
	SELECT k FROM want WHERE NOT EXISTS (SELECT 1 FROM users WHERE external_id = want.k)
	ORDER BY k ON CONFLICT (external_id) DO NOTHING RETURNING external_id, id)
SELECT external_id, id FROM users WHERE external_id = ANY($1::text[])
UNION ALL SELECT external_id, id FROM ins`
	ensureConsumerTypes = `WITH want AS (SELECT DISTINCT unnest($1::text[]) AS k),
ins AS (INSERT INTO consumer_types (name)
	SELECT k FROM want WHERE NOT EXISTS (SELECT 1 FROM consumer_types WHERE name = want.k)
	ORDER BY k ON CONFLICT (name) DO NOTHING RETURNING name, id)
SELECT name, id::bigint FROM consumer_types WHERE name = ANY($1::text[])
UNION ALL SELECT name, id::bigint FROM ins`
)

// selectOwnerIDs looks up projects ($1), users ($2) and consumer types
// ($3) in one statement; kind tells which.
const selectOwnerIDs = `SELECT 'p', external_id, id FROM projects WHERE external_id = ANY($1::text[])
UNION ALL SELECT 'u', external_id, id FROM users WHERE external_id = ANY($2::text[])
UNION ALL SELECT 't', name, id FROM consumer_types WHERE name = ANY($3::text[])`

// selectOwnerID is selectOwnerIDs for at most one of each (NULL: none).
const selectOwnerID = `SELECT 'p', external_id, id FROM projects WHERE external_id = $1::text
UNION ALL SELECT 'u', external_id, id FROM users WHERE external_id = $2::text
UNION ALL SELECT 't', name, id FROM consumer_types WHERE name = $3::text`

// one is the only element of list, or nil (SQL NULL) for none.
func one(list []string) *string {
	if len(list) == 0 {
		return nil
	}
	return &list[0]
}

// queueOwnerIDs queues the lookup of existing projects, users and consumer
// types into their maps.
func queueOwnerIDs(b *pgx.Batch, projects, users, types []string, st *ClaimState) {
	var q *pgx.QueuedQuery
	if len(projects) <= 1 && len(users) <= 1 && len(types) <= 1 {
		q = b.Queue(selectOwnerID, one(projects), one(users), one(types))
	} else {
		q = b.Queue(selectOwnerIDs, nonNil(projects), nonNil(users), nonNil(types))
	}
	q.Query(func(rows pgx.Rows) error {
		out := map[string]map[string]int64{"p": st.ProjectIDs, "u": st.UserIDs, "t": st.TypeIDs}
		for rows.Next() {
			var kind, key string
			var id int64
			if err := rows.Scan(&kind, &key, &id); err != nil {
				return fmt.Errorf("reading project, user or consumer type: %w", err)
			}
			out[kind][key] = id
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("looking up projects, users and consumer types: %w", err)
		}
		return nil
	})
}

// EnsureOwners resolves the projects, users and consumer types not yet in
// st, creating them: one round trip, and a few more only for rows another
// transaction is creating at the same moment.
func EnsureOwners(ctx context.Context, db pg.DBTX, projects, users, types []string, st *ClaimState) error {
	missing := func(keys []string, have map[string]int64) []string {
		var out []string
		for _, k := range keys {
			if _, ok := have[k]; !ok {
				out = append(out, k)
			}
		}
		return out
	}
	projects, users, types = missing(projects, st.ProjectIDs), missing(users, st.UserIDs), missing(types, st.TypeIDs)
	b := &pgx.Batch{}
	if len(projects) > 0 {
		queueEnsure(b, ensureProjects, "project", projects, st.ProjectIDs)
	}
	if len(users) > 0 {
		queueEnsure(b, ensureUsers, "user", users, st.UserIDs)
	}
	if len(types) > 0 {
		queueEnsure(b, ensureConsumerTypes, "consumer type", types, st.TypeIDs)
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	for _, k := range missing(projects, st.ProjectIDs) {
		id, err := EnsureProject(ctx, db, k)
		if err != nil {
			return err
		}
		st.ProjectIDs[k] = id
	}
	for _, k := range missing(users, st.UserIDs) {
		id, err := EnsureUser(ctx, db, k)
		if err != nil {
			return err
		}
		st.UserIDs[k] = id
	}
	for _, k := range missing(types, st.TypeIDs) {
		id, err := EnsureConsumerType(ctx, db, k)
		if err != nil {
			return err
		}
		st.TypeIDs[k] = int64(id)
	}
	return nil
}

// queueEnsure queues one of the batched ensure statements; the ids found
// or created go into out.
func queueEnsure(b *pgx.Batch, sql, what string, keys []string, out map[string]int64) {
	b.Queue(sql, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k string
			var id int64
			if err := rows.Scan(&k, &id); err != nil {
				return fmt.Errorf("reading %s: %w", what, err)
			}
			out[k] = id
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("looking up or creating %ss: %w", what, err)
		}
		return nil
	})
}

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

// Rows are locked in uuid order so that two writers naming the same
// consumers cannot deadlock on them.
const lockConsumers = `SELECT id, uuid::text, generation, project_id, user_id, consumer_type_id
FROM consumers WHERE uuid = ANY($1::uuid[]) ORDER BY uuid FOR NO KEY UPDATE`

// Several statements come in two forms: for a list and for one element,
// the common case (PUT /allocations names one consumer, and mostly one
// provider). PostgreSQL plans a prepared statement with an array parameter
// anew at every execution, as it prices its generic plan for ten elements;
// with scalar parameters the generic plan, made once per connection, is
// as cheap as the custom one and is kept, saving the planning.
const lockConsumer = `SELECT id, uuid::text, generation, project_id, user_id, consumer_type_id
FROM consumers WHERE uuid = $1::uuid FOR NO KEY UPDATE`

// scanConsumer reads a lockConsumers row; the external ids of the project
// and user are left empty, as writers need only the ids.
func scanConsumer(row pgx.Row) (*Consumer, error) {
	var c Consumer
	var typeID *int32
	if err := row.Scan(&c.ID, &c.UUID, &c.Generation, &c.ProjectID, &c.UserID, &typeID); err != nil {
		return nil, err
	}
	if typeID != nil {
		t := int(*typeID)
		c.ConsumerTypeID = &t
	}
	return &c, nil
}

// queueLockConsumers queues the locking read of the existing consumers
// among uuids (canonical form); they go into out by uuid.
func queueLockConsumers(b *pgx.Batch, uuids []string, out map[string]*Consumer) {
	var q *pgx.QueuedQuery
	if len(uuids) == 1 {
		q = b.Queue(lockConsumer, uuids[0])
	} else {
		q = b.Queue(lockConsumers, uuids)
	}
	q.Query(func(rows pgx.Rows) error {
		for rows.Next() {
			c, err := scanConsumer(rows)
			if err != nil {
				return fmt.Errorf("reading consumer: %w", err)
			}
			out[c.UUID] = c
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("locking consumers: %w", err)
		}
		return nil
	})
}

// LockConsumers loads the existing consumers among uuids (canonical form)
// and locks them until the transaction ends, keyed by uuid.
func LockConsumers(ctx context.Context, db pg.DBTX, uuids []string) (map[string]*Consumer, error) {
	out := make(map[string]*Consumer, len(uuids))
	b := &pgx.Batch{}
	queueLockConsumers(b, uuids, out)
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// New consumers are written at generation 1: the claim that creates one
// also counts as its first write (upstream creates it at 0 and then bumps
// it in the same transaction). A consumer created concurrently makes the
// insert fail on the uuid's unique index; WriteClaim reports ErrExists.
const insertConsumers = `INSERT INTO consumers (uuid, project_id, user_id, consumer_type_id, generation, updated_at)
SELECT x.uuid, x.project_id, x.user_id, x.type_id, 1, now()
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::integer[]) AS x(uuid, project_id, user_id, type_id)`

// writeConsumers stores each consumer's project, user and type and bumps
// its generation, a compare-and-swap from the expected one. A mismatch
// sets the generation to NULL, which the NOT NULL column refuses: the
// failure is an SQL error, so it also stops a COMMIT sent in the same
// batch (see pg.BatchTx). casError turns it into ErrConcurrentUpdate.
const writeConsumers = `UPDATE consumers c
SET project_id = x.project_id, user_id = x.user_id, consumer_type_id = x.type_id,
	generation = CASE WHEN c.generation = x.expected THEN c.generation + 1 END, updated_at = now()
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::integer[], $5::integer[])
	AS x(id, project_id, user_id, type_id, expected)
WHERE c.id = x.id`

// typeIDs is the consumer_type_id column of consumers.
func typeIDs(cs []*Consumer) []*int32 {
	out := make([]*int32, len(cs))
	for i, c := range cs {
		if c.ConsumerTypeID != nil {
			id := int32(*c.ConsumerTypeID)
			out[i] = &id
		}
	}
	return out
}

const insertConsumer = `INSERT INTO consumers (uuid, project_id, user_id, consumer_type_id, generation, updated_at)
VALUES ($1::uuid, $2::bigint, $3::bigint, $4::integer, 1, now())`

func queueInsertConsumers(b *pgx.Batch, cs []*Consumer) {
	if len(cs) == 0 {
		return
	}
	if len(cs) == 1 {
		b.Queue(insertConsumer, cs[0].UUID, cs[0].ProjectID, cs[0].UserID, typeIDs(cs)[0])
		return
	}
	uuids := make([]string, len(cs))
	projects := make([]int64, len(cs))
	users := make([]int64, len(cs))
	for i, c := range cs {
		uuids[i], projects[i], users[i] = c.UUID, c.ProjectID, c.UserID
	}
	b.Queue(insertConsumers, uuids, projects, users, typeIDs(cs))
}

// queueWriteConsumers queues the write of the consumers, each expected at
// its Generation.
const writeConsumer = `UPDATE consumers
SET project_id = $2::bigint, user_id = $3::bigint, consumer_type_id = $4::integer,
	generation = CASE WHEN generation = $5::integer THEN generation + 1 END, updated_at = now()
WHERE id = $1::bigint`

func queueWriteConsumers(b *pgx.Batch, cs []*Consumer) {
	if len(cs) == 0 {
		return
	}
	if len(cs) == 1 {
		c := cs[0]
		b.Queue(writeConsumer, c.ID, c.ProjectID, c.UserID, typeIDs(cs)[0], int32(c.Generation))
		return
	}
	ids := make([]int64, len(cs))
	projects := make([]int64, len(cs))
	users := make([]int64, len(cs))
	expected := make([]int32, len(cs))
	for i, c := range cs {
		ids[i], projects[i], users[i], expected[i] = c.ID, c.ProjectID, c.UserID, int32(c.Generation)
	}
	b.Queue(writeConsumers, ids, projects, users, typeIDs(cs), expected)
}

// WriteConsumer stores the consumer's project, user and type and bumps its
// generation from expected, failing with ErrConcurrentUpdate when another
// writer moved it. Inside a transaction the failure aborts it.
func WriteConsumer(ctx context.Context, db pg.DBTX, c *Consumer, expected int) error {
	w := *c
	w.Generation = expected
	b := &pgx.Batch{}
	queueWriteConsumers(b, []*Consumer{&w})
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		if e := casError(err); e != nil {
			return e
		}
		return fmt.Errorf("updating consumer %s: %w", c.UUID, err)
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

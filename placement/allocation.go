package placement

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/jsonschema"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/store"
)

// Policy rules of upstream placement/policies/allocation.py.
const (
	ruleAllocationsList           = "placement:allocations:list"
	ruleAllocationsUpdate         = "placement:allocations:update"
	ruleAllocationsDelete         = "placement:allocations:delete"
	ruleAllocationsManage         = "placement:allocations:manage"
	ruleProviderAllocationsList   = "placement:resource_providers:allocations:list"
	consumerTypeUnknown           = "unknown"
	msgProviderConcurrentUpdate   = "Another thread concurrently updated the resource provider data. Please retry your update"
	msgConcurrentUpdate           = "Another thread concurrently updated the data. Please retry your update"
	msgAllocationsChangedPrefix   = "Inventory and/or allocations changed while attempting to allocate: "
	msgUnableToAllocatePrefix     = "Unable to allocate inventory: "
	msgProviderDoesNotExistFormat = "Allocation for resource provider '%s' that does not exist."
)

// ---------------------------------------------------------------------------
// Request bodies

// entry is one key of a JSON object, kept in document order.
type entry[T any] struct {
	Key   string
	Value T
}

// orderedMap decodes a JSON object keeping its key order. Upstream walks
// request dicts in document order, which decides which of several problems
// is reported (the first consumer with a stale generation, the first unknown
// provider or class), so we must walk them the same way. A repeated key keeps
// its first position and its last value, as a Python dict does.
type orderedMap[T any] []entry[T]

func (m *orderedMap[T]) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*m = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("expected an object, got %v", tok)
	}
	out := orderedMap[T]{}
	index := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("expected an object key, got %v", tok)
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if i, dup := index[key]; dup {
			out[i].Value = v
			continue
		}
		index[key] = len(out)
		out = append(out, entry[T]{Key: key, Value: v})
	}
	*m = out
	return nil
}

// jsonInteger is a JSON integer as python-jsonschema's "integer" accepts
// it (2 and 2.0 alike), keeping its text for messages that echo it.
type jsonInteger struct {
	n    int64
	text string
}

func (j *jsonInteger) UnmarshalJSON(b []byte) error {
	text := string(bytes.TrimSpace(b))
	if text == "" || text[0] == '"' {
		return fmt.Errorf("%s is not of type 'integer'", text)
	}
	var num json.Number
	if err := json.Unmarshal(b, &num); err != nil {
		return err
	}
	if n, err := num.Int64(); err == nil {
		*j = jsonInteger{n: n, text: text}
		return nil
	}
	f, err := num.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
		return fmt.Errorf("%s is not an integer this service can store", text)
	}
	*j = jsonInteger{n: int64(f), text: text}
	return nil
}

// listAllocationsBody is PUT /allocations/{consumer} before 1.12.
type listAllocationsBody struct {
	Allocations []struct {
		ResourceProvider struct {
			UUID string `json:"uuid"`
		} `json:"resource_provider"`
		Resources orderedMap[jsonInteger] `json:"resources"`
	} `json:"allocations"`
	ProjectID *string `json:"project_id"`
	UserID    *string `json:"user_id"`
}

// providerResources is one provider's part of a dict-form allocation.
type providerResources struct {
	Resources orderedMap[jsonInteger] `json:"resources"`
}

// consumerAllocationsBody is PUT /allocations/{consumer} from 1.12, one
// consumer of POST /allocations, and of POST /reshaper.
type consumerAllocationsBody struct {
	Allocations        orderedMap[providerResources] `json:"allocations"`
	ProjectID          *string                       `json:"project_id"`
	UserID             *string                       `json:"user_id"`
	ConsumerGeneration *jsonInteger                  `json:"consumer_generation"`
	ConsumerType       *string                       `json:"consumer_type"`
}

// consumerWrite is the normalized replacement of one consumer's allocations.
type consumerWrite struct {
	uuid string // canonical
	// providers in request order; none means remove every allocation.
	providers  []entry[providerResources]
	projectID  string
	userID     string
	generation *jsonInteger
	// consumerType is set from 1.38 on; below, an existing type is kept.
	consumerType *string
}

// toWrite normalizes a dict-form body, filling the incomplete-consumer
// project and user when the body (before 1.8) has none.
func (s *Server) toWrite(uuid string, b consumerAllocationsBody, v openstack.Version) consumerWrite {
	w := consumerWrite{uuid: uuid, providers: b.Allocations, generation: b.ConsumerGeneration}
	if b.ProjectID == nil || b.UserID == nil {
		w.projectID, w.userID = s.cfg.IncompleteConsumerProjectID, s.cfg.IncompleteConsumerUserID
	} else {
		w.projectID, w.userID = *b.ProjectID, *b.UserID
	}
	if v.AtLeast(38) {
		w.consumerType = b.ConsumerType
	}
	return w
}

// parseUUIDLike is oslo's is_uuid_like followed by str(uuid.UUID(s)): after
// dropping "urn:", "uuid:", surrounding braces and every dash, 32 hex digits
// must remain; the result is the canonical lower-case dashed form.
func parseUUIDLike(s string) (string, bool) {
	h := strings.ReplaceAll(s, "urn:", "")
	h = strings.ReplaceAll(h, "uuid:", "")
	h = strings.Trim(h, "{}")
	h = strings.ReplaceAll(h, "-", "")
	if len(h) != 32 {
		return "", false
	}
	h = strings.ToLower(h)
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}

// ---------------------------------------------------------------------------
// The claim: replacing the allocations of consumers in one transaction.

// classNotFoundError: an allocation names a resource class that does not
// exist (upstream's ResourceClassNotFound, a 400 worded per handler).
type classNotFoundError struct{ name string }

func (e *classNotFoundError) Error() string { return "No such resource class " + e.name + "." }

// errProviderConcurrent marks a provider-generation compare-and-swap that
// failed; it and store.ErrConcurrentUpdate from consumers are retried.
var errProviderConcurrent = fmt.Errorf("provider generation: %w", store.ErrConcurrentUpdate)

// claimErrors words the errors whose text differs between the handlers
// that write allocations.
type claimErrors struct {
	classNotFound func(error) *openstack.Error
	concurrent    func(msg string) *openstack.Error
}

// consumerGenerationConflict is the 409 Nova recognizes by its text.
func consumerGenerationConflict(expected string, got *jsonInteger) *openstack.Error {
	gotText := "None"
	if got != nil {
		gotText = got.text
	}
	return conflict(CodeConcurrentUpdate, "consumer generation conflict - expected %s but got %s", expected, gotText)
}

// claimTx is one attempt at a claim: what it read and decided so far.
type claimTx struct {
	writes []consumerWrite
	st     store.ClaimState
	// consumers are those that will hold the new allocations or lose
	// theirs, by uuid: the existing ones (with their new project, user and
	// type) and the ones the claim creates.
	consumers map[string]*store.Consumer
	created   map[string]bool
}

// readConsumers names the consumers the claim writes and their projects,
// users and types.
func (c *claimTx) readConsumers(r *store.ClaimRead) {
	projects, users, types := map[string]bool{}, map[string]bool{}, map[string]bool{}
	add := func(seen map[string]bool, list *[]string, s string) {
		if !seen[s] {
			seen[s] = true
			*list = append(*list, s)
		}
	}
	for _, w := range c.writes {
		r.Consumers = append(r.Consumers, w.uuid)
		add(projects, &r.Projects, w.projectID)
		add(users, &r.Users, w.userID)
		if w.consumerType != nil {
			add(types, &r.ConsumerTypes, *w.consumerType)
		}
	}
}

// readProviders names the providers the allocations name and the
// consumers being emptied, whose providers are locked and bumped too.
func (c *claimTx) readProviders(r *store.ClaimRead) {
	for _, w := range c.writes {
		for _, p := range w.providers {
			if u, ok := parseUUIDLike(p.Key); ok {
				r.Providers = append(r.Providers, u)
			}
		}
		if len(w.providers) == 0 {
			r.Emptied = append(r.Emptied, w.uuid)
		}
	}
}

// readUsage names the classes of the new allocations and asks for the
// allocations of consumers being emptied and the usage the claim draws
// on; r must name the providers.
func (c *claimTx) readUsage(r *store.ClaimRead) {
	seen := map[string]bool{}
	for _, w := range c.writes {
		r.Replacing = append(r.Replacing, w.uuid)
		for _, p := range w.providers {
			for _, res := range p.Value.Resources {
				if !seen[res.Key] {
					seen[res.Key] = true
					r.Classes = append(r.Classes, res.Key)
				}
			}
		}
	}
	r.Removed, r.Usage = true, true
}

// checkConsumers checks consumer generations in request order (from 1.28)
// and settles which consumers the claim writes and creates. Projects,
// users and types the read did not find are created through db.
func (c *claimTx) checkConsumers(ctx context.Context, db func(context.Context) (pg.DBTX, error), v openstack.Version) error {
	if v.AtLeast(28) {
		for _, w := range c.writes {
			existing := c.st.Consumers[w.uuid]
			if existing != nil && (w.generation == nil || w.generation.n != int64(existing.Generation)) {
				return consumerGenerationConflict(strconv.Itoa(existing.Generation), w.generation)
			}
			if existing == nil && w.generation != nil {
				return consumerGenerationConflict("null", w.generation)
			}
		}
	}
	var r store.ClaimRead
	c.readConsumers(&r)
	if !c.haveOwners(r) {
		conn, err := db(ctx)
		if err != nil {
			return err
		}
		if err := store.EnsureOwners(ctx, conn, r.Projects, r.Users, r.ConsumerTypes, &c.st); err != nil {
			return err
		}
	}
	c.consumers = make(map[string]*store.Consumer, len(c.writes))
	c.created = map[string]bool{}
	for _, w := range c.writes {
		existing := c.st.Consumers[w.uuid]
		if existing == nil && len(w.providers) == 0 {
			// Nothing to hold: a consumer without allocations does not exist.
			continue
		}
		projectID, userID := c.st.ProjectIDs[w.projectID], c.st.UserIDs[w.userID]
		var typeID *int
		if w.consumerType != nil {
			t := int(c.st.TypeIDs[*w.consumerType])
			typeID = &t
		}
		if existing == nil {
			c.consumers[w.uuid] = &store.Consumer{UUID: w.uuid, ProjectID: projectID, UserID: userID, ConsumerTypeID: typeID}
			c.created[w.uuid] = true
			continue
		}
		existing.ProjectID, existing.UserID = projectID, userID
		if typeID != nil {
			existing.ConsumerTypeID = typeID
		}
		c.consumers[w.uuid] = existing
	}
	return nil
}

// haveOwners reports whether the read found every project, user and type.
func (c *claimTx) haveOwners(r store.ClaimRead) bool {
	for _, k := range r.Projects {
		if _, ok := c.st.ProjectIDs[k]; !ok {
			return false
		}
	}
	for _, k := range r.Users {
		if _, ok := c.st.UserIDs[k]; !ok {
			return false
		}
	}
	for _, k := range r.ConsumerTypes {
		if _, ok := c.st.TypeIDs[k]; !ok {
			return false
		}
	}
	return true
}

// checkProviders reports the first provider named, in request order,
// that does not exist.
func (c *claimTx) checkProviders() error {
	for _, w := range c.writes {
		for _, p := range w.providers {
			if u, ok := parseUUIDLike(p.Key); !ok || c.st.Providers[u] == nil {
				return badRequest(msgProviderDoesNotExistFormat, p.Key)
			}
		}
	}
	return nil
}

// prepareConsumers is the reshaper's first step of a claim: it locks the
// existing consumers, checks their generations in request order and
// resolves the projects, users and types of the consumers it writes.
func prepareConsumers(ctx context.Context, tx pgx.Tx, writes []consumerWrite, v openstack.Version) (*claimTx, error) {
	c := &claimTx{writes: writes}
	var r store.ClaimRead
	c.readConsumers(&r)
	if err := store.ReadClaim(ctx, store.SendOn(tx), r, &c.st); err != nil {
		return nil, err
	}
	err := c.checkConsumers(ctx, func(context.Context) (pg.DBTX, error) { return tx, nil }, v)
	return c, err
}

// lockClaimProviders locks, in id order, every provider whose generation
// the claim bumps: those named in the request (plus extra, for the
// reshaper) and those holding allocations of consumers being emptied. Then
// it reports the first named provider, in request order, that does not
// exist. The result is keyed by canonical uuid.
func lockClaimProviders(ctx context.Context, tx pgx.Tx, writes []consumerWrite, c *claimTx, extra []string) (map[string]*store.LockedProvider, error) {
	r := store.ClaimRead{LockProviders: true, Providers: extra}
	c.readProviders(&r)
	if err := store.ReadClaim(ctx, store.SendOn(tx), r, &c.st); err != nil {
		return nil, err
	}
	if err := c.checkProviders(); err != nil {
		return nil, err
	}
	return c.st.Providers, nil
}

// applyAllocations is the reshaper's last step of a claim, with the
// providers locked: it reads the inventories as they are now and writes
// the allocations.
func applyAllocations(ctx context.Context, tx pgx.Tx, writes []consumerWrite, c *claimTx, locked map[string]*store.LockedProvider) error {
	var r store.ClaimRead
	c.readProviders(&r)
	c.readUsage(&r)
	if err := store.ReadClaim(ctx, store.SendOn(tx), r, &c.st); err != nil {
		return err
	}
	w, err := c.plan()
	if err != nil {
		return err
	}
	return writeClaim(ctx, store.SendOn(tx), w)
}

// writeClaim writes what the claim decided, naming a lost provider race
// for the final message.
func writeClaim(ctx context.Context, send store.Send, w *store.ClaimWrite) error {
	err := store.WriteClaim(ctx, send, w)
	if errors.Is(err, store.ErrProviderGeneration) {
		return errProviderConcurrent
	}
	return err
}

// plan decides the replacement of the consumers' allocations from what the
// claim read under the provider locks: class and capacity checks against
// the usage without the consumers' current allocations, the new rows, a
// generation bump of every provider involved and of every consumer, and
// removal of consumers left without allocations.
func (c *claimTx) plan() (*store.ClaimWrite, error) {
	byID := make(map[int64]*store.LockedProvider, len(c.st.Providers))
	for _, p := range c.st.Providers {
		byID[p.ID] = p
	}
	w := &store.ClaimWrite{}
	for _, cw := range c.writes {
		if cons := c.consumers[cw.uuid]; cons != nil && !c.created[cw.uuid] {
			w.Replaced = append(w.Replaced, cons.ID)
			if len(cw.providers) == 0 {
				w.Emptied = append(w.Emptied, cons.ID)
			}
		}
	}
	removed := map[int64][]store.ConsumerProviderAllocation{}
	for _, k := range c.st.Removed {
		removed[k.ConsumerID] = append(removed[k.ConsumerID], k)
	}

	var items []claims.Item
	for _, cw := range c.writes {
		cons := c.consumers[cw.uuid]
		if cons == nil {
			continue
		}
		if len(cw.providers) == 0 {
			for _, k := range removed[cons.ID] {
				p := byID[k.ProviderID]
				if p == nil {
					return nil, fmt.Errorf("provider %d of consumer %s was not locked", k.ProviderID, cons.UUID)
				}
				items = append(items, claims.Item{Provider: p, Consumer: cons, Class: k.ClassName, ClassID: k.ClassID})
			}
			continue
		}
		for _, pr := range cw.providers {
			u, _ := parseUUIDLike(pr.Key)
			for _, res := range pr.Value.Resources {
				items = append(items, claims.Item{Provider: c.st.Providers[u], Consumer: cons, Class: res.Key, Used: res.Value.n})
			}
		}
	}
	for i := range items {
		if items[i].Used == 0 {
			continue
		}
		id, ok := c.st.ClassIDs[items[i].Class]
		if !ok {
			return nil, &classNotFoundError{name: items[i].Class}
		}
		items[i].ClassID = id
	}
	if err := claims.CheckCapacity(items, c.st.Usages); err != nil {
		return nil, err
	}

	seenP := map[int64]bool{}
	seenC := map[string]bool{}
	for _, it := range items {
		if it.Used > 0 {
			w.Allocations = append(w.Allocations, store.NewAllocation{ProviderID: it.Provider.ID,
				ConsumerUUID: it.Consumer.UUID, ClassID: it.ClassID, Used: int(it.Used)})
		}
		if !seenP[it.Provider.ID] {
			seenP[it.Provider.ID] = true
			w.Providers = append(w.Providers, it.Provider)
		}
		if !seenC[it.Consumer.UUID] {
			seenC[it.Consumer.UUID] = true
			if c.created[it.Consumer.UUID] {
				w.NewConsumers = append(w.NewConsumers, it.Consumer)
			} else {
				w.Consumers = append(w.Consumers, it.Consumer)
			}
		}
	}
	return w, nil
}

// claim replaces the allocations of the consumers atomically, retrying
// lost races up to the configured count. Correctness does not rest on the
// retries: the provider rows are locked for the whole check-and-write, so
// two claims on one provider are serialized and the second sees the first's
// usage. Retries cover a consumer created concurrently and deadlocks.
//
// One attempt is one transaction of two round trips: the first begins it
// and reads everything under the consumer and provider locks, the second
// writes and commits.
func (s *Server) claim(ctx context.Context, writes []consumerWrite, v openstack.Version, msgs claimErrors) error {
	var last error
	for range max(s.cfg.AllocationConflictRetries, 1) {
		var err error
		if s.cfg.Hooks.Allocations != nil {
			err = s.claimWithHook(ctx, writes, v)
		} else {
			err = s.claimOnce(ctx, writes, v)
		}
		if err == nil {
			return nil
		}
		if !claims.Retryable(err) {
			err = mapClaimError(err, msgs)
			s.metrics.claimOutcome(err)
			return err
		}
		s.metrics.conflicts.WithLabelValues(conflictRetry).Inc()
		last = err
	}
	s.metrics.conflicts.WithLabelValues(conflictRetriesExhausted).Inc()
	openstack.Logger(ctx).WarnContext(ctx, "allocation write exceeded its retries", "retries", s.cfg.AllocationConflictRetries, "error", last)
	if errors.Is(last, errProviderConcurrent) {
		return msgs.concurrent(msgProviderConcurrentUpdate)
	}
	return msgs.concurrent(msgConcurrentUpdate)
}

// claimOnce is one attempt of a claim without hook, pipelined.
func (s *Server) claimOnce(ctx context.Context, writes []consumerWrite, v openstack.Version) error {
	return pg.WithBatchTx(ctx, s.db, func(tx *pg.BatchTx) error {
		c := &claimTx{writes: writes}
		r := store.ClaimRead{LockProviders: true}
		c.readConsumers(&r)
		c.readProviders(&r)
		c.readUsage(&r)
		if err := store.ReadClaim(ctx, tx.Send, r, &c.st); err != nil {
			return err
		}
		if err := c.checkConsumers(ctx, tx.DB, v); err != nil {
			return err
		}
		if err := c.checkProviders(); err != nil {
			return err
		}
		w, err := c.plan()
		if err != nil {
			return err
		}
		return writeClaim(ctx, tx.Commit, w)
	})
}

// claimWithHook is one attempt of a claim in an ordinary transaction, so
// that the allocations hook writes in it after the claim: what it records
// commits with the allocations or not at all.
func (s *Server) claimWithHook(ctx context.Context, writes []consumerWrite, v openstack.Version) error {
	return pg.WithTx(ctx, s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		c := &claimTx{writes: writes}
		r := store.ClaimRead{LockProviders: true}
		c.readConsumers(&r)
		c.readProviders(&r)
		c.readUsage(&r)
		if err := store.ReadClaim(ctx, store.SendOn(tx), r, &c.st); err != nil {
			return err
		}
		if err := c.checkConsumers(ctx, func(context.Context) (pg.DBTX, error) { return tx, nil }, v); err != nil {
			return err
		}
		if err := c.checkProviders(); err != nil {
			return err
		}
		w, err := c.plan()
		if err != nil {
			return err
		}
		if err := writeClaim(ctx, store.SendOn(tx), w); err != nil {
			return err
		}
		return s.cfg.Hooks.Allocations.AllocationsWritten(ctx, tx, hookWrite(ctx, writes))
	})
}

// mapClaimError turns the claim's typed failures into API errors.
func mapClaimError(err error, msgs claimErrors) error {
	var apiErr *openstack.Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var cnf *classNotFoundError
	if errors.As(err, &cnf) {
		return msgs.classNotFound(cnf)
	}
	var inv *claims.InvalidInventoryError
	if errors.As(err, &inv) {
		return conflict("", "%s%s", msgUnableToAllocatePrefix, inv.Msg)
	}
	return err
}

func allocationsChanged(msg string) *openstack.Error {
	return conflict(CodeConcurrentUpdate, "%s%s", msgAllocationsChangedPrefix, msg)
}

// ---------------------------------------------------------------------------
// Handlers

// putAllocationsSchema picks the body schema of PUT /allocations/{c}.
func putAllocationsSchema(v openstack.Version) validator {
	switch {
	case v.AtLeast(38):
		return schemaPutAllocationsV1_38
	case v.AtLeast(34):
		return schemaPutAllocationsV1_34
	case v.AtLeast(28):
		return schemaPutAllocationsV1_28
	case v.AtLeast(12):
		return schemaPutAllocationsV1_12
	case v.AtLeast(8):
		return schemaPutAllocationsV1_8
	}
	return schemaPutAllocationsV1_0
}

// postAllocationsSchema picks the body schema of POST /allocations.
func postAllocationsSchema(v openstack.Version) validator {
	switch {
	case v.AtLeast(38):
		return schemaPostAllocationsV1_38
	case v.AtLeast(34):
		return schemaPostAllocationsV1_34
	case v.AtLeast(28):
		return schemaPostAllocationsV1_28
	}
	return schemaPostAllocationsV1_13
}

// setConsumerAllocations is PUT /allocations/{consumer_uuid}.
func (s *Server) setConsumerAllocations(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleAllocationsUpdate, policy.Target{}); err != nil {
		return err
	}
	raw := pathVar(r, "consumer_uuid")
	consumerUUID, ok := parseUUIDLike(raw)
	if !ok {
		return badRequest("Malformed consumer_uuid: %s", raw)
	}
	v := version(r)
	var body consumerAllocationsBody
	if v.AtLeast(12) {
		if err := s.readJSON(r, putAllocationsSchema(v), &body); err != nil {
			return err
		}
	} else {
		var list listAllocationsBody
		if err := s.readJSON(r, putAllocationsSchema(v), &list); err != nil {
			return err
		}
		index := map[string]int{}
		for _, a := range list.Allocations {
			e := entry[providerResources]{Key: a.ResourceProvider.UUID, Value: providerResources{Resources: a.Resources}}
			if i, dup := index[e.Key]; dup {
				body.Allocations[i] = e
				continue
			}
			index[e.Key] = len(body.Allocations)
			body.Allocations = append(body.Allocations, e)
		}
		body.ProjectID, body.UserID = list.ProjectID, list.UserID
	}
	write := s.toWrite(consumerUUID, body, v)
	err := s.claim(r.Context(), []consumerWrite{write}, v, claimErrors{
		classNotFound: func(e error) *openstack.Error {
			return badRequest("Unable to allocate inventory for consumer %s: %s", consumerUUID, e)
		},
		concurrent: allocationsChanged,
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setAllocations is POST /allocations (1.13): several consumers at once,
// an empty allocations object removing a consumer's allocations.
func (s *Server) setAllocations(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleAllocationsManage, policy.Target{}); err != nil {
		return err
	}
	v := version(r)
	var body orderedMap[consumerAllocationsBody]
	if err := s.readJSON(r, postAllocationsSchema(v), &body); err != nil {
		return err
	}
	writes, err := s.consumerWrites(body, v)
	if err != nil {
		return err
	}
	err = s.claim(r.Context(), writes, v, claimErrors{
		classNotFound: func(e error) *openstack.Error { return badRequest("Unable to allocate inventory %s", e) },
		concurrent:    allocationsChanged,
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// consumerWrites normalizes a dict of consumers (POST /allocations, the
// reshaper). Consumer keys that differ only in spelling name one consumer;
// the later one wins.
func (s *Server) consumerWrites(body orderedMap[consumerAllocationsBody], v openstack.Version) ([]consumerWrite, error) {
	writes := make([]consumerWrite, 0, len(body))
	index := map[string]int{}
	for _, e := range body {
		u, ok := parseUUIDLike(e.Key)
		if !ok {
			return nil, badRequest("Malformed consumer_uuid: %s", e.Key)
		}
		cw := s.toWrite(u, e.Value, v)
		if i, dup := index[u]; dup {
			writes[i] = cw
			continue
		}
		index[u] = len(writes)
		writes = append(writes, cw)
	}
	return writes, nil
}

// providerAllocationsJSON is one provider in GET /allocations/{consumer}.
type providerAllocationsJSON struct {
	Resources  map[string]int `json:"resources"`
	Generation int            `json:"generation"`
}

// listConsumerAllocations is GET /allocations/{consumer_uuid}. It never
// 404s: a consumer without allocations (or an id that is not a uuid) has an
// empty allocations object.
func (s *Server) listConsumerAllocations(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleAllocationsList, policy.Target{}); err != nil {
		return err
	}
	v := version(r)
	out := map[string]any{}
	allocs := map[string]*providerAllocationsJSON{}
	out["allocations"] = allocs
	var lastModified time.Time
	if u, ok := parseUUIDLike(pathVar(r, "consumer_uuid")); ok {
		ca, err := store.GetConsumerAllocations(r.Context(), s.db, u)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if ca != nil {
			for _, a := range ca.Allocations {
				p := allocs[a.ProviderUUID]
				if p == nil {
					p = &providerAllocationsJSON{Resources: map[string]int{}}
					allocs[a.ProviderUUID] = p
				}
				p.Resources[a.ResourceClass] = a.Used
				p.Generation = a.ProviderGeneration
				lastModified = latest(lastModified, a.CreatedAt, a.UpdatedAt)
			}
			if v.AtLeast(12) {
				out["project_id"] = ca.ProjectExternalID
				out["user_id"] = ca.UserExternalID
				if v.AtLeast(28) {
					out["consumer_generation"] = ca.Generation
				}
				if v.AtLeast(38) {
					ct := consumerTypeUnknown
					if ca.ConsumerType != nil {
						ct = *ca.ConsumerType
					}
					out["consumer_type"] = ct
				}
			}
		}
	}
	setLastModified(w, r, lastModified)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// latest is upstream's pick_last_modified over allocation rows: a row's
// updated_at if it has one, else its created_at.
func latest(cur, created time.Time, updated *time.Time) time.Time {
	t := created
	if updated != nil {
		t = *updated
	}
	if t.After(cur) {
		return t
	}
	return cur
}

// consumerResourcesJSON is one consumer in GET
// /resource_providers/{uuid}/allocations.
type consumerResourcesJSON struct {
	Resources          map[string]int `json:"resources"`
	ConsumerGeneration *int           `json:"consumer_generation,omitempty"`
}

// listProviderAllocations is GET /resource_providers/{uuid}/allocations.
func (s *Server) listProviderAllocations(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleProviderAllocationsList, policy.Target{}); err != nil {
		return err
	}
	raw := pathVar(r, "uuid")
	notFoundErr := notFound("Resource provider '%s' not found: No resource provider with uuid %s found", raw, raw)
	u, ok := normalizeUUID(raw)
	if !ok {
		return notFoundErr
	}
	rp, err := store.GetProvider(r.Context(), s.db, u)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundErr
	}
	if err != nil {
		return err
	}
	rows, err := store.ListProviderAllocations(r.Context(), s.db, rp.ID)
	if err != nil {
		return err
	}
	v := version(r)
	allocs := map[string]*consumerResourcesJSON{}
	var lastModified time.Time
	for _, a := range rows {
		c := allocs[a.ConsumerUUID]
		if c == nil {
			c = &consumerResourcesJSON{Resources: map[string]int{}}
			if v.AtLeast(28) {
				g := a.ConsumerGeneration
				c.ConsumerGeneration = &g
			}
			allocs[a.ConsumerUUID] = c
		}
		c.Resources[a.ResourceClass] = a.Used
		lastModified = latest(lastModified, a.CreatedAt, a.UpdatedAt)
	}
	setLastModified(w, r, lastModified)
	writeJSON(w, http.StatusOK, map[string]any{
		"allocations":                  allocs,
		"resource_provider_generation": rp.Generation,
	})
	return nil
}

// deleteConsumerAllocations is DELETE /allocations/{consumer_uuid}. Unlike
// a write of empty allocations it leaves provider generations alone, as
// upstream does.
func (s *Server) deleteConsumerAllocations(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleAllocationsDelete, policy.Target{}); err != nil {
		return err
	}
	raw := pathVar(r, "consumer_uuid")
	noneErr := notFound("No allocations for consumer '%s'", raw)
	u, ok := parseUUIDLike(raw)
	if !ok {
		return noneErr
	}
	var err error
	if hook := s.cfg.Hooks.Allocations; hook != nil {
		ctx := r.Context()
		err = pg.WithTx(ctx, s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
			if err := store.DeleteAllAllocationsOfConsumer(ctx, tx, u); err != nil {
				return err
			}
			return hook.AllocationsWritten(ctx, tx, AllocationsWrite{GlobalRequestID: globalRequestID(ctx),
				Consumers: []ConsumerAllocations{{ConsumerUUID: u}}})
		})
	} else {
		// One transaction of two round trips, the second with the commit.
		err = pg.WithBatchTx(r.Context(), s.db, func(tx *pg.BatchTx) error {
			return store.DeleteAllAllocationsOfConsumerIn(r.Context(), tx.Send, tx.Commit, u)
		})
	}
	if errors.Is(err, store.ErrNotFound) {
		return noneErr
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---------------------------------------------------------------------------
// Schemas: upstream placement/schemas/allocation.py (8.0.0), serialized in
// their key order, which is the order python-jsonschema evaluates keywords.

var (
	schemaPutAllocationsV1_0   = jsonschema.MustCompile(putAllocationsSchemaV1_0)
	schemaPutAllocationsV1_8   = jsonschema.MustCompile(putAllocationsSchemaV1_8)
	schemaPutAllocationsV1_12  = jsonschema.MustCompile(putAllocationsSchemaV1_12)
	schemaPutAllocationsV1_28  = jsonschema.MustCompile(putAllocationsSchemaV1_28)
	schemaPutAllocationsV1_34  = jsonschema.MustCompile(putAllocationsSchemaV1_34)
	schemaPutAllocationsV1_38  = jsonschema.MustCompile(putAllocationsSchemaV1_38)
	schemaPostAllocationsV1_13 = jsonschema.MustCompile(postAllocationsSchemaV1_13)
	schemaPostAllocationsV1_28 = jsonschema.MustCompile(postAllocationsSchemaV1_28)
	schemaPostAllocationsV1_34 = jsonschema.MustCompile(postAllocationsSchemaV1_34)
	schemaPostAllocationsV1_38 = jsonschema.MustCompile(postAllocationsSchemaV1_38)
)

const (
	putAllocationsSchemaV1_0   = `{"type": "object", "properties": {"allocations": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {"resource_provider": {"type": "object", "properties": {"uuid": {"type": "string", "format": "uuid"}}, "additionalProperties": false, "required": ["uuid"]}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resource_provider", "resources"], "additionalProperties": false}}}, "required": ["allocations"], "additionalProperties": false}`
	putAllocationsSchemaV1_8   = `{"type": "object", "properties": {"allocations": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {"resource_provider": {"type": "object", "properties": {"uuid": {"type": "string", "format": "uuid"}}, "additionalProperties": false, "required": ["uuid"]}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resource_provider", "resources"], "additionalProperties": false}}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}}, "required": ["allocations", "project_id", "user_id"], "additionalProperties": false}`
	putAllocationsSchemaV1_12  = `{"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 1, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id"]}`
	putAllocationsSchemaV1_28  = `{"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation"]}`
	putAllocationsSchemaV1_34  = `{"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}, "mappings": {"type": "object", "minProperties": 1, "patternProperties": {"[a-zA-Z0-9_-]{1,64}": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uuid"}}}}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation"]}`
	putAllocationsSchemaV1_38  = `{"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}, "mappings": {"type": "object", "minProperties": 1, "patternProperties": {"[a-zA-Z0-9_-]{1,64}": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uuid"}}}}, "consumer_type": {"type": "string", "pattern": "^[A-Z0-9_]+$", "minLength": 1, "maxLength": 255}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation", "consumer_type"]}`
	postAllocationsSchemaV1_13 = `{"type": "object", "minProperties": 1, "additionalProperties": false, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id"]}}}`
	postAllocationsSchemaV1_28 = `{"type": "object", "minProperties": 1, "additionalProperties": false, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation"]}}}`
	postAllocationsSchemaV1_34 = `{"type": "object", "minProperties": 1, "additionalProperties": false, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}, "mappings": {"type": "object", "minProperties": 1, "patternProperties": {"[a-zA-Z0-9_-]{1,64}": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uuid"}}}}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation"]}}}`
	postAllocationsSchemaV1_38 = `{"type": "object", "minProperties": 1, "additionalProperties": false, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}, "mappings": {"type": "object", "minProperties": 1, "patternProperties": {"[a-zA-Z0-9_-]{1,64}": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uuid"}}}}, "consumer_type": {"type": "string", "pattern": "^[A-Z0-9_]+$", "minLength": 1, "maxLength": 255}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation", "consumer_type"]}}}`
)

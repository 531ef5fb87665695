package placement

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/jsonschema"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/store"
)

// ruleReshape is upstream's placement/policies/reshaper.py rule.
const ruleReshape = "placement:reshaper:reshape"

// reshaperBody is POST /reshaper: the complete new inventories of some
// providers and the complete new allocations of some consumers.
type reshaperBody struct {
	Inventories orderedMap[reshaperInventories]     `json:"inventories"`
	Allocations orderedMap[consumerAllocationsBody] `json:"allocations"`
}

type reshaperInventories struct {
	ResourceProviderGeneration *int64           `json:"resource_provider_generation"`
	Inventories                inventoryRecords `json:"inventories"`
}

// reshapeTarget is one provider whose inventory the reshape replaces.
type reshapeTarget struct {
	uuid       string // canonical
	generation int64  // as the client saw it
	invs       []store.Inventory
}

func reshaperSchema(v openstack.Version) validator {
	switch {
	case v.AtLeast(38):
		return schemaReshaperV1_38
	case v.AtLeast(34):
		return schemaReshaperV1_34
	}
	return schemaReshaperV1_30
}

func providerGenerationConflict(uuid string, actual int, given int64) *openstack.Error {
	return conflict(CodeConcurrentUpdate, "resource provider generation conflict for provider %s: actual: %d, given: %d",
		uuid, actual, given)
}

// reshape is POST /reshaper (1.30): inventories and allocations of several
// providers replaced in one transaction, typically moving a class of
// inventory, with the allocations against it, from a provider to a new
// child.
func (s *Server) reshape(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleReshape, policy.Target{}); err != nil {
		return err
	}
	v := version(r)
	var body reshaperBody
	if err := s.readJSON(r, reshaperSchema(v), &body); err != nil {
		return err
	}
	ctx := r.Context()

	// Upstream checks the providers and their generations first, before
	// looking at consumers; the same checks are repeated under lock below.
	var targets []reshapeTarget
	index := map[string]int{}
	for _, e := range body.Inventories {
		notFoundErr := &openstack.Error{Status: http.StatusBadRequest, Code: CodeProviderNotFound,
			Detail: "Resource provider " + e.Key + " in inventories not found: No resource provider with uuid " + e.Key + " found"}
		u, ok := parseUUIDLike(e.Key)
		if !ok {
			return notFoundErr
		}
		p, err := store.GetProvider(ctx, s.db, u)
		if errors.Is(err, store.ErrNotFound) {
			return notFoundErr
		}
		if err != nil {
			return err
		}
		var given int64
		if e.Value.ResourceProviderGeneration != nil {
			given = *e.Value.ResourceProviderGeneration
		}
		if given != int64(p.Generation) {
			return providerGenerationConflict(e.Key, p.Generation, given)
		}
		t := reshapeTarget{uuid: u, generation: given}
		for _, class := range e.Value.Inventories.classes {
			inv, err := parseInventory(class, e.Value.Inventories.records[class])
			if err != nil {
				return err
			}
			t.invs = append(t.invs, inv)
		}
		if i, dup := index[u]; dup {
			targets[i] = t
			continue
		}
		index[u] = len(targets)
		targets = append(targets, t)
	}
	writes, err := s.consumerWrites(body.Allocations, v)
	if err != nil {
		return err
	}

	var last error
	for range max(s.cfg.AllocationConflictRetries, 1) {
		err := pg.WithTx(ctx, s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
			if err := reshapeTx(ctx, tx, targets, writes, v); err != nil {
				return err
			}
			if hook := s.cfg.Hooks.Allocations; hook != nil {
				return hook.AllocationsWritten(ctx, tx, hookWrite(ctx, writes))
			}
			return nil
		})
		if err == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if !claims.Retryable(err) {
			return mapReshapeError(err)
		}
		last = err
	}
	s.log.WarnContext(ctx, "reshape exceeded its retries", "retries", s.cfg.AllocationConflictRetries, "error", last)
	msg := msgConcurrentUpdate
	if errors.Is(last, errProviderConcurrent) {
		msg = msgProviderConcurrentUpdate
	}
	return conflict(CodeConcurrentUpdate, "update conflict: %s", msg)
}

// reshapeTx is one attempt. Inventories cannot be removed while allocated
// and allocations cannot be made without inventory, so it goes in three
// steps as upstream does: each provider first gets the union of its old
// and new inventories (old classes that remain take their new values; a
// provider whose new inventory is empty is left alone), then the
// allocations are replaced, then each provider gets exactly its new
// inventory. Every step bumps the generations it touches.
func reshapeTx(ctx context.Context, tx pgx.Tx, targets []reshapeTarget, writes []consumerWrite, v openstack.Version) error {
	consumers, err := prepareConsumers(ctx, tx, writes, v)
	if err != nil {
		return err
	}
	extra := make([]string, len(targets))
	for i, t := range targets {
		extra[i] = t.uuid
	}
	locked, err := lockClaimProviders(ctx, tx, writes, consumers, extra)
	if err != nil {
		return err
	}
	providers := make([]*store.Provider, len(targets))
	for i, t := range targets {
		lp := locked[t.uuid]
		if lp == nil {
			return &openstack.Error{Status: http.StatusBadRequest, Code: CodeProviderNotFound,
				Detail: "Resource provider " + t.uuid + " in inventories not found: No resource provider with uuid " + t.uuid + " found"}
		}
		if int64(lp.Generation) != t.generation {
			return providerGenerationConflict(t.uuid, lp.Generation, t.generation)
		}
		providers[i] = &store.Provider{ID: lp.ID, UUID: lp.UUID, Generation: lp.Generation}
	}

	replace := func(i int, invs []store.Inventory) error {
		p := providers[i]
		p.Generation = locked[p.UUID].Generation
		if _, err := store.ReplaceInventories(ctx, tx, p, invs); err != nil {
			if errors.Is(err, store.ErrConcurrentUpdate) {
				return errProviderConcurrent
			}
			return err
		}
		locked[p.UUID].Generation = p.Generation
		return nil
	}
	for i, t := range targets {
		if len(t.invs) == 0 {
			continue
		}
		existing, err := store.ListInventories(ctx, tx, providers[i].ID)
		if err != nil {
			return err
		}
		union := append([]store.Inventory{}, t.invs...)
		for _, old := range existing {
			if !hasClass(t.invs, old.ResourceClass) {
				union = append(union, old)
			}
		}
		if err := replace(i, union); err != nil {
			return err
		}
	}
	if err := applyAllocations(ctx, tx, writes, consumers, locked); err != nil {
		return err
	}
	for i, t := range targets {
		if err := replace(i, append([]store.Inventory{}, t.invs...)); err != nil {
			return err
		}
	}
	return nil
}

func hasClass(invs []store.Inventory, class string) bool {
	for _, inv := range invs {
		if inv.ResourceClass == class {
			return true
		}
	}
	return false
}

// mapReshapeError words failures as upstream's reshaper handler does.
func mapReshapeError(err error) error {
	var apiErr *openstack.Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var cnf *classNotFoundError
	var unknown *store.UnknownClassError
	if errors.As(err, &cnf) {
		return badRequest("malformed reshaper data: %s", cnf)
	}
	if errors.As(err, &unknown) {
		return badRequest("malformed reshaper data: %s", unknown)
	}
	var inUse *store.InventoryInUseError
	if errors.As(err, &inUse) {
		return conflict(CodeInventoryInUse, "update conflict: %s", inUse)
	}
	var inv *claims.InvalidInventoryError
	if errors.As(err, &inv) {
		return conflict("", "%s%s", msgUnableToAllocatePrefix, inv.Msg)
	}
	return err
}

// Schemas: upstream placement/schemas/reshaper.py (8.0.0), serialized in
// their key order.
var (
	schemaReshaperV1_30 = jsonschema.MustCompile(reshaperSchemaV1_30)
	schemaReshaperV1_34 = jsonschema.MustCompile(reshaperSchemaV1_34)
	schemaReshaperV1_38 = jsonschema.MustCompile(reshaperSchemaV1_38)
)

const (
	reshaperSchemaV1_30 = `{"type": "object", "properties": {"inventories": {"type": "object", "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"resource_provider_generation": {"type": "integer"}, "inventories": {"type": "object", "patternProperties": {"^[A-Z0-9_]+$": {"type": "object", "properties": {"resource_provider_generation": {"type": "integer"}, "total": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "reserved": {"type": "integer", "maximum": 2147483647, "minimum": 0}, "min_unit": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "max_unit": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "step_size": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "allocation_ratio": {"type": "number", "maximum": 3.40282e+38}}, "required": ["total"], "additionalProperties": false}}}}, "required": ["resource_provider_generation", "inventories"], "additionalProperties": false}}, "minProperties": 1, "additionalProperties": false}, "allocations": {"type": "object", "minProperties": 0, "additionalProperties": false, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation"]}}}}, "required": ["inventories", "allocations"], "additionalProperties": false}`
	reshaperSchemaV1_34 = `{"type": "object", "properties": {"inventories": {"type": "object", "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"resource_provider_generation": {"type": "integer"}, "inventories": {"type": "object", "patternProperties": {"^[A-Z0-9_]+$": {"type": "object", "properties": {"resource_provider_generation": {"type": "integer"}, "total": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "reserved": {"type": "integer", "maximum": 2147483647, "minimum": 0}, "min_unit": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "max_unit": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "step_size": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "allocation_ratio": {"type": "number", "maximum": 3.40282e+38}}, "required": ["total"], "additionalProperties": false}}}}, "required": ["resource_provider_generation", "inventories"], "additionalProperties": false}}, "minProperties": 1, "additionalProperties": false}, "allocations": {"type": "object", "minProperties": 0, "additionalProperties": false, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}, "mappings": {"type": "object", "minProperties": 1, "patternProperties": {"[a-zA-Z0-9_-]{1,64}": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uuid"}}}}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation"]}}}}, "required": ["inventories", "allocations"], "additionalProperties": false}`
	reshaperSchemaV1_38 = `{"type": "object", "properties": {"inventories": {"type": "object", "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"resource_provider_generation": {"type": "integer"}, "inventories": {"type": "object", "patternProperties": {"^[A-Z0-9_]+$": {"type": "object", "properties": {"resource_provider_generation": {"type": "integer"}, "total": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "reserved": {"type": "integer", "maximum": 2147483647, "minimum": 0}, "min_unit": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "max_unit": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "step_size": {"type": "integer", "maximum": 2147483647, "minimum": 1}, "allocation_ratio": {"type": "number", "maximum": 3.40282e+38}}, "required": ["total"], "additionalProperties": false}}}}, "required": ["resource_provider_generation", "inventories"], "additionalProperties": false}}, "minProperties": 1, "additionalProperties": false}, "allocations": {"type": "object", "minProperties": 0, "additionalProperties": false, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"allocations": {"type": "object", "minProperties": 0, "patternProperties": {"^[0-9a-fA-F-]{36}$": {"type": "object", "properties": {"generation": {"type": "integer"}, "resources": {"type": "object", "minProperties": 1, "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}}, "additionalProperties": false}}, "required": ["resources"], "additionalProperties": false}}, "additionalProperties": false}, "project_id": {"type": "string", "minLength": 1, "maxLength": 255}, "user_id": {"type": "string", "minLength": 1, "maxLength": 255}, "consumer_generation": {"type": ["integer", "null"], "additionalProperties": false}, "mappings": {"type": "object", "minProperties": 1, "patternProperties": {"[a-zA-Z0-9_-]{1,64}": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uuid"}}}}, "consumer_type": {"type": "string", "pattern": "^[A-Z0-9_]+$", "minLength": 1, "maxLength": 255}}, "additionalProperties": false, "required": ["allocations", "project_id", "user_id", "consumer_generation", "consumer_type"]}}}}, "required": ["inventories", "allocations"], "additionalProperties": false}`
)

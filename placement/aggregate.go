package placement

import (
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/store"
)

// Request body schemas of upstream placement/schemas/aggregate.py: a bare
// list before 1.19, then an object carrying the provider generation.
const (
	schemaPutAggregates = `{
  "type": "array",
  "items": {"type": "string", "format": "uuid"},
  "uniqueItems": true
}`
	schemaPutAggregates1_19 = `{
  "type": "object",
  "properties": {
    "aggregates": {
      "type": "array",
      "items": {"type": "string", "format": "uuid"},
      "uniqueItems": true
    },
    "resource_provider_generation": {"type": "integer"}
  },
  "required": ["aggregates", "resource_provider_generation"],
  "additionalProperties": false
}`
)

var (
	putAggregatesSchema     = compileProviderSchema(schemaPutAggregates)
	putAggregatesSchema1_19 = compileProviderSchema(schemaPutAggregates1_19)
)

// Policy rules of upstream placement/policies/aggregate.py.
const (
	ruleAggregatesList   = "placement:resource_providers:aggregates:list"
	ruleAggregatesUpdate = "placement:resource_providers:aggregates:update"
)

// sendAggregates writes the aggregates document. Association times are
// not recorded, so last-modified is now, as upstream.
func sendAggregates(w http.ResponseWriter, r *http.Request, p *store.Provider, aggs []string) {
	body := map[string]any{"aggregates": aggs}
	if version(r).AtLeast(19) {
		body["resource_provider_generation"] = p.Generation
	}
	setLastModified(w, r, time.Now())
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getAggregates(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleAggregatesList, policy.Target{}); err != nil {
		return err
	}
	p, err := loadProvider(r.Context(), s.db, r, false)
	if err != nil {
		return err
	}
	aggs, err := store.ProviderAggregates(r.Context(), s.db, p.ID)
	if err != nil {
		return err
	}
	sendAggregates(w, r, p, aggs)
	return nil
}

func (s *Server) setAggregates(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleAggregatesUpdate, policy.Target{}); err != nil {
		return err
	}
	withGeneration := version(r).AtLeast(19)
	if _, err := loadProvider(r.Context(), s.db, r, false); err != nil {
		return err
	}
	schema := putAggregatesSchema
	if withGeneration {
		schema = putAggregatesSchema1_19
	}
	var body any
	if err := s.readJSON(r, schema, &body); err != nil {
		return err
	}
	aggs, gen, err := aggregatesBody(body, withGeneration)
	if err != nil {
		return err
	}
	canonical := make([]string, len(aggs))
	for i, a := range aggs {
		canonical[i], _ = normalizeUUID(a)
	}
	var p *store.Provider
	err = pg.WithTx(r.Context(), s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		p, err = loadProvider(r.Context(), tx, r, true)
		if err != nil {
			return err
		}
		if withGeneration && p.Generation != gen {
			return conflict(CodeConcurrentUpdate,
				"Resource provider's generation already changed. Please update the generation and try again.")
		}
		return store.SetProviderAggregates(r.Context(), tx, p, canonical, withGeneration)
	})
	if errors.Is(err, store.ErrConcurrentUpdate) {
		return conflict(CodeConcurrentUpdate, "Update conflict: Another thread concurrently updated the resource "+
			"provider data. Please retry your update")
	}
	if err != nil {
		return err
	}
	// The response echoes the request's uuids, as upstream.
	sendAggregates(w, r, p, aggs)
	return nil
}

// aggregatesBody extracts the aggregate uuids (and generation from 1.19)
// of a body the schema accepted; its checks keep bad input a 400 should
// a schema be missing.
func aggregatesBody(body any, withGeneration bool) (aggs []string, gen int, err error) {
	list := body
	if withGeneration {
		obj, ok := body.(map[string]any)
		if !ok {
			return nil, 0, badRequest("JSON does not validate: %v is not of type 'object'", body)
		}
		g, ok := jsonInt(obj["resource_provider_generation"])
		if !ok {
			return nil, 0, badRequest("JSON does not validate: 'resource_provider_generation' is a required property")
		}
		gen = g
		list = obj["aggregates"]
	}
	items, ok := list.([]any)
	if !ok {
		return nil, 0, badRequest("JSON does not validate: %v is not of type 'array'", list)
	}
	aggs = make([]string, 0, len(items))
	seen := map[string]bool{}
	for _, it := range items {
		s, ok := it.(string)
		c, valid := normalizeUUID(s)
		if !ok || !valid {
			return nil, 0, badRequest("JSON does not validate: %v is not a 'uuid'", it)
		}
		if seen[c] {
			return nil, 0, badRequest("JSON does not validate: %v has non-unique elements", items)
		}
		seen[c] = true
		aggs = append(aggs, s)
	}
	return aggs, gen, nil
}

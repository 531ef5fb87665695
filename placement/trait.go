package placement

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/qs"
	"github.com/unisched/unisched/placement/store"
)

// Schemas of upstream placement/schemas/trait.py.
const (
	schemaSetProviderTraits = `{
  "type": "object",
  "properties": {
    "traits": {
      "type": "array",
      "items": {"type": "string", "minLength": 1, "maxLength": 255}
    },
    "resource_provider_generation": {"type": "integer"}
  },
  "required": ["traits", "resource_provider_generation"],
  "additionalProperties": false
}`
)

var setProviderTraitsSchema = compileProviderSchema(schemaSetProviderTraits)

// listTraitsQuery is LIST_TRAIT_SCHEMA as a query-string schema; Text is
// Python's pprint of it, which the error message embeds.
var listTraitsQuery = &qs.Schema{
	Text: "{'additionalProperties': False,\n 'properties': {'associated': {'type': 'string'},\n                'name': {'type': 'string'}},\n 'type': 'object'}",
	Properties: []qs.Property{
		{Name: "name", Text: "{'type': 'string'}", Checks: []qs.Check{}},
		{Name: "associated", Text: "{'type': 'string'}", Checks: []qs.Check{}},
	},
}

// customTrait is CUSTOM_TRAIT's pattern.
var customTrait = regexp.MustCompile(`^CUSTOM_[A-Z0-9_]+$`)

// Policy rules of upstream placement/policies/trait.py.
const (
	ruleTraitsList          = "placement:traits:list"
	ruleTraitsShow          = "placement:traits:show"
	ruleTraitsUpdate        = "placement:traits:update"
	ruleTraitsDelete        = "placement:traits:delete"
	ruleProviderTraitList   = "placement:resource_providers:traits:list"
	ruleProviderTraitUpdate = "placement:resource_providers:traits:update"
	ruleProviderTraitDelete = "placement:resource_providers:traits:delete"
)

// serializeTraits returns the trait names and the latest change among
// them (zero when there are none: the caller's last-modified is then now).
func serializeTraits(traits []store.Trait) ([]string, time.Time) {
	names := make([]string, 0, len(traits))
	var modified time.Time
	for i := range traits {
		names = append(names, traits[i].Name)
		if t := traits[i].LastModified(); t.After(modified) {
			modified = t
		}
	}
	return names, modified
}

func (s *Server) listTraits(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleTraitsList, policy.Target{}); err != nil {
		return err
	}
	params, qerr := qs.ParseQuery(r.URL.RawQuery)
	if qerr != nil {
		return queryError(qerr)
	}
	if qerr := listTraitsQuery.Validate(params); qerr != nil {
		return queryError(qerr)
	}
	var f store.TraitFilter
	if name, ok := params.Get("name"); ok {
		op, value, found := strings.Cut(name, ":")
		if !found {
			return badRequest("Badly formatted name parameter. Expected name query string parameter in form: "+
				"?name=[in|startswith]:[name1,name2|prefix]. Got: \"%s\"", name)
		}
		switch op {
		case "in":
			f.NameIn = strings.Split(value, ",")
		case "startswith":
			f.Prefix = &value
		}
	}
	if assoc, ok := params.Get("associated"); ok {
		switch strings.ToLower(assoc) {
		case "true":
			yes := true
			f.Associated = &yes
		case "false":
			no := false
			f.Associated = &no
		default:
			return badRequest("The query parameter \"associated\" only accepts \"true\" or \"false\"")
		}
	}
	traits, err := store.ListTraits(r.Context(), s.db, f)
	if err != nil {
		return err
	}
	names, modified := serializeTraits(traits)
	setLastModified(w, r, modified)
	writeJSON(w, http.StatusOK, map[string]any{"traits": names})
	return nil
}

func (s *Server) getTrait(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleTraitsShow, policy.Target{}); err != nil {
		return err
	}
	name := pathVar(r, "name")
	t, err := store.GetTrait(r.Context(), s.db, name)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("No such trait(s): %s.", name)
	}
	if err != nil {
		return err
	}
	setLastModified(w, r, t.CreatedAt)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) putTrait(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleTraitsUpdate, policy.Target{}); err != nil {
		return err
	}
	name := pathVar(r, "name")
	if !customTrait.MatchString(name) || len([]rune(name)) > 255 {
		return badRequest("The trait is invalid. A valid trait must be no longer than 255 characters, start with " +
			"the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\"")
	}
	t, created, err := store.EnsureTrait(r.Context(), s.db, name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", location(r, "/traits/"+name))
	setLastModified(w, r, t.CreatedAt)
	if created {
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func (s *Server) deleteTrait(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleTraitsDelete, policy.Target{}); err != nil {
		return err
	}
	name := pathVar(r, "name")
	if _, err := store.GetTrait(r.Context(), s.db, name); errors.Is(err, store.ErrNotFound) {
		return notFound("No such trait(s): %s.", name)
	} else if err != nil {
		return err
	}
	if !strings.HasPrefix(name, "CUSTOM_") {
		return badRequest("Cannot delete standard trait %s.", name)
	}
	switch err := store.DeleteTrait(r.Context(), s.db, name); {
	case errors.Is(err, store.ErrNotFound):
		return notFound("No such trait(s): %s.", name)
	case errors.Is(err, store.ErrTraitInUse):
		return conflict("", "The trait %s is in use by a resource provider.", name)
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listProviderTraits(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleProviderTraitList, policy.Target{}); err != nil {
		return err
	}
	p, err := loadProvider(r.Context(), s.db, r, false)
	var apiErr *openstack.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		raw := pathVar(r, "uuid")
		return notFound("No resource provider with uuid %s found: No resource provider with uuid %s found", raw, raw)
	}
	if err != nil {
		return err
	}
	traits, err := store.ProviderTraits(r.Context(), s.db, p.ID)
	if err != nil {
		return err
	}
	names, modified := serializeTraits(traits)
	setLastModified(w, r, modified)
	writeJSON(w, http.StatusOK, traitsBody{Traits: names, Generation: p.Generation})
	return nil
}

// traitsBody is a provider's traits document.
type traitsBody struct {
	Traits     []string `json:"traits"`
	Generation int      `json:"resource_provider_generation"`
}

func (s *Server) setProviderTraits(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleProviderTraitUpdate, policy.Target{}); err != nil {
		return err
	}
	var body any
	if err := s.readJSON(r, setProviderTraitsSchema, &body); err != nil {
		return err
	}
	names, gen, err := providerTraitsBody(body)
	if err != nil {
		return err
	}
	if raw, u, ok := providerUUIDFromPath(r); ok && gen >= 0 && gen <= math.MaxInt32 {
		// The common case in one round trip; anything unexpected is
		// answered by the step-by-step transaction below.
		var traits []store.Trait
		var newGen int
		err := pg.WithBatchTx(r.Context(), s.db, func(tx *pg.BatchTx) error {
			var err error
			traits, newGen, err = store.SetProviderTraitsAt(r.Context(), tx.Commit, u, gen, names)
			return err
		})
		if err == nil {
			out, modified := serializeTraits(traits)
			setLastModified(w, r, modified)
			writeJSON(w, http.StatusOK, traitsBody{Traits: out, Generation: newGen})
			return nil
		}
		if !errors.Is(err, store.ErrFallBack) {
			return fmt.Errorf("setting traits of provider %s: %w", raw, err)
		}
	}
	var p *store.Provider
	var traits []store.Trait
	// One transaction of two round trips: lock the provider and read the
	// traits, then write and commit.
	err = pg.WithBatchTx(r.Context(), s.db, func(tx *pg.BatchTx) error {
		raw, u, ok := providerUUIDFromPath(r)
		if !ok {
			return notFound("No resource provider with uuid %s found", raw)
		}
		var err error
		p, traits, err = store.LockProviderTraits(r.Context(), tx.Send, u, names)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("No resource provider with uuid %s found", raw)
		}
		if err != nil {
			return err
		}
		if p.Generation != gen {
			return conflict(CodeConcurrentUpdate,
				"Resource provider's generation already changed. Please update the generation and try again.")
		}
		if missing := missingTraits(names, traits); len(missing) > 0 {
			return badRequest("No such trait %s", strings.Join(missing, ", "))
		}
		ids := make([]int64, len(traits))
		for i := range traits {
			ids[i] = traits[i].ID
		}
		return store.SetProviderTraitsIn(r.Context(), tx.Commit, p, ids)
	})
	if errors.Is(err, store.ErrConcurrentUpdate) {
		return conflict(CodeConcurrentUpdate, "Another thread concurrently updated the resource provider data. "+
			"Please retry your update")
	}
	if err != nil {
		return err
	}
	out, modified := serializeTraits(traits)
	setLastModified(w, r, modified)
	writeJSON(w, http.StatusOK, traitsBody{Traits: out, Generation: p.Generation})
	return nil
}

// missingTraits lists, sorted, the requested names that are not traits.
func missingTraits(names []string, found []store.Trait) []string {
	have := make(map[string]bool, len(found))
	for _, t := range found {
		have[t.Name] = true
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			have[n] = true
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	return missing
}

// providerTraitsBody extracts the traits and generation of a body the
// schema accepted; its checks keep bad input a 400 should a schema be
// missing.
func providerTraitsBody(body any) ([]string, int, error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, 0, badRequest("JSON does not validate: %v is not of type 'object'", body)
	}
	gen, ok := jsonInt(obj["resource_provider_generation"])
	if !ok {
		return nil, 0, badRequest("JSON does not validate: 'resource_provider_generation' is a required property")
	}
	items, ok := obj["traits"].([]any)
	if !ok {
		return nil, 0, badRequest("JSON does not validate: 'traits' is not of type 'array'")
	}
	names := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok || s == "" {
			return nil, 0, badRequest("JSON does not validate: %v is not a valid trait", it)
		}
		names = append(names, s)
	}
	return names, gen, nil
}

// jsonInt reads a JSON integer decoded with UseNumber.
func jsonInt(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return int(i), true
	}
	// The schema's "integer" admits 1.0, and Python compares it equal to 1.
	// An integer beyond int64 equals no generation: -1 never matches.
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || f != math.Trunc(f) {
		return 0, false
	}
	if math.Abs(f) > 1<<53 {
		return -1, true
	}
	return int(f), true
}

func (s *Server) deleteProviderTraits(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleProviderTraitDelete, policy.Target{}); err != nil {
		return err
	}
	err := pg.WithTx(r.Context(), s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		p, err := loadProvider(r.Context(), tx, r, true)
		if err != nil {
			return err
		}
		return store.SetProviderTraits(r.Context(), tx, p, nil)
	})
	if errors.Is(err, store.ErrConcurrentUpdate) {
		return conflict(CodeConcurrentUpdate, "Another thread concurrently updated the resource provider data. "+
			"Please retry your update")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

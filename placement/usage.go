package placement

import (
	"net/http"
	"time"

	"github.com/unisched/unisched/internal/jsonschema"

	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/qs"
	"github.com/unisched/unisched/placement/store"
)

// Policy rules of upstream placement/policies/usage.py.
const (
	ruleProviderUsages = "placement:resource_providers:usages"
	ruleTotalUsages    = "placement:usages"
)

// The query-string schemas of GET /usages (upstream
// placement/schemas/usage.py); 1.38 adds consumer_type.
const (
	usagesSchema1_9JSON = `{
	"type": "object",
	"properties": {
		"project_id": {"type": "string", "minLength": 1, "maxLength": 255},
		"user_id": {"type": "string", "minLength": 1, "maxLength": 255}
	},
	"required": ["project_id"],
	"additionalProperties": false
}`
	usagesSchema1_38JSON = `{
	"type": "object",
	"properties": {
		"project_id": {"type": "string", "minLength": 1, "maxLength": 255},
		"user_id": {"type": "string", "minLength": 1, "maxLength": 255},
		"consumer_type": {"type": "string", "pattern": "^[A-Z0-9_]+$|^all|^unknown$", "minLength": 1, "maxLength": 255}
	},
	"required": ["project_id"],
	"additionalProperties": false
}`
)

var (
	usagesSchema1_9  validator = jsonschema.MustCompile(usagesSchema1_9JSON)
	usagesSchema1_38 validator = jsonschema.MustCompile(usagesSchema1_38JSON)
)

type providerUsagesJSON struct {
	Generation int                 `json:"resource_provider_generation"`
	Usages     classOrdered[int64] `json:"usages"`
}

func (s *Server) listProviderUsages(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleProviderUsages, policy.Target{}); err != nil {
		return err
	}
	uuid := pathVar(r, "uuid")
	ctx := r.Context()
	p, ok, err := s.lookupProvider(ctx, s.db, uuid)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("%s: %s", providerNotFoundText(uuid), providerNotFoundText(uuid))
	}
	usages, err := store.ProviderUsages(ctx, s.db, p.ID)
	if err != nil {
		return err
	}
	out := providerUsagesJSON{Generation: p.Generation, Usages: classOrdered[int64]{}}
	for _, u := range usages {
		out.Usages = append(out.Usages, classEntry[int64]{u.ResourceClass, u.Used})
	}
	// Usage is a question about now, not about when allocations changed.
	setLastModified(w, r, time.Now())
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listUsages(w http.ResponseWriter, r *http.Request) error {
	params, qerr := qs.ParseQuery(r.URL.RawQuery)
	if qerr != nil {
		return badRequest("%s", qerr.Detail)
	}
	projectID, _ := params.Get("project_id")
	userID, _ := params.Get("user_id")
	consumerType, _ := params.Get("consumer_type")
	if err := s.authorize(r, ruleTotalUsages, policy.Target{ProjectID: projectID}); err != nil {
		return err
	}
	byType := version(r).AtLeast(38)
	schema := usagesSchema1_9
	if byType {
		schema = usagesSchema1_38
	}
	instance := map[string]any{}
	for _, p := range params {
		instance[p.Key] = p.Value
	}
	if err := schema.Validate(instance); err != nil {
		return badRequest("Invalid query string parameters: %s", err.Error())
	}
	ctx := r.Context()
	if !byType {
		usages, err := store.ProjectUsages(ctx, s.db, projectID, userID)
		if err != nil {
			return err
		}
		out := classOrdered[int64]{}
		for _, u := range usages {
			out = append(out, classEntry[int64]{u.ResourceClass, u.Used})
		}
		setLastModified(w, r, time.Now())
		writeJSON(w, http.StatusOK, map[string]any{"usages": out})
		return nil
	}
	usages, err := store.ProjectUsagesByType(ctx, s.db, projectID, userID, consumerType)
	if err != nil {
		return err
	}
	// Groups in type order; within one, the classes with consumer_count
	// after the first class, where upstream's dict puts it.
	groups := classOrdered[classOrdered[int64]]{}
	for _, u := range usages {
		if n := len(groups); n == 0 || groups[n-1].Class != u.ConsumerType {
			groups = append(groups, classEntry[classOrdered[int64]]{u.ConsumerType, classOrdered[int64]{
				{u.ResourceClass, u.Used}, {"consumer_count", u.ConsumerCount},
			}})
			continue
		}
		g := &groups[len(groups)-1]
		g.Value = append(g.Value, classEntry[int64]{u.ResourceClass, u.Used})
	}
	setLastModified(w, r, time.Now())
	writeJSON(w, http.StatusOK, map[string]any{"usages": groups})
	return nil
}

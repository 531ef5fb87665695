package placement

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/jsonschema"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/qs"
	"github.com/unisched/unisched/placement/store"
)

// Request body schemas of upstream placement/schemas/resource_provider.py.
const (
	schemaPostProvider = `{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 200},
    "uuid": {"type": "string", "format": "uuid"}
  },
  "required": ["name"],
  "additionalProperties": false
}`
	schemaPostProvider1_14 = `{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 200},
    "uuid": {"type": "string", "format": "uuid"},
    "parent_provider_uuid": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}
  },
  "required": ["name"],
  "additionalProperties": false
}`
	schemaPutProvider = `{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 200}
  },
  "required": ["name"],
  "additionalProperties": false
}`
	schemaPutProvider1_14 = `{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 200},
    "parent_provider_uuid": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}
  },
  "required": ["name"],
  "additionalProperties": false
}`
)

var (
	postProviderSchema     = compileProviderSchema(schemaPostProvider)
	postProviderSchema1_14 = compileProviderSchema(schemaPostProvider1_14)
	putProviderSchema      = compileProviderSchema(schemaPutProvider)
	putProviderSchema1_14  = compileProviderSchema(schemaPutProvider1_14)
)

// compileProviderSchema compiles a request schema written into the program.
func compileProviderSchema(text string) validator { return jsonschema.MustCompile(text) }

// Policy rules of upstream placement/policies/resource_provider.py.
const (
	ruleProvidersList   = "placement:resource_providers:list"
	ruleProvidersCreate = "placement:resource_providers:create"
	ruleProvidersShow   = "placement:resource_providers:show"
	ruleProvidersUpdate = "placement:resource_providers:update"
	ruleProvidersDelete = "placement:resource_providers:delete"
)

// link is one entry of a provider's "links".
type link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

// providerJSON is a provider as the API shows it; key order follows
// upstream. Parent is a double pointer so that it can be absent (before
// 1.14) or null.
type providerJSON struct {
	UUID       string   `json:"uuid"`
	Name       string   `json:"name"`
	Generation int      `json:"generation"`
	Links      []link   `json:"links"`
	Parent     **string `json:"parent_provider_uuid,omitempty"`
	Root       *string  `json:"root_provider_uuid,omitempty"`
}

func providerURL(u string) string { return "/resource_providers/" + u }

// serializeProvider renders p with the links of the request's microversion.
func serializeProvider(r *http.Request, p *store.Provider) providerJSON {
	v := version(r)
	self := providerURL(p.UUID)
	rels := []string{"inventories", "usages"}
	if v.AtLeast(1) {
		rels = append(rels, "aggregates")
	}
	if v.AtLeast(6) {
		rels = append(rels, "traits")
	}
	if v.AtLeast(11) {
		rels = append(rels, "allocations")
	}
	links := make([]link, 0, len(rels)+1)
	links = append(links, link{Rel: "self", Href: self})
	for _, rel := range rels {
		links = append(links, link{Rel: rel, Href: self + "/" + rel})
	}
	out := providerJSON{UUID: p.UUID, Name: p.Name, Generation: p.Generation, Links: links}
	if v.AtLeast(14) {
		parent := p.ParentUUID
		root := p.RootUUID
		out.Parent, out.Root = &parent, &root
	}
	return out
}

// providerUUIDFromPath returns the provider uuid of the path, or false
// when it cannot name any provider: upstream compares the stored text, so
// only the lowercase dashed form matches.
func providerUUIDFromPath(r *http.Request) (raw, canonical string, ok bool) {
	raw = pathVar(r, "uuid")
	return raw, raw, store.IsStoredUUID(raw)
}

// loadProvider loads the provider named in the path with lock (inside a
// transaction) or without; an unknown or malformed uuid is upstream's
// 404 "No resource provider with uuid X found".
func loadProvider(ctx context.Context, db pg.DBTX, r *http.Request, lock bool) (*store.Provider, error) {
	raw, u, ok := providerUUIDFromPath(r)
	if !ok {
		return nil, notFound("No resource provider with uuid %s found", raw)
	}
	var p *store.Provider
	var err error
	if lock {
		p, err = store.LockProvider(ctx, db, u)
	} else {
		p, err = store.GetProvider(ctx, db, u)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("No resource provider with uuid %s found", raw)
	}
	return p, err
}

func (s *Server) listResourceProviders(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleProvidersList, policy.Target{}); err != nil {
		return err
	}
	v := version(r)
	params, qerr := qs.ParseQuery(r.URL.RawQuery)
	if qerr != nil {
		return queryError(qerr)
	}
	if qerr := qs.ProvidersSchema(v.Minor).Validate(params); qerr != nil {
		return queryError(qerr)
	}
	var f store.ProviderFilter
	if params.Has("member_of") {
		m, qerr := qs.MemberOfParams(params.All("member_of"), "", v.Minor)
		if qerr != nil {
			return queryError(qerr)
		}
		f.MemberOf, f.ForbiddenAggs = m.Required, m.Forbidden
	}
	if params.Has("required") {
		t, qerr := qs.TraitsParams(params.All("required"), v.Minor)
		if qerr != nil {
			return queryError(qerr)
		}
		f.RequiredTraits, f.ForbiddenTraits = t.Required, t.Forbidden
	}
	if val, ok := params.Get("uuid"); ok && val != "" {
		f.UUID = &val
	}
	// An empty name does not filter, as upstream tests its truth.
	if val, ok := params.Get("name"); ok && val != "" {
		f.Name = &val
	}
	if val, ok := params.Get("in_tree"); ok && val != "" {
		f.InTree = &val
	}
	if val, ok := params.Get("resources"); ok {
		amounts, qerr := qs.Resources(val)
		if qerr != nil {
			return queryError(qerr)
		}
		for _, a := range amounts {
			f.Resources = append(f.Resources, store.ResourceAmount{Class: a.Class, Amount: a.Amount})
		}
	}
	providers, err := store.ListProviders(r.Context(), s.db, f)
	var traitErr *store.TraitNotFoundError
	var classErr *store.ResourceClassNotFoundError
	switch {
	case errors.As(err, &traitErr):
		return badRequest("Invalid trait(s) in \"required\" parameter: %s", traitErr.Error())
	case errors.As(err, &classErr):
		return badRequest("Invalid resource class in resources parameter: %s", classErr.Error())
	case err != nil:
		return err
	}
	out := make([]providerJSON, 0, len(providers))
	var modified time.Time
	for _, p := range providers {
		out = append(out, serializeProvider(r, p))
		if t := p.LastModified(); t.After(modified) {
			modified = t
		}
	}
	setLastModified(w, r, modified)
	writeJSON(w, http.StatusOK, map[string]any{"resource_providers": out})
	return nil
}

// queryError renders a query-string parser error.
func queryError(e *qs.Error) error {
	return &openstack.Error{Status: http.StatusBadRequest, Detail: e.Detail, Code: e.Code}
}

func (s *Server) createResourceProvider(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleProvidersCreate, policy.Target{}); err != nil {
		return err
	}
	v := version(r)
	schema := postProviderSchema
	if v.AtLeast(14) {
		schema = postProviderSchema1_14
	}
	var body any
	if err := s.readJSON(r, schema, &body); err != nil {
		return err
	}
	data, err := providerBody(body, v.AtLeast(14), true)
	if err != nil {
		return err
	}
	id := uuid.NewString()
	if data.uuid != nil {
		id = *data.uuid
	}
	if data.name == "" {
		return badRequest("Unable to create resource provider \"\", %s: Object action create failed because: name is required", id)
	}
	if data.parent != nil && *data.parent == id {
		return badRequest("Unable to create resource provider \"%s\", %s: Object action create failed because: "+
			"parent provider UUID cannot be same as UUID. Please set parent provider UUID to None if there is no parent.",
			data.name, id)
	}
	p, err := store.CreateProvider(r.Context(), s.db, id, data.name, data.parent)
	var dup *store.DuplicateProviderError
	switch {
	case errors.As(err, &dup):
		val := data.name
		if dup.Column == "uuid" {
			val = id
			taken, err := store.ProviderNameTaken(r.Context(), s.db, data.name)
			if err != nil {
				return err
			}
			if taken {
				dup, val = &store.DuplicateProviderError{Column: "name"}, data.name
			}
		}
		return conflict(CodeDuplicateName, "Conflicting resource provider %s: %s already exists.", dup.Column, val)
	case errors.Is(err, store.ErrParentNotFound):
		return badRequest("Unable to create resource provider \"%s\", %s: Object action create failed because: "+
			"parent provider UUID does not exist.", data.name, id)
	case err != nil:
		return err
	}
	w.Header().Set("Location", location(r, providerURL(p.UUID)))
	if !v.AtLeast(20) {
		w.WriteHeader(http.StatusCreated)
		return nil
	}
	setLastModified(w, r, p.LastModified())
	writeJSON(w, http.StatusOK, serializeProvider(r, p))
	return nil
}

// providerData is a validated POST or PUT body.
type providerData struct {
	name      string
	uuid      *string
	hasParent bool
	parent    *string
}

// providerBody extracts a provider body the schema has accepted. Its
// checks only matter when a schema is missing; they keep bad input a 400.
func providerBody(body any, allowParent, allowUUID bool) (*providerData, error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, badRequest("JSON does not validate: %v is not of type 'object'", body)
	}
	var d providerData
	name, ok := obj["name"].(string)
	if !ok {
		return nil, badRequest("JSON does not validate: 'name' is a required property")
	}
	d.name = name
	for k, val := range obj {
		switch {
		case k == "name":
		case k == "uuid" && allowUUID:
			s, ok := val.(string)
			c, valid := normalizeUUID(s)
			if !ok || !valid {
				return nil, badRequest("JSON does not validate: %v is not a 'uuid'", val)
			}
			d.uuid = &c
		case k == "parent_provider_uuid" && allowParent:
			d.hasParent = true
			if val == nil {
				continue
			}
			s, ok := val.(string)
			if _, valid := normalizeUUID(s); !ok || !valid {
				return nil, badRequest("JSON does not validate: %v is not valid under any of the given schemas", val)
			}
			// Kept as sent: upstream looks the parent up by its text.
			d.parent = &s
		default:
			return nil, badRequest("JSON does not validate: Additional properties are not allowed ('%s' was unexpected)", k)
		}
	}
	return &d, nil
}

func (s *Server) getResourceProvider(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleProvidersShow, policy.Target{}); err != nil {
		return err
	}
	p, err := loadProvider(r.Context(), s.db, r, false)
	if err != nil {
		return err
	}
	setLastModified(w, r, p.LastModified())
	writeJSON(w, http.StatusOK, serializeProvider(r, p))
	return nil
}

func (s *Server) updateResourceProvider(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleProvidersUpdate, policy.Target{}); err != nil {
		return err
	}
	v := version(r)
	if _, err := loadProvider(r.Context(), s.db, r, false); err != nil {
		return err
	}
	schema := putProviderSchema
	if v.AtLeast(14) {
		schema = putProviderSchema1_14
	}
	var body any
	if err := s.readJSON(r, schema, &body); err != nil {
		return err
	}
	data, err := providerBody(body, v.AtLeast(14), false)
	if err != nil {
		return err
	}
	var before, updated *store.Provider
	err = pg.WithTx(r.Context(), s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, u, _ := providerUUIDFromPath(r)
		var err error
		before, updated, err = store.UpdateProvider(r.Context(), tx, u, store.ProviderUpdate{
			Name:          data.name,
			SetParent:     data.hasParent,
			ParentUUID:    data.parent,
			AllowReparent: v.AtLeast(37),
		})
		return err
	})
	raw := pathVar(r, "uuid")
	unable := func(reason string) error {
		return badRequest("Unable to save resource provider %s: Object action %s", raw, reason)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("No resource provider with uuid %s found", raw)
	case errors.Is(err, store.ErrExists):
		return conflict(CodeDuplicateName, "Conflicting resource provider %s already exists.", data.name)
	case errors.Is(err, store.ErrParentNotFound):
		return unable("create failed because: parent provider UUID does not exist.")
	case errors.Is(err, store.ErrReparent):
		return unable("update failed because: re-parenting a provider is not currently allowed.")
	case errors.Is(err, store.ErrUnparent):
		return unable("update failed because: un-parenting a provider is not currently allowed.")
	case errors.Is(err, store.ErrProviderLoop):
		return unable("update failed because: creating loop in the provider tree is not allowed.")
	case err != nil:
		return err
	}
	// Upstream sends the updated_at it loaded before saving: none when
	// the provider had never been updated.
	if version(r).AtLeast(15) {
		w.Header().Set("Cache-Control", "no-cache")
		if before.UpdatedAt != nil {
			w.Header().Set("Last-Modified", before.UpdatedAt.UTC().Format(http.TimeFormat))
		}
	}
	writeJSON(w, http.StatusOK, serializeProvider(r, updated))
	return nil
}

func (s *Server) deleteResourceProvider(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleProvidersDelete, policy.Target{}); err != nil {
		return err
	}
	raw := pathVar(r, "uuid")
	err := pg.WithTx(r.Context(), s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		p, err := loadProvider(r.Context(), tx, r, true)
		if err != nil {
			return err
		}
		return store.DeleteProvider(r.Context(), tx, p.ID)
	})
	var apiErr *openstack.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound, errors.Is(err, store.ErrNotFound):
		return notFound("No resource provider with uuid %s found for delete", raw)
	case errors.Is(err, store.ErrProviderHasChildren):
		return conflict(CodeProviderCannotDeleteParent,
			"Unable to delete parent resource provider %s: It has child resource providers.", raw)
	case errors.Is(err, store.ErrProviderInUse):
		return conflict(CodeProviderInUse, "Unable to delete resource provider %s: Resource provider has allocations.", raw)
	case err != nil:
		return fmt.Errorf("deleting resource provider %s: %w", raw, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

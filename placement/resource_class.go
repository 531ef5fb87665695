package placement

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/unisched/unisched/internal/jsonschema"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/store"
)

// Policy rules of upstream placement/policies/resource_class.py.
const (
	ruleResourceClassesList   = "placement:resource_classes:list"
	ruleResourceClassesCreate = "placement:resource_classes:create"
	ruleResourceClassesShow   = "placement:resource_classes:show"
	ruleResourceClassesUpdate = "placement:resource_classes:update"
	ruleResourceClassesDelete = "placement:resource_classes:delete"
)

// resourceClassSchemaJSON is upstream's POST_RC_SCHEMA_V1_2 (PUT_RC_SCHEMA_V1_2
// is the same): only custom names, at most 255 characters.
const resourceClassSchemaJSON = `{
	"type": "object",
	"properties": {
		"name": {"type": "string", "pattern": "^CUSTOM_[A-Z0-9_]+$", "maxLength": 255}
	},
	"required": ["name"],
	"additionalProperties": false
}`

var resourceClassSchema validator = jsonschema.MustCompile(resourceClassSchemaJSON)

type resourceClassLink struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

type resourceClassJSON struct {
	Name  string              `json:"name"`
	Links []resourceClassLink `json:"links"`
}

func resourceClassURL(name string) string { return "/resource_classes/" + name }

func serializeResourceClass(name string) resourceClassJSON {
	return resourceClassJSON{Name: name, Links: []resourceClassLink{{Rel: "self", Href: resourceClassURL(name)}}}
}

// classNotFound is the 404 upstream's handler wrapper makes of
// ResourceClassNotFound.
func classNotFound(name string) error { return notFound("No such resource class %s.", name) }

func (s *Server) listResourceClasses(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleResourceClassesList, policy.Target{}); err != nil {
		return err
	}
	rcs, err := store.ListResourceClasses(r.Context(), s.db)
	if err != nil {
		return err
	}
	out := make([]resourceClassJSON, len(rcs))
	for i := range rcs {
		out[i] = serializeResourceClass(rcs[i].Name)
	}
	// The standard classes have no meaningful timestamp, so a list that
	// always includes them was modified "now".
	setLastModified(w, r, time.Now())
	writeJSON(w, http.StatusOK, map[string]any{"resource_classes": out})
	return nil
}

func (s *Server) createResourceClass(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleResourceClassesCreate, policy.Target{}); err != nil {
		return err
	}
	var body struct {
		Name string `json:"name"`
	}
	if err := s.readJSON(r, resourceClassSchema, &body); err != nil {
		return err
	}
	rc, err := store.CreateResourceClass(r.Context(), s.db, body.Name)
	if errors.Is(err, store.ErrExists) {
		return conflict("", "Conflicting resource class already exists: %s", body.Name)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", location(r, resourceClassURL(rc.Name)))
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) getResourceClass(w http.ResponseWriter, r *http.Request) error {
	name := pathVar(r, "name")
	if err := s.authorize(r, ruleResourceClassesShow, policy.Target{}); err != nil {
		return err
	}
	rc, err := store.GetResourceClass(r.Context(), s.db, name)
	if errors.Is(err, store.ErrNotFound) {
		return classNotFound(name)
	}
	if err != nil {
		return err
	}
	modified := time.Now()
	if !rc.Standard() {
		modified = rc.LastModified()
	}
	setLastModified(w, r, modified)
	writeJSON(w, http.StatusOK, serializeResourceClass(rc.Name))
	return nil
}

// updateResourceClass renames a custom class up to microversion 1.6; from
// 1.7 on, PUT has no body and creates the class unless it exists.
func (s *Server) updateResourceClass(w http.ResponseWriter, r *http.Request) error {
	if version(r).AtLeast(7) {
		return s.ensureResourceClass(w, r)
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	name := pathVar(r, "name")
	if err := s.authorize(r, ruleResourceClassesUpdate, policy.Target{}); err != nil {
		return err
	}
	var body struct {
		Name string `json:"name"`
	}
	if err := s.readJSON(r, resourceClassSchema, &body); err != nil {
		return err
	}
	ctx := r.Context()
	rc, err := store.GetResourceClass(ctx, s.db, name)
	if errors.Is(err, store.ErrNotFound) {
		return classNotFound(name)
	}
	if err != nil {
		return err
	}
	if rc.Standard() {
		return badRequest("Cannot update standard resource class %s", name)
	}
	rc, err = store.RenameResourceClass(ctx, s.db, rc.ID, body.Name)
	switch {
	case errors.Is(err, store.ErrExists):
		return conflict("", "Resource class already exists: %s", body.Name)
	case errors.Is(err, store.ErrNotFound):
		return classNotFound(name)
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, serializeResourceClass(rc.Name))
	return nil
}

// ensureResourceClass is PUT /resource_classes/{name} from 1.7: 201 when
// created, 204 when it already existed.
func (s *Server) ensureResourceClass(w http.ResponseWriter, r *http.Request) error {
	name := pathVar(r, "name")
	if err := s.authorize(r, ruleResourceClassesUpdate, policy.Target{}); err != nil {
		return err
	}
	// Upstream validates the name by pasting it into a JSON document and
	// running the body schema over it; a name that breaks the JSON is
	// therefore "Malformed JSON".
	var instance any
	dec := json.NewDecoder(bytes.NewReader([]byte(`{"name": "` + name + `"}`)))
	dec.UseNumber()
	if err := dec.Decode(&instance); err != nil {
		return badRequest("Malformed JSON: %v", err)
	}
	if err := resourceClassSchema.Validate(instance); err != nil {
		return badRequest("JSON does not validate: %s", err.Error())
	}
	m, _ := instance.(map[string]any)
	if n, ok := m["name"].(string); ok {
		name = n
	}
	ctx := r.Context()
	status := http.StatusNoContent
	_, err := store.GetResourceClass(ctx, s.db, name)
	if errors.Is(err, store.ErrNotFound) {
		_, err = store.CreateResourceClass(ctx, s.db, name)
		switch {
		case err == nil:
			status = http.StatusCreated
		case errors.Is(err, store.ErrExists):
			// Someone else created it meanwhile: it exists, as asked.
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("ensuring resource class %s: %w", name, err)
	}
	w.Header().Set("Location", location(r, resourceClassURL(name)))
	w.WriteHeader(status)
	return nil
}

func (s *Server) deleteResourceClass(w http.ResponseWriter, r *http.Request) error {
	name := pathVar(r, "name")
	if err := s.authorize(r, ruleResourceClassesDelete, policy.Target{}); err != nil {
		return err
	}
	ctx := r.Context()
	rc, err := store.GetResourceClass(ctx, s.db, name)
	if errors.Is(err, store.ErrNotFound) {
		return classNotFound(name)
	}
	if err != nil {
		return err
	}
	if rc.Standard() {
		return badRequest("Error in delete resource class: Cannot delete standard resource class %s.", name)
	}
	err = store.DeleteResourceClass(ctx, s.db, rc.ID)
	switch {
	case errors.Is(err, store.ErrClassInUse):
		return conflict("", "Error in delete resource class: Cannot delete resource class %s. Class is in use in inventory.", name)
	case errors.Is(err, store.ErrNotFound):
		return classNotFound(name)
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

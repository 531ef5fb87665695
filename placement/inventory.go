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
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/store"
)

// Policy rules of upstream placement/policies/inventory.py.
const (
	ruleInventoriesList   = "placement:resource_providers:inventories:list"
	ruleInventoriesCreate = "placement:resource_providers:inventories:create"
	ruleInventoriesShow   = "placement:resource_providers:inventories:show"
	ruleInventoriesUpdate = "placement:resource_providers:inventories:update"
	ruleInventoriesDelete = "placement:resource_providers:inventories:delete"
)

// The inventory schemas of upstream placement/schemas/inventory.py. The
// record schema is shared: PUT one inventory (BASE) requires the
// generation, POST requires resource_class instead, and each record of a
// PUT of all inventories (also embedded in the reshaper's schema) needs
// only total.
const (
	inventoryPropertiesJSON = `
		"resource_provider_generation": {"type": "integer"},
		"total": {"type": "integer", "maximum": 2147483647, "minimum": 1},
		"reserved": {"type": "integer", "maximum": 2147483647, "minimum": 0},
		"min_unit": {"type": "integer", "maximum": 2147483647, "minimum": 1},
		"max_unit": {"type": "integer", "maximum": 2147483647, "minimum": 1},
		"step_size": {"type": "integer", "maximum": 2147483647, "minimum": 1},
		"allocation_ratio": {"type": "number", "maximum": 3.40282e+38}`

	baseInventorySchemaJSON = `{
	"type": "object",
	"properties": {` + inventoryPropertiesJSON + `
	},
	"required": ["total", "resource_provider_generation"],
	"additionalProperties": false
}`

	postInventorySchemaJSON = `{
	"type": "object",
	"properties": {` + inventoryPropertiesJSON + `,
		"resource_class": {"type": "string", "pattern": "^[A-Z0-9_]+$"}
	},
	"required": ["total", "resource_class"],
	"additionalProperties": false
}`

	putInventoryRecordSchemaJSON = `{
	"type": "object",
	"properties": {` + inventoryPropertiesJSON + `
	},
	"required": ["total"],
	"additionalProperties": false
}`

	putInventoriesSchemaJSON = `{
	"type": "object",
	"properties": {
		"resource_provider_generation": {"type": "integer"},
		"inventories": {
			"type": "object",
			"patternProperties": {"^[A-Z0-9_]+$": ` + putInventoryRecordSchemaJSON + `}
		}
	},
	"required": ["resource_provider_generation", "inventories"],
	"additionalProperties": false
}`
)

var (
	baseInventorySchema  validator = jsonschema.MustCompile(baseInventorySchemaJSON)
	postInventorySchema  validator = jsonschema.MustCompile(postInventorySchemaJSON)
	putInventoriesSchema validator = jsonschema.MustCompile(putInventoriesSchemaJSON)
)

// pyFloat is a float rendered as Python's json module does (1.0, not 1),
// so allocation ratios look the same as upstream's.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil, fmt.Errorf("cannot encode %v as JSON", v)
	}
	abs := math.Abs(v)
	if abs != 0 && (abs >= 1e16 || abs < 1e-4) {
		return []byte(strconv.FormatFloat(v, 'e', -1, 64)), nil
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return []byte(s), nil
}

// inventoryJSON is one inventory in upstream's field order.
type inventoryJSON struct {
	Total           int     `json:"total"`
	Reserved        int     `json:"reserved"`
	MinUnit         int     `json:"min_unit"`
	MaxUnit         int     `json:"max_unit"`
	StepSize        int     `json:"step_size"`
	AllocationRatio pyFloat `json:"allocation_ratio"`
	// Generation is left out when zero, as upstream's truthiness test does.
	Generation int `json:"resource_provider_generation,omitempty"`
}

func serializeInventory(inv *store.Inventory, generation int) inventoryJSON {
	return inventoryJSON{
		Total: inv.Total, Reserved: inv.Reserved, MinUnit: inv.MinUnit, MaxUnit: inv.MaxUnit,
		StepSize: inv.StepSize, AllocationRatio: pyFloat(inv.AllocationRatio), Generation: generation,
	}
}

// classOrdered is a JSON object keyed by resource class that keeps its
// keys in the given order (class-id order from the database, request order
// for a PUT), as upstream's dicts do.
type classOrdered[V any] []classEntry[V]

type classEntry[V any] struct {
	Class string
	Value V
}

func (o classOrdered[V]) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.Class)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type inventoriesJSON struct {
	Generation  int                         `json:"resource_provider_generation"`
	Inventories classOrdered[inventoryJSON] `json:"inventories"`
}

// writeInventories sends a provider's inventories; last-modified is the
// newest inventory's, or now for inventories that were just written.
func writeInventories(w http.ResponseWriter, r *http.Request, generation int, invs []store.Inventory) {
	out := inventoriesJSON{Generation: generation, Inventories: classOrdered[inventoryJSON]{}}
	var modified time.Time
	for i := range invs {
		out.Inventories = append(out.Inventories, classEntry[inventoryJSON]{invs[i].ResourceClass, serializeInventory(&invs[i], 0)})
		if m := invs[i].LastModified(); m.After(modified) {
			modified = m
		}
	}
	setLastModified(w, r, modified)
	writeJSON(w, http.StatusOK, out)
}

// lookupProvider loads the provider named by the path; ok is false when
// there is none (a malformed uuid names none either).
func (s *Server) lookupProvider(ctx context.Context, db pg.DBTX, uuid string) (*store.Provider, bool, error) {
	canonical, valid := normalizeUUID(uuid)
	if !valid {
		return nil, false, nil
	}
	p, err := store.GetProvider(ctx, db, canonical)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return p, true, nil
}

// providerNotFoundText is upstream's NotFound text for a provider lookup.
func providerNotFoundText(uuid string) string {
	return fmt.Sprintf("No resource provider with uuid %s found", uuid)
}

// inventoryProvider loads the path's provider for the write handlers,
// whose 404 is the bare NotFound text.
func (s *Server) inventoryProvider(r *http.Request) (*store.Provider, error) {
	uuid := pathVar(r, "uuid")
	p, ok, err := s.lookupProvider(r.Context(), s.db, uuid)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("%s", providerNotFoundText(uuid))
	}
	return p, nil
}

// readJSONObject reads a JSON object body with its numbers kept as
// json.Number, so integers are told apart from floats as Python does.
func (s *Server) readJSONObject(r *http.Request, schema validator) (map[string]any, error) {
	var instance any
	if err := s.readJSON(r, schema, &instance); err != nil {
		return nil, err
	}
	m, ok := instance.(map[string]any)
	if !ok {
		return nil, badRequest("JSON does not validate: %s is not of type 'object'", jsonText(instance))
	}
	return m, nil
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// inventoryInt reads a JSON integer (python-jsonschema also calls 2.0 an
// integer) that fits the inventory columns.
func inventoryInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt64/2 {
		return 0, false
	}
	return int64(f), true
}

// parseInventory applies upstream's defaults to a schema-validated
// inventory record. Its own checks repeat the schema's, as a guard for the
// int columns.
func parseInventory(class string, rec map[string]any) (store.Inventory, error) {
	inv := store.NewInventory(class, 0)
	ints := []struct {
		name string
		dst  *int
		min  int64
		req  bool
	}{
		{"total", &inv.Total, 1, true},
		{"reserved", &inv.Reserved, 0, false},
		{"min_unit", &inv.MinUnit, 1, false},
		{"max_unit", &inv.MaxUnit, 1, false},
		{"step_size", &inv.StepSize, 1, false},
	}
	for _, f := range ints {
		raw, present := rec[f.name]
		if !present {
			if f.req {
				return inv, badRequest("JSON does not validate: '%s' is a required property", f.name)
			}
			continue
		}
		n, ok := inventoryInt(raw)
		if !ok {
			return inv, badRequest("JSON does not validate: %v is not of type 'integer'", raw)
		}
		if n < f.min || n > store.MaxInt {
			return inv, badRequest("JSON does not validate: %d is out of range for '%s'", n, f.name)
		}
		*f.dst = int(n)
	}
	if raw, present := rec["allocation_ratio"]; present {
		n, ok := raw.(json.Number)
		f, err := n.Float64()
		if !ok || err != nil {
			return inv, badRequest("JSON does not validate: %v is not of type 'number'", raw)
		}
		inv.AllocationRatio = f
	}
	return inv, nil
}

// checkCapacity refuses inventories with nothing to allocate: before 1.26
// reserved must be below total, from 1.26 it may equal it.
func checkCapacity(r *http.Request, providerUUID string, inv *store.Inventory) error {
	if version(r).AtLeast(26) {
		if inv.Capacity() < 0 {
			return fmt.Errorf("Invalid inventory for '%s' on resource provider '%s'. The reserved value is greater than total.",
				inv.ResourceClass, providerUUID)
		}
		return nil
	}
	if inv.Capacity() <= 0 {
		return fmt.Errorf("Invalid inventory for '%s' on resource provider '%s'. The reserved value is greater than or equal to total.",
			inv.ResourceClass, providerUUID)
	}
	return nil
}

// inventoryRecords is the "inventories" object of a PUT: records in
// request order (a repeated key keeps its first place and last value, as
// a Python dict does).
type inventoryRecords struct {
	classes []string
	records map[string]map[string]any
}

func (ir *inventoryRecords) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("inventories must be an object")
	}
	ir.records = map[string]map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		class, _ := tok.(string)
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			return err
		}
		if rec == nil {
			return fmt.Errorf("inventory of %s must be an object", class)
		}
		if _, seen := ir.records[class]; !seen {
			ir.classes = append(ir.classes, class)
		}
		ir.records[class] = rec
	}
	return nil
}

func (s *Server) logOverCapacity(ctx context.Context, p *store.Provider, over []store.OverCapacity) {
	for _, o := range over {
		s.log.WarnContext(ctx, "resource provider is now over capacity", "provider", p.UUID,
			"resource_class", o.ResourceClass, "used", o.Used, "capacity", o.Capacity)
	}
}

func (s *Server) getInventories(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleInventoriesList, policy.Target{}); err != nil {
		return err
	}
	uuid := pathVar(r, "uuid")
	ctx := r.Context()
	p, ok, err := s.lookupProvider(ctx, s.db, uuid)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("%s : %s", providerNotFoundText(uuid), providerNotFoundText(uuid))
	}
	invs, err := store.ListInventories(ctx, s.db, p.ID)
	if err != nil {
		return err
	}
	writeInventories(w, r, p.Generation, invs)
	return nil
}

func (s *Server) getInventory(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleInventoriesShow, policy.Target{}); err != nil {
		return err
	}
	uuid, class := pathVar(r, "uuid"), pathVar(r, "resource_class")
	ctx := r.Context()
	p, ok, err := s.lookupProvider(ctx, s.db, uuid)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("%s : %s", providerNotFoundText(uuid), providerNotFoundText(uuid))
	}
	invs, err := store.ListInventories(ctx, s.db, p.ID)
	if err != nil {
		return err
	}
	for i := range invs {
		if invs[i].ResourceClass == class {
			setLastModified(w, r, invs[i].LastModified())
			writeJSON(w, http.StatusOK, serializeInventory(&invs[i], p.Generation))
			return nil
		}
	}
	return notFound("No inventory of class %s for %s", class, uuid)
}

func (s *Server) createInventory(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleInventoriesCreate, policy.Target{}); err != nil {
		return err
	}
	p, err := s.inventoryProvider(r)
	if err != nil {
		return err
	}
	body, err := s.readJSONObject(r, postInventorySchema)
	if err != nil {
		return err
	}
	class, _ := body["resource_class"].(string)
	if class == "" {
		return badRequest("JSON does not validate: 'resource_class' is a required property")
	}
	inv, err := parseInventory(class, body)
	if err != nil {
		return err
	}
	if err := checkCapacity(r, p.UUID, &inv); err != nil {
		return badRequest("Unable to create inventory for resource provider %s: %s", p.UUID, err)
	}
	ctx := r.Context()
	err = pg.WithTx(ctx, s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return store.AddInventory(ctx, tx, p, &inv)
	})
	var unknown *store.UnknownClassError
	switch {
	case errors.As(err, &unknown):
		return badRequest("Unable to create inventory for resource provider %s: %s", p.UUID, unknown)
	case errors.Is(err, store.ErrExists):
		return conflict(CodeConcurrentUpdate, "Update conflict: Inventory for '%s' on resource provider '%s' already exists.", class, p.UUID)
	case errors.Is(err, store.ErrConcurrentUpdate):
		return conflict(CodeConcurrentUpdate, "Update conflict: %s", errProviderConcurrentUpdate)
	case err != nil:
		return err
	}
	w.Header().Set("Location", location(r, "/resource_providers/"+p.UUID+"/inventories/"+class))
	setLastModified(w, r, time.Now())
	writeJSON(w, http.StatusCreated, serializeInventory(&inv, p.Generation))
	return nil
}

// errProviderConcurrentUpdate is upstream's
// ResourceProviderConcurrentUpdateDetected text.
const errProviderConcurrentUpdate = "Another thread concurrently updated the resource provider data. Please retry your update"

func (s *Server) setInventories(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleInventoriesUpdate, policy.Target{}); err != nil {
		return err
	}
	raw := pathVar(r, "uuid")
	canonical, valid := normalizeUUID(raw)
	if !valid {
		return notFound("%s", providerNotFoundText(raw))
	}
	var body struct {
		Generation  json.Number      `json:"resource_provider_generation"`
		Inventories inventoryRecords `json:"inventories"`
	}
	// A bad body is reported once the provider is known to exist, as
	// upstream looks the provider up first.
	bodyErr := s.readJSON(r, putInventoriesSchema, &body)
	var named []store.Inventory
	if bodyErr == nil {
		for _, class := range body.Inventories.classes {
			named = append(named, store.Inventory{ResourceClass: class})
		}
	}
	ctx := r.Context()
	var p *store.Provider
	var invs []store.Inventory
	var over []store.OverCapacity
	// One transaction of two round trips: lock the provider and read its
	// inventories, then write and commit.
	err := pg.WithBatchTx(ctx, s.db, func(tx *pg.BatchTx) error {
		lk, err := store.LockInventories(ctx, tx.Send, canonical, named)
		if err != nil {
			return err
		}
		if lk.Provider == nil {
			return notFound("%s", providerNotFoundText(raw))
		}
		p = lk.Provider
		if bodyErr != nil {
			return bodyErr
		}
		gen, ok := inventoryInt(body.Generation)
		if !ok || body.Inventories.records == nil {
			return badRequest("JSON does not validate: 'resource_provider_generation' and 'inventories' are required properties")
		}
		if gen != int64(p.Generation) {
			return conflict(CodeConcurrentUpdate, "resource provider generation conflict")
		}
		invs = make([]store.Inventory, 0, len(body.Inventories.classes))
		for _, class := range body.Inventories.classes {
			inv, err := parseInventory(class, body.Inventories.records[class])
			if err != nil {
				return err
			}
			invs = append(invs, inv)
		}
		for i := range invs {
			if err := checkCapacity(r, p.UUID, &invs[i]); err != nil {
				return badRequest("Unable to update inventory for resource provider %s: %s", p.UUID, err)
			}
		}
		over, err = lk.Replace(ctx, tx.Commit, invs)
		return err
	})
	var unknown *store.UnknownClassError
	var inUse *store.InventoryInUseError
	switch {
	case errors.As(err, &unknown):
		return badRequest("Unknown resource class in inventory for resource provider %s: %s", p.UUID, unknown)
	case errors.As(err, &inUse):
		return conflict(CodeInventoryInUse, "update conflict: %s", inUse)
	case errors.Is(err, store.ErrConcurrentUpdate):
		return conflict(CodeConcurrentUpdate, "update conflict: %s", errProviderConcurrentUpdate)
	case err != nil:
		return err
	}
	s.logOverCapacity(ctx, p, over)
	writeInventoriesPut(w, r, p.Generation, invs)
	return nil
}

// writeInventoriesPut answers a PUT of inventories with what was asked
// for, in request order.
func writeInventoriesPut(w http.ResponseWriter, r *http.Request, generation int, invs []store.Inventory) {
	out := inventoriesJSON{Generation: generation, Inventories: classOrdered[inventoryJSON]{}}
	for i := range invs {
		out.Inventories = append(out.Inventories, classEntry[inventoryJSON]{invs[i].ResourceClass, serializeInventory(&invs[i], 0)})
	}
	setLastModified(w, r, time.Now())
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteInventories(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleInventoriesDelete, policy.Target{}); err != nil {
		return err
	}
	p, err := s.inventoryProvider(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = pg.WithBatchTx(ctx, s.db, func(tx *pg.BatchTx) error {
		_, err := store.ReplaceInventoriesIn(ctx, tx.Send, tx.Commit, p, nil)
		return err
	})
	var inUse *store.InventoryInUseError
	switch {
	case errors.As(err, &inUse):
		return conflict(CodeInventoryInUse, "%s", inUse)
	case errors.Is(err, store.ErrConcurrentUpdate):
		return conflict(CodeConcurrentUpdate, "Unable to delete inventory for resource provider %s because the inventory "+
			"was updated by another process. Please retry your request.", p.UUID)
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) updateInventory(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if err := s.authorize(r, ruleInventoriesUpdate, policy.Target{}); err != nil {
		return err
	}
	class := pathVar(r, "resource_class")
	p, err := s.inventoryProvider(r)
	if err != nil {
		return err
	}
	body, err := s.readJSONObject(r, baseInventorySchema)
	if err != nil {
		return err
	}
	gen, ok := inventoryInt(body["resource_provider_generation"])
	if !ok {
		return badRequest("JSON does not validate: 'resource_provider_generation' is a required property")
	}
	if gen != int64(p.Generation) {
		return conflict(CodeConcurrentUpdate, "resource provider generation conflict")
	}
	inv, err := parseInventory(class, body)
	if err != nil {
		return err
	}
	if err := checkCapacity(r, p.UUID, &inv); err != nil {
		return badRequest("Unable to update inventory for resource provider %s: %s", p.UUID, err)
	}
	ctx := r.Context()
	var over []store.OverCapacity
	err = pg.WithTx(ctx, s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		over, err = store.UpdateInventory(ctx, tx, p, &inv)
		return err
	})
	var unknown *store.UnknownClassError
	switch {
	case errors.As(err, &unknown):
		return notFound("%s", unknown)
	case errors.Is(err, store.ErrNotFound):
		return badRequest("No inventory record with resource class for resource provider %s: No inventory of class %s found.", p.UUID, class)
	case errors.Is(err, store.ErrConcurrentUpdate):
		return conflict(CodeConcurrentUpdate, "update conflict: %s", errProviderConcurrentUpdate)
	case err != nil:
		return err
	}
	s.logOverCapacity(ctx, p, over)
	setLastModified(w, r, time.Now())
	writeJSON(w, http.StatusOK, serializeInventory(&inv, p.Generation))
	return nil
}

func (s *Server) deleteInventory(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, ruleInventoriesDelete, policy.Target{}); err != nil {
		return err
	}
	class := pathVar(r, "resource_class")
	p, err := s.inventoryProvider(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = pg.WithTx(ctx, s.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return store.DeleteInventory(ctx, tx, p, class)
	})
	var unknown *store.UnknownClassError
	var inUse *store.InventoryInUseError
	switch {
	case errors.As(err, &unknown):
		return notFound("No inventory of class %s found for delete: %s", class, unknown)
	case errors.Is(err, store.ErrNotFound):
		return notFound("No inventory of class %s found for delete: No inventory of class %s found for delete", class, class)
	case errors.As(err, &inUse):
		// Upstream reports an in-use inventory with the concurrent-update
		// code here (unlike PUT and DELETE of all inventories); clients
		// rely on the code, so keep it.
		return conflict(CodeConcurrentUpdate, "Unable to delete inventory of class %s: %s", class, inUse)
	case errors.Is(err, store.ErrConcurrentUpdate):
		return conflict(CodeConcurrentUpdate, "Unable to delete inventory of class %s: %s", class, errProviderConcurrentUpdate)
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

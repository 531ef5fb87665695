// Package claims holds Placement's rules for what an allocation may take
// from an inventory, so that the allocation handlers (PUT and POST
// /allocations, the reshaper) and the bridge, which claims for the
// workloads it schedules, apply the same ones. It sits below the HTTP
// package: the bridge must not import package placement, and the handler
// must not grow a second copy of the rules.
//
// The package does no SQL of its own: the reads and writes are
// placement/store's (ReadClaim, EnsureOwners, WriteClaim).
package claims

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/store"
)

// ErrInvalidInventory is matched by every *InvalidInventoryError.
var ErrInvalidInventory = errors.New("allocation does not fit the inventory")

// InvalidInventoryError: an allocation does not fit the inventory
// (upstream's InvalidInventory family, a 409). Msg is upstream's wording,
// which the handler puts in its error body.
type InvalidInventoryError struct{ Msg string }

func (e *InvalidInventoryError) Error() string { return e.Msg }

// Is makes the error match ErrInvalidInventory.
func (e *InvalidInventoryError) Is(target error) bool { return target == ErrInvalidInventory }

// Item is one allocation of a replacement; Used 0 marks the removal of an
// existing allocation of a consumer being emptied (it counts for the
// "provider has inventory" check only).
type Item struct {
	Provider *store.LockedProvider
	Consumer *store.Consumer
	Class    string
	ClassID  int
	Used     int64
}

type providerClass struct {
	provider int64
	class    int
}

// CheckCapacity applies upstream's checks in its order: every provider
// must have inventory in at least one requested class, then per allocation
// in request order: the inventory exists, min_unit <= amount <= max_unit,
// amount is a multiple of step_size, and usage plus everything requested of
// that inventory in this claim fits (total - reserved) * allocation_ratio.
// usages may cover more providers and classes than the items; only the
// items' ones count. Usage must leave out the allocations being replaced
// and be read under the providers' locks (store.ReadClaim does both).
func CheckCapacity(items []Item, usages []store.InventoryUsage) error {
	if len(items) == 0 {
		return nil
	}
	var classIDs []int
	seenP, seenC := map[int64]bool{}, map[int]bool{}
	classNames := map[int]string{}
	for _, it := range items {
		seenP[it.Provider.ID] = true
		if !seenC[it.ClassID] {
			seenC[it.ClassID] = true
			classIDs = append(classIDs, it.ClassID)
			classNames[it.ClassID] = it.Class
		}
	}
	inv := make(map[providerClass]store.InventoryUsage, len(usages))
	withInventory := map[int64]bool{}
	for _, u := range usages {
		if !seenP[u.ProviderID] || !seenC[u.ClassID] {
			continue
		}
		inv[providerClass{u.ProviderID, u.ClassID}] = u
		withInventory[u.ProviderID] = true
	}
	var missing []string
	for _, it := range items {
		if !withInventory[it.Provider.ID] && !containsString(missing, it.Provider.UUID) {
			missing = append(missing, it.Provider.UUID)
		}
	}
	if len(missing) > 0 {
		sort.Ints(classIDs)
		var names []string
		for _, id := range classIDs {
			names = append(names, classNames[id])
		}
		return &InvalidInventoryError{fmt.Sprintf("Inventory for '%s' on resource provider '%s' invalid.",
			strings.Join(names, ", "), strings.Join(missing, ", "))}
	}
	requested := map[providerClass]int64{}
	for _, it := range items {
		key := providerClass{it.Provider.ID, it.ClassID}
		requested[key] += it.Used
		if it.Used == 0 {
			continue
		}
		u, ok := inv[key]
		if !ok {
			return &InvalidInventoryError{fmt.Sprintf("Inventory for '%s' on resource provider '%s' invalid.",
				it.Class, it.Provider.UUID)}
		}
		if it.Used < int64(u.MinUnit) || it.Used > int64(u.MaxUnit) || it.Used%int64(u.StepSize) != 0 {
			return &InvalidInventoryError{fmt.Sprintf("Unable to create allocation for '%s' on resource provider '%s'. "+
				"The requested amount would violate inventory constraints.", it.Class, it.Provider.UUID)}
		}
		capacity := u.Capacity()
		if capacity < float64(u.Used+it.Used) || capacity < float64(u.Used+requested[key]) {
			return &InvalidInventoryError{fmt.Sprintf("Unable to create allocation for '%s' on resource provider '%s'. "+
				"The requested amount would exceed the capacity.", it.Class, it.Provider.UUID)}
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Retryable reports whether a claim lost a race it can win by starting
// over: a provider or consumer generation moved, a consumer was created
// concurrently, or PostgreSQL chose it as a deadlock or serialization
// victim.
func Retryable(err error) bool {
	return errors.Is(err, store.ErrConcurrentUpdate) || errors.Is(err, store.ErrExists) || pg.IsRetryable(err)
}

// Errors of Replace besides the capacity's *InvalidInventoryError and the
// retryable ones (see Retryable).
var (
	// ErrProviderNotFound: an allocation names a provider that does not
	// exist.
	ErrProviderNotFound = errors.New("resource provider not found")
	// ErrClassNotFound: an allocation names a resource class that does
	// not exist.
	ErrClassNotFound = errors.New("resource class not found")
	// ErrConsumerGeneration: the consumer is not at the generation the
	// caller expected (or exists when it expected none). It wraps
	// store.ErrConcurrentUpdate, so it is retryable after a re-read.
	ErrConsumerGeneration = fmt.Errorf("consumer generation conflict: %w", store.ErrConcurrentUpdate)
)

// Amount is one allocation of a Claim.
type Amount struct {
	ProviderUUID string // canonical form
	Class        string
	Used         int64
}

// Claim replaces every allocation of one consumer, as PUT
// /allocations/{consumer} at microversion 1.38 does.
type Claim struct {
	ConsumerUUID string
	ProjectID    string
	UserID       string
	ConsumerType string
	// Generation is the consumer generation the caller read; nil means
	// the consumer must not exist yet (consumer_generation null).
	Generation *int
	// Allocations are the new ones, at least one.
	Allocations []Amount
}

// Replace writes the claim in the caller's transaction with the checks of
// PUT /allocations: the consumer and the providers are locked (in the
// order every claim takes them), the consumer generation compared, the
// classes resolved, the capacity checked against the usage without the
// consumer's current allocations, and the provider and consumer
// generations bumped with a compare-and-swap. On any error the caller must
// roll back.
func Replace(ctx context.Context, tx pgx.Tx, c Claim) error {
	if len(c.Allocations) == 0 {
		return fmt.Errorf("claim for consumer %s has no allocation", c.ConsumerUUID)
	}
	r := store.ClaimRead{
		Consumers: []string{c.ConsumerUUID}, Projects: []string{c.ProjectID}, Users: []string{c.UserID},
		LockProviders: true, Usage: true, Replacing: []string{c.ConsumerUUID},
	}
	if c.ConsumerType != "" {
		r.ConsumerTypes = []string{c.ConsumerType}
	}
	seenP, seenC := map[string]bool{}, map[string]bool{}
	for _, a := range c.Allocations {
		if a.Used <= 0 {
			return fmt.Errorf("claim for consumer %s: %s amount %d is not positive", c.ConsumerUUID, a.Class, a.Used)
		}
		if !seenP[a.ProviderUUID] {
			seenP[a.ProviderUUID] = true
			r.Providers = append(r.Providers, a.ProviderUUID)
		}
		if !seenC[a.Class] {
			seenC[a.Class] = true
			r.Classes = append(r.Classes, a.Class)
		}
	}
	var st store.ClaimState
	send := store.SendOn(tx)
	if err := store.ReadClaim(ctx, send, r, &st); err != nil {
		return fmt.Errorf("reading the claim of consumer %s: %w", c.ConsumerUUID, err)
	}
	existing := st.Consumers[c.ConsumerUUID]
	switch {
	case existing == nil && c.Generation != nil:
		return fmt.Errorf("consumer %s: expected generation %d, it does not exist: %w", c.ConsumerUUID, *c.Generation, ErrConsumerGeneration)
	case existing != nil && c.Generation == nil:
		return fmt.Errorf("consumer %s: expected none, it exists at generation %d: %w", c.ConsumerUUID, existing.Generation, ErrConsumerGeneration)
	case existing != nil && existing.Generation != *c.Generation:
		return fmt.Errorf("consumer %s: expected generation %d, it is at %d: %w", c.ConsumerUUID, *c.Generation, existing.Generation, ErrConsumerGeneration)
	}
	if err := store.EnsureOwners(ctx, tx, r.Projects, r.Users, r.ConsumerTypes, &st); err != nil {
		return fmt.Errorf("claim for consumer %s: %w", c.ConsumerUUID, err)
	}
	for _, u := range r.Providers {
		if st.Providers[u] == nil {
			return fmt.Errorf("claim for consumer %s: provider %s: %w", c.ConsumerUUID, u, ErrProviderNotFound)
		}
	}
	var typeID *int
	if c.ConsumerType != "" {
		t := int(st.TypeIDs[c.ConsumerType])
		typeID = &t
	}
	cons := existing
	w := &store.ClaimWrite{}
	if cons == nil {
		cons = &store.Consumer{UUID: c.ConsumerUUID}
		w.NewConsumers = []*store.Consumer{cons}
	} else {
		w.Replaced = []int64{cons.ID}
		w.Consumers = []*store.Consumer{cons}
	}
	cons.ProjectID, cons.UserID = st.ProjectIDs[c.ProjectID], st.UserIDs[c.UserID]
	if typeID != nil {
		cons.ConsumerTypeID = typeID
	}
	items := make([]Item, 0, len(c.Allocations))
	for _, a := range c.Allocations {
		id, ok := st.ClassIDs[a.Class]
		if !ok {
			return fmt.Errorf("claim for consumer %s: %s: %w", c.ConsumerUUID, a.Class, ErrClassNotFound)
		}
		items = append(items, Item{Provider: st.Providers[a.ProviderUUID], Consumer: cons, Class: a.Class, ClassID: id, Used: a.Used})
	}
	if err := CheckCapacity(items, st.Usages); err != nil {
		return fmt.Errorf("claim for consumer %s: %w", c.ConsumerUUID, err)
	}
	for _, it := range items {
		w.Allocations = append(w.Allocations, store.NewAllocation{ProviderID: it.Provider.ID,
			ConsumerUUID: cons.UUID, ClassID: it.ClassID, Used: int(it.Used)})
	}
	for _, u := range r.Providers {
		w.Providers = append(w.Providers, st.Providers[u])
	}
	if err := store.WriteClaim(ctx, send, w); err != nil {
		return fmt.Errorf("writing the claim of consumer %s: %w", c.ConsumerUUID, err)
	}
	return nil
}

package policy

// Scope is an oslo.policy scope type: what a token must be scoped to for
// a rule to apply when scope is enforced.
type Scope string

const (
	ScopeSystem  Scope = "system"
	ScopeDomain  Scope = "domain"
	ScopeProject Scope = "project"
)

// Rule is one registered default, as upstream declares it in
// placement/policies/*.py (Placement 8.0.0, Zed).
type Rule struct {
	Name  string
	Check string
	// Deprecated is the check string of the deprecated rule the default
	// replaced; while new defaults are not enforced, the effective check is
	// Check OR Deprecated.
	Deprecated string
	// Scopes are the token scopes the rule is meant for; a token of another
	// scope is refused only when scope is enforced.
	Scopes []Scope
}

// Rule names handlers pass to Server.authorize.
const (
	ResourceProvidersList   = "placement:resource_providers:list"
	ResourceProvidersCreate = "placement:resource_providers:create"
	ResourceProvidersShow   = "placement:resource_providers:show"
	ResourceProvidersUpdate = "placement:resource_providers:update"
	ResourceProvidersDelete = "placement:resource_providers:delete"

	ResourceClassesList   = "placement:resource_classes:list"
	ResourceClassesCreate = "placement:resource_classes:create"
	ResourceClassesShow   = "placement:resource_classes:show"
	ResourceClassesUpdate = "placement:resource_classes:update"
	ResourceClassesDelete = "placement:resource_classes:delete"

	InventoriesList   = "placement:resource_providers:inventories:list"
	InventoriesCreate = "placement:resource_providers:inventories:create"
	InventoriesShow   = "placement:resource_providers:inventories:show"
	InventoriesUpdate = "placement:resource_providers:inventories:update"
	InventoriesDelete = "placement:resource_providers:inventories:delete"

	AggregatesList   = "placement:resource_providers:aggregates:list"
	AggregatesUpdate = "placement:resource_providers:aggregates:update"

	ProviderUsages = "placement:resource_providers:usages"
	TotalUsages    = "placement:usages"

	TraitsList   = "placement:traits:list"
	TraitsShow   = "placement:traits:show"
	TraitsUpdate = "placement:traits:update"
	TraitsDelete = "placement:traits:delete"

	ProviderTraitsList   = "placement:resource_providers:traits:list"
	ProviderTraitsUpdate = "placement:resource_providers:traits:update"
	ProviderTraitsDelete = "placement:resource_providers:traits:delete"

	AllocationsManage       = "placement:allocations:manage"
	AllocationsList         = "placement:allocations:list"
	AllocationsUpdate       = "placement:allocations:update"
	AllocationsDelete       = "placement:allocations:delete"
	ProviderAllocationsList = "placement:resource_providers:allocations:list"

	AllocationCandidatesList = "placement:allocation_candidates:list"

	Reshape = "placement:reshaper:reshape"
)

const (
	systemAdmin           = "rule:system_admin_api"
	systemReader          = "rule:system_reader_api"
	systemOrProjectReader = "rule:system_or_project_reader"
	// deprecatedAdmin is the pre-Wallaby "rule:admin_api" = role:admin that
	// every base rule names as its deprecated rule.
	deprecatedAdmin = "role:admin"
)

var system = []Scope{ScopeSystem}

// Defaults are upstream's registered rules, in upstream's order. Only these
// names can be authorized; anything else is refused.
var Defaults = []Rule{
	// base.py
	{Name: "admin_api", Check: "role:admin", Scopes: system},
	{Name: "system_admin_api", Check: "role:admin and system_scope:all", Deprecated: deprecatedAdmin},
	{Name: "system_reader_api", Check: "role:reader and system_scope:all", Deprecated: deprecatedAdmin},
	{Name: "project_reader_api", Check: "role:reader and project_id:%(project_id)s", Deprecated: deprecatedAdmin},
	{Name: "system_or_project_reader", Check: "rule:system_reader_api or rule:project_reader_api", Deprecated: deprecatedAdmin},

	// resource_provider.py
	{Name: ResourceProvidersList, Check: systemReader, Scopes: system},
	{Name: ResourceProvidersCreate, Check: systemAdmin, Scopes: system},
	{Name: ResourceProvidersShow, Check: systemReader, Scopes: system},
	{Name: ResourceProvidersUpdate, Check: systemAdmin, Scopes: system},
	{Name: ResourceProvidersDelete, Check: systemAdmin, Scopes: system},

	// resource_class.py
	{Name: ResourceClassesList, Check: systemReader, Scopes: system},
	{Name: ResourceClassesCreate, Check: systemAdmin, Scopes: system},
	{Name: ResourceClassesShow, Check: systemReader, Scopes: system},
	{Name: ResourceClassesUpdate, Check: systemAdmin, Scopes: system},
	{Name: ResourceClassesDelete, Check: systemAdmin, Scopes: system},

	// inventory.py
	{Name: InventoriesList, Check: systemReader, Scopes: system},
	{Name: InventoriesCreate, Check: systemAdmin, Scopes: system},
	{Name: InventoriesShow, Check: systemReader, Scopes: system},
	{Name: InventoriesUpdate, Check: systemAdmin, Scopes: system},
	{Name: InventoriesDelete, Check: systemAdmin, Scopes: system},

	// aggregate.py
	{Name: AggregatesList, Check: systemReader, Scopes: system},
	{Name: AggregatesUpdate, Check: systemAdmin, Scopes: system},

	// usage.py
	{Name: ProviderUsages, Check: systemReader, Scopes: system},
	{Name: TotalUsages, Check: systemOrProjectReader, Scopes: []Scope{ScopeSystem, ScopeProject}},

	// trait.py
	{Name: TraitsList, Check: systemReader, Scopes: system},
	{Name: TraitsShow, Check: systemReader, Scopes: system},
	{Name: TraitsUpdate, Check: systemAdmin, Scopes: system},
	{Name: TraitsDelete, Check: systemAdmin, Scopes: system},
	{Name: ProviderTraitsList, Check: systemReader, Scopes: system},
	{Name: ProviderTraitsUpdate, Check: systemAdmin, Scopes: system},
	{Name: ProviderTraitsDelete, Check: systemAdmin, Scopes: system},

	// allocation.py
	{Name: AllocationsManage, Check: systemAdmin, Scopes: system},
	{Name: AllocationsList, Check: systemReader, Scopes: system},
	{Name: AllocationsUpdate, Check: systemAdmin, Scopes: system},
	{Name: AllocationsDelete, Check: systemAdmin, Scopes: system},
	{Name: ProviderAllocationsList, Check: systemReader, Scopes: system},

	// allocation_candidate.py
	{Name: AllocationCandidatesList, Check: systemReader, Scopes: system},

	// reshaper.py
	{Name: Reshape, Check: systemAdmin, Scopes: system},
}

// openOverrides is the conformance suite's open-policy.yaml: every rule
// opened to any authenticated caller except admin_api.
func openOverrides() map[string]string {
	m := make(map[string]string, len(Defaults))
	for _, r := range Defaults {
		if r.Name != "admin_api" {
			m[r.Name] = "@"
		}
	}
	return m
}

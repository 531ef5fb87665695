package placement

// Error codes of upstream placement/errors.py; clients (Nova) match on them.
const (
	CodeUndefined                  = "placement.undefined_code"
	CodeInventoryInUse             = "placement.inventory.inuse"
	CodeConcurrentUpdate           = "placement.concurrent_update"
	CodeDuplicateName              = "placement.duplicate_name"
	CodeProviderInUse              = "placement.resource_provider.inuse"
	CodeProviderCannotDeleteParent = "placement.resource_provider.cannot_delete_parent"
	CodeProviderNotFound           = "placement.resource_provider.not_found"
	CodeQueryDuplicateKey          = "placement.query.duplicate_key"
	CodeQueryBadValue              = "placement.query.bad_value"
	CodeQueryMissingValue          = "placement.query.missing_value"
)

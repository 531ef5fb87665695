package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// Usage is the amount of one resource class consumed.
type Usage struct {
	ResourceClass string
	Used          int64
}

// TypedUsage is a usage within one consumer-type group (microversion 1.38).
type TypedUsage struct {
	ConsumerType  string
	ResourceClass string
	Used          int64
	// ConsumerCount is the number of distinct consumers in the group, over
	// all of its classes.
	ConsumerCount int64
}

// Consumer-type groupings of ProjectUsagesByType besides a type name.
const (
	// ConsumerTypeAll puts every consumer in one group named "all".
	ConsumerTypeAll = "all"
	// ConsumerTypeUnknown is the group of consumers without a type.
	ConsumerTypeUnknown = "unknown"
)

const (
	selectProviderUsages = `SELECT rc.name, coalesce(sum(a.used), 0)
FROM inventories i
JOIN resource_classes rc ON rc.id = i.resource_class_id
LEFT JOIN allocations a ON a.resource_provider_id = i.resource_provider_id AND a.resource_class_id = i.resource_class_id
WHERE i.resource_provider_id = $1
GROUP BY i.resource_class_id, rc.name
ORDER BY i.resource_class_id`

	selectProjectUsages = `SELECT rc.name, sum(a.used)
FROM allocations a
JOIN consumers c ON c.id = a.consumer_id
JOIN projects p ON p.id = c.project_id
JOIN users u ON u.id = c.user_id
JOIN resource_classes rc ON rc.id = a.resource_class_id
WHERE p.external_id = $1 AND ($2::text = '' OR u.external_id = $2::text)
GROUP BY a.resource_class_id, rc.name
ORDER BY a.resource_class_id`

	// $3 is '' (group by type), 'all', 'unknown' or a type name.
	selectProjectUsagesByType = `WITH sel AS (
	SELECT CASE WHEN $3::text = 'all' THEN 'all' ELSE coalesce(ct.name, 'unknown') END AS grp,
		a.consumer_id, a.resource_class_id, a.used
	FROM allocations a
	JOIN consumers c ON c.id = a.consumer_id
	JOIN projects p ON p.id = c.project_id
	JOIN users u ON u.id = c.user_id
	LEFT JOIN consumer_types ct ON ct.id = c.consumer_type_id
	WHERE p.external_id = $1 AND ($2::text = '' OR u.external_id = $2::text)
	AND ($3::text IN ('', 'all')
		OR ($3::text = 'unknown' AND c.consumer_type_id IS NULL)
		OR ct.name = $3::text)
), counts AS (
	SELECT grp, count(DISTINCT consumer_id) AS n FROM sel GROUP BY grp
)
SELECT s.grp, rc.name, sum(s.used), counts.n
FROM sel s
JOIN counts ON counts.grp = s.grp
JOIN resource_classes rc ON rc.id = s.resource_class_id
GROUP BY s.grp, s.resource_class_id, rc.name, counts.n
ORDER BY s.grp, s.resource_class_id`
)

func collectUsages(rows pgx.Rows) ([]Usage, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Usage, error) {
		var u Usage
		err := r.Scan(&u.ResourceClass, &u.Used)
		return u, err
	})
}

// ProviderUsages returns, for every class the provider has inventory of,
// the amount allocated (0 when unused), in class-id order.
func ProviderUsages(ctx context.Context, db pg.DBTX, providerID int64) ([]Usage, error) {
	rows, err := db.Query(ctx, selectProviderUsages, providerID)
	if err != nil {
		return nil, fmt.Errorf("summing usages of provider %d: %w", providerID, err)
	}
	out, err := collectUsages(rows)
	if err != nil {
		return nil, fmt.Errorf("summing usages of provider %d: %w", providerID, err)
	}
	return out, nil
}

// ProjectUsages sums the allocations of a project's consumers (those of
// one user when userID is not empty) per resource class. Classes nobody
// uses are absent.
func ProjectUsages(ctx context.Context, db pg.DBTX, projectID, userID string) ([]Usage, error) {
	rows, err := db.Query(ctx, selectProjectUsages, projectID, userID)
	if err != nil {
		return nil, fmt.Errorf("summing usages of project %s: %w", projectID, err)
	}
	out, err := collectUsages(rows)
	if err != nil {
		return nil, fmt.Errorf("summing usages of project %s: %w", projectID, err)
	}
	return out, nil
}

// ProjectUsagesByType is ProjectUsages grouped by consumer type. grouping
// is "" (one group per type, typeless consumers under "unknown"),
// ConsumerTypeAll, ConsumerTypeUnknown, or a type name (that type only).
func ProjectUsagesByType(ctx context.Context, db pg.DBTX, projectID, userID, grouping string) ([]TypedUsage, error) {
	rows, err := db.Query(ctx, selectProjectUsagesByType, projectID, userID, grouping)
	if err != nil {
		return nil, fmt.Errorf("summing usages of project %s by consumer type: %w", projectID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TypedUsage, error) {
		var u TypedUsage
		err := r.Scan(&u.ConsumerType, &u.ResourceClass, &u.Used, &u.ConsumerCount)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("summing usages of project %s by consumer type: %w", projectID, err)
	}
	return out, nil
}

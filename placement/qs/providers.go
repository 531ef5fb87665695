package qs

import "sort"

// ProvidersSchema returns the query-string schema of GET /resource_providers
// at microversion 1.minor.
func ProvidersSchema(minor int) *Schema {
	switch {
	case minor >= 18:
		return providersSchema1_18
	case minor >= 14:
		return providersSchema1_14
	case minor >= 4:
		return providersSchema1_4
	case minor >= 3:
		return providersSchema1_3
	default:
		return providersSchema1_0
	}
}

func sortStrings(s []string) { sort.Strings(s) }

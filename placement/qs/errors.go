// Package qs parses the query strings of GET /allocation_candidates and
// GET /resource_providers the way Placement 8.0.0 does: same accepted forms
// per microversion, same error texts (clients and the gabbi suite match on
// them) and the same placement.query.* error codes.
package qs

import "strings"

// Error codes a query-string error may carry. An empty Code means
// placement.undefined_code.
const (
	CodeDuplicateKey = "placement.query.duplicate_key"
	CodeBadValue     = "placement.query.bad_value"
	CodeMissingValue = "placement.query.missing_value"
)

// Error is a malformed query string; the HTTP layer turns it into a 400 with
// Detail as the error detail and Code as the error code. Line breaks in the
// detail are already spaces, as WebOb renders them.
type Error struct {
	Detail string
	Code   string
}

func (e *Error) Error() string { return e.Detail }

func badRequest(detail string) *Error { return badRequestCode(detail, "") }

func badRequestCode(detail, code string) *Error {
	return &Error{Detail: strings.ReplaceAll(detail, "\n", " "), Code: code}
}

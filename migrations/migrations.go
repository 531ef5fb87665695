// Package migrations holds the SQL schema of unisched as numbered migration
// files, embedded so that the one binary can bring any database up to date.
package migrations

import "embed"

// FS holds NNNNNN_name.up.sql / .down.sql files in golang-migrate's naming.
//
//go:embed *.sql
var FS embed.FS

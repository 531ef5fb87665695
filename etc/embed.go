// Package etc holds the annotated configuration samples, embedded so that
// `unisched config sample` prints them from the binary an operator has.
package etc

import _ "embed"

// UnischedYAML is etc/unisched.yaml: every key of serve and the agent, with
// its default and what it does. The INI sample (unisched.conf.sample) is
// generated from it (internal/config.INISample).
//
//go:embed unisched.yaml
var UnischedYAML []byte

package api

import "github.com/unisched/unisched/internal/jsonschema"

// createWorkloadsSchema is POST /v1/workloads (docs/api/workloads.md).
// A workload's kind picks its schema, so a VM entry naming a container
// field is refused rather than silently ignored. Bounds keep every amount
// inside what Placement stores (a 32-bit integer) and what Docker takes
// (6 MiB of memory at least).
var createWorkloadsSchema = jsonschema.MustCompile(`{
  "type": "object",
  "properties": {
    "workloads": {"type": "array", "minItems": 1, "maxItems": 32, "items": {"$ref": "#/$defs/workload"}}
  },
  "required": ["workloads"],
  "additionalProperties": false,
  "$defs": {
    "workload": {
      "type": "object",
      "properties": {"kind": {"type": "string", "enum": ["vm", "container"]}},
      "required": ["kind"],
      "if": {"properties": {"kind": {"const": "container"}}},
      "then": {"$ref": "#/$defs/container"},
      "else": {"$ref": "#/$defs/vm"}
    },
    "container": {
      "type": "object",
      "properties": {
        "kind": {},
        "id": {"$ref": "#/$defs/uuid"},
        "name": {"$ref": "#/$defs/name"},
        "cpu_policy": {"$ref": "#/$defs/cpu_policy"},
        "cpu": {"type": "number", "exclusiveMinimum": 0, "maximum": 1024},
        "memory_mb": {"type": "integer", "minimum": 6, "maximum": 2147483647},
        "disk_gb": {"$ref": "#/$defs/disk_gb"},
        "numa": {"$ref": "#/$defs/numa"},
        "required_traits": {"$ref": "#/$defs/traits"},
        "forbidden_traits": {"$ref": "#/$defs/traits"},
        "member_of": {"$ref": "#/$defs/member_of"},
        "availability_zone": {"$ref": "#/$defs/zone"},
        "host": {"$ref": "#/$defs/host"},
        "group": {"$ref": "#/$defs/group"},
        "image": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^\\S+$"},
        "command": {"$ref": "#/$defs/argv"},
        "entrypoint": {"$ref": "#/$defs/argv"},
        "environment": {
          "type": "object",
          "maxProperties": 256,
          "propertyNames": {"minLength": 1, "maxLength": 255, "pattern": "^[^=\\x00]+$"},
          "additionalProperties": {"type": "string", "maxLength": 32768}
        },
        "labels": {
          "type": "object",
          "maxProperties": 256,
          "propertyNames": {"minLength": 1, "maxLength": 255, "not": {"pattern": "^org\\.unisched\\."}},
          "additionalProperties": {"type": "string", "maxLength": 4096}
        },
        "workdir": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^/"},
        "hostname": {"type": "string", "minLength": 1, "maxLength": 63, "pattern": "^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$"},
        "tty": {"type": "boolean"},
        "interactive": {"type": "boolean"},
        "privileged": {"type": "boolean"},
        "auto_remove": {"type": "boolean"},
        "run": {"type": "boolean"},
        "restart_policy": {
          "type": "object",
          "properties": {
            "name": {"type": "string", "enum": ["no", "always", "on-failure", "unless-stopped"]},
            "maximum_retry_count": {"type": "integer", "minimum": 0, "maximum": 1000}
          },
          "required": ["name"],
          "additionalProperties": false
        }
      },
      "required": ["cpu", "memory_mb", "image"],
      "additionalProperties": false,
      "if": {"properties": {"cpu_policy": {"const": "dedicated"}}, "required": ["cpu_policy"]},
      "then": {"properties": {"cpu": {"type": "integer"}}}
    },
    "vm": {
      "type": "object",
      "properties": {
        "kind": {},
        "id": {"$ref": "#/$defs/uuid"},
        "name": {"$ref": "#/$defs/name"},
        "cpu_policy": {"$ref": "#/$defs/cpu_policy"},
        "cpu": {"type": "integer", "minimum": 1, "maximum": 1024},
        "memory_mb": {"type": "integer", "minimum": 1, "maximum": 2147483647},
        "disk_gb": {"$ref": "#/$defs/disk_gb"},
        "numa": {"$ref": "#/$defs/numa"},
        "required_traits": {"$ref": "#/$defs/traits"},
        "forbidden_traits": {"$ref": "#/$defs/traits"},
        "member_of": {"$ref": "#/$defs/member_of"},
        "availability_zone": {"$ref": "#/$defs/zone"},
        "host": {"$ref": "#/$defs/host"},
        "group": {"$ref": "#/$defs/group"},
        "image": {"type": "string", "minLength": 1, "maxLength": 255},
        "flavor": {"type": "string", "minLength": 1, "maxLength": 255}
      },
      "required": ["cpu", "memory_mb"],
      "additionalProperties": false
    },
    "uuid": {"type": "string", "format": "uuid"},
    "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"},
    "cpu_policy": {"type": "string", "enum": ["shared", "dedicated"]},
    "disk_gb": {"type": "integer", "minimum": 0, "maximum": 2147483647},
    "numa": {
      "type": "object",
      "properties": {
        "cells": {"type": "integer", "minimum": 1, "maximum": 8},
        "memory_mb": {"type": "array", "minItems": 1, "maxItems": 8, "items": {"type": "integer", "minimum": 1, "maximum": 2147483647}}
      },
      "required": ["cells"],
      "additionalProperties": false
    },
    "traits": {
      "type": "array", "maxItems": 64, "uniqueItems": true,
      "items": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[A-Z0-9_]+$"}
    },
    "member_of": {
      "type": "array", "maxItems": 16,
      "items": {"type": "array", "minItems": 1, "maxItems": 64, "items": {"$ref": "#/$defs/uuid"}}
    },
    "zone": {"type": "string", "minLength": 1, "maxLength": 255},
    "host": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"},
    "group": {
      "type": "object",
      "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 255},
        "policy": {"type": "string", "enum": ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]},
        "max_per_host": {"type": "integer", "minimum": 1, "maximum": 1000}
      },
      "required": ["id", "policy"],
      "additionalProperties": false
    },
    "argv": {"type": "array", "maxItems": 256, "items": {"type": "string", "maxLength": 32768}}
  }
}`)

// registrationSchema is PUT /v1/agents/{host} (agentproto.Registration).
var registrationSchema = jsonschema.MustCompile(`{
  "type": "object",
  "properties": {
    "host": {"$ref": "#/$defs/host"},
    "agent_url": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "^https?://[^/\\s]+(/\\S*)?$"},
    "availability_zone": {"type": "string", "maxLength": 255},
    "cells": {
      "type": "array", "minItems": 1, "maxItems": 64,
      "items": {
        "type": "object",
        "properties": {
          "id": {"type": "integer", "minimum": 0, "maximum": 1023},
          "cpus": {"$ref": "#/$defs/cpulist"},
          "siblings": {"type": "array", "maxItems": 4096, "items": {"$ref": "#/$defs/cpulist"}},
          "memory_mb": {"type": "integer", "minimum": 0, "maximum": 2147483647}
        },
        "required": ["id", "cpus", "memory_mb"],
        "additionalProperties": false
      }
    },
    "dedicated_cpus": {"$ref": "#/$defs/cpulist_or_empty"},
    "shared_cpus": {"$ref": "#/$defs/cpulist_or_empty"},
    "disk_gb": {"type": "integer", "minimum": 0, "maximum": 2147483647},
    "cpu_allocation_ratio": {"type": "number", "minimum": 0, "maximum": 1000},
    "ram_allocation_ratio": {"type": "number", "minimum": 0, "maximum": 1000},
    "disk_allocation_ratio": {"type": "number", "minimum": 0, "maximum": 1000},
    "reserved_host_memory_mb": {"type": "integer", "minimum": 0, "maximum": 2147483647},
    "os": {"type": "string", "maxLength": 255},
    "kernel_version": {"type": "string", "maxLength": 255},
    "architecture": {"type": "string", "maxLength": 255}
  },
  "required": ["agent_url", "cells", "dedicated_cpus", "shared_cpus"],
  "additionalProperties": false,
  "$defs": {
    "host": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"},
    "cpulist": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$"},
    "cpulist_or_empty": {"type": "string", "maxLength": 4096, "pattern": "^([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)?$"}
  }
}`)

// reportSchema is POST /v1/agents/{host}/reports (agentproto.Report).
var reportSchema = jsonschema.MustCompile(`{
  "type": "object",
  "properties": {
    "workload_id": {"type": "string", "format": "uuid"},
    "event_id": {"type": "integer", "minimum": 0},
    "container_id": {"type": "string", "maxLength": 255},
    "status": {"type": "string", "enum": ["Created", "Running", "Stopped", "Paused", "Restarting", "Dead", "Error", "Deleted"]},
    "reason": {"type": "string", "maxLength": 65536},
    "exit_code": {"type": ["integer", "null"], "minimum": -2147483648, "maximum": 2147483647},
    "started_at": {"type": "string", "maxLength": 64},
    "observed_at": {"type": "string", "maxLength": 64}
  },
  "required": ["workload_id", "status"],
  "additionalProperties": false
}`)

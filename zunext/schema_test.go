package zunext

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
)

// TestCreateValidation covers every create field: Zun's schema errors
// (exact wording where clients see it), its version and policy checks,
// and the refusals of what this deployment cannot honour.
func TestCreateValidation(t *testing.T) {
	h, tb := newTestHandler(t)
	bridgetest.Register(t, tb.c, bridgetest.TwoCells("host2"))
	const member = "demo:demo"
	tests := []struct {
		name    string
		version string
		token   string
		query   string
		body    string
		status  int
		code    string // "" to skip
		detail  string // prefix of the detail; "" to skip
		suffix  string // suffix of the detail; "" to skip
		host    string // where a created container is placed; "" for host1
	}{
		{name: "minimal", body: `{"image": "busybox"}`, status: 202},
		{name: "all accepted fields", body: `{"name": "web-1", "image": "busybox:latest", "command": ["sleep", "60"],
			"cpu": 0.5, "cpu_policy": "shared", "memory": "256", "workdir": "/tmp", "auto_remove": false,
			"labels": {"app": "x"}, "environment": {"A": "b"}, "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3},
			"interactive": true, "tty": true, "image_driver": "docker", "security_groups": [], "hints": {"a": "b"},
			"mounts": [], "nets": [], "hostname": "box", "disk": 2, "availability_zone": "nova", "auto_heal": "true",
			"healthcheck": {"cmd": "true", "interval": 3}, "entrypoint": ["/bin/sh", "-c"]}`, status: 202},
		{name: "nulls", body: `{"image": "busybox", "name": null, "command": null, "cpu": null, "memory": null,
			"workdir": null, "labels": null, "environment": null, "restart_policy": null, "image_driver": null,
			"security_groups": null, "hints": null, "mounts": null, "nets": null, "runtime": null, "disk": null,
			"availability_zone": null, "healthcheck": null, "entrypoint": null, "auto_remove": null}`, status: 202},

		// whole-document errors: the bare message
		{name: "no image", body: `{"name": "abc"}`, status: 400, code: "container.schema-validation-error", detail: "'image' is a required property", suffix: "'image' is a required property"},
		{name: "no image legacy", version: "container 1.19", body: `{}`, status: 400, detail: "'image' is a required property"},
		{name: "unknown field", body: `{"image": "busybox", "foo": 1}`, status: 400, detail: "Additional properties are not allowed ('foo' was unexpected)"},
		{name: "not an object", body: `[]`, status: 400, detail: "[] is not of type 'object'"},
		{name: "malformed", body: `{"image": `, status: 400},
		{name: "security groups with exposed ports", body: `{"image": "busybox", "security_groups": ["a"], "exposed_ports": {"80": {}}}`, status: 400, code: "container.schema-validation-error"},

		// name
		{name: "name too short", body: `{"image": "busybox", "name": "a"}`, status: 400, code: "container.schema-validation-error",
			detail: "Invalid input for field 'name'.Value: 'a'. 'a' is too short\n\nFailed validating 'minLength' in schema['properties']['name']:",
			suffix: "On instance['name']:\n    'a'"},
		{name: "name pattern", body: `{"image": "busybox", "name": "-x"}`, status: 400, detail: "Invalid input for field 'name'.Value: '-x'. '-x' does not match '^[a-zA-Z0-9][a-zA-Z0-9_.-]+$'"},
		{name: "name too long", body: `{"image": "busybox", "name": "` + strings.Repeat("a", 256) + `"}`, status: 400, detail: "Invalid input for field 'name'."},
		{name: "name type", body: `{"image": "busybox", "name": 12}`, status: 400, detail: "Invalid input for field 'name'.Value: '12'. 12 is not of type 'string', 'null'"},
		// image
		{name: "image short", body: `{"image": "b"}`, status: 400, detail: "Invalid input for field 'image'.Value: 'b'. 'b' is too short"},
		{name: "image pattern", body: `{"image": "/#"}`, status: 400, detail: "Invalid input for field 'image'.Value: '/#'. '/#' does not match"},
		{name: "image type", body: `{"image": ["x"]}`, status: 400, detail: "Invalid input for field 'image'.Value: '['x']'. ['x'] is not of type 'string'"},
		// command
		{name: "command string at 1.40", body: `{"image": "busybox", "command": "ls -l"}`, status: 400, detail: "Invalid input for field 'command'.Value: 'ls -l'. 'ls -l' is not of type 'array', 'null'"},
		{name: "command string at 1.19", version: "container 1.19", body: `{"image": "busybox", "command": "sh -c 'echo hi'"}`, status: 202},
		{name: "command list at 1.19", version: "container 1.19", body: `{"image": "busybox", "command": ["ls"]}`, status: 400, detail: "Invalid input for field 'command'.Value: '['ls']'. ['ls'] is not of type 'string', 'null'"},
		{name: "command unbalanced quote", version: "container 1.19", body: `{"image": "busybox", "command": "sh -c 'x"}`, status: 400, code: "container.invalid-value"},
		{name: "command nested", body: `{"image": "busybox", "command": [["x"]]}`, status: 400, code: "container.invalid-value"},
		// entrypoint
		{name: "entrypoint at 1.39", version: "container 1.39", body: `{"image": "busybox", "entrypoint": ["sh"]}`, status: 400, detail: "Additional properties are not allowed ('entrypoint' was unexpected)"},
		{name: "entrypoint type", body: `{"image": "busybox", "entrypoint": "sh"}`, status: 400, detail: "Invalid input for field 'entrypoint'.Value: 'sh'. 'sh' is not of type 'array', 'null'"},
		// cpu
		{name: "cpu below minimum", body: `{"image": "busybox", "cpu": 0.05}`, status: 400, detail: "Invalid input for field 'cpu'.Value: '0.05'. 0.05 is less than the minimum of 0.1"},
		{name: "cpu above maximum", body: `{"image": "busybox", "cpu": 17}`, status: 400, detail: "Invalid input for field 'cpu'.Value: '17'. 17 is greater than the maximum of 16.0"},
		{name: "cpu string below minimum", body: `{"image": "busybox", "cpu": "0.05"}`, status: 400,
			detail: "Invalid input for field 'cpu'.Value: '0.05'. 0.05 is less than the minimum of 0.1", suffix: "On instance['cpu']:\n    '0.05'"},
		{name: "cpu string above maximum", body: `{"image": "busybox", "cpu": "32"}`, status: 400, detail: "Invalid input for field 'cpu'.Value: '32'. 32 is greater than the maximum of 16.0"},
		{name: "cpu string pattern", body: `{"image": "busybox", "cpu": "1,5"}`, status: 400, detail: "Invalid input for field 'cpu'.Value: '1,5'. '1,5' does not match"},
		{name: "cpu empty", body: `{"image": "busybox", "cpu": ""}`, status: 400, detail: "Invalid input for field 'cpu'.Value: ''. '' is too short"},
		{name: "cpu bool", body: `{"image": "busybox", "cpu": true}`, status: 400, detail: "Invalid input for field 'cpu'.Value: 'True'. True is not of type 'number', 'string', 'null'"},
		{name: "cpu string ok", body: `{"image": "busybox", "cpu": "1.5"}`, status: 202},
		// cpu_policy
		{name: "cpu_policy enum", body: `{"image": "busybox", "cpu_policy": "mixed"}`, status: 400, detail: "Invalid input for field 'cpu_policy'.Value: 'mixed'. 'mixed' is not one of ['dedicated', 'shared']"},
		{name: "cpu_policy null", body: `{"image": "busybox", "cpu_policy": null}`, status: 400, detail: "Invalid input for field 'cpu_policy'.Value: 'None'. None is not of type 'string'"},
		{name: "cpu_policy dedicated", body: `{"image": "busybox", "cpu_policy": "dedicated", "cpu": 2}`, status: 202},
		// memory
		{name: "memory below minimum", body: `{"image": "busybox", "memory": 3}`, status: 400, detail: "Invalid input for field 'memory'.Value: '3'. 3 is less than the minimum of 4", suffix: "On instance['memory']:\n    3"},
		{name: "memory string below minimum", body: `{"image": "busybox", "memory": "3"}`, status: 400, detail: "Invalid input for field 'memory'.Value: '3'. 3 is less than the minimum of 4", suffix: "On instance['memory']:\n    '3'"},
		{name: "memory above maximum", body: `{"image": "busybox", "memory": "8193"}`, status: 400, detail: "Invalid input for field 'memory'.Value: '8193'. 8193 is greater than the maximum of 8192"},
		{name: "memory with unit", body: `{"image": "busybox", "memory": "512M"}`, status: 400, detail: "Invalid input for field 'memory'.Value: '512M'. '512M' does not match '^[0-9]+$'"},
		{name: "memory float", body: `{"image": "busybox", "memory": 512.5}`, status: 400, detail: "Invalid input for field 'memory'.Value: '512.5'. 512.5 is not of type 'string', 'integer', 'null'"},
		{name: "memory bool", body: `{"image": "busybox", "memory": true}`, status: 400, detail: "Invalid input for field 'memory'.Value: 'True'. True is not of type 'string', 'integer', 'null'"},
		// disk
		{name: "disk below minimum", body: `{"image": "busybox", "disk": 0}`, status: 400, detail: "Invalid input for field 'disk'.Value: '0'. 0 is less than the minimum of 1"},
		{name: "disk string above maximum", body: `{"image": "busybox", "disk": "161"}`, status: 400, detail: "Invalid input for field 'disk'.Value: '161'. 161 is greater than the maximum of 160"},
		// workdir, hostname, availability_zone
		{name: "workdir type", body: `{"image": "busybox", "workdir": 5}`, status: 400, detail: "Invalid input for field 'workdir'.Value: '5'. 5 is not of type 'string', 'null'"},
		{name: "hostname pattern", body: `{"image": "busybox", "hostname": "a b"}`, status: 400, detail: "Invalid input for field 'hostname'.Value: 'a b'. 'a b' does not match '^[a-zA-Z0-9-._]*$'"},
		{name: "hostname before 1.9", version: "container 1.8", body: `{"image": "busybox", "hostname": "box"}`, status: 400, code: "container.invalid-param-in-version",
			detail: "Invalid param hostname because current request version is 1.8. hostname is only supported from version 1.9"},
		{name: "availability_zone empty", body: `{"image": "busybox", "availability_zone": ""}`, status: 400, detail: "Invalid input for field 'availability_zone'.Value: ''. '' is too short"},
		// auto_remove
		{name: "auto_remove string", body: `{"image": "busybox", "auto_remove": "yes"}`, status: 400, detail: "Invalid input for field 'auto_remove'.Value: 'yes'. 'yes' is not of type 'boolean', 'null'"},
		{name: "auto_remove before 1.3", version: "container 1.2", body: `{"image": "busybox", "auto_remove": true}`, status: 400,
			detail: "Invalid param auto_remove because current request version is 1.2. auto_remove is only supported from version 1.3"},
		// labels, environment, hints
		{name: "labels type", body: `{"image": "busybox", "labels": "a=b"}`, status: 400, detail: "Invalid input for field 'labels'.Value: 'a=b'. 'a=b' is not of type 'object', 'null'"},
		{name: "labels nested", body: `{"image": "busybox", "labels": {"a": {"b": 1}}}`, status: 400, code: "container.invalid-value"},
		{name: "environment value type", body: `{"image": "busybox", "environment": {"A": 1}}`, status: 400, detail: "Invalid input for field 'A'.Value: '1'. 1 is not of type 'string'"},
		{name: "hints type", body: `{"image": "busybox", "hints": []}`, status: 400, detail: "Invalid input for field 'hints'.Value: '[]'. [] is not of type 'object', 'null'"},
		// restart_policy
		{name: "restart name", body: `{"image": "busybox", "restart_policy": {"Name": "sometimes"}}`, status: 400,
			detail: "Invalid input for field 'Name'.Value: 'sometimes'. 'sometimes' is not one of ['no', 'always', 'on-failure', 'unless-stopped']"},
		{name: "restart without name", body: `{"image": "busybox", "restart_policy": {"MaximumRetryCount": 1}}`, status: 400,
			detail: "Invalid input for field 'restart_policy'.Value: '{'MaximumRetryCount': 1}'. 'Name' is a required property"},
		{name: "restart extra key", body: `{"image": "busybox", "restart_policy": {"Name": "no", "x": 1}}`, status: 400, detail: "Invalid input for field 'restart_policy'."},
		{name: "restart negative count", body: `{"image": "busybox", "restart_policy": {"Name": "on-failure", "MaximumRetryCount": -1}}`, status: 400,
			detail: "Invalid input for field 'MaximumRetryCount'.Value: '-1'. -1 is less than the minimum of 0"},
		{name: "restart always with count", body: `{"image": "busybox", "restart_policy": {"Name": "always", "MaximumRetryCount": "2"}}`, status: 400,
			code: "container.invalid-value", detail: "maximum retry count not valid with restart policy of always"},
		{name: "restart without count", body: `{"image": "busybox", "restart_policy": {"Name": "on-failure"}}`, status: 202},
		{name: "restart count null", body: `{"image": "busybox", "restart_policy": {"Name": "on-failure", "MaximumRetryCount": null}}`, status: 400, code: "container.invalid-value"},
		// interactive, tty, auto_heal
		{name: "interactive enum", body: `{"image": "busybox", "interactive": "maybe"}`, status: 400,
			detail: "Invalid input for field 'interactive'.Value: 'maybe'. 'maybe' is not one of [True, 'True', 'true', False, 'False', 'false']"},
		{name: "tty enum", body: `{"image": "busybox", "tty": 1}`, status: 400, detail: "Invalid input for field 'tty'.Value: '1'. 1 is not of type 'boolean', 'string'"},
		{name: "auto_heal enum", body: `{"image": "busybox", "auto_heal": "on"}`, status: 400, detail: "Invalid input for field 'auto_heal'."},
		// image_driver, image_pull_policy
		{name: "image_driver enum", body: `{"image": "busybox", "image_driver": "podman"}`, status: 400, detail: "Invalid input for field 'image_driver'.Value: 'podman'. 'podman' is not one of ['glance', 'docker', None, 'None']"},
		{name: "image_driver glance", body: `{"image": "busybox", "image_driver": "glance"}`, status: 400, code: "container.operation-not-supported"},
		{name: "image_driver None", body: `{"image": "busybox", "image_driver": "None"}`, status: 202},
		{name: "pull policy member", token: member, body: `{"image": "busybox", "image_pull_policy": "always"}`, status: 403,
			code: "container.policy-not-authorized", detail: "Policy doesn't allow container:create:image_pull_policy to be performed."},
		{name: "pull policy admin", body: `{"image": "busybox", "image_pull_policy": "ifnotpresent"}`, status: 202},
		{name: "pull policy enum", body: `{"image": "busybox", "image_pull_policy": "sometimes"}`, status: 400, detail: "Invalid input for field 'image_pull_policy'."},
		// runtime, privileged
		{name: "runtime member", token: member, body: `{"image": "busybox", "runtime": "runc"}`, status: 403, detail: "Policy doesn't allow container:create:runtime to be performed."},
		{name: "runtime admin runc", body: `{"image": "busybox", "runtime": "runc"}`, status: 202},
		{name: "runtime admin kata", body: `{"image": "busybox", "runtime": "kata"}`, status: 400, code: "container.operation-not-supported"},
		{name: "runtime before 1.5", version: "container 1.4", body: `{"image": "busybox", "runtime": "runc"}`, status: 400, code: "container.invalid-param-in-version"},
		{name: "privileged", body: `{"image": "busybox", "privileged": true}`, status: 403, detail: "Policy doesn't allow container:create:privileged to be performed."},
		{name: "privileged false", body: `{"image": "busybox", "privileged": "false"}`, status: 403},
		{name: "privileged before 1.21", version: "container 1.20", body: `{"image": "busybox", "privileged": true}`, status: 400, code: "container.invalid-param-in-version"},
		{name: "privileged type", body: `{"image": "busybox", "privileged": 1}`, status: 400, code: "container.schema-validation-error"},
		// healthcheck
		{name: "healthcheck before 1.22", version: "container 1.21", body: `{"image": "busybox", "healthcheck": {"cmd": "true"}}`, status: 400, code: "container.invalid-param-in-version"},
		{name: "healthcheck type", body: `{"image": "busybox", "healthcheck": "true"}`, status: 400, detail: "Invalid input for field 'healthcheck'."},
		// networking and volumes this deployment does not have
		{name: "nets", body: `{"image": "busybox", "nets": [{"network": "private"}]}`, status: 400, code: "container.operation-not-supported"},
		{name: "nets bad item", body: `{"image": "busybox", "nets": [{}]}`, status: 400, code: "container.schema-validation-error"},
		{name: "mounts", body: `{"image": "busybox", "mounts": [{"source": "v", "destination": "/d"}]}`, status: 400, code: "container.operation-not-supported"},
		{name: "mounts before 1.11", version: "container 1.10", body: `{"image": "busybox", "mounts": [{"source": "v", "destination": "/d"}]}`, status: 400, code: "container.invalid-param-in-version"},
		{name: "mounts bad item", body: `{"image": "busybox", "mounts": [{"source": "v"}]}`, status: 400, code: "container.schema-validation-error"},
		{name: "security groups", body: `{"image": "busybox", "security_groups": ["default"]}`, status: 400, code: "container.operation-not-supported"},
		{name: "security groups item", body: `{"image": "busybox", "security_groups": [""]}`, status: 400, detail: "Invalid input for field '0'.Value: ''. '' is too short"},
		{name: "exposed ports", body: `{"image": "busybox", "exposed_ports": {"80/tcp": {}}}`, status: 400, code: "container.operation-not-supported"},
		{name: "exposed ports empty", body: `{"image": "busybox", "exposed_ports": {}}`, status: 202},
		{name: "security groups and exposed ports null", body: `{"image": "busybox", "security_groups": null, "exposed_ports": null}`, status: 400,
			detail: "{'image': 'busybox', 'security_groups': None, 'exposed_ports': None} should not be valid under {'required': ['security_groups', 'exposed_ports']}"},
		{name: "exposed ports before 1.24", version: "container 1.23", body: `{"image": "busybox", "exposed_ports": {}}`, status: 400, code: "container.invalid-param-in-version"},
		{name: "registry", body: `{"image": "busybox", "registry": "myreg"}`, status: 404, code: "container.registry-not-found", detail: "Registry myreg could not be found."},
		{name: "registry before 1.31", version: "container 1.30", body: `{"image": "busybox", "registry": "myreg"}`, status: 400, code: "container.invalid-param-in-version"},
		// requested host
		{name: "host before 1.39", version: "container 1.38", body: `{"image": "busybox", "host": "host2"}`, status: 400, detail: "Additional properties are not allowed ('host' was unexpected)"},
		{name: "host member", token: member, body: `{"image": "busybox", "host": "host2"}`, status: 403, detail: "Policy doesn't allow container:create:requested_destination to be performed."},
		{name: "host pattern", body: `{"image": "busybox", "host": "a/b"}`, status: 400, detail: "Invalid input for field 'host'."},
		{name: "host admin", body: `{"image": "busybox", "host": "host2"}`, status: 202, host: "host2"},
		// what the database cannot store
		{name: "workdir with NUL", body: `{"image": "busybox", "workdir": "/tmp\u0000"}`, status: 400, code: "container.invalid-value",
			detail: "Invalid input for field 'workdir'. The value contains a NUL character."},
		{name: "label with NUL", body: `{"image": "busybox", "labels": {"a": "\u0000"}}`, status: 400, detail: "Invalid input for field 'a'."},
		{name: "command item with NUL", body: `{"image": "busybox", "command": ["sh", "\u0000"]}`, status: 400, detail: "Invalid input for field 'command'."},
		{name: "environment value with NUL", body: `{"image": "busybox", "environment": {"K": "v\u0000"}}`, status: 400, code: "container.invalid-value",
			detail: "Invalid input for field 'K'. The value contains a NUL character."},
		{name: "environment key with NUL", body: `{"image": "busybox", "environment": {"K\u0000": "v"}}`, status: 400, detail: "Invalid input for field '"},
		{name: "label key with NUL", body: `{"image": "busybox", "labels": {"k\u0000": "v"}}`, status: 400, code: "container.invalid-value",
			detail: "Invalid input for field 'labels'. The value contains a NUL character."},
		{name: "entrypoint with NUL", body: `{"image": "busybox", "entrypoint": ["\u0000"]}`, status: 400, code: "container.invalid-value",
			detail: "Invalid input for field 'entrypoint'. The value contains a NUL character."},
		{name: "image with NUL", body: `{"image": "busy\u0000box"}`, status: 400, detail: "Invalid input for field 'image'."},
		{name: "healthcheck with NUL", body: `{"image": "busybox", "healthcheck": {"cmd": "ls\u0000"}}`, status: 400, code: "container.invalid-value",
			detail: "Invalid input for field 'cmd'. The value contains a NUL character."},
		{name: "hint with NUL", body: `{"image": "busybox", "hints": {"h": "\u0000"}}`, status: 400, code: "container.invalid-value",
			detail: "Invalid input for field 'h'. The value contains a NUL character."},
		{name: "availability zone with NUL", body: `{"image": "busybox", "availability_zone": "az\u0000"}`, status: 400, detail: "Invalid input for field 'availability_zone'."},
		// query
		{name: "run query", query: "?run=maybe", body: `{"image": "busybox"}`, status: 400,
			detail: "Invalid input for query parameters 'run'. Value: 'maybe'. 'maybe' is not one of [True, 'True', 'TRUE', 'true', '1', "},
		{name: "unknown query", query: "?walk=true", body: `{"image": "busybox"}`, status: 400, detail: "Additional properties are not allowed ('walk' was unexpected)"},
		{name: "run yes", query: "?run=yes", body: `{"image": "busybox"}`, status: 202},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.version
			if v == "" {
				v = latest
			}
			before := tb.rows(t)
			res := do(t, h, apiCall{method: "POST", path: "/v1/containers" + tc.query, token: tc.token, version: v, body: tc.body})
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if tc.status < 300 {
				// created, claimed on a host (the one asked for), and
				// its agent told
				w := tb.get(t, res.json(t)["uuid"].(string))
				if after := tb.rows(t); w.State != ledger.StateClaimed || (tc.host != "" && w.Host != tc.host) || w.Host == "" ||
					len(tb.allocations(t, w.ID)) == 0 || after[0] != before[0]+1 || after[2] != before[2]+1 {
					t.Errorf("stored state %s on %q, allocations %v; workloads, allocations, events %v, were %v",
						w.State, w.Host, tb.allocations(t, w.ID), after, before)
				}
				return
			}
			if after := tb.rows(t); after != before {
				t.Errorf("a refused create reached the coordinator: workloads, allocations, events %v, were %v", after, before)
			}
			e := res.errorOf(t)
			if tc.code != "" && e["code"] != tc.code {
				t.Errorf("code %v, want %s", e["code"], tc.code)
			}
			detail, _ := e["detail"].(string)
			if !strings.HasPrefix(detail, tc.detail) || !strings.HasSuffix(detail, tc.suffix) {
				t.Errorf("detail %q\nwant prefix %q and suffix %q", detail, tc.detail, tc.suffix)
			}
			if e["title"] != detail || e["status"] != float64(tc.status) {
				t.Errorf("title/status %v/%v, want the detail and %d", e["title"], e["status"], tc.status)
			}
		})
	}
}

// TestCreateNeverServerError sends odd values for every field: the
// answer is a 2xx or a 4xx, never a 500.
func TestCreateNeverServerError(t *testing.T) {
	h, _ := newTestHandler(t)
	fields := []string{"name", "image", "command", "cpu", "cpu_policy", "memory", "workdir", "auto_remove",
		"image_pull_policy", "labels", "environment", "restart_policy", "interactive", "tty", "image_driver",
		"security_groups", "hints", "mounts", "nets", "runtime", "hostname", "disk", "availability_zone",
		"auto_heal", "privileged", "healthcheck", "exposed_ports", "registry", "host", "entrypoint"}
	values := []string{`null`, `true`, `false`, `0`, `-1`, `1e400`, `1.5`, `""`, `"x"`, `"None"`, `"1e5"`,
		`"99999999999999999999999"`, `[]`, `[1, {"a": null}]`, `{}`, `{"Name": "no", "MaximumRetryCount": "1_0"}`,
		`{"": 1}`, `{"cmd": ["x"]}`, `"\u0000"`, `123456789012345678901234567890`}
	for _, version := range []string{"container 1.1", "container 1.19", "container 1.36", latest} {
		for _, f := range fields {
			for _, v := range values {
				body := fmt.Sprintf(`{"image": "busybox", %q: %s}`, f, v)
				if f == "image" {
					body = fmt.Sprintf(`{"image": %s}`, v)
				}
				res := do(t, h, apiCall{method: "POST", path: "/v1/containers", version: version, body: body})
				if res.status >= 500 || res.status == 0 {
					t.Errorf("%s %s: %d %s", version, body, res.status, res.body)
				}
				if res.status >= 400 {
					res.errorOf(t)
				}
			}
		}
	}
}

func TestCreateContentType(t *testing.T) {
	h, _ := newTestHandler(t)
	res := do(t, h, apiCall{method: "POST", path: "/v1/containers", version: latest, body: `{"image": "busybox"}`,
		header: map[string]string{"Content-Type": "text/plain"}})
	if res.status != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d %s", res.status, res.body)
	}
	res = do(t, h, apiCall{method: "POST", path: "/v1/containers", version: latest, body: `{"image": "busybox"}`,
		header: map[string]string{"Content-Type": "application/json; charset=UTF-8"}})
	if res.status != http.StatusAccepted {
		t.Fatalf("json with charset: %d %s", res.status, res.body)
	}
}

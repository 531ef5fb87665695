package zunext

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/unisched/unisched/internal/jsonschema"
)

// Zun's configuration defaults that its schemas embed (zun/conf:
// minimum_cpus, maximum_cpus, minimum_memory, maximum_memory, minimum_disk,
// maximum_disk, default_cpu, default_memory).
const (
	defaultCPU      = 1.0
	defaultMemoryMB = 512
)

// The JSON schemas of zun/api/controllers/v1/schemas (containers.py and
// parameter_types.py), translated to JSON text in Python's dict order,
// which is the order keywords are evaluated and errors chosen in. The
// second definition of parameter_types.hostname overrides the first, so
// the container's hostname and the requested host share it.
const (
	ptContainerName = `{"type": ["string", "null"], "minLength": 2, "maxLength": 255, "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"}`
	ptImageName     = `{"type": "string", "minLength": 2, "maxLength": 255, "pattern": "[a-zA-Z0-9][a-zA-Z0-9_.-]"}`
	ptCommand       = `{"type": ["string", "null"]}`
	ptCommandList   = `{"type": ["array", "null"]}`
	ptEntrypoint    = `{"type": ["array", "null"]}`
	ptCPU           = `{"type": ["number", "string", "null"], "pattern": "^[0-9]*(\\.([0-9]+))?$", "minLength": 1, "minimum": 0.1, "maximum": 16.0}`
	ptCPUPolicy     = `{"type": "string", "enum": ["dedicated", "shared"]}`
	ptMemory        = `{"type": ["string", "integer", "null"], "minimum": 4, "maximum": 8192, "pattern": "^[0-9]+$"}`
	ptDisk          = `{"type": ["string", "integer", "null"], "minimum": 1, "maximum": 160, "pattern": "^[0-9]+$"}`
	ptWorkdir       = `{"type": ["string", "null"]}`
	ptAutoRemove    = `{"type": ["boolean", "null"]}`
	ptPullPolicy    = `{"type": ["string", "null"], "enum": ["never", "always", "ifnotpresent", "Never", "Always", "IfNotPresent", null]}`
	ptObjectOrNull  = `{"type": ["object", "null"]}`
	ptBoolean       = `{"type": ["boolean", "string"], "enum": [true, "True", "true", false, "False", "false"]}`
	ptBooleanExt    = `{"type": ["boolean", "string"], "enum": [true, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", false, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}`
	ptEnvironment   = `{"type": ["object", "null"], "patternProperties": {".+": {"type": ["string"]}}}`
	ptRestartPolicy = `{"type": ["object", "null"], "properties": {"Name": {"type": ["string"], "enum": ["no", "always", "on-failure", "unless-stopped"]}, "MaximumRetryCount": {"type": ["integer", "string", "null"], "minimum": 0, "pattern": "^[0-9]+$"}}, "additionalProperties": false, "required": ["Name"]}`
	ptImageDriver   = `{"type": ["string", "null"], "enum": ["glance", "docker", null, "None"]}`
	ptSecGroups     = `{"type": ["array", "null"], "items": {"type": "string", "minLength": 1, "maxLength": 255}}`
	ptMounts        = `{"type": ["array", "null"], "items": {"type": "object", "properties": {"type": {"type": ["string"]}, "source": {"type": ["string"]}, "destination": {"type": ["string"]}, "size": {"type": ["string", "integer"]}}, "additionalProperties": false, "anyOf": [{"required": ["source", "destination"]}, {"required": ["size", "destination"]}]}}`
	ptNets          = `{"type": ["array", "null"], "items": {"type": "object", "properties": {"network": {"type": ["string"], "minLength": 1, "maxLength": 255}, "v4-fixed-ip": {"type": ["string"], "format": "ipv4"}, "v6-fixed-ip": {"type": ["string"], "format": "ipv6"}, "port": {"type": ["string"], "maxLength": 255, "minLength": 1}}, "additionalProperties": false, "oneOf": [{"required": ["network"]}, {"required": ["port"]}]}}`
	ptRuntime       = `{"type": ["string", "null"]}`
	ptHostname      = `{"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9-._]*$"}`
	ptAZ            = `{"type": ["string", "null"], "minLength": 1, "maxLength": 255}`
	ptHealthcheck   = `{"type": ["object", "null"], "items": {"type": "object", "properties": {"cmd": {"type": ["string"], "minLength": 1, "maxLength": 255}, "interval": {"type": ["integer", "null"]}, "retries": {"type": ["integer", "null"]}, "timeout": {"type": ["integer", "null"]}}, "additionalProperties": false}}`
	ptRegistry      = `{"type": ["string"], "minLength": 2, "maxLength": 255, "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"}`
	ptNonNegInt     = `{"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0}`
	ptStrAndInt     = `{"type": ["string", "integer", "null"]}`
	ptLogsSince     = `{"type": ["string", "integer", "null"], "pattern": "(^[0-9]*$)|([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{1,3})"}`
	ptPsArgs        = `{"type": ["string"], "pattern": "[a-zA-Z- ,+]*"}`
	ptExecCommand   = `{"type": ["string"], "minLength": 1}`
)

// createProperties lists _legacy_container_properties in order; command
// is swapped for the list form from 1.20, host and entrypoint appended
// at 1.39 and 1.40.
func createProperties(command string, extra ...string) string {
	props := [][2]string{
		{"name", ptContainerName}, {"image", ptImageName}, {"command", command}, {"cpu", ptCPU},
		{"cpu_policy", ptCPUPolicy}, {"memory", ptMemory}, {"workdir", ptWorkdir},
		{"auto_remove", ptAutoRemove}, {"image_pull_policy", ptPullPolicy}, {"labels", ptObjectOrNull},
		{"environment", ptEnvironment}, {"restart_policy", ptRestartPolicy}, {"interactive", ptBoolean},
		{"tty", ptBoolean}, {"image_driver", ptImageDriver}, {"security_groups", ptSecGroups},
		{"hints", ptObjectOrNull}, {"mounts", ptMounts}, {"nets", ptNets}, {"runtime", ptRuntime},
		{"hostname", ptHostname}, {"disk", ptDisk}, {"availability_zone", ptAZ}, {"auto_heal", ptBoolean},
		{"privileged", ptBoolean}, {"healthcheck", ptHealthcheck}, {"exposed_ports", ptObjectOrNull},
		{"registry", ptRegistry},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		props = append(props, [2]string{extra[i], extra[i+1]})
	}
	parts := make([]string, len(props))
	for i, p := range props {
		parts[i] = strconv.Quote(p[0]) + ": " + p[1]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

const createAllOf = `"allOf": [{"required": ["image"]}, {"not": {"required": ["security_groups", "exposed_ports"]}}]`

var (
	schemaCreateLegacy = jsonschema.MustCompile(`{"type": "object", "properties": ` + createProperties(ptCommand) +
		`, "required": ["image"], "additionalProperties": false}`)
	schemaCreate = jsonschema.MustCompile(`{"type": "object", "properties": ` + createProperties(ptCommandList) +
		`, ` + createAllOf + `, "additionalProperties": false}`)
	schemaCreate139 = jsonschema.MustCompile(`{"type": "object", "properties": ` +
		createProperties(ptCommandList, "host", ptHostname) + `, ` + createAllOf + `, "additionalProperties": false}`)
	schemaCreate140 = jsonschema.MustCompile(`{"type": "object", "properties": ` +
		createProperties(ptCommandList, "host", ptHostname, "entrypoint", ptEntrypoint) + `, ` + createAllOf +
		`, "additionalProperties": false}`)

	schemaUpdate = jsonschema.MustCompile(`{"type": "object", "properties": {"cpu": ` + ptCPU + `, "memory": ` +
		ptMemory + `, "name": ` + ptContainerName + `, "auto_heal": ` + ptBoolean + `}, "additionalProperties": false}`)

	queryCreate  = querySchema(`"run": ` + ptBooleanExt)
	queryDelete  = querySchema(`"force": ` + ptBooleanExt + `, "all_projects": ` + ptBooleanExt + `, "stop": ` + ptBooleanExt)
	queryTimeout = querySchema(`"timeout": ` + ptNonNegInt)
	queryLogs    = querySchema(`"stdout": ` + ptBooleanExt + `, "stderr": ` + ptBooleanExt + `, "timestamps": ` +
		ptBooleanExt + `, "tail": ` + ptStrAndInt + `, "since": ` + ptLogsSince)
	queryTop    = querySchema(`"ps_args": ` + ptPsArgs)
	queryRename = querySchema(`"name": ` + ptContainerName)
	queryExec   = querySchema(`"run": ` + ptBoolean + `, "interactive": ` + ptBoolean + `, "command": ` + ptExecCommand)
	querySignal = querySchema(`"signal": {"type": ["string", "null"], "enum": ` + signalEnumJSON() + `}`)
)

func querySchema(props string) *jsonschema.Schema {
	return jsonschema.MustCompile(`{"type": "object", "properties": {` + props + `}, "additionalProperties": false}`)
}

// createSchema picks the create schema of the version (Zun's versioned
// post methods).
func createSchema(v version) *jsonschema.Schema {
	switch {
	case v.AtLeast(40):
		return schemaCreate140
	case v.AtLeast(39):
		return schemaCreate139
	case v.AtLeast(20):
		return schemaCreate
	}
	return schemaCreateLegacy
}

// boundedFields are the properties whose minimum and maximum Zun's
// validator also applies to numeric strings ("512" against maximum_memory).
var boundedFields = []string{"cpu", "memory", "disk"}

// validateBody checks a decoded body against schema and renders the first
// failure as Zun's SchemaValidator does: "Invalid input for field '<last
// path element>'.Value: '<str(value)>'. <str(error)>", or the bare message
// for an error on the whole document.
func validateBody(schema *jsonschema.Schema, doc any) error {
	if err := schema.Validate(doc); err != nil {
		return schemaError(doc, err, true, nil)
	}
	obj, ok := doc.(*jsonschema.Object)
	if !ok {
		return nil
	}
	for _, f := range boundedFields {
		v, ok := obj.Get(f)
		s, isStr := v.(string)
		if !ok || !isStr {
			continue
		}
		n, ok := pyNumber(s)
		if !ok {
			continue
		}
		// validate the number in the string's place: Zun compares the
		// converted value but reports the instance as sent
		obj.Set(f, n)
		err := schema.Validate(doc)
		obj.Set(f, s)
		if err != nil {
			return schemaError(doc, err, true, &stringBound{converted: n, original: s})
		}
	}
	return nil
}

type stringBound struct {
	converted any
	original  string
}

// validateQuery checks query parameters (each a string, or a list when
// repeated, as WebOb's params.mixed() gives them) against schema.
func validateQuery(schema *jsonschema.Schema, q map[string][]string, keys []string, asBody bool) error {
	obj := jsonschema.NewObject()
	for _, k := range keys {
		vs := q[k]
		if len(vs) == 1 {
			obj.Set(k, vs[0])
			continue
		}
		l := make([]any, len(vs))
		for i, v := range vs {
			l[i] = v
		}
		obj.Set(k, l)
	}
	if err := schema.Validate(obj); err != nil {
		return schemaError(obj, err, asBody, nil)
	}
	return nil
}

func schemaError(doc any, err error, body bool, sb *stringBound) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return errInvalid("%s", err.Error())
	}
	text := ve.Error()
	if sb != nil {
		text = strings.TrimSuffix(text, jsonschema.Repr(sb.converted)) + jsonschema.Repr(sb.original)
	}
	if len(ve.Path) == 0 {
		return errSchema(ve.Message)
	}
	value := valueAt(doc, ve.Path)
	if sb != nil {
		value = sb.original
	}
	format := "Invalid input for field '%s'.Value: '%s'. %s"
	if !body {
		format = "Invalid input for query parameters '%s'. Value: '%s'. %s"
	}
	return errSchema(fmt.Sprintf(format, pyStr(ve.Path[len(ve.Path)-1]), pyStr(value), text))
}

// valueAt follows a validation error's path into the document.
func valueAt(doc any, path []any) any {
	cur := doc
	for _, p := range path {
		switch c := cur.(type) {
		case *jsonschema.Object:
			k, _ := p.(string)
			cur, _ = c.Get(k)
		case []any:
			i, ok := p.(int)
			if !ok || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// pyStr is Python's str() of a decoded JSON value.
func pyStr(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case int:
		return strconv.Itoa(t)
	}
	return jsonschema.Repr(v)
}

// pyNumber converts a string as Zun's _number_from_str does: int() first,
// then float(); ok is false when neither accepts it.
func pyNumber(s string) (any, bool) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, false
	}
	clean := strings.ReplaceAll(t, "_", "")
	if i, err := strconv.ParseInt(clean, 10, 64); err == nil && !strings.Contains(t, "__") {
		return i, true
	}
	if b, ok := new(big.Int).SetString(clean, 10); ok {
		return b, true
	}
	f, err := strconv.ParseFloat(clean, 64)
	if err != nil || strings.ContainsAny(strings.ToLower(clean), "xp") {
		return nil, false
	}
	return f, true
}

// Linux signal names as Python's signal.Signals lists them (aliases such
// as SIGIOT and SIGPOLL are not members), with their numbers.
var linuxSignals = []struct {
	name string
	num  int
}{
	{"SIGHUP", 1}, {"SIGINT", 2}, {"SIGQUIT", 3}, {"SIGILL", 4}, {"SIGTRAP", 5}, {"SIGABRT", 6},
	{"SIGBUS", 7}, {"SIGFPE", 8}, {"SIGKILL", 9}, {"SIGUSR1", 10}, {"SIGSEGV", 11}, {"SIGUSR2", 12},
	{"SIGPIPE", 13}, {"SIGALRM", 14}, {"SIGTERM", 15}, {"SIGSTKFLT", 16}, {"SIGCHLD", 17},
	{"SIGCONT", 18}, {"SIGSTOP", 19}, {"SIGTSTP", 20}, {"SIGTTIN", 21}, {"SIGTTOU", 22},
	{"SIGURG", 23}, {"SIGXCPU", 24}, {"SIGXFSZ", 25}, {"SIGVTALRM", 26}, {"SIGPROF", 27},
	{"SIGWINCH", 28}, {"SIGIO", 29}, {"SIGPWR", 30}, {"SIGSYS", 31}, {"SIGRTMIN", 34}, {"SIGRTMAX", 64},
}

// signalForms are the spellings of each signal Zun's schema accepts
// (parameter_types.SIGNALS): "SIGKILL", "KILL", "sigkill", "kill", "9".
func signalForms() []string {
	forms := []string{"None"}
	for _, s := range linuxSignals {
		lower := strings.ToLower(s.name)
		forms = append(forms, s.name, strings.Replace(s.name, "SIG", "", -1), lower,
			strings.Replace(lower, "sig", "", -1), strconv.Itoa(s.num))
	}
	return forms
}

func signalEnumJSON() string {
	forms := signalForms()
	q := make([]string, len(forms))
	for i, f := range forms {
		q[i] = strconv.Quote(f)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// canonicalSignal maps an accepted spelling to Docker's "SIGKILL" form;
// "" (and "None") means Docker's default.
func canonicalSignal(s string) string {
	if s == "" || s == "None" {
		return ""
	}
	for _, sig := range linuxSignals {
		lower := strings.ToLower(sig.name)
		if s == sig.name || s == strings.Replace(sig.name, "SIG", "", -1) || s == lower ||
			s == strings.Replace(lower, "sig", "", -1) || s == strconv.Itoa(sig.num) {
			return sig.name
		}
	}
	return s
}

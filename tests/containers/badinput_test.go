package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// badCreate is one refused POST /v1/containers.
type badCreate struct {
	name string
	// body is sent as is; contentType "" means application/json, "-"
	// none; version "" means "container 1.40", "-" none.
	body, contentType, version, query string
	token                             string
	status                            int
	// code is the error's code; detail a prefix of its detail ("" skip).
	code, detail string
}

// createCases: every create field as Zun validates it, plus the request
// itself (JSON, content type, microversion, query). Each must be refused
// with Zun's error body and status, never a 500.
func createCases(image string) []badCreate {
	const schema = "container.schema-validation-error"
	img := func(extra string) string { return `{"image": "` + image + `"` + extra + `}` }
	long := strings.Repeat("a", 256)
	return []badCreate{
		// the request
		{name: "malformed JSON", body: `{"image": `, status: 400, code: "container.invalid-value", detail: "Malformed JSON request body."},
		{name: "trailing garbage", body: img("") + `x`, status: 400, code: "container.invalid-value", detail: "Malformed JSON request body."},
		{name: "empty body", body: ``, status: 400, code: "container.invalid-value", detail: "Malformed JSON request body."},
		{name: "invalid UTF-8", body: "{\"image\": \"\xff\xfe\"}", status: 400},
		{name: "body is a list", body: `[]`, status: 400, code: schema, detail: "[] is not of type 'object'"},
		{name: "body is null", body: `null`, status: 400, code: schema, detail: "None is not of type 'object'"},
		{name: "body is a string", body: `"image"`, status: 400, code: schema},
		{name: "text/plain", body: img(""), contentType: "text/plain", status: 415, detail: "Unexpected content type: text/plain."},
		{name: "no content type", body: img(""), contentType: "-", status: 415},
		{name: "form content type", body: "image=" + image, contentType: "application/x-www-form-urlencoded", status: 415},
		{name: "version too new", body: img(""), version: "container 1.41", status: 406, code: "container.microversion-unsupported", detail: "Version 1.41 was requested but the minor version is not supported"},
		{name: "version 2.0", body: img(""), version: "container 2.0", status: 406, code: "container.microversion-unsupported"},
		{name: "version 1.0", body: img(""), version: "container 1.0", status: 406, code: "container.microversion-unsupported"},
		{name: "version garbage", body: img(""), version: "container abc", status: 406, detail: "Invalid value for OpenStack-API-Version header"},
		{name: "version other service", body: img(""), version: "compute 1.40", status: 406, detail: "Invalid service type for OpenStack-API-Version header"},
		{name: "version without service", body: img(""), version: "1.40", status: 406, detail: "Invalid service type for OpenStack-API-Version header"},
		{name: "run not a boolean", body: img(""), query: "run=maybe", status: 400, code: schema, detail: "Invalid input for query parameters 'run'. Value: 'maybe'."},
		{name: "unknown query parameter", body: img(""), query: "run=true&color=blue", status: 400, code: schema},
		{name: "no token", body: img(""), token: "-", status: 401},

		// image, name, unknown fields
		{name: "image missing", body: `{"name": "abc"}`, status: 400, code: schema, detail: "'image' is a required property"},
		{name: "image empty", body: `{"image": ""}`, status: 400, code: schema, detail: "Invalid input for field 'image'.Value: ''. '' is too short"},
		{name: "image null", body: `{"image": null}`, status: 400, code: schema, detail: "Invalid input for field 'image'.Value: 'None'. None is not of type 'string'"},
		{name: "image not a string", body: `{"image": 42}`, status: 400, code: schema, detail: "Invalid input for field 'image'."},
		{name: "image pattern", body: `{"image": "/#"}`, status: 400, code: schema, detail: "Invalid input for field 'image'.Value: '/#'. '/#' does not match"},
		{name: "image too long", body: `{"image": "` + long + `"}`, status: 400, code: schema, detail: "Invalid input for field 'image'."},
		{name: "name too short", body: img(`, "name": "a"`), status: 400, code: schema, detail: "Invalid input for field 'name'.Value: 'a'. 'a' is too short"},
		{name: "name pattern", body: img(`, "name": "-web"`), status: 400, code: schema, detail: "Invalid input for field 'name'.Value: '-web'. '-web' does not match '^[a-zA-Z0-9][a-zA-Z0-9_.-]+$'"},
		{name: "name with a space", body: img(`, "name": "my web"`), status: 400, code: schema, detail: "Invalid input for field 'name'."},
		{name: "name too long", body: img(`, "name": "` + long + `"`), status: 400, code: schema, detail: "Invalid input for field 'name'."},
		{name: "name not a string", body: img(`, "name": 12`), status: 400, code: schema, detail: "Invalid input for field 'name'.Value: '12'. 12 is not of type 'string', 'null'"},
		{name: "unknown field", body: img(`, "colour": "blue"`), status: 400, code: schema, detail: "Additional properties are not allowed ('colour' was unexpected)"},
		{name: "field of a later version", version: "container 1.39", body: img(`, "entrypoint": ["sh"]`), status: 400, code: schema, detail: "Additional properties are not allowed ('entrypoint' was unexpected)"},

		// cpu
		{name: "cpu negative", body: img(`, "cpu": -1`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: '-1'. -1 is less than the minimum of 0.1"},
		{name: "cpu zero", body: img(`, "cpu": 0`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: '0'. 0 is less than the minimum of 0.1"},
		{name: "cpu zero string", body: img(`, "cpu": "0"`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: '0'. 0 is less than the minimum of 0.1"},
		{name: "cpu too big", body: img(`, "cpu": 17`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: '17'. 17 is greater than the maximum of 16.0"},
		{name: "cpu too big string", body: img(`, "cpu": "1000"`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: '1000'. 1000 is greater than the maximum of 16.0"},
		{name: "cpu word", body: img(`, "cpu": "two"`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: 'two'. 'two' does not match"},
		{name: "cpu negative string", body: img(`, "cpu": "-1"`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: '-1'. '-1' does not match"},
		{name: "cpu empty string", body: img(`, "cpu": ""`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: ''. '' is too short"},
		{name: "cpu boolean", body: img(`, "cpu": true`), status: 400, code: schema, detail: "Invalid input for field 'cpu'.Value: 'True'. True is not of type 'number', 'string', 'null'"},
		{name: "cpu list", body: img(`, "cpu": [1]`), status: 400, code: schema, detail: "Invalid input for field 'cpu'."},
		{name: "cpu huge number", body: img(`, "cpu": 1e308`), status: 400, code: schema, detail: "Invalid input for field 'cpu'."},
		{name: "cpu_policy unknown", body: img(`, "cpu_policy": "mixed"`), status: 400, code: schema, detail: "Invalid input for field 'cpu_policy'.Value: 'mixed'. 'mixed' is not one of ['dedicated', 'shared']"},
		{name: "cpu_policy case", body: img(`, "cpu_policy": "Dedicated"`), status: 400, code: schema, detail: "Invalid input for field 'cpu_policy'."},
		{name: "cpu_policy null", body: img(`, "cpu_policy": null`), status: 400, code: schema, detail: "Invalid input for field 'cpu_policy'.Value: 'None'. None is not of type 'string'"},

		// memory
		{name: "memory with a unit", body: img(`, "memory": "512M"`), status: 400, code: schema, detail: "Invalid input for field 'memory'.Value: '512M'. '512M' does not match '^[0-9]+$'"},
		{name: "memory 1g", body: img(`, "memory": "1g"`), status: 400, code: schema, detail: "Invalid input for field 'memory'."},
		{name: "memory fractional", body: img(`, "memory": 12.5`), status: 400, code: schema, detail: "Invalid input for field 'memory'.Value: '12.5'. 12.5 is not of type 'string', 'integer', 'null'"},
		{name: "memory negative", body: img(`, "memory": -64`), status: 400, code: schema, detail: "Invalid input for field 'memory'.Value: '-64'. -64 is less than the minimum of 4"},
		{name: "memory negative string", body: img(`, "memory": "-64"`), status: 400, code: schema, detail: "Invalid input for field 'memory'."},
		{name: "memory zero", body: img(`, "memory": 0`), status: 400, code: schema, detail: "Invalid input for field 'memory'.Value: '0'. 0 is less than the minimum of 4"},
		{name: "memory below minimum string", body: img(`, "memory": "3"`), status: 400, code: schema, detail: "Invalid input for field 'memory'.Value: '3'. 3 is less than the minimum of 4"},
		{name: "memory above maximum", body: img(`, "memory": 8193`), status: 400, code: schema, detail: "Invalid input for field 'memory'.Value: '8193'. 8193 is greater than the maximum of 8192"},
		{name: "memory above maximum string", body: img(`, "memory": "99999999999999999999"`), status: 400, code: schema, detail: "Invalid input for field 'memory'."},
		{name: "memory empty", body: img(`, "memory": ""`), status: 400, code: schema, detail: "Invalid input for field 'memory'."},
		{name: "memory object", body: img(`, "memory": {"mb": 64}`), status: 400, code: schema, detail: "Invalid input for field 'memory'."},
		{name: "disk zero", body: img(`, "disk": 0`), status: 400, code: schema, detail: "Invalid input for field 'disk'.Value: '0'. 0 is less than the minimum of 1"},
		{name: "disk too big", body: img(`, "disk": 161`), status: 400, code: schema, detail: "Invalid input for field 'disk'."},
		{name: "disk with a unit", body: img(`, "disk": "10G"`), status: 400, code: schema, detail: "Invalid input for field 'disk'."},

		// restart_policy
		{name: "restart_policy bad name", body: img(`, "restart_policy": {"Name": "sometimes"}`), status: 400, code: schema, detail: "Invalid input for field 'Name'.Value: 'sometimes'. 'sometimes' is not one of ['no', 'always', 'on-failure', 'unless-stopped']"},
		{name: "restart_policy without name", body: img(`, "restart_policy": {"MaximumRetryCount": 3}`), status: 400, code: schema, detail: "Invalid input for field 'restart_policy'."},
		{name: "restart_policy count negative", body: img(`, "restart_policy": {"Name": "on-failure", "MaximumRetryCount": -1}`), status: 400, code: schema, detail: "Invalid input for field 'MaximumRetryCount'."},
		{name: "restart_policy count word", body: img(`, "restart_policy": {"Name": "on-failure", "MaximumRetryCount": "three"}`), status: 400, code: schema, detail: "Invalid input for field 'MaximumRetryCount'."},
		{name: "restart_policy count with always", body: img(`, "restart_policy": {"Name": "always", "MaximumRetryCount": 3}`), status: 400, code: "container.invalid-value"},
		{name: "restart_policy extra key", body: img(`, "restart_policy": {"Name": "no", "Delay": 3}`), status: 400, code: schema, detail: "Invalid input for field 'restart_policy'."},
		{name: "restart_policy a string", body: img(`, "restart_policy": "always"`), status: 400, code: schema, detail: "Invalid input for field 'restart_policy'."},

		// environment, labels, command, others
		{name: "environment number value", body: img(`, "environment": {"PORT": 80}`), status: 400, code: schema, detail: "Invalid input for field 'PORT'.Value: '80'. 80 is not of type 'string'"},
		{name: "environment null value", body: img(`, "environment": {"A": null}`), status: 400, code: schema, detail: "Invalid input for field 'A'."},
		{name: "environment a list", body: img(`, "environment": ["A=b"]`), status: 400, code: schema, detail: "Invalid input for field 'environment'."},
		{name: "labels a list", body: img(`, "labels": ["a"]`), status: 400, code: schema, detail: "Invalid input for field 'labels'.Value: '['a']'. ['a'] is not of type 'object', 'null'"},
		{name: "labels a string", body: img(`, "labels": "a=b"`), status: 400, code: schema, detail: "Invalid input for field 'labels'."},
		{name: "command a string", body: img(`, "command": "sleep 10"`), status: 400, code: schema, detail: "Invalid input for field 'command'.Value: 'sleep 10'. 'sleep 10' is not of type 'array', 'null'"},
		{name: "command a number", body: img(`, "command": 10`), status: 400, code: schema, detail: "Invalid input for field 'command'."},
		{name: "command nested list", body: img(`, "command": [["sleep"]]`), status: 400, code: "container.invalid-value"},
		{name: "entrypoint a string", body: img(`, "entrypoint": "sh"`), status: 400, code: schema, detail: "Invalid input for field 'entrypoint'."},
		{name: "workdir a number", body: img(`, "workdir": 1`), status: 400, code: schema, detail: "Invalid input for field 'workdir'."},
		{name: "hostname pattern", body: img(`, "hostname": "a b"`), status: 400, code: schema, detail: "Invalid input for field 'hostname'."},
		{name: "tty not a boolean", body: img(`, "tty": "maybe"`), status: 400, code: schema, detail: "Invalid input for field 'tty'."},
		{name: "interactive a number", body: img(`, "interactive": 1`), status: 400, code: schema, detail: "Invalid input for field 'interactive'."},
		{name: "auto_remove a string", body: img(`, "auto_remove": "yes"`), status: 400, code: schema, detail: "Invalid input for field 'auto_remove'."},
		{name: "image_pull_policy unknown", body: img(`, "image_pull_policy": "sometimes"`), status: 400, code: schema, detail: "Invalid input for field 'image_pull_policy'."},
		{name: "image_driver unknown", body: img(`, "image_driver": "quay"`), status: 400, code: schema, detail: "Invalid input for field 'image_driver'."},
		{name: "availability_zone empty", body: img(`, "availability_zone": ""`), status: 400, code: schema, detail: "Invalid input for field 'availability_zone'."},
		{name: "healthcheck a list", body: img(`, "healthcheck": ["true"]`), status: 400, code: schema, detail: "Invalid input for field 'healthcheck'."},
		{name: "security groups with exposed ports", body: img(`, "security_groups": ["a"], "exposed_ports": {"80/tcp": {}}`), status: 400, code: schema},
		{name: "host of a member", body: img(`, "host": "numa-host"`), token: "alice:demo", status: 403, code: "container.policy-not-authorized"},
		{name: "privileged of a member", body: img(`, "privileged": true`), token: "alice:demo", status: 403, code: "container.policy-not-authorized"},
	}
}

// post sends one raw create.
func post(ctx context.Context, env *Env, tc badCreate) (*Response, error) {
	path := "/v1/containers"
	if tc.query != "" {
		path += "?" + tc.query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, env.ContainerURL+path, bytes.NewReader([]byte(tc.body)))
	if err != nil {
		return nil, err
	}
	switch tc.contentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", tc.contentType)
	}
	switch tc.version {
	case "":
		req.Header.Set("OpenStack-API-Version", "container "+ZunVersion)
	case "-":
	default:
		req.Header.Set("OpenStack-API-Version", tc.version)
	}
	switch tc.token {
	case "":
		req.Header.Set("X-Auth-Token", AdminToken)
	case "-":
	default:
		req.Header.Set("X-Auth-Token", tc.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// zunError decodes Zun's error body (ParsableErrorMiddleware's shape)
// and checks it: one error whose status is the response's, a code, a
// title and a detail.
func zunError(r *Response) (code, detail string, err error) {
	var body struct {
		Errors []struct {
			RequestID *string         `json:"request_id"`
			Code      string          `json:"code"`
			Status    int             `json:"status"`
			Title     string          `json:"title"`
			Detail    string          `json:"detail"`
			Links     json.RawMessage `json:"links"`
		} `json:"errors"`
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return "", "", fmt.Errorf("error content type %q", ct)
	}
	if r.Status == http.StatusUnauthorized {
		// The auth middleware answers before Zun's API (and its error
		// middleware) sees the request: webob's JSON error, as
		// keystonemiddleware's.
		var e struct{ Message, Code, Title string }
		if err := json.Unmarshal(r.Body, &e); err != nil || e.Code != "401 Unauthorized" || e.Title != "Unauthorized" || e.Message == "" {
			return "", "", fmt.Errorf("not the auth middleware's 401 body (%v)", err)
		}
		return e.Code, e.Message, nil
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return "", "", fmt.Errorf("not Zun's error body: %v", err)
	}
	if len(body.Errors) != 1 {
		return "", "", fmt.Errorf("%d errors in the body", len(body.Errors))
	}
	e := body.Errors[0]
	if e.Status != r.Status || e.Title == "" || e.Detail == "" || e.RequestID == nil || !bytes.HasPrefix(e.Links, []byte("[")) {
		return "", "", fmt.Errorf("error %+v: want status %d, a title, a detail, request_id and a list of links", e, r.Status)
	}
	return e.Code, e.Detail, nil
}

// Every create field validated as Zun does, through the real serve: each
// bad request gets Zun's status and error body (a 400 naming the field
// for the body; 415, 406, 401, 403 for the request itself), never a 500;
// afterwards nothing is in the ledger, Placement or Docker. Requests that
// are valid but cannot be placed are accepted in Zun's Error status and
// hold nothing either.
func TestCreateBadInput(t *testing.T) {
	NeedAgent(t)
	env := Start(t, Options{Agents: []AgentSpec{numaHost()}, LogLevel: "info"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	for _, tc := range createCases(env.Image) {
		r, err := post(ctx, env, tc)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Status != tc.status {
			t.Errorf("%s: %d %s; want %d", tc.name, r.Status, truncate(r.Body), tc.status)
			continue
		}
		code, detail, err := zunError(r)
		if err != nil {
			t.Errorf("%s: %v: %s", tc.name, err, truncate(r.Body))
			continue
		}
		if tc.code != "" && code != tc.code {
			t.Errorf("%s: code %q; want %q (%s)", tc.name, code, tc.code, detail)
		}
		if tc.detail != "" && !strings.HasPrefix(detail, tc.detail) {
			t.Errorf("%s: detail %q; want it to start with %q", tc.name, detail, tc.detail)
		}
	}

	// Valid requests the host cannot take: 202 in Error, holding nothing.
	for _, body := range []map[string]any{
		{"image": env.Image, "name": "too-many-cpus", "cpu": 16, "cpu_policy": "dedicated"},
		{"image": env.Image, "name": "too-much-memory", "cpu": 1, "memory": 8192, "cpu_policy": "dedicated"},
		{"image": env.Image, "name": "shared-here", "cpu": 1, "memory": 64},
		{"image": env.Image, "name": "other-zone", "cpu": 1, "cpu_policy": "dedicated", "availability_zone": "elsewhere"},
	} {
		c, err := env.Zun.Create(ctx, body, true)
		if err != nil {
			t.Errorf("%s: %v", body["name"], err)
			continue
		}
		if c.Status != "Error" || !strings.HasPrefix(c.StatusReason, "There are not enough hosts available.") {
			t.Errorf("%s: status %s (%q); want Error, not enough hosts", body["name"], c.Status, c.StatusReason)
		}
	}
	// A requested host that does not exist is Zun's no-valid-host (its
	// scheduler filters on it); a fractional dedicated cpu is refused.
	if c, err := env.Zun.Create(ctx, map[string]any{"image": env.Image, "name": "no-such-host", "host": "nowhere"}, true); err != nil ||
		c.Status != "Error" || !strings.HasPrefix(c.StatusReason, "There are not enough hosts available.") {
		t.Errorf("unknown host: %s %q (%v); want Error, not enough hosts", c.Status, c.StatusReason, err)
	}
	r, err := env.Zun.Do(ctx, http.MethodPost, "/v1/containers?run=true", map[string]any{"image": env.Image, "cpu": 0.5, "cpu_policy": "dedicated"})
	if err != nil {
		t.Fatal(err)
	}
	if code, detail, err := zunError(r); r.Status != 400 || err != nil || code != "container.invalid-value" || !strings.Contains(detail, "whole number") {
		t.Errorf("fractional dedicated cpu: %d %s (%v); want 400 invalid-value", r.Status, truncate(r.Body), err)
	}

	// Nothing held anywhere.
	a, err := env.Agree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if total(a.Holding) != 0 || total(a.Running) != 0 {
		t.Fatalf("after bad input: holding %v, running %v; want nothing", a.Holding, a.Running)
	}
	for c, n := range a.Usages["numa-host"] {
		if n != 0 {
			t.Errorf("usage of %s is %d after bad input; want 0", c, n)
		}
	}
	var workloads, pinned, events int
	if err := env.DB.QueryRow(ctx, `SELECT (SELECT count(*) FROM bridge_workloads WHERE state <> 'error'),
	(SELECT count(*) FROM bridge_workload_cpus), (SELECT count(*) FROM bridge_outbox)`).Scan(&workloads, &pinned, &events); err != nil {
		t.Fatal(err)
	}
	if workloads != 0 || pinned != 0 || events != 0 {
		t.Errorf("after bad input: %d workloads not in error, %d pinned pCPUs, %d outbox events; want none", workloads, pinned, events)
	}
	if list, err := env.HostContainers(ctx, "numa-host"); err != nil || len(list) != 0 {
		t.Errorf("docker containers after bad input: %d (%v); want none", len(list), err)
	}
	if strings.Contains(env.Serve.Log(10000), "level=ERROR") {
		t.Errorf("serve logged an error during bad input:\n%s", env.Serve.Log(30))
	}
}

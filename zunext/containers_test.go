package zunext

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
)

func TestContainerView(t *testing.T) {
	h, tb := newTestHandler(t)
	body := `{"name": "web", "image": "busybox", "command": ["sleep", "60"], "memory": 256, "cpu": 2,
		"environment": {"A": "b"}, "labels": {"n": "1"}, "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3},
		"healthcheck": {"cmd": "true", "interval": 3}, "hostname": "box", "workdir": "/tmp", "auto_remove": true,
		"image_pull_policy": "always", "runtime": "runc", "interactive": true}`
	res := do(t, h, apiCall{method: "POST", path: "/v1/containers?run=true", version: latest, body: body})
	if res.status != 202 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	c := res.json(t)
	id := c["uuid"].(string)
	if loc := res.header.Get("Location"); loc != "http://zun.test/v1/containers/"+id {
		t.Errorf("Location %q", loc)
	}
	want := map[string]any{
		"name": "web", "image": "busybox", "status": "Creating", "task_state": "container_creating", "status_reason": nil,
		"memory": "256", "cpu": 2.0, "cpu_policy": "shared", "host": "host1", "hostname": "box", "workdir": "/tmp",
		"auto_remove": true, "image_pull_policy": "always", "runtime": "runc", "interactive": true, "tty": false,
		"image_driver": "docker", "privileged": false, "registry_id": nil, "entrypoint": nil, "project_id": "admin",
		"user_id": "admin", "status_detail": nil, "disk": 0.0, "auto_heal": nil,
		"created_at": pyTime(tb.get(t, id).CreatedAt),
	}
	if at, _ := c["created_at"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00$`).MatchString(at) {
		t.Errorf("created_at %q is not Python's str(datetime)", at)
	}
	for k, v := range want {
		if got, ok := c[k]; !ok || !jsonEqual(got, v) {
			t.Errorf("%s = %#v (present %v), want %#v", k, got, ok, v)
		}
	}
	for k, v := range map[string]string{
		"command": `["sleep","60"]`, "environment": `{"A":"b"}`, "labels": `{"n":"1"}`, "addresses": `{}`, "ports": `[]`,
		"security_groups": `[]`, "restart_policy": `{"MaximumRetryCount":"3","Name":"on-failure"}`,
		"healthcheck": `{"interval":3,"test":"true"}`,
		"links":       `[{"href":"http://zun.test/v1/containers/` + id + `","rel":"self"},{"href":"http://zun.test/containers/` + id + `","rel":"bookmark"}]`,
	} {
		if got, _ := json.Marshal(c[k]); string(got) != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	if !strings.Contains(string(res.body), `"cpu":2.0`) {
		t.Errorf("cpu is not rendered as a Python float: %s", res.body)
	}
	// what the coordinator stored and claimed, and told host1's agent
	w := tb.get(t, id)
	if w.Container == nil || !w.Container.Running || w.Container.Tty || !w.Container.Interactive ||
		w.Container.RestartPolicy != (agentproto.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}) ||
		w.Container.MemoryMB != 256 || w.Container.CPU != 2 || w.Container.Hostname != "box" || w.Container.Workdir != "/tmp" {
		t.Errorf("stored container %+v", w.Container)
	}
	if w.Host != "host1" || w.State != ledger.StateClaimed || w.Resources.MemoryMB != 256 || w.Resources.VCPU != 2 {
		t.Errorf("stored workload %+v", w.Workload)
	}
	if evs := tb.events(t, agentproto.EventCreate); len(evs) != 1 || evs[0].Host != "host1" || evs[0].Container.WorkloadID != id {
		t.Errorf("create events %+v", evs)
	}

	// the agent's reports drive the status
	tb.report(t, id, agentproto.StatusRunning, "", nil)
	c = do(t, h, apiCall{method: "GET", path: "/v1/containers/" + id, version: latest}).json(t)
	if c["status"] != "Running" || c["task_state"] != nil {
		t.Errorf("running: %v %v", c["status"], c["task_state"])
	}
	if res := do(t, h, apiCall{method: "POST", path: "/v1/containers/" + id + "/stop", version: latest}); res.status != 202 {
		t.Fatalf("stop: %d %s", res.status, res.body)
	}
	c = do(t, h, apiCall{method: "GET", path: "/v1/containers/" + id, version: latest}).json(t)
	if c["status"] != "Running" || c["task_state"] != "container_stopping" {
		t.Errorf("stopping: %v %v", c["status"], c["task_state"])
	}
	// a container that ended by itself: Stopped with Docker's detail, no task
	tb.report(t, id, agentproto.StatusStopped, "", nil)
	if res := do(t, h, apiCall{method: "POST", path: "/v1/containers/" + id + "/start", version: latest}); res.status != 202 {
		t.Fatalf("start: %d %s", res.status, res.body)
	}
	tb.report(t, id, agentproto.StatusRunning, "", nil)
	code := 3
	tb.report(t, id, agentproto.StatusStopped, "", &code)
	c = do(t, h, apiCall{method: "GET", path: "/v1/containers/" + id, version: latest}).json(t)
	if c["status"] != "Stopped" || c["task_state"] != nil || c["status_detail"] != "Exited(3)" {
		t.Errorf("exited: %v %v %v", c["status"], c["task_state"], c["status_detail"])
	}
	tb.report(t, id, agentproto.StatusError, "image busybox not found", nil)
	c = do(t, h, apiCall{method: "GET", path: "/v1/containers/web", version: latest}).json(t)
	if c["status"] != "Error" || c["status_reason"] != "image busybox not found" {
		t.Errorf("error: %v %v", c["status"], c["status_reason"])
	}

	// no valid host: created anyway, in status Error
	res = do(t, h, apiCall{method: "POST", path: "/v1/containers", version: latest, body: `{"image": "busybox", "host": "nowhere"}`})
	if res.status != 202 {
		t.Fatalf("no valid host: %d %s", res.status, res.body)
	}
	c = res.json(t)
	if reason, _ := c["status_reason"].(string); c["status"] != "Error" || !strings.HasPrefix(reason, "There are not enough hosts available.") || c["host"] != nil {
		t.Errorf("no valid host view: %v", c)
	}
	if w := tb.get(t, c["uuid"].(string)); w.State != ledger.StateError || w.Host != "" {
		t.Errorf("unplaced workload %+v", w.Workload)
	}
	if held := tb.allocations(t, c["uuid"].(string)); len(held) != 0 {
		t.Errorf("the unplaced container holds %v", held)
	}

	// a member does not see the admin-only fields; tty follows interactive
	// between 1.20 and 1.35
	res = do(t, h, apiCall{method: "POST", path: "/v1/containers", token: "demo:demo", version: "container 1.30",
		body: `{"image": "busybox", "interactive": "true"}`})
	c = res.json(t)
	for _, k := range []string{"host", "image_pull_policy", "privileged", "runtime"} {
		if _, ok := c[k]; ok {
			t.Errorf("member sees %s", k)
		}
	}
	if c["tty"] != true || c["interactive"] != true || c["project_id"] != "demo" || !strings.HasSuffix(c["name"].(string), "-container") {
		t.Errorf("member view: %v", c)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestProjectIsolation(t *testing.T) {
	h, _ := newTestHandler(t)
	mine := create(t, h, "alice:demo", `{"name": "mine", "image": "busybox"}`)["uuid"].(string)
	create(t, h, "bob:other", `{"name": "theirs", "image": "busybox"}`)
	admins := create(t, h, "admin:admin", `{"name": "admins", "image": "busybox"}`)["uuid"].(string)

	names := func(token, query string) []string {
		res := do(t, h, apiCall{method: "GET", path: "/v1/containers" + query, token: token, version: latest})
		if res.status != 200 {
			t.Fatalf("list %s as %s: %d %s", query, token, res.status, res.body)
		}
		var out []string
		for _, c := range res.json(t)["containers"].([]any) {
			out = append(out, c.(map[string]any)["name"].(string))
		}
		return out
	}
	if got := strings.Join(names("alice:demo", ""), ","); got != "mine" {
		t.Errorf("alice lists %s", got)
	}
	if got := strings.Join(names("admin:admin", ""), ","); got != "admins" {
		t.Errorf("admin without all_projects lists %s", got)
	}
	if got := strings.Join(names("admin:admin", "?all_projects=1"), ","); got != "mine,theirs,admins" {
		t.Errorf("admin with all_projects lists %s", got)
	}
	tests := []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"member shows own", "GET", "/v1/containers/" + mine, "alice:demo", 200, ""},
		{"member shows own by name", "GET", "/v1/containers/mine", "alice:demo", 200, ""},
		{"other member", "GET", "/v1/containers/" + mine, "bob:other", 404, "container.container-not-found"},
		{"other member by name", "GET", "/v1/containers/mine", "bob:other", 404, "container.container-not-found"},
		{"other member acts", "POST", "/v1/containers/" + mine + "/stop", "bob:other", 404, "container.container-not-found"},
		{"other member deletes", "DELETE", "/v1/containers/" + mine, "bob:other", 404, "container.container-not-found"},
		{"member on admin's", "GET", "/v1/containers/" + admins, "alice:demo", 404, ""},
		{"admin sees any", "GET", "/v1/containers/" + mine, "admin:admin", 200, ""},
		{"member all_projects list", "GET", "/v1/containers?all_projects=true", "alice:demo", 403, "container.policy-not-authorized"},
		{"member all_projects show", "GET", "/v1/containers/" + mine + "?all_projects=true", "alice:demo", 403, ""},
		{"member filter by host", "GET", "/v1/containers?host=host1", "alice:demo", 403, ""},
		{"member hosts", "GET", "/v1/hosts", "alice:demo", 403, ""},
		{"member services", "GET", "/v1/services", "alice:demo", 403, ""},
		{"uuid without dashes", "GET", "/v1/containers/" + strings.ReplaceAll(mine, "-", ""), "alice:demo", 200, ""},
		{"unknown", "GET", "/v1/containers/nothing", "alice:demo", 404, ""},
	}
	for _, tc := range tests {
		res := do(t, h, apiCall{method: tc.method, path: tc.path, token: tc.token, version: latest})
		if res.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, res.status, tc.status, res.body)
			continue
		}
		if tc.status >= 400 && tc.code != "" {
			if e := res.errorOf(t); e["code"] != tc.code {
				t.Errorf("%s: code %v, want %s", tc.name, e["code"], tc.code)
			}
		}
	}
	res := do(t, h, apiCall{method: "GET", path: "/v1/containers/nothing", token: "alice:demo", version: latest})
	if e := res.errorOf(t); e["title"] != "Container nothing could not be found." || e["detail"] != e["title"] || e["links"] == nil {
		t.Errorf("not found body %v", e)
	}
	res = do(t, h, apiCall{method: "GET", path: "/v1/containers?all_projects=true", token: "alice:demo", version: latest})
	if e := res.errorOf(t); e["title"] != "Policy doesn't allow container:get_all_all_projects to be performed." {
		t.Errorf("policy body %v", e)
	}
	// two containers of one name: use the uuid
	create(t, h, "alice:demo", `{"name": "mine", "image": "busybox"}`)
	res = do(t, h, apiCall{method: "GET", path: "/v1/containers/mine", token: "alice:demo", version: latest})
	if res.status != 409 {
		t.Errorf("ambiguous name: %d %s", res.status, res.body)
	}
}

func TestDelete(t *testing.T) {
	h, tb := newTestHandler(t)
	newC := func(status string) string {
		id := create(t, h, "demo:demo", `{"image": "busybox"}`)["uuid"].(string)
		if status != "" {
			tb.report(t, id, status, "", nil)
		}
		return id
	}
	creating := newC("")
	running := newC(agentproto.StatusRunning)
	stopped := newC(agentproto.StatusStopped)
	tests := []struct {
		name, id, query, token, version string
		status                          int
		detail                          string
	}{
		{"creating", creating, "", "demo:demo", latest, 409, "Cannot delete container " + creating + " in Creating state"},
		{"running", running, "", "demo:demo", latest, 409, "Cannot delete container " + running + " in Running state"},
		{"force as member", running, "?force=true", "demo:demo", latest, 403, "Policy doesn't allow container:delete_force to be performed."},
		{"force before 1.7", running, "?force=true", "admin:admin", "container 1.6", 400, "Invalid param force because current request version is 1.6. force is only supported from version 1.7"},
		{"stop before 1.12", running, "?stop=true", "demo:demo", "container 1.11", 400, "Invalid param stop"},
		{"bad bool", running, "?stop=maybe", "demo:demo", latest, 400, "Invalid input for query parameters 'stop'. Value: 'maybe'."},
		{"unknown param", running, "?now=1", "demo:demo", latest, 400, "Additional properties are not allowed ('now' was unexpected)"},
		{"stop running", running, "?stop=true", "demo:demo", latest, 204, ""},
		{"stopped", stopped, "", "demo:demo", latest, 204, ""},
		{"deleting again", stopped, "", "demo:demo", latest, 409, "Cannot delete container " + stopped + " in Deleting state"},
		{"force as admin", creating, "?force=True", "admin:admin", latest, 204, ""},
	}
	for _, tc := range tests {
		res := do(t, h, apiCall{method: "DELETE", path: "/v1/containers/" + tc.id + tc.query, token: tc.token, version: tc.version})
		if res.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, res.status, tc.status, res.body)
			continue
		}
		if tc.detail != "" {
			if e := res.errorOf(t); !strings.HasPrefix(e["detail"].(string), tc.detail) {
				t.Errorf("%s: detail %q, want %q", tc.name, e["detail"], tc.detail)
			}
		}
	}
	// the deletes that were accepted, and only those, reached host1's
	// agent with their flags; the claims stay until the agent reports the
	// containers gone
	var deletes []string
	for _, ev := range tb.events(t, agentproto.EventDelete) {
		deletes = append(deletes, fmt.Sprintf("%s %s stop=%v force=%v", ev.Container.WorkloadID, ev.Host, ev.Stop, ev.Force))
	}
	want := []string{running + " host1 stop=true force=false", stopped + " host1 stop=false force=false", creating + " host1 stop=false force=true"}
	if strings.Join(deletes, "|") != strings.Join(want, "|") {
		t.Errorf("delete events %v, want %v", deletes, want)
	}
	for _, id := range []string{creating, running, stopped} {
		if w := tb.get(t, id); w.State != ledger.StateDeleting || len(tb.allocations(t, id)) == 0 {
			t.Errorf("%s after its delete: state %s, allocations %v", id, w.State, tb.allocations(t, id))
		}
	}
	tb.report(t, stopped, agentproto.StatusDeleted, "", nil)
	if res := do(t, h, apiCall{method: "GET", path: "/v1/containers/" + stopped, token: "demo:demo", version: latest}); res.status != 404 {
		t.Errorf("after the agent removed it: %d %s", res.status, res.body)
	}
	if held := tb.allocations(t, stopped); len(held) != 0 {
		t.Errorf("a removed container still holds %v", held)
	}
}

func TestActions(t *testing.T) {
	h, tb := newTestHandler(t)
	id := create(t, h, "demo:demo", `{"name": "c1", "image": "busybox"}`)["uuid"].(string)
	tb.report(t, id, agentproto.StatusRunning, "", nil)
	// half of host1's memory goes to another project's container, so that
	// a resize to 8000 MB cannot fit
	create(t, h, "admin:admin", `{"image": "busybox", "memory": 4096}`)
	base := "/v1/containers/" + id
	tests := []struct {
		name, method, path, version, body string
		status                            int
		detail                            string
	}{
		{"start running", "POST", base + "/start", latest, "", 409, "Cannot start container " + id + " in Running state"},
		{"unpause running", "POST", base + "/unpause", latest, "", 409, ""},
		{"stop bad timeout", "POST", base + "/stop?timeout=abc", latest, "", 400, "Invalid input for query parameters 'timeout'. Value: 'abc'. 'abc' does not match '^[0-9]*$'"},
		{"stop", "POST", base + "/stop?timeout=5", latest, "", 202, ""},
		{"reboot", "POST", base + "/reboot", latest, "", 202, ""},
		{"pause", "POST", base + "/pause", latest, "", 202, ""},
		{"kill bad signal", "POST", base + "/kill?signal=SIGFOO", latest, "", 400, "Invalid input for field 'signal'.Value: 'SIGFOO'. 'SIGFOO' is not one of ['None', "},
		{"kill", "POST", base + "/kill?signal=term", latest, "", 202, ""},
		{"kill by number", "POST", base + "/kill?signal=9", latest, "", 202, ""},
		{"rename action at 1.13", "POST", base + "/rename?name=c2", "container 1.13", "", 200, ""},
		{"rename same name", "POST", base + "/rename?name=c2", "container 1.13", "", 409, "The new name for the container is the same as the old name."},
		{"rename bad name", "POST", base + "/rename?name=-", "container 1.13", "", 400, "Invalid input for query parameters 'name'."},
		{"patch name", "PATCH", base, latest, `{"name": "c3"}`, 200, ""},
		{"patch bad memory", "PATCH", base, latest, `{"memory": "1G"}`, 400, "Invalid input for field 'memory'."},
		{"patch unknown", "PATCH", base, latest, `{"image": "x"}`, 400, "Additional properties are not allowed ('image' was unexpected)"},
		{"patch memory", "PATCH", base, latest, `{"memory": 1024, "cpu": "0.5"}`, 200, ""},
		{"patch too much memory", "PATCH", base, latest, `{"memory": 8000}`, 409, ""},
		{"resize_container", "POST", base + "/resize_container", "container 1.19", `{"memory": "2048"}`, 202, ""},
		{"attach", "GET", base + "/attach", latest, "", 400, "The operation is not supported: attach."},
		{"commit", "POST", base + "/commit?repository=x", latest, "", 400, ""},
		{"network_list before 1.13", "GET", base + "/network_list", "container 1.12", "", 406, ""},
	}
	for _, tc := range tests {
		res := do(t, h, apiCall{method: tc.method, path: tc.path, token: "demo:demo", version: tc.version, body: tc.body})
		if res.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, res.status, tc.status, res.body)
			continue
		}
		if tc.detail != "" {
			if e := res.errorOf(t); !strings.HasPrefix(e["detail"].(string), tc.detail) {
				t.Errorf("%s: detail %q, want %q", tc.name, e["detail"], tc.detail)
			}
		}
	}
	// what reached host1's agent: the accepted actions with their
	// arguments, the renames and the resizes, nothing of the refusals
	var actions []string
	for _, ev := range tb.events(t, agentproto.EventAction) {
		actions = append(actions, fmt.Sprintf("%s %s %s %d", ev.Container.WorkloadID, ev.Action, ev.Signal, ev.Timeout))
	}
	want := []string{id + " stop  5", id + " reboot  0", id + " pause  0", id + " kill SIGTERM 0", id + " kill SIGKILL 0"}
	if strings.Join(actions, "|") != strings.Join(want, "|") {
		t.Errorf("action events %q, want %q", actions, want)
	}
	var renames, updates []string
	for _, ev := range tb.events(t, agentproto.EventRename) {
		renames = append(renames, ev.Container.Name)
	}
	for _, ev := range tb.events(t, agentproto.EventUpdate) {
		updates = append(updates, fmt.Sprintf("%g/%d", ev.Container.CPU, ev.Container.MemoryMB))
	}
	if strings.Join(renames, ",") != "c2,c3" || strings.Join(updates, ",") != "0.5/1024,0.5/2048" {
		t.Errorf("rename events %v, update events %v", renames, updates)
	}
	c := do(t, h, apiCall{method: "GET", path: base, token: "demo:demo", version: latest}).json(t)
	if c["name"] != "c3" || c["memory"] != "2048" || c["cpu"] != 0.5 {
		t.Errorf("after rename and resizes: %v %v %v", c["name"], c["memory"], c["cpu"])
	}
	// the claim follows the resizes; the refused one changed nothing
	if got := tb.allocations(t, id); got["MEMORY_MB"] != 2048 || got["VCPU"] != 1 {
		t.Errorf("allocations after the resizes %v", got)
	}
	if w := tb.get(t, id); w.Container.Running {
		t.Errorf("the last action was a kill, the container is still wanted running")
	}
	// a container still creating cannot be updated
	id2 := create(t, h, "demo:demo", `{"image": "busybox"}`)["uuid"].(string)
	res := do(t, h, apiCall{method: "PATCH", path: "/v1/containers/" + id2, token: "demo:demo", version: latest, body: `{"name": "x1"}`})
	if res.status != 409 {
		t.Errorf("update while creating: %d %s", res.status, res.body)
	}
}

func TestListPagingAndFilters(t *testing.T) {
	h, tb := newTestHandler(t)
	var ids []string
	for _, n := range []string{"b", "a", "c"} {
		ids = append(ids, create(t, h, "demo:demo", `{"name": "`+n+`1", "image": "busybox"}`)["uuid"].(string))
	}
	tb.report(t, ids[1], agentproto.StatusRunning, "", nil)
	list := func(q string) (int, []string, any) {
		res := do(t, h, apiCall{method: "GET", path: "/v1/containers" + q, token: "demo:demo", version: latest})
		if res.status != 200 {
			return res.status, nil, res.errorOf(t)["detail"]
		}
		m := res.json(t)
		var names []string
		for _, c := range m["containers"].([]any) {
			names = append(names, c.(map[string]any)["name"].(string))
		}
		return 200, names, m["next"]
	}
	_, names, next := list("?limit=2")
	if strings.Join(names, ",") != "b1,a1" || next != "http://zun.test/v1/containers?sort_key=id&sort_dir=asc&limit=2&marker="+ids[1] {
		t.Errorf("page 1: %v next %v", names, next)
	}
	_, names, next = list("?limit=2&marker=" + ids[1])
	if strings.Join(names, ",") != "c1" || next != nil {
		t.Errorf("page 2: %v next %v", names, next)
	}
	if _, names, _ = list("?sort_key=name&sort_dir=desc"); strings.Join(names, ",") != "c1,b1,a1" {
		t.Errorf("by name desc: %v", names)
	}
	if _, names, _ = list("?status=Running"); strings.Join(names, ",") != "a1" {
		t.Errorf("status filter: %v", names)
	}
	if _, names, _ = list("?name=c1&image=busybox"); strings.Join(names, ",") != "c1" {
		t.Errorf("name filter: %v", names)
	}
	for q, want := range map[string]string{
		"?limit=0":            "Limit must be positive integer",
		"?limit=x":            "Limit must be positive integer",
		"?sort_dir=up":        "Invalid sort direction: up. Acceptable values are 'asc' or 'desc'",
		"?sort_key=bogus":     `The sort_key value "bogus" is an invalid field for sorting`,
		"?foo=1&bar=2":        "Unknown parameters: foo, bar",
		"?marker=nothing":     "Container nothing could not be found.",
		"?all_projects=maybe": "Valid all_projects values are: ",
	} {
		status, _, detail := list(q)
		if d, _ := detail.(string); status == 200 || !strings.HasPrefix(d, want) {
			t.Errorf("%s: %d %v, want %q", q, status, detail, want)
		}
	}
}

// TestSynchronousCalls runs logs, execute, stats and top against a
// stand-in agent speaking agentproto's routes (the agent's side is not
// under test here), registered with the coordinator as host1's agent.
func TestSynchronousCalls(t *testing.T) {
	h, tb := newTestHandler(t)
	var id string // set before the agent is called
	var seen []string
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		switch r.URL.Path {
		case "/v1/containers/" + id + "/logs":
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("hello\n"))
		case "/v1/containers/" + id + "/execute":
			var req agentproto.ExecRequest
			json.NewDecoder(r.Body).Decode(&req)
			json.NewEncoder(w).Encode(agentproto.ExecResult{Output: strings.Join(req.Command, "|"), ExitCode: 3})
		case "/v1/containers/" + id + "/stats":
			json.NewEncoder(w).Encode(agentproto.Stats{CPUPercent: 1.5, MemLimit: 512})
		case "/v1/containers/" + id + "/top":
			json.NewEncoder(w).Encode(agentproto.Top{Titles: []string{"PID"}, Processes: [][]string{{"1"}}})
		default:
			w.WriteHeader(404)
			w.Write([]byte(`{"errors": [{"status": 404, "title": "Not Found", "detail": "no such container"}]}`))
		}
	}))
	defer agent.Close()
	// host1's agent registers again with the URL it listens on
	reg := bridgetest.TwoCells("host1")
	reg.AgentURL = agent.URL
	bridgetest.Register(t, tb.c, reg)
	id = create(t, h, "demo:demo", `{"image": "busybox"}`)["uuid"].(string)
	base := "/v1/containers/" + id

	// logs are allowed while creating? No: Creating is not in Zun's list
	res := do(t, h, apiCall{method: "GET", path: base + "/logs", token: "demo:demo", version: latest})
	if res.status != 409 {
		t.Errorf("logs while creating: %d %s", res.status, res.body)
	}
	tb.report(t, id, agentproto.StatusRunning, "", nil)
	res = do(t, h, apiCall{method: "GET", path: base + "/logs?stdout=True&tail=10&since=2026-01-02+03:04:05,5", token: "demo:demo", version: latest})
	if res.status != 200 || string(res.body) != "\"hello\\n\"\n" {
		t.Errorf("logs: %d %q", res.status, res.body)
	}
	res = do(t, h, apiCall{method: "POST", path: base + "/execute?run=true&command=sh+-c+%27echo+hi%27", token: "demo:demo", version: latest})
	if m := res.json(t); res.status != 200 || m["output"] != "sh|-c|echo hi" || m["exit_code"] != 3.0 {
		t.Errorf("execute: %d %s", res.status, res.body)
	}
	res = do(t, h, apiCall{method: "POST", path: base + "/execute?command=ls&interactive=true", token: "demo:demo", version: latest})
	if res.status != 400 {
		t.Errorf("interactive execute: %d %s", res.status, res.body)
	}
	res = do(t, h, apiCall{method: "GET", path: base + "/stats", token: "demo:demo", version: latest})
	if m := res.json(t); res.status != 200 || m["CPU %"] != 1.5 || m["MEM LIMIT(MiB)"] != 512.0 {
		t.Errorf("stats: %d %s", res.status, res.body)
	}
	res = do(t, h, apiCall{method: "GET", path: base + "/top?ps_args=aux", token: "demo:demo", version: latest})
	if m := res.json(t); res.status != 200 || m["Titles"].([]any)[0] != "PID" {
		t.Errorf("top: %d %s", res.status, res.body)
	}
	wantSeen := []string{
		"GET /v1/containers/" + id + "/logs?since=1767323045.500&stdout=true&tail=10",
		"POST /v1/containers/" + id + "/execute",
		"GET /v1/containers/" + id + "/stats",
		"GET /v1/containers/" + id + "/top?ps_args=aux",
	}
	if strings.Join(seen, "|") != strings.Join(wantSeen, "|") {
		t.Errorf("agent saw %q\nwant %q", seen, wantSeen)
	}
	// the agent does not know the container: its 404 is the API's
	other := create(t, h, "demo:demo", `{"image": "busybox"}`)["uuid"].(string)
	tb.report(t, other, agentproto.StatusRunning, "", nil)
	res = do(t, h, apiCall{method: "GET", path: "/v1/containers/" + other + "/stats", token: "demo:demo", version: latest})
	if res.status != 404 || res.errorOf(t)["detail"] != "no such container" {
		t.Errorf("container unknown to the agent: %d %s", res.status, res.body)
	}
	// then the agent is gone
	agent.Close()
	res = do(t, h, apiCall{method: "GET", path: base + "/stats", token: "demo:demo", version: latest})
	if res.status != 503 {
		t.Errorf("agent down: %d %s", res.status, res.body)
	}
}

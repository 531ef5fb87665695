package placement

import (
	"testing"
)

func TestUsages(t *testing.T) {
	srv, pool := newStoreTestServer(t)
	rp := sqlProvider(t, pool, "used")
	const project, user, altUser = "proj-1", "user-1", "user-2"
	runSteps(t, srv, []step{
		{name: "missing provider", method: "GET", path: "/resource_providers/fae14fa3-4b43-498c-a33c-4a1d00edb577/usages", status: 404,
			strings: []string{"No resource provider with uuid fae14fa3-4b43-498c-a33c-4a1d00edb577 found"}},
		{name: "no inventory", method: "GET", path: "/resource_providers/" + rp + "/usages", status: 200,
			json: map[string]string{"usages": "{}", "resource_provider_generation": "0"}},
		{name: "inventory", method: "PUT", path: "/resource_providers/" + rp + "/inventories", status: 200,
			body: `{"resource_provider_generation": 0, "inventories": {"DISK_GB": {"total": 2048}, "VCPU": {"total": 97}, "MEMORY_MB": {"total": 8}}}`},
	})
	sqlAllocate(t, pool, rp, "11111111-1111-1111-1111-111111111111", project, user, "", map[string]int{"DISK_GB": 1000})
	sqlAllocate(t, pool, rp, "22222222-2222-2222-2222-222222222222", project, user, "INSTANCE", map[string]int{"VCPU": 6})
	sqlAllocate(t, pool, rp, "33333333-3333-3333-3333-333333333333", project, altUser, "INSTANCE", map[string]int{"VCPU": 1, "DISK_GB": 20})
	sqlAllocate(t, pool, rp, "44444444-4444-4444-4444-444444444444", "other-project", user, "", map[string]int{"VCPU": 2})
	runSteps(t, srv, []step{
		{name: "provider usages, unused classes 0", method: "GET", path: "/resource_providers/" + rp + "/usages", mv: "1.15", status: 200,
			headers: map[string]string{"Last-Modified": "*", "Cache-Control": "no-cache"},
			strings: []string{`"usages":{"VCPU":9,"MEMORY_MB":0,"DISK_GB":1020}`}},
		{name: "hidden below 1.9", method: "GET", path: "/usages?project_id=" + project, mv: "1.8", status: 404},
		{name: "project required", method: "GET", path: "/usages", mv: "1.9", status: 400,
			strings: []string{"Invalid query string parameters", "'project_id' is a required property"}},
		{name: "empty project id", method: "GET", path: "/usages?project_id=", mv: "1.9", status: 400,
			strings: []string{"Failed validating 'minLength'"}},
		{name: "unknown parameter", method: "GET", path: "/usages?project_id=x&dummy=1", mv: "1.9", status: 400,
			strings: []string{"Additional properties are not allowed"}},
		{name: "consumer_type before 1.38", method: "GET", path: "/usages?project_id=x&consumer_type=all", mv: "1.37", status: 400,
			strings: []string{"Additional properties are not allowed"}},
		{name: "unknown project", method: "GET", path: "/usages?project_id=nobody", mv: "1.9", status: 200,
			json: map[string]string{"usages": "{}"}},
		{name: "project", method: "GET", path: "/usages?project_id=" + project, mv: "1.9", status: 200,
			headers: map[string]string{"Last-Modified": ""},
			json:    map[string]string{"usages": `{"DISK_GB":1020,"VCPU":7}`}},
		{name: "project and user", method: "GET", path: "/usages?project_id=" + project + "&user_id=" + user, mv: "1.15", status: 200,
			headers: map[string]string{"Last-Modified": "*"},
			json:    map[string]string{"usages": `{"DISK_GB":1000,"VCPU":6}`}},
		{name: "by type", method: "GET", path: "/usages?project_id=" + project, mv: "1.38", status: 200,
			json: map[string]string{
				"usages.INSTANCE": `{"DISK_GB":20,"VCPU":7,"consumer_count":2}`,
				"usages.unknown":  `{"DISK_GB":1000,"consumer_count":1}`,
			}},
		{name: "one type", method: "GET", path: "/usages?project_id=" + project + "&consumer_type=INSTANCE", mv: "1.38", status: 200,
			json: map[string]string{"usages": `{"INSTANCE":{"DISK_GB":20,"VCPU":7,"consumer_count":2}}`}},
		{name: "all", method: "GET", path: "/usages?project_id=" + project + "&consumer_type=all", mv: "1.38", status: 200,
			json: map[string]string{"usages": `{"all":{"DISK_GB":1020,"VCPU":7,"consumer_count":3}}`}},
		{name: "unknown", method: "GET", path: "/usages?project_id=" + project + "&consumer_type=unknown", mv: "1.38", status: 200,
			json: map[string]string{"usages": `{"unknown":{"DISK_GB":1000,"consumer_count":1}}`}},
		{name: "ALL is a type name", method: "GET", path: "/usages?project_id=" + project + "&consumer_type=ALL", mv: "1.38", status: 200,
			json: map[string]string{"usages": `{}`}},
		{name: "bad type", method: "GET", path: "/usages?project_id=" + project + "&consumer_type=instance", mv: "1.38", status: 400,
			strings: []string{"Failed validating 'pattern'"}},
		{name: "user filter by type", method: "GET", path: "/usages?project_id=" + project + "&user_id=" + altUser, mv: "1.38", status: 200,
			json: map[string]string{"usages": `{"INSTANCE":{"DISK_GB":20,"VCPU":1,"consumer_count":1}}`}},
	})
}

package notifications

import (
	"encoding/json"
	"errors"
	"maps"
	"testing"
)

// novaMessage is a notification shaped as Nova's (InstancePayload family
// or ComputeTaskPayload), from the fields of data.
func novaMessage(eventType, priority, objName string, data map[string]any) []byte {
	inner, _ := json.Marshal(map[string]any{
		"message_id": "0c1a3f4e-7d7e-4d52-9c55-3f0ac0d4c0de", "publisher_id": "nova-compute:compute-1",
		"event_type": eventType, "priority": priority, "timestamp": "2026-11-27 05:00:00.123456",
		"_context_request_id": "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d",
		"payload": map[string]any{
			"nova_object.name": objName, "nova_object.namespace": "nova", "nova_object.version": "1.12",
			"nova_object.data": data,
		},
	})
	body, _ := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(inner)})
	return body
}

func instance(uuid, host, state string, fault map[string]any) map[string]any {
	d := map[string]any{"uuid": uuid, "host": host, "node": host, "state": state, "display_name": "vm",
		"tenant_id": "p1", "user_id": "u1", "fault": nil,
		"flavor": map[string]any{"nova_object.name": "FlavorPayload", "nova_object.data": map[string]any{"vcpus": 2, "memory_mb": 1024}}}
	if fault != nil {
		d["fault"] = map[string]any{"nova_object.name": "ExceptionPayload", "nova_object.data": fault}
	}
	return d
}

func TestClassify(t *testing.T) {
	const id = "178b0921-8f85-4257-88b6-2e743b5a975c"
	fault := map[string]any{"exception": "FlavorDiskTooSmall", "exception_message": "The created instance's disk would be too small."}
	noValidHost := map[string]any{"instance_uuid": id, "state": "error", "request_spec": nil,
		"reason": map[string]any{"nova_object.name": "ExceptionPayload", "nova_object.data": map[string]any{
			"exception": "NoValidHost", "exception_message": "No valid host was found. There are not enough hosts available."}}}
	tests := []struct {
		name string
		body []byte
		want Action
		bad  bool
	}{
		{"create.end", novaMessage("instance.create.end", "INFO", "InstanceCreatePayload", instance(id, "compute-1", "active", nil)),
			Action{Kind: Created, ServerID: id, Host: "compute-1"}, false},
		{"create.error", novaMessage("instance.create.error", "ERROR", "InstanceCreatePayload", instance(id, "compute-1", "building", fault)),
			Action{Kind: Failed, ServerID: id, Reason: "FlavorDiskTooSmall: The created instance's disk would be too small."}, false},
		{"the conductor's NoValidHost", novaMessage("compute_task.build_instances.error", "ERROR", "ComputeTaskPayload", noValidHost),
			Action{Kind: Failed, ServerID: id, Reason: "NoValidHost: No valid host was found. There are not enough hosts available."}, false},
		{"a failed migrate task", novaMessage("compute_task.migrate_server.error", "ERROR", "ComputeTaskPayload", noValidHost),
			Action{Kind: Moved, ServerID: id}, false},
		{"a failed migrate task leaving it active (rolled back)", novaMessage("compute_task.migrate_server.error", "ERROR", "ComputeTaskPayload", with(noValidHost, "state", "active")),
			Action{Kind: Moved, ServerID: id, RealPins: true}, false},
		{"a failed migrate task leaving it stopped (rolled back)", novaMessage("compute_task.migrate_server.error", "ERROR", "ComputeTaskPayload", with(noValidHost, "state", "stopped")),
			Action{Kind: Moved, ServerID: id, RealPins: true}, false},
		{"delete.end", novaMessage("instance.delete.end", "INFO", "InstanceActionPayload", instance(id, "compute-1", "deleted", nil)),
			Action{Kind: Deleted, ServerID: id}, false},
		{"resize_finish.end", novaMessage("instance.resize_finish.end", "INFO", "InstanceActionResizePayload", instance(id, "compute-2", "resized", nil)),
			Action{Kind: Moved, ServerID: id, RealPins: true}, false},
		{"resize_confirm.end (the source freed)", novaMessage("instance.resize_confirm.end", "INFO", "InstanceActionPayload", instance(id, "compute-2", "active", nil)),
			Action{Kind: Moved, ServerID: id}, false},
		{"live_migration_post.end", novaMessage("instance.live_migration_post.end", "INFO", "InstanceActionPayload", instance(id, "compute-1", "active", nil)),
			Action{Kind: Moved, ServerID: id, RealPins: true}, false},
		{"live_migration_rollback.end (back on the source)", novaMessage("instance.live_migration_rollback.end", "INFO", "InstanceActionPayload", instance(id, "compute-1", "active", nil)),
			Action{Kind: Moved, ServerID: id, RealPins: true}, false},
		{"live_migration_rollback_dest.end (the destination cleaned)", novaMessage("instance.live_migration_rollback_dest.end", "INFO", "InstanceActionPayload", instance(id, "compute-1", "active", nil)),
			Action{Kind: Moved, ServerID: id}, false},
		{"evacuate", novaMessage("instance.evacuate", "INFO", "InstanceActionPayload", instance(id, "compute-2", "active", nil)),
			Action{Kind: Moved, ServerID: id, RealPins: true}, false},
		{"resize_finish.start", novaMessage("instance.resize_finish.start", "INFO", "InstanceActionResizePayload", instance(id, "compute-2", "active", nil)),
			Action{Kind: Ignored, ServerID: id}, false},
		{"reboot.error leaving it active", novaMessage("instance.reboot.error", "ERROR", "InstanceActionPayload", instance(id, "compute-1", "active", fault)),
			Action{Kind: Ignored, ServerID: id}, false},
		{"resize.error leaving it in error", novaMessage("instance.resize.error", "ERROR", "InstanceActionPayload", instance(id, "compute-1", "error", fault)),
			Action{Kind: Failed, ServerID: id, Reason: "FlavorDiskTooSmall: The created instance's disk would be too small."}, false},
		{"instance.update", novaMessage("instance.update", "INFO", "InstanceUpdatePayload", instance(id, "compute-1", "active", nil)),
			Action{Kind: Ignored, ServerID: id}, false},
		{"service.update", novaMessage("service.update", "INFO", "ServiceStatusPayload", map[string]any{"host": "compute-1"}),
			Action{Kind: Ignored}, false},
		{"upper-case uuid", novaMessage("instance.delete.end", "INFO", "InstanceActionPayload", instance("178B0921-8F85-4257-88B6-2E743B5A975C", "c", "deleted", nil)),
			Action{Kind: Deleted, ServerID: id}, false},
		{"bare message without envelope", func() []byte {
			var env map[string]string
			_ = json.Unmarshal(novaMessage("instance.delete.end", "INFO", "InstanceActionPayload", instance(id, "c", "deleted", nil)), &env)
			return []byte(env["oslo.message"])
		}(), Action{Kind: Deleted, ServerID: id}, false},

		{"not JSON", []byte("hello"), Action{}, true},
		{"envelope without message", []byte(`{"oslo.version": "2.0"}`), Action{}, true},
		{"envelope of another version", []byte(`{"oslo.version": "1.0", "oslo.message": "{}"}`), Action{}, true},
		{"inner message not JSON", []byte(`{"oslo.version": "2.0", "oslo.message": "{"}`), Action{}, true},
		{"no event type", []byte(`{"oslo.version": "2.0", "oslo.message": "{\"payload\": {}}"}`), Action{}, true},
		{"create.end without uuid", novaMessage("instance.create.end", "INFO", "InstanceCreatePayload", instance("", "compute-1", "active", nil)), Action{}, true},
		{"create.end without host", novaMessage("instance.create.end", "INFO", "InstanceCreatePayload", instance(id, "", "active", nil)), Action{}, true},
		{"delete.end with a payload that is not an object", []byte(`{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"instance.delete.end\", \"payload\": [1]}"}`), Action{}, true},
	}
	for _, tc := range tests {
		m, err := ParseMessage(tc.body)
		var a Action
		if err == nil {
			a, err = Classify(m)
		}
		if tc.bad {
			if !errors.Is(err, errMalformed) {
				t.Errorf("%s: %+v, %v; want malformed", tc.name, a, err)
			}
			continue
		}
		if err != nil || a != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, a, err, tc.want)
		}
	}
}

// with is a copy of m with k set to v.
func with(m map[string]any, k string, v any) map[string]any {
	out := maps.Clone(m)
	out[k] = v
	return out
}

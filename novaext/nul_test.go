package novaext_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge/ledger"
)

// A create whose body holds NUL characters (which PostgreSQL stores in
// neither text nor jsonb) goes to nova-api byte for byte and is answered
// by it, never by a 500 of the proxy; its intent is still recorded, with
// U+FFFD where the NULs were, so that a waiting scheduler is released.
func TestCreateWithNUL(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		name, path, body string
		status           int
		check            func(t *testing.T, in ledger.Intent)
	}{
		{name: "name, image and hints", path: "/v2.1/servers", status: http.StatusAccepted,
			body: `{"server": {"name": "vm\u0000", "flavorRef": "42", "imageRef": "img\u0000"}, "os:scheduler_hints": {"k\u0000": "v\u0000", "l": ["\u0000"]}}`,
			check: func(t *testing.T, in ledger.Intent) {
				if in.ServerName != "vm\uFFFD" || in.ImageRef != "img\uFFFD" || in.Flavor == nil || in.Flavor.ID != "42" {
					t.Errorf("intent %+v", in)
				}
				if in.SchedulerHints["k\uFFFD"] != "v\uFFFD" || len(in.SchedulerHints["l"].([]any)) != 1 || in.SchedulerHints["l"].([]any)[0] != "\uFFFD" {
					t.Errorf("hints %#v", in.SchedulerHints)
				}
			}},
		{name: "flavorRef refused by nova", path: "/v2.1/servers", status: http.StatusBadRequest,
			body: `{"server": {"name": "vm", "flavorRef": "4\u00002"}}`,
			check: func(t *testing.T, in ledger.Intent) {
				if in.FlavorRef != "4\uFFFD2" || in.Flavor != nil || in.ResponseStatus != http.StatusBadRequest {
					t.Errorf("intent %+v", in)
				}
			}},
		{name: "legacy project", path: "/v2/p%00%ff/servers", status: http.StatusAccepted,
			body: `{"server": {"name": "vm", "flavorRef": "42"}}`,
			check: func(t *testing.T, in ledger.Intent) {
				if in.ProjectID != "p\uFFFD\uFFFD" {
					t.Errorf("project %q", in.ProjectID)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.up.createStatus = c.status
			before := len(e.up.requests("POST", ""))
			resp, body := e.do(t, "POST", c.path, http.Header{"X-Auth-Token": {"alice:proj1"}}, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want nova-api's %d: %s", resp.StatusCode, c.status, body)
			}
			got := e.up.requests("POST", "")
			if len(got) != before+1 {
				t.Fatalf("not forwarded")
			}
			s := got[len(got)-1]
			if string(s.Body) != c.body || !strings.HasSuffix(s.Path, "/servers") {
				t.Errorf("forwarded %s %q", s.Path, s.Body)
			}
			if !s.IntentAtArrival {
				t.Fatalf("no intent when nova-api got the create: %v", s.IntentErr)
			}
			in, err := ledger.IntentByRequestID(e.ctx, e.pool, s.Header.Get("X-Openstack-Request-Id"))
			if err != nil {
				t.Fatal(err)
			}
			if in.ResponseStatus != c.status {
				t.Errorf("answer %d, want %d", in.ResponseStatus, c.status)
			}
			c.check(t, in)
		})
	}
}

package main

import "testing"

func TestNovaRoute(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/", "/"},
		{"/v2.1", "/v2.1"},
		{"/v2.1/", "/v2.1"},
		{"/v2.1/servers", "/v2.1/servers"},
		{"/v2.1/servers/detail", "/v2.1/servers/detail"},
		{"/v2.1/servers/3f1c5a9e-0000-4000-8000-000000000001", "/v2.1/servers/{id}"},
		{"/v2.1/servers/3f1c5a9e-0000-4000-8000-000000000001/action", "/v2.1/servers/{id}/action"},
		{"/v2.1/servers/3f1c5a9e-0000-4000-8000-000000000001/os-interface/abc", "/v2.1/servers/{id}/os-interface/{id}"},
		{"/v2.1/servers/x/os-volume_attachments/y/z/w", "/v2.1/servers/{id}/os-volume_attachments/{id}/..."},
		{"/v2.1/servers/x/random-word", "/v2.1/servers/{id}/{other}"},
		{"/v2.1/0123456789abcdef0123456789abcdef/flavors/m1.tiny/os-extra_specs", "/v2.1/{project_id}/flavors/{id}/os-extra_specs"},
		{"/v2.1/os-hypervisors/statistics", "/v2.1/os-hypervisors/statistics"},
		{"/v2.1/os-hypervisors/compute-1", "/v2.1/os-hypervisors/{id}"},
		{"/v2.1/not-a-nova-resource/1", ""},
		{"/wp-admin/setup.php", ""},
		{"/v3/servers", ""},
	} {
		if got := novaRoute(tc.path); got != tc.want {
			t.Errorf("novaRoute(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

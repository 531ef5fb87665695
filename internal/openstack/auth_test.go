package openstack

import (
	"net/http/httptest"
	"reflect"
	"testing"
)

// The credentials upstream's noauth2 middleware and oslo.context's
// from_environ build from the same headers.
func TestNoAuth2(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		want    *Credentials
	}{
		{"no token", map[string]string{}, nil},
		{"empty token still authenticates", map[string]string{"X-Auth-Token": ""}, &Credentials{}},
		{"admin gets the admin role", map[string]string{"X-Auth-Token": "admin"}, &Credentials{UserID: "admin", ProjectID: "admin", Roles: []string{"admin"}}},
		{"user:project", map[string]string{"X-Auth-Token": "bob:p1"}, &Credentials{UserID: "bob", ProjectID: "p1"}},
		{"user: with empty project", map[string]string{"X-Auth-Token": "bob:"}, &Credentials{UserID: "bob", ProjectID: "bob"}},
		{"x-roles replaces admin's default", map[string]string{"X-Auth-Token": "admin", "X-Roles": "reader"}, &Credentials{UserID: "admin", ProjectID: "admin", Roles: []string{"reader"}}},
		{"empty x-roles means none", map[string]string{"X-Auth-Token": "admin", "X-Roles": ""}, &Credentials{UserID: "admin", ProjectID: "admin"}},
		{"roles are trimmed", map[string]string{"X-Auth-Token": "u", "X-Roles": " admin , reader,"}, &Credentials{UserID: "u", ProjectID: "u", Roles: []string{"admin", "reader"}}},
		{"x-project-id wins", map[string]string{"X-Auth-Token": "u:p1", "X-Project-Id": "p2"}, &Credentials{UserID: "u", ProjectID: "p2"}},
		{"system scope drops the token's project", map[string]string{"X-Auth-Token": "u:p1", "OpenStack-System-Scope": "all"}, &Credentials{UserID: "u", SystemScope: "all"}},
		{"system scope with x-project-id", map[string]string{"X-Auth-Token": "u", "OpenStack-System-Scope": "all", "X-Project-Id": "p3"}, &Credentials{UserID: "u", ProjectID: "p3", SystemScope: "all"}},
		{"system scope with x-tenant-id", map[string]string{"X-Auth-Token": "u", "OpenStack-System-Scope": "all", "X-Tenant-Id": "p4"}, &Credentials{UserID: "u", ProjectID: "p4", SystemScope: "all"}},
		{"domain", map[string]string{"X-Auth-Token": "u", "X-Domain-Id": "d1"}, &Credentials{UserID: "u", ProjectID: "u", DomainID: "d1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			got, err := NoAuth2{}.Authenticate(r)
			if tc.want == nil {
				if err != ErrUnauthorized {
					t.Fatalf("got %+v, %v; want ErrUnauthorized", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

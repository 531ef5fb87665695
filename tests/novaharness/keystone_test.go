package novaharness

import (
	"strings"
	"testing"
)

// TestKeystoneSections: with Keystone, every nova process authenticates to
// Placement as the nova service user (catalog, internal interface), nova-api
// validates tokens at Keystone's public endpoint, and serve validates tokens
// with Keystone and reaches Nova as its own service user.
func TestKeystoneSections(t *testing.T) {
	e := &Env{Keystone: &KeystoneEnv{Keystone: Keystone{URL: "http://ks:5000/v3"}, AgentToken: "secret", Users: map[string]Credentials{
		NovaServiceUser:     {Username: "nova", Password: "np", Project: ServiceProject},
		UnischedServiceUser: {Username: "unisched", Password: "up", Project: ServiceProject},
	}}}
	e.NovaURL, e.PlacementWireURL = "http://127.0.0.1:1/v2.1", "http://127.0.0.1:2"
	var c ini
	e.commonNova(&c)
	got := c.b.String()
	for _, want := range []string{
		"[keystone_authtoken]\nauth_type = password\nauth_url = http://ks:5000/v3\nusername = nova\npassword = np\nproject_name = service\n",
		"www_authenticate_uri = http://ks:5000/v3\n",
		"interface = public\n",
		"[service_user]\nauth_type = password\n",
		"send_service_user_token = true\n",
		"[placement]\nauth_type = password\nauth_url = http://ks:5000/v3\nusername = nova\n",
		"region_name = RegionOne\nvalid_interfaces = internal\n",
		// the Neutron stand-in keeps keystoneauth's admin_token
		"[neutron]\nauth_type = admin_token\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("nova's configuration lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "endpoint = "+e.PlacementWireURL) {
		t.Errorf("placement still configured with admin_token's endpoint:\n%s", got)
	}

	cfg := e.serveConfig()
	if s := cfg["placement"].(map[string]any)["auth_strategy"]; s != "keystone" {
		t.Errorf("serve's placement.auth_strategy = %v, want keystone", s)
	}
	auth := cfg["keystone_authtoken"].(map[string]any)
	if auth["username"] != "unisched" || auth["password"] != "up" || auth["auth_url"] != "http://ks:5000/v3" {
		t.Errorf("serve's keystone_authtoken = %v", auth)
	}
	if a := cfg["container_api"].(map[string]any); a["agent_token"] != "secret" || a["listen"] == nil {
		t.Errorf("serve's container_api = %v, want the agents' secret beside the listener", a)
	}
	nova := cfg["nova"].(map[string]any)
	if nova["auth_url"] != "http://ks:5000/v3" || nova["username"] != "unisched" || nova["token"] != "" || nova["interface"] != "internal" {
		t.Errorf("serve's nova client = %v, want the unisched user through the catalog's internal compute endpoint", nova)
	}
	if nova["candidates"] != "only" {
		t.Errorf("serve's nova.candidates = %v: the harness's own settings were lost", nova["candidates"])
	}

	// without Keystone: exactly the noauth2 setup
	e.Keystone = nil
	var plain ini
	e.commonNova(&plain)
	if s := plain.b.String(); strings.Contains(s, "keystone_authtoken") || !strings.Contains(s, "[placement]\nauth_type = admin_token\nendpoint = "+e.PlacementWireURL) {
		t.Errorf("nova's configuration without Keystone:\n%s", s)
	}
	if _, ok := e.serveConfig()["keystone_authtoken"]; ok {
		t.Error("serve configured for Keystone without one")
	}
}

func TestCatalogEndpoints(t *testing.T) {
	e := &Env{NovaURL: "http://n/v2.1", ProxyURL: "http://p/v2.1", PlacementURL: "http://u", PlacementWireURL: "http://w",
		GlanceURL: "http://g", ContainerURL: "http://c"}
	want := map[string][2]string{
		"compute": {"http://p/v2.1", "http://n/v2.1"}, "placement": {"http://u", "http://w"},
		"image": {"http://g", "http://g"}, "container": {"http://c/v1", "http://c/v1"},
	}
	got := e.catalog()
	if len(got) != len(want) {
		t.Fatalf("catalog %v, want the services %v", got, want)
	}
	for _, s := range got {
		w, ok := want[s.Type]
		if !ok || s.URLs["public"] != w[0] || s.URLs["internal"] != w[1] {
			t.Errorf("%s: public %q internal %q, want %q %q", s.Type, s.URLs["public"], s.URLs["internal"], w[0], w[1])
		}
	}
}

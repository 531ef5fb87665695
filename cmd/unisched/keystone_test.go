package main

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/keystone"
	"github.com/unisched/unisched/internal/openstack"
)

// `unisched catalog` prints one service and three endpoints per API,
// from the listen addresses or the URLs given.
func TestCatalogCommand(t *testing.T) {
	t.Setenv("UNISCHED_CONFIG", "")
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", "10.0.0.5:8778")
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", "10.0.0.5:9517")
	t.Setenv("UNISCHED_KEYSTONE_AUTHTOKEN_USERNAME", "unisched")
	t.Setenv("UNISCHED_KEYSTONE_AUTHTOKEN_PROJECT_NAME", "service")
	var out bytes.Buffer
	if err := runCatalog(nil, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"openstack service create --name placement --description 'Placement API (unisched)' placement\n",
		"openstack endpoint create --region RegionOne placement public http://10.0.0.5:8778\n",
		"openstack endpoint create --region RegionOne placement internal http://10.0.0.5:8778\n",
		"openstack endpoint create --region RegionOne placement admin http://10.0.0.5:8778\n",
		"openstack service create --name zun --description 'Container service (unisched, Zun API)' container\n",
		"openstack endpoint create --region RegionOne container public http://10.0.0.5:9517\n",
		"# openstack role add --project service --project-domain Default --user unisched --user-domain Default service\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("catalog output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	err := runCatalog([]string{"--region", "Region Two", "--placement-url", "https://cloud.example/placement", "--container-url", "https://cloud.example/container"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "openstack endpoint create --region 'Region Two' container admin https://cloud.example/container\n") {
		t.Errorf("explicit URLs and region:\n%s", out.String())
	}

	// a wildcard listen address is no catalog URL
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", "0.0.0.0:8778")
	if err := runCatalog(nil, &out); err == nil || !strings.Contains(err.Error(), "--placement-url") {
		t.Errorf("wildcard listen: %v, want an error naming --placement-url", err)
	}
	// container API off: placement only
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", "10.0.0.5:8778")
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", "off")
	out.Reset()
	if err := runCatalog(nil, &out); err != nil || strings.Contains(out.String(), "container") {
		t.Errorf("container API off: %v\n%s", err, out.String())
	}
}

func TestServeAuth(t *testing.T) {
	log := slog.New(slog.NewTextHandler(discardFile(t), nil))
	cfg := &config.Config{}
	cfg.Placement.AuthStrategy = "noauth2"
	a, err := newServeAuth(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.users.(openstack.NoAuth2); !ok {
		t.Errorf("noauth2: users %T", a.users)
	}
	if a.tokens != nil {
		t.Errorf("noauth2: the Nova proxy validates tokens with %T; want it passing them on", a.tokens)
	}

	cfg.Placement.AuthStrategy = "keystone"
	if _, err := newServeAuth(cfg, log); err == nil || !strings.Contains(err.Error(), "keystone_authtoken.auth_url") {
		t.Errorf("keystone without settings: %v, want the missing keys named", err)
	}
	cfg.KeystoneAuthtoken = config.KeystoneAuthtoken{AuthURL: "http://127.0.0.1:1/v3", Username: "u", Password: "p", ProjectName: "service"}
	cfg.ContainerAPI.AgentToken = "s3cret"
	a, err = newServeAuth(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.users.(*keystone.Authenticator); !ok {
		t.Errorf("keystone: users %T", a.users)
	}
	// the proxy shares the users' validator (one cache), without the
	// agents' token
	if a.tokens != a.users {
		t.Errorf("keystone: the Nova proxy's validator %T is not the users' one", a.tokens)
	}
	r := httptest.NewRequest("GET", "/v1/agents/h1/desired", nil)
	r.Header.Set("X-Auth-Token", "s3cret")
	c, err := a.agents.Authenticate(r)
	if err != nil || !c.HasRole("admin") {
		t.Errorf("agent token: %+v %v, want admin credentials", c, err)
	}
	// the agent token is no user token
	if _, err := a.users.Authenticate(r); err == nil {
		t.Error("the agent token authenticated on the users' APIs")
	}
	// anything else goes to Keystone (unreachable here: 503)
	r.Header.Set("X-Auth-Token", "s3cret-not")
	if _, err := a.agents.Authenticate(r); err == nil {
		t.Error("a wrong agent token authenticated")
	}

	cfg.Placement.AuthStrategy = "keystone2"
	if _, err := newServeAuth(cfg, log); err == nil {
		t.Error("unknown auth_strategy accepted")
	}
}

func discardFile(t *testing.T) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

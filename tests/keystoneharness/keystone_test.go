package keystoneharness

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// One Keystone serves every check: starting one costs ~15 s of a shared
// core (minutes on a loaded machine). Expiring tokens are tested in
// tests/keystone, where the wait is worth it.
func TestKeystone(t *testing.T) {
	const lifetime = 10 * time.Minute
	ks := Start(t, Options{TokenExpiration: lifetime})
	if !strings.HasPrefix(ks.URL, "http://127.0.0.1:") || !strings.HasSuffix(ks.URL, "/v3") {
		t.Fatalf("URL %q", ks.URL)
	}

	p := ks.CreateProject(t, "project-a")
	member := ks.CreateUser(t, "alice", p, "member")
	reader := ks.CreateUser(t, "rita", p, "reader")
	svc := ks.CreateUser(t, "placement", Project{})
	ks.AssignProjectRole(t, svc, Project{ID: mustProjectID(t, ks, ks.AdminProject), Name: ks.AdminProject}, "service")
	ks.AssignSystemRole(t, reader, "reader")

	t.Run("project token", func(t *testing.T) {
		tok := ks.Token(t, member.Name, member.Password, p.Name)
		if tok.ID == "" || tok.ProjectID != p.ID || tok.UserID != member.ID || tok.System {
			t.Fatalf("token %+v, want project %s user %s", tok, p.ID, member.ID)
		}
		if !slices.Contains(tok.Roles, "member") || !slices.Contains(tok.Roles, "reader") {
			t.Errorf("roles %v, want member (and reader, implied)", tok.Roles)
		}
		if d := time.Until(tok.ExpiresAt); d > lifetime+time.Second || d < lifetime-time.Minute {
			t.Errorf("expires in %s, want about %s", d, lifetime)
		}
		if st, v := ks.ValidateToken(t, tok.ID); st != 200 || v.ProjectID != p.ID {
			t.Errorf("validate: %d %+v", st, v)
		}
	})
	t.Run("system token", func(t *testing.T) {
		tok := ks.SystemToken(t, reader.Name, reader.Password)
		if !tok.System || tok.ProjectID != "" || !slices.Contains(tok.Roles, "reader") {
			t.Fatalf("token %+v, want system-scoped with reader", tok)
		}
		adm := ks.SystemToken(t, ks.AdminUser, ks.AdminPassword)
		if !adm.System || !slices.Contains(adm.Roles, "admin") {
			t.Fatalf("admin system token %+v", adm)
		}
	})
	t.Run("service role", func(t *testing.T) {
		tok := ks.Token(t, svc.Name, svc.Password, ks.AdminProject)
		if !slices.Contains(tok.Roles, "service") {
			t.Errorf("roles %v, want service", tok.Roles)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		tok := ks.Token(t, member.Name, member.Password, p.Name)
		ks.RevokeToken(t, tok.ID)
		if st, _ := ks.ValidateToken(t, tok.ID); st != 404 {
			t.Errorf("revoked token validates with %d, want 404", st)
		}
	})
	t.Run("bad password", func(t *testing.T) {
		if _, err := ks.IssueToken(t.Context(), member.Name, "wrong", p.Name); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("wrong password: %v, want a 401", err)
		}
	})
	t.Run("catalog and CLI", func(t *testing.T) {
		ks.RegisterService(t, "placement", "placement", "http://127.0.0.1:1/placement")
		cmd := exec.Command("/usr/bin/openstack", "catalog", "list", "-f", "value", "-c", "Name", "-c", "Type")
		cmd.Env = ks.CLIEnv(member.Name, member.Password, p.Name)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openstack catalog list: %v\n%s", err, out)
		}
		for _, want := range []string{"keystone identity", "placement placement"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("catalog %q lacks %q", out, want)
			}
		}
		cmd = exec.Command("/usr/bin/openstack", "token", "issue", "-f", "value", "-c", "project_id")
		cmd.Env = ks.CLIEnv(member.Name, member.Password, p.Name)
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != p.ID {
			t.Errorf("openstack token issue: %v %q, want project %s", err, out, p.ID)
		}
	})
}

func mustProjectID(t *testing.T, ks *Keystone, name string) string {
	var out struct {
		Projects []Project `json:"projects"`
	}
	ks.Admin(t, "GET", "/projects?name="+name, nil, &out)
	if len(out.Projects) != 1 {
		t.Fatalf("project %s: %+v", name, out.Projects)
	}
	return out.Projects[0].ID
}

func TestTestName(t *testing.T) {
	for _, name := range []string{"TestX", "TestKeystone/sub test", strings.Repeat("a", 80)} {
		s := testName(name)
		if s == "" || len(s) > 30 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Errorf("testName(%q) = %q", name, s)
		}
	}
}

package config

import (
	"strings"
	"testing"
	"time"
)

func TestDashboardDefaultsOff(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Dashboard
	if d.Enabled() || d.AllowRemote || d.Refresh != 5*time.Second || d.Decisions != 20 || d.MaxHosts != 200 {
		t.Errorf("defaults %+v", d)
	}
	t.Setenv("UNISCHED_DASHBOARD_LISTEN", "127.0.0.1:25001")
	t.Setenv("UNISCHED_DASHBOARD_REFRESH", "2s")
	if c, err = Load(""); err != nil {
		t.Fatal(err)
	}
	if !c.Dashboard.Enabled() || c.Dashboard.Listen != "127.0.0.1:25001" || c.Dashboard.Refresh != 2*time.Second {
		t.Errorf("from the environment: %+v", c.Dashboard)
	}
}

func TestDashboardCheck(t *testing.T) {
	cases := []struct {
		listen  string
		remote  bool
		wantErr string
	}{
		{"", false, ""},
		{"off", false, ""},
		{"127.0.0.1:9519", false, ""},
		{"[::1]:9519", false, ""},
		{"localhost:9519", false, ""},
		{"127.0.0.2:9519", false, ""},
		{"0.0.0.0:9519", false, "not a loopback address"},
		{":9519", false, "not a loopback address"},
		{"10.0.0.5:9519", false, "not a loopback address"},
		{"dash.example.org:9519", false, "not a loopback address"},
		{"0.0.0.0:9519", true, ""},
		{"127.0.0.1", false, "missing port"},
	}
	for _, tc := range cases {
		err := Dashboard{Listen: tc.listen, AllowRemote: tc.remote}.Check()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q remote=%v: %v", tc.listen, tc.remote, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q remote=%v: %v, want %q", tc.listen, tc.remote, err, tc.wantErr)
		}
	}
}

package filters

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestAffinity(t *testing.T) {
	f, err := NewAffinity(nil, scheduler.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	member := []scheduler.Workload{{ID: "m1", Group: "g"}}
	tests := []struct {
		name   string
		group  *scheduler.Group
		onHost []scheduler.Workload
		want   want
	}{
		{"no group", nil, member, pass},
		{"affinity, empty group", &scheduler.Group{ID: "g", Policy: scheduler.Affinity, Hosts: []string{}}, nil, pass},
		{"affinity, group here", &scheduler.Group{ID: "g", Policy: scheduler.Affinity, Hosts: []string{"h"}}, member, pass},
		{"affinity, group elsewhere", &scheduler.Group{ID: "g", Policy: scheduler.Affinity, Hosts: []string{"other"}}, nil, notNow(scheduler.ReasonAffinity)},
		{"anti-affinity, none here", &scheduler.Group{ID: "g", Policy: scheduler.AntiAffinity, Hosts: []string{"other"}}, nil, pass},
		{"anti-affinity, one here", &scheduler.Group{ID: "g", Policy: scheduler.AntiAffinity, Hosts: []string{"h"}}, member, notNow(scheduler.ReasonAntiAffinity)},
		{"anti-affinity, caller-known member here", &scheduler.Group{ID: "g", Policy: scheduler.AntiAffinity, Hosts: []string{"h"}}, nil, notNow(scheduler.ReasonAntiAffinity)},
		{"anti-affinity, two per host allowed", &scheduler.Group{ID: "g", Policy: scheduler.AntiAffinity, MaxPerHost: 2}, member, pass},
		{"anti-affinity, two per host reached", &scheduler.Group{ID: "g", Policy: scheduler.AntiAffinity, MaxPerHost: 2},
			[]scheduler.Workload{{ID: "m1", Group: "g"}, {ID: "m2", Group: "g"}}, notNow(scheduler.ReasonAntiAffinity)},
		{"another group's member", &scheduler.Group{ID: "g", Policy: scheduler.AntiAffinity}, []scheduler.Workload{{ID: "x", Group: "other"}}, pass},
		{"soft policies are not filtered", &scheduler.Group{ID: "g", Policy: scheduler.SoftAntiAffinity, Hosts: []string{"h"}}, member, pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := twoCellHost()
			h.Workloads = tt.onHost
			req := sharedReq()
			req.Group = tt.group
			if v := check(t, f, req, h); !tt.want.matches(v) {
				t.Errorf("verdict %v %q, want %+v", v.Code, v.Reason, tt.want)
			}
		})
	}
}

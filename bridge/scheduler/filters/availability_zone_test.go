package filters

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestAvailabilityZone(t *testing.T) {
	tests := []struct {
		name     string
		args     scheduler.Args
		hostZone string
		reqZone  string
		want     want
	}{
		{"any zone", nil, "az1", "", pass},
		{"same zone", nil, "az1", "az1", pass},
		{"other zone", nil, "az2", "az1", never(scheduler.ReasonAvailabilityZone)},
		{"zoneless host is in nova", nil, "", "nova", pass},
		{"zoneless host is not in az1", nil, "", "az1", never(scheduler.ReasonAvailabilityZone)},
		{"configured default zone", scheduler.Args{"default_zone": "az1"}, "", "az1", pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewAvailabilityZone(tt.args, scheduler.DefaultThresholds())
			if err != nil {
				t.Fatal(err)
			}
			h := twoCellHost()
			h.AvailabilityZone = tt.hostZone
			req := sharedReq()
			req.AvailabilityZone = tt.reqZone
			if v := check(t, f, req, h); !tt.want.matches(v) {
				t.Errorf("verdict %v %q, want %+v", v.Code, v.Reason, tt.want)
			}
		})
	}
	if _, err := NewAvailabilityZone(scheduler.Args{"default_zone": 3}, scheduler.DefaultThresholds()); err == nil {
		t.Errorf("a numeric default_zone was accepted")
	}
}

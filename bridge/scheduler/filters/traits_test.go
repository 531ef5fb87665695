package filters

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestTraits(t *testing.T) {
	tests := []struct {
		name                string
		args                scheduler.Args
		host                []string
		required, forbidden []string
		want                want
	}{
		{"nothing asked", nil, []string{"HW_CPU_X86_AVX2"}, nil, nil, pass},
		{"required present", nil, []string{"HW_CPU_X86_AVX2", "CUSTOM_GOLD"}, []string{"CUSTOM_GOLD", "HW_CPU_X86_AVX2"}, nil, pass},
		{"required missing", nil, []string{"HW_CPU_X86_AVX2"}, []string{"CUSTOM_GOLD"}, nil, never(scheduler.ReasonMissingTrait)},
		{"forbidden present", nil, []string{"CUSTOM_GPU"}, nil, []string{"CUSTOM_GPU"}, never(scheduler.ReasonForbiddenTrait)},
		{"forbidden absent", nil, []string{"CUSTOM_GOLD"}, nil, []string{"CUSTOM_GPU"}, pass},
		{"disabled compute", nil, []string{"COMPUTE_STATUS_DISABLED"}, nil, nil, notNow(scheduler.ReasonForbiddenTrait)},
		{"always_forbidden off", scheduler.Args{"always_forbidden": []any{}}, []string{"COMPUTE_STATUS_DISABLED"}, nil, nil, pass},
		{"always_forbidden custom", scheduler.Args{"always_forbidden": []any{"CUSTOM_MAINT"}}, []string{"CUSTOM_MAINT"}, nil, nil, notNow(scheduler.ReasonForbiddenTrait)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewTraits(tt.args, scheduler.DefaultThresholds())
			if err != nil {
				t.Fatal(err)
			}
			h := twoCellHost()
			h.Traits = tt.host
			req := sharedReq()
			req.RequiredTraits, req.ForbiddenTraits = tt.required, tt.forbidden
			if v := check(t, f, req, h); !tt.want.matches(v) {
				t.Errorf("verdict %v %q, want %+v", v.Code, v.Reason, tt.want)
			}
		})
	}
	if _, err := NewTraits(scheduler.Args{"always_forbidden": "X"}, scheduler.DefaultThresholds()); err == nil {
		t.Errorf("a string always_forbidden was accepted")
	}
}

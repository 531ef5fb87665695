package filters

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestAggregates(t *testing.T) {
	f, err := NewAggregates(nil, scheduler.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		host      []string
		memberOf  [][]string
		forbidden []string
		want      want
	}{
		{"no constraint", nil, nil, nil, pass},
		{"in one of", []string{"a2"}, [][]string{{"a1", "a2"}}, nil, pass},
		{"in none of", []string{"a3"}, [][]string{{"a1", "a2"}}, nil, never(scheduler.ReasonNotInAggregate)},
		{"every entry", []string{"a1", "b1"}, [][]string{{"a1"}, {"b1", "b2"}}, nil, pass},
		{"misses the second entry", []string{"a1"}, [][]string{{"a1"}, {"b1"}}, nil, never(scheduler.ReasonNotInAggregate)},
		{"forbidden", []string{"a1", "x"}, [][]string{{"a1"}}, []string{"x"}, never(scheduler.ReasonForbiddenAggregate)},
		{"forbidden elsewhere", []string{"a1"}, nil, []string{"x"}, pass},
		{"hostless of aggregates", nil, [][]string{{"a1"}}, nil, never(scheduler.ReasonNotInAggregate)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := twoCellHost()
			h.Aggregates = tt.host
			req := sharedReq()
			req.MemberOf, req.ForbiddenAggregates = tt.memberOf, tt.forbidden
			if v := check(t, f, req, h); !tt.want.matches(v) {
				t.Errorf("verdict %v %q, want %+v", v.Code, v.Reason, tt.want)
			}
		})
	}
}

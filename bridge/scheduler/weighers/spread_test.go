package weighers

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestSpreadAndPack(t *testing.T) {
	spread, _ := NewSpread(nil, scheduler.DefaultThresholds())
	pack, _ := NewPack(nil, scheduler.DefaultThresholds())
	tests := []struct {
		name             string
		hosts            []scheduler.HostState
		spread, packBest int
	}{
		{"cpu and memory agree", []scheduler.HostState{loaded("a", 5, 500), loaded("b", 1, 100), loaded("c", 8, 800)}, 1, 2},
		{"mean over classes: a full CPU outweighs", []scheduler.HostState{loaded("a", 9, 0), loaded("b", 4, 400)}, 1, 0},
		{"empty hosts tie", []scheduler.HostState{loaded("a", 0, 0), loaded("b", 0, 0)}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := best(weigh(t, spread, req(), tt.hosts)); got != tt.spread {
				t.Errorf("spread picks %d, want %d", got, tt.spread)
			}
			if got := best(weigh(t, pack, req(), tt.hosts)); got != tt.packBest {
				t.Errorf("pack picks %d, want %d", got, tt.packBest)
			}
		})
	}
}

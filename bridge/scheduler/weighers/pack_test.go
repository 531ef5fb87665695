package weighers

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestPackScore(t *testing.T) {
	pack, _ := NewPack(nil, scheduler.DefaultThresholds())
	// a: (5+1)/10 and (500+100)/1000 -> 0.6; b: 0.2 and 0.2 -> 0.2.
	s := weigh(t, pack, req(), []scheduler.HostState{loaded("a", 5, 500), loaded("b", 1, 100)})
	if s[0] != 0.6 || s[1] != 0.2 {
		t.Errorf("pack scores %v, want [0.6 0.2]", s)
	}
}

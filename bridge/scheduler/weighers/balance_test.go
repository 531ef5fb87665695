package weighers

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestBalance(t *testing.T) {
	th := func(v float64) scheduler.Thresholds {
		t := scheduler.DefaultThresholds()
		t.PackUntil = v
		return t
	}
	// Utilisation with the request (1 VCPU, 100 MB) placed: a 0.2, b 0.4,
	// c 0.6, d 0.9.
	hosts := []scheduler.HostState{loaded("a", 1, 100), loaded("b", 3, 300), loaded("c", 5, 500), loaded("d", 8, 800)}
	tests := []struct {
		name  string
		th    float64
		hosts []scheduler.HostState
		want  string
	}{
		{"packs up to the threshold", 0.5, hosts, "b"},
		{"past it, spreads", 0.5, hosts[2:], "c"},
		{"threshold 1 is pure pack", 1, hosts, "d"},
		{"threshold 0 is pure spread", 0, hosts, "a"},
		{"higher threshold packs further", 0.6, hosts, "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewBalance(nil, th(tt.th))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.hosts[best(weigh(t, w, req(), tt.hosts))].Name; got != tt.want {
				t.Errorf("balance picks %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := NewBalance(nil, th(-0.1)); err == nil {
		t.Errorf("negative threshold accepted")
	}
}

package scheduler

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	a := Args{"f": 0.25, "i": 3, "nan": math.NaN(), "s": "x", "l": []any{"a", "b"}, "bad": []any{"a", 1}}
	for _, tt := range []struct {
		key  string
		want float64
		err  string
	}{
		{"f", 0.25, ""}, {"i", 3, ""}, {"absent", 7, ""}, {"s", 0, "is not a number"}, {"nan", 0, "not a finite number"},
	} {
		got, err := a.Float(tt.key, 7)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Float(%s) error %v, want %q", tt.key, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Float(%s) = %v, %v; want %v", tt.key, got, err, tt.want)
		}
	}
	if l, err := a.Strings("l", nil); err != nil || !slices.Equal(l, []string{"a", "b"}) {
		t.Errorf("Strings(l) = %v, %v", l, err)
	}
	if _, err := a.Strings("bad", nil); err == nil || !strings.Contains(err.Error(), "element 1") {
		t.Errorf("Strings(bad) error %v", err)
	}
	if _, err := a.Strings("s", nil); err == nil {
		t.Errorf("Strings(s) accepted a string")
	}
	if err := a.Only("f", "i"); err == nil || !strings.Contains(err.Error(), "bad, l, nan, s") {
		t.Errorf("Only: %v", err)
	}
	if err := (Args(nil)).Only(); err != nil {
		t.Errorf("nil args: %v", err)
	}
}

func TestThresholdsValidate(t *testing.T) {
	for _, th := range []Thresholds{{0, 0, 0}, {1, 1, 1}, DefaultThresholds()} {
		if err := th.Validate(); err != nil {
			t.Errorf("%+v: %v", th, err)
		}
	}
	for _, th := range []Thresholds{{-0.1, 0.5, 0.5}, {0.5, 1.01, 0.5}, {0.5, 0.5, math.NaN()}} {
		if err := th.Validate(); err == nil {
			t.Errorf("%+v accepted", th)
		}
	}
}

func TestRegistryRejects(t *testing.T) {
	r := NewRegistry()
	mk := func(Args, Thresholds) (Filter, error) { return nil, nil }
	if err := r.RegisterFilter("x", mk); err != nil {
		t.Fatal(err)
	}
	if r.RegisterFilter("x", mk) == nil || r.RegisterFilter("", mk) == nil || r.RegisterFilter("y", nil) == nil {
		t.Errorf("duplicate, empty or nil filter accepted")
	}
	if r.RegisterWeigher("", nil) == nil {
		t.Errorf("empty weigher accepted")
	}
	if _, err := r.Build(Config{Filters: []PluginConfig{{Name: "x"}}}); err == nil || !strings.Contains(err.Error(), "constructor returned nil") {
		t.Errorf("nil filter from a constructor: %v", err)
	}
}

func TestSnapshotReplaceAdds(t *testing.T) {
	s, err := NewSnapshot([]HostState{smtHost(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	n := smtHost(t, nil)
	n.Name, n.Aggregates = "new", []string{"agg"}
	s2, err := s.Replace(n)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 || s2.Len() != 2 || s2.Hosts()[1].Name != "new" || !s2.Host("new").InAggregate("agg") || s2.Host("new").InAggregate("x") {
		t.Errorf("Replace did not append: %d then %d hosts", s.Len(), s2.Len())
	}
	bad := n
	bad.Name = ""
	if _, err := s.Replace(bad); err == nil {
		t.Errorf("Replace accepted a nameless host")
	}
}

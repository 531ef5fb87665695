package load

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of even takes lower", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 20 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 99, 20 * time.Millisecond},
		{"p90 of 20", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 90, 18 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.samples, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.samples, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	lat := []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	s := summarize(lat, 1, 2*time.Second)
	if s.Requests != 3 || s.Failures != 1 || s.MinMS != 10 || s.MaxMS != 30 || s.MedianMS != 20 || s.ReqPerSec != 1.5 {
		t.Errorf("summarize = %+v", s)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestFleetProviders(t *testing.T) {
	f := Fleet{}
	tests := []struct {
		i          int
		name       string
		traits     []string
		aggregates int
	}{
		{0, "load-cn-000000", []string{traitSSE42, TraitAVX2, TraitRackA}, 1},
		{1, "load-cn-000001", []string{traitSSE42}, 0},
		{2, "load-cn-000002", []string{traitSSE42, TraitAVX2}, 0},
		{99990, "load-cn-099990", []string{traitSSE42, TraitAVX2, TraitRackA}, 1},
	}
	for _, tt := range tests {
		p := f.Provider(tt.i)
		if p.Name != tt.name || strings.Join(p.Traits, ",") != strings.Join(tt.traits, ",") || len(p.Aggregates) != tt.aggregates {
			t.Errorf("Provider(%d) = %+v", tt.i, p)
		}
		if !uuidRE.MatchString(p.UUID) {
			t.Errorf("Provider(%d).UUID %q is not a version-5 UUID", tt.i, p.UUID)
		}
		if p.UUID != f.Provider(tt.i).UUID {
			t.Errorf("Provider(%d).UUID is not stable", tt.i)
		}
	}
	if f.Provider(0).UUID == f.Provider(1).UUID || f.Provider(0).Aggregates[0] != f.RackAggregate() {
		t.Error("providers must have distinct UUIDs and rack A providers the rack aggregate")
	}
	if (Fleet{Prefix: "x-"}).Provider(0).UUID == f.Provider(0).UUID {
		t.Error("the prefix must change the UUIDs")
	}
}

func TestDiffCandidates(t *testing.T) {
	const (
		rp1 = "11111111-1111-1111-1111-111111111111"
		rp2 = "22222222-2222-2222-2222-222222222222"
	)
	body := func(reqs, sums string) []byte {
		return []byte(`{"allocation_requests": [` + reqs + `], "provider_summaries": {` + sums + `}}`)
	}
	req1 := `{"allocations": {"` + rp1 + `": {"resources": {"VCPU": 1, "MEMORY_MB": 512}}}, "mappings": {"": ["` + rp1 + `"]}}`
	req1Reordered := `{"mappings": {"": ["` + rp1 + `"]}, "allocations": {"` + rp1 + `": {"resources": {"MEMORY_MB": 512, "VCPU": 1}}}}`
	req2 := `{"allocations": {"` + rp2 + `": {"resources": {"VCPU": 1, "MEMORY_MB": 512}}}, "mappings": {"": ["` + rp2 + `"]}}`
	sum1 := `"` + rp1 + `": {"resources": {"VCPU": {"capacity": 8, "used": 0}}, "traits": ["A", "B"]}`
	sum1Reordered := `"` + rp1 + `": {"traits": ["B", "A"], "resources": {"VCPU": {"used": 0, "capacity": 8}}}`
	sum1Used := `"` + rp1 + `": {"resources": {"VCPU": {"capacity": 8, "used": 1}}, "traits": ["A", "B"]}`
	names := map[string]string{rp1: "cn1", rp2: "cn2"}
	tests := []struct {
		name  string
		a, b  []byte
		wants []string // substrings of the joined diff; none means equal
	}{
		{"equal modulo order", body(req1+","+req2, sum1), body(req2+","+req1Reordered, sum1Reordered), nil},
		{"missing request", body(req1+","+req2, sum1), body(req1, sum1), []string{"upstream has 2, unisched has 1", "only in upstream", `"cn2"`}},
		{"duplicate request counts", body(req1+","+req1, sum1), body(req1, sum1), []string{"only in upstream"}},
		{"summary differs", body(req1, sum1), body(req1, sum1Used), []string{"provider_summaries[cn1]", `"used":1`}},
		{"summary missing", body(req1, sum1), body(req1, ""), []string{"provider_summaries[cn1] only in upstream"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseCandidates(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseCandidates(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			diff := strings.Join(DiffCandidates("upstream", a, "unisched", b, names), "\n")
			if len(tt.wants) == 0 && diff != "" {
				t.Fatalf("want no difference, got:\n%s", diff)
			}
			if len(tt.wants) > 0 && diff == "" {
				t.Fatal("want a difference, got none")
			}
			for _, w := range tt.wants {
				if !strings.Contains(diff, w) {
					t.Errorf("diff lacks %q:\n%s", w, diff)
				}
			}
		})
	}
	if _, err := ParseCandidates([]byte("{")); err == nil {
		t.Error("ParseCandidates accepted broken JSON")
	}
}

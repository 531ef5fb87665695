package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unisched/unisched/tests/load"
)

// fakeResult builds one size's reports with the given limit1000 medians
// and spread-claim rates; zero leaves that server out.
func fakeResult(size int, upMS, unMS, upClaims, unClaims float64) result {
	r := result{Size: size, Reports: map[string]load.Report{}}
	add := func(who string, ms, claims float64) {
		if ms == 0 {
			return
		}
		rep := load.Report{Server: who, Providers: size,
			Queries: []load.QueryResult{
				{Query: load.Query{Name: "limit1000"}, Stats: load.Stats{Requests: 20, MedianMS: ms, P99MS: ms * 2}},
				{Query: load.Query{Name: "limit1"}, Stats: load.Stats{Requests: 20, MedianMS: ms / 10}},
			},
			Claims: []load.ClaimResult{{Phase: "spread", Stats: load.Stats{Requests: 500, ReqPerSec: claims}}},
			Verify: &load.Verification{Providers: 500},
			Memory: map[string]int{"VmRSS": 300 << 10, "VmHWM": 400 << 10},
		}
		r.Reports[who] = rep
	}
	add("upstream", upMS, upClaims)
	add("unisched", unMS, unClaims)
	return r
}

func goalVerdicts(s summary) map[string]string {
	out := map[string]string{}
	for _, g := range goals(s) {
		out[g.goal] = g.verdict
	}
	return out
}

func TestGoals(t *testing.T) {
	const (
		speed   = "candidates (limit=1000) ≥ 50× faster than upstream at 5000 providers"
		big     = "candidates (limit=1000) median < 50 ms at 100,000 providers"
		claims  = "claims ≥ 20× upstream's throughput (8 clients)"
		memory  = "resident memory at 100,000 providers < 2 GiB"
		limit1  = "limit=1 cost does not grow with the fleet"
		met     = "met"
		notMet  = "**not met**"
		missing = "—"
	)
	tests := []struct {
		name    string
		results []result
		want    map[string]string
	}{
		{"all met", []result{fakeResult(5000, 1000, 10, 50, 1100), fakeResult(100000, 0, 20, 0, 1000)},
			map[string]string{speed: met, big: met, claims: met, memory: met, limit1: met}},
		{"too slow", []result{fakeResult(5000, 1000, 40, 50, 900), fakeResult(100000, 0, 60, 0, 1000)},
			map[string]string{speed: notMet, big: notMet, claims: notMet, limit1: met}},
		{"nothing at 100k", []result{fakeResult(5000, 1000, 10, 50, 1100)},
			map[string]string{speed: met, big: missing, memory: missing, limit1: missing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := goalVerdicts(summary{Results: tt.results})
			for goal, want := range tt.want {
				if got[goal] != want {
					t.Errorf("%s: verdict %q, want %q", goal, got[goal], want)
				}
			}
		})
	}
}

func TestRenderMarkdown(t *testing.T) {
	s := summary{
		Machine: machine{CPUs: 2, CPUModel: "Test CPU", Placement: "8.0.0-2"},
		Config:  config{Reps: 20, Sizes: []int{5000}, UnischedSizes: []int{100000}, Workers: 4},
		Results: []result{fakeResult(5000, 1000, 10, 50, 1100), fakeResult(100000, 0, 20, 0, 1000)},
	}
	s.Results[0].Compared = []comparison{{Query: "resources=VCPU:2", Candidates: 5000, Diff: []string{"a | b"}}}
	md := renderMarkdown(s)
	for _, want := range []string{
		"| CPU | 2 × Test CPU |",
		"| `resources=VCPU:2,MEMORY_MB:4096&limit=1000` | 5000 | 1000.0 | 2000.0 | 10.0 | 20.0 | 100.0× |",
		"| `resources=VCPU:2,MEMORY_MB:4096&limit=1000` | 100000 | — | — | 20.0 | 40.0 | — |",
		"| claims (spread), requests/s, c=0 | 5000 | 50.0 | 1100.0 | 22.0× |",
		"**DIFFERENT** (1 lines, first: a \\| b)",
		"| 100000 | 300 | 400 | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestWriteReportKeepsWhatFollowsTheMarker(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, before, want string
	}{
		{"no file", "", "# new\n\n" + keptMarker + "\n"},
		{"no marker: all replaced", "# old\nhand edits\n", "# new\n\n" + keptMarker + "\n"},
		{"marker: tail kept", "# old\n\n" + keptMarker + "\n\n## Containers\nkept text\n", "# new\n\n" + keptMarker + "\n\n## Containers\nkept text\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".md")
			if tc.before != "" {
				if err := os.WriteFile(out, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := writeReport(out, "# new\n"); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

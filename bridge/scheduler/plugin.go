package scheduler

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Filter decides whether one host may take a request. Filters keep no
// state between calls and never change the host or the request, so the
// engine may call one filter on many hosts at once.
type Filter interface {
	Name() string
	Filter(ctx context.Context, req *Request, h *HostState) Verdict
}

// Weigher scores a host that passed every filter. Only the order of its
// raw scores matters: the engine maps them to 0..1 over the candidates
// (max -> 1), multiplies by the weigher's configured weight and sums.
type Weigher interface {
	Name() string
	Weigh(ctx context.Context, req *Request, h *HostState) float64
}

// Thresholds are the three thresholds of the patent's claims 4-5 (each 50%
// there). Their text was not retrievable, so the meaning is ours, chosen
// around the one notion claim 2 introduces, the CPU utilisation mode:
//
//  1. DedicatedUsage (T1): a host whose dedicated pool is more than T1
//     pinned is avoided for shared requests. A shared workload there
//     floats over a pool that shrinks with every pin (the agent re-pins
//     it) and shares caches and memory bandwidth with latency-sensitive
//     pinned workloads. Avoided hosts are used only when no other host
//     passes every filter.
//  2. SharedLoad (T2): a host whose shared pool is more than T2 loaded
//     (VCPU usage over capacity) is avoided for dedicated requests, so
//     pins do not take CPUs from under busy floating workloads. T1 and T2
//     together let hosts lean towards one mode without a hard partition.
//  3. PackUntil (T3): hosts are packed while their utilisation (mean over
//     the requested classes, the request included) stays at or below T3;
//     past T3 the least loaded host is preferred (spread). The balance
//     weigher implements it.
//
// Each is a ratio in [0, 1]; 1 turns T1 and T2 off, 0 makes T3 pure spread
// and 1 pure pack.
type Thresholds struct {
	DedicatedUsage float64 `mapstructure:"dedicated_usage"`
	SharedLoad     float64 `mapstructure:"shared_load"`
	PackUntil      float64 `mapstructure:"pack_until"`
}

// DefaultThresholds are the claimed 50% each.
func DefaultThresholds() Thresholds {
	return Thresholds{DedicatedUsage: 0.5, SharedLoad: 0.5, PackUntil: 0.5}
}

// Validate checks each threshold is a ratio.
func (t Thresholds) Validate() error {
	for _, v := range []struct {
		name string
		v    float64
	}{{"dedicated_usage", t.DedicatedUsage}, {"shared_load", t.SharedLoad}, {"pack_until", t.PackUntil}} {
		if !(v.v >= 0 && v.v <= 1) {
			return fmt.Errorf("threshold %s = %v is not in [0, 1]", v.name, v.v)
		}
	}
	return nil
}

// Args are a plugin's settings from the configuration file. Constructors
// read them with the typed getters and call Only to refuse unknown keys,
// so that a typo fails at start instead of being ignored.
type Args map[string]any

// Only fails when a key is not one of known.
func (a Args) Only(known ...string) error {
	var bad []string
	for k := range a {
		if !slices.Contains(known, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("unknown argument(s) %s (known: %s)", strings.Join(bad, ", "), strings.Join(known, ", "))
	}
	return nil
}

// Float reads a number, def when absent.
func (a Args) Float(key string, def float64) (float64, error) {
	v, ok := a[key]
	if !ok {
		return def, nil
	}
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case float32:
		f = float64(n)
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	default:
		return 0, fmt.Errorf("argument %s: %v is not a number", key, v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("argument %s: %v is not a finite number", key, v)
	}
	return f, nil
}

// Strings reads a list of strings, def when absent.
func (a Args) Strings(key string, def []string) ([]string, error) {
	v, ok := a[key]
	if !ok {
		return def, nil
	}
	switch l := v.(type) {
	case []string:
		return l, nil
	case []any:
		out := make([]string, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("argument %s: element %d (%v) is not a string", key, i, e)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("argument %s: %v is not a list of strings", key, v)
}

// Package scheduler decides where a VM or a container goes: pure code over
// a read-only Snapshot of hosts, with no SQL and no HTTP, so that every rule
// can be tested on a table of hosts and a decision can be replayed.
//
// The coordinator builds one typed Request per workload and calls
// Engine.Schedule. Filters (package filters) say per host Pass, Avoid,
// NoFitNow or NeverFits with a Reason constant; the engine counts them per
// filter for the NoValidHost message and the dashboard's "why". Weighers
// (package weighers) give raw scores that the engine normalizes to 0..1
// over the candidates, multiplies by their weight and sums. The winner
// comes with its Placement: the NUMA cells and the pinned pCPUs of a
// dedicated request, chosen to keep hyperthread siblings together, or the
// shared cpuset of a shared one. The decision is optimistic: the claim in
// Postgres arbitrates, and a lost race re-plans or takes an alternate.
//
// A Registry maps plugin names to constructors that validate their
// arguments; the configuration (Config, etc/scheduler.sample.yaml) picks
// the plugins, their order and weights, and the three thresholds, whose
// meaning is documented on Thresholds.
package scheduler

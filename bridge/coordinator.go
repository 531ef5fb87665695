// Package bridge is the coordinator (ARCHITECTURE.md sections 1, 4-6): it
// turns an instruction to run a VM or a container into a scheduling
// decision, a claim in Placement and an assignment in the ledger, written
// with their outbox event in one transaction, and it takes back what the
// managers report. The container API (zunext), the Nova side (novaext) and
// the native /v1/workloads API call it; it calls the scheduler, the ledger,
// the outbox and Placement's store, never an API package.
//
// This file is the contract the API packages build on; see the method
// docs for the promises each call keeps.
package bridge

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
)

// Errors the API layers map to their own error bodies. Wrapped errors
// carry the detail; match with errors.Is.
var (
	// ErrNotFound: no such workload (or host).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request cannot be scheduled as given (bad amounts,
	// unknown policy, ...): a 400.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the action does not fit the workload's state (start a
	// running container, delete one still creating without force): a 409.
	ErrConflict = errors.New("conflict")
	// ErrNoValidHost: no host can take it; the workload is left in state
	// error with the scheduler's reason, holding nothing.
	ErrNoValidHost = scheduler.ErrNoValidHost
)

// CreateRequest is one workload to create. Resources follow Placement:
// a dedicated request asks PCPU, a shared one VCPU.
type CreateRequest struct {
	// ID is the workload id (Zun's container uuid, Nova's instance uuid);
	// empty: the coordinator makes one.
	ID        string
	Kind      scheduler.Kind
	Name      string
	ProjectID string
	UserID    string
	// RequestID is the global request id (X-OpenStack-Request-ID).
	RequestID string
	CPUPolicy scheduler.CPUPolicy
	// CPU is the requested CPU count; may be fractional for a shared
	// container (Placement is asked ceil(CPU), Docker gets NanoCPUs).
	CPU      float64
	MemoryMB int64
	DiskGB   int64
	NUMA     scheduler.NUMANeeds

	RequiredTraits   []string
	ForbiddenTraits  []string
	MemberOf         [][]string
	AvailabilityZone string
	Group            *scheduler.Group
	// Host, when set, is the only host considered (Zun's requested
	// destination, admin only: the API checks the policy).
	Host string

	// Container is the container to run (kind container): image, command,
	// ... The coordinator fills WorkloadID, CPU, MemoryMB and the cpusets.
	Container *agentproto.Container
	// Spec is kept with the workload as the API received it, so the API
	// can render its own view later (Zun fields the ledger does not model).
	Spec json.RawMessage
}

// Workload is a ledger workload with what the container side observed.
type Workload struct {
	ledger.Workload
	// Assignment is where on the host it is (cells, pinned pCPUs).
	Assignment ledger.Assignment
	// Container is the container's desired state (kind container).
	Container *agentproto.Container
	// Runtime is the last status the agent reported ("" before any):
	// agentproto.Status*.
	Runtime Runtime
}

// Runtime is a container's observed state.
type Runtime struct {
	Status      string
	Reason      string
	ContainerID string
	ExitCode    *int
}

// ListFilter selects workloads; zero fields match all.
type ListFilter struct {
	ProjectID string
	Kind      scheduler.Kind
	Host      string
	Name      string
	// Limit and Marker page the list in (created_at, id) order.
	Limit  int
	Marker string
}

// Service is the coordinator. Its methods are safe for concurrent use.
type Service interface {
	// Create schedules and claims in one call: it records the workload,
	// runs the scheduler on a fresh snapshot, writes the Placement
	// allocation (consumer = workload id, consumer type CONTAINER or
	// INSTANCE), the ledger assignment and the outbox event (container
	// create) in one transaction. A lost race (provider generation, pCPU
	// already pinned) re-plans. When no host fits, the workload is kept
	// in state error with the reason and ErrNoValidHost is returned with
	// it: nothing stays allocated.
	Create(ctx context.Context, req CreateRequest) (Workload, error)
	// Get loads one workload.
	Get(ctx context.Context, id string) (Workload, error)
	// List returns workloads, oldest first.
	List(ctx context.Context, f ListFilter) ([]Workload, error)
	// Action records the desired change (start, stop, ...) and its event.
	Action(ctx context.Context, id, action string, args ActionArgs) (Workload, error)
	// Resize changes CPU and memory: a new claim for the new amounts
	// (same host only), the assignment updated, an update event.
	Resize(ctx context.Context, id string, cpu *float64, memoryMB *int64) (Workload, error)
	// Rename changes the name (and tells the agent).
	Rename(ctx context.Context, id, name string) (Workload, error)
	// Delete marks the workload deleting and asks its agent to remove it;
	// the claim is released when the agent reports it gone (or at once
	// when it never reached a host).
	Delete(ctx context.Context, id string, stop, force bool) error

	// RegisterHost records (or refreshes) an agent's host: finds its
	// provider by name or creates it with inventory, never touching
	// inventory of a provider the agent did not create.
	RegisterHost(ctx context.Context, reg agentproto.Registration) (agentproto.RegistrationResult, error)
	// Report takes a container's observed state from its agent. A create
	// that failed (missing image, ...) releases the claim.
	Report(ctx context.Context, host string, r agentproto.Report) error
	// Desired is what should run on the host.
	Desired(ctx context.Context, host string) (agentproto.Desired, error)
	// AgentURL is the URL the host's agent registered (for the
	// synchronous calls: logs, execute, stats, top).
	AgentURL(ctx context.Context, host string) (string, error)
	// ListHosts returns every registered host in name order, with its
	// provider's inventory and usage, for the container API's hosts and
	// services views (Zun's /v1/hosts and /v1/services).
	ListHosts(ctx context.Context) ([]HostInfo, error)
}

// HostInfo is a registered host as the container API shows it.
type HostInfo struct {
	ledger.Host
	AgentURL string
	// Resources are the host's Placement inventory and usage by resource
	// class (VCPU, PCPU, MEMORY_MB, DISK_GB); classes without inventory
	// are absent.
	Resources map[string]HostResource
	// Workloads counts the workloads holding resources on the host.
	Workloads int
	// Running counts the container workloads last reported running.
	Running int
	// OS, KernelVersion and Architecture are what the agent reported of
	// its machine ("" when unknown).
	OS            string
	KernelVersion string
	Architecture  string
}

// HostResource is one resource class of a host's provider.
type HostResource struct {
	Total           int64
	Reserved        int64
	AllocationRatio float64
	// Used is the sum of the provider's allocations of the class.
	Used int64
}

// ActionArgs are an action's parameters.
type ActionArgs struct {
	Signal  string
	Timeout int
}

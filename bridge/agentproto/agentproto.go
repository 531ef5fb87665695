// Package agentproto is the wire contract between `unisched serve` and the
// per-host `unisched agent`: the events the relay delivers to an agent, the
// reports an agent sends back, and the synchronous calls (logs, execute,
// stats, top) the container API forwards to the agent that runs the
// container. Both sides import it, so it holds plain data and constants
// only; neither side's logic lives here.
//
// Directions and routes:
//
//	serve (relay)  -> agent  POST {agent_url}/v1/events                     Event (at least once; dedupe by ID)
//	serve (zunext) -> agent  GET  {agent_url}/v1/containers/{id}/logs       ?stdout&stderr&timestamps&tail&since -> text/plain
//	                         POST {agent_url}/v1/containers/{id}/execute    ExecRequest -> ExecResult
//	                         GET  {agent_url}/v1/containers/{id}/stats      -> Stats
//	                         GET  {agent_url}/v1/containers/{id}/top        ?ps_args -> Top
//	agent -> serve           PUT  {container_api}/v1/agents/{host}          Registration -> RegistrationResult
//	                         POST {container_api}/v1/agents/{host}/reports  Report (one container's observed state)
//	                         GET  {container_api}/v1/agents/{host}/desired  -> Desired (what should run there)
//
// Errors on every route use the OpenStack body {"errors":[{...}]}; an
// agent answers 404 for a container it does not run.
package agentproto

import "time"

// Event types. The relay sends every event of one workload in commit order.
const (
	// EventCreate: create the container (and start it when Run is true).
	EventCreate = "container.create"
	// EventAction: run Action on the container.
	EventAction = "container.action"
	// EventUpdate: apply new limits (cpu, memory, cpusets) to the container.
	EventUpdate = "container.update"
	// EventDelete: remove the container (Stop first when asked; Force kills).
	EventDelete = "container.delete"
	// EventRename: the container's name changed.
	EventRename = "container.rename"
	// EventHostCPUs: the host's free shared CPUs changed (a dedicated
	// workload took or released pCPUs of the shared pool): every shared
	// container of the host moves to SharedCPUs.
	EventHostCPUs = "host.cpus"
)

// Actions of EventAction, as Zun names them.
const (
	ActionStart   = "start"
	ActionStop    = "stop"
	ActionReboot  = "reboot"
	ActionPause   = "pause"
	ActionUnpause = "unpause"
	ActionKill    = "kill"
)

// Event is what the relay posts to an agent. ID is the outbox id: an agent
// that sees an ID again answers 2xx without acting twice. A 2xx answer
// marks the event delivered; anything else is retried with backoff. The
// agent answers 202 once it holds the event durably (its journal), before
// applying it: the outcome comes back as a Report, not as the answer.
type Event struct {
	ID   int64  `json:"id"`
	Type string `json:"type"`
	Host string `json:"host"`
	// Container is set for container.* events: the whole desired state,
	// so an event applied late or twice converges to the same place.
	Container *Container `json:"container,omitempty"`
	// Action and its arguments for EventAction.
	Action  string `json:"action,omitempty"`
	Signal  string `json:"signal,omitempty"`  // kill
	Timeout int    `json:"timeout,omitempty"` // stop, reboot: seconds before SIGKILL
	// Stop and Force for EventDelete.
	Stop  bool `json:"stop,omitempty"`
	Force bool `json:"force,omitempty"`
	// SharedCPUs for EventHostCPUs, in Linux list form ("0-3,8").
	SharedCPUs string    `json:"shared_cpus,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// RestartPolicy is Docker's (and Zun's) restart policy.
type RestartPolicy struct {
	Name              string `json:"Name"` // "", no, always, on-failure, unless-stopped
	MaximumRetryCount int    `json:"MaximumRetryCount,omitempty"`
}

// Container is a container as the ledger wants it on its host.
type Container struct {
	// WorkloadID is the ledger's workload id (= Zun's container uuid and
	// Placement's consumer); the Docker container carries it as the label
	// LabelWorkload and is named "unisched-<WorkloadID>".
	WorkloadID    string            `json:"workload_id"`
	Name          string            `json:"name"`
	ProjectID     string            `json:"project_id"`
	Image         string            `json:"image"`
	Command       []string          `json:"command,omitempty"`
	Entrypoint    []string          `json:"entrypoint,omitempty"`
	Env           map[string]string `json:"environment,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Workdir       string            `json:"workdir,omitempty"`
	Hostname      string            `json:"hostname,omitempty"`
	Tty           bool              `json:"tty,omitempty"`
	Interactive   bool              `json:"interactive,omitempty"`
	Privileged    bool              `json:"privileged,omitempty"`
	AutoRemove    bool              `json:"auto_remove,omitempty"`
	RestartPolicy RestartPolicy     `json:"restart_policy"`
	// CPUPolicy is "dedicated" or "shared".
	CPUPolicy string `json:"cpu_policy"`
	// CPU is the requested CPU count (may be fractional for shared: it
	// becomes NanoCPUs); MemoryMB becomes Docker's Memory limit.
	CPU      float64 `json:"cpu"`
	MemoryMB int64   `json:"memory_mb"`
	DiskGB   int64   `json:"disk_gb,omitempty"`
	// CpusetCpus and CpusetMems are exactly what Docker gets: the pinned
	// pCPUs and their cell for dedicated; the host's free shared CPUs (and
	// no mems constraint, "") for shared.
	CpusetCpus string `json:"cpuset_cpus"`
	CpusetMems string `json:"cpuset_mems,omitempty"`
	// Running says whether the container should be running (desired state:
	// run=true on create, start, stop ...).
	Running bool `json:"running"`
}

// Docker labels every unisched container carries.
const (
	LabelWorkload = "org.unisched.workload"
	LabelHost     = "org.unisched.host"
	LabelProject  = "org.unisched.project"
)

// Observed container statuses an agent reports, as Zun spells them.
const (
	StatusCreated    = "Created"
	StatusRunning    = "Running"
	StatusStopped    = "Stopped"
	StatusPaused     = "Paused"
	StatusRestarting = "Restarting"
	StatusDead       = "Dead"
	StatusError      = "Error"
	// StatusDeleted: the container is gone from Docker (after a delete
	// event, or found missing); the coordinator releases its claim.
	StatusDeleted = "Deleted"
)

// Report is one container's observed state. EventID is the event it
// answers (0 when it comes from Docker's event stream or a resync).
type Report struct {
	WorkloadID  string    `json:"workload_id"`
	EventID     int64     `json:"event_id,omitempty"`
	ContainerID string    `json:"container_id,omitempty"` // Docker's id
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	ExitCode    *int      `json:"exit_code,omitempty"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	// Addresses and ports are Zun's view fields, when known.
	ObservedAt time.Time `json:"observed_at"`
}

// Cell is one NUMA node of a host's topology as an agent reports it.
type Cell struct {
	ID       int      `json:"id"`
	CPUs     string   `json:"cpus"`               // Linux list form
	Siblings []string `json:"siblings,omitempty"` // hyperthread groups, list form each
	MemoryMB int64    `json:"memory_mb"`
}

// Registration is what an agent says of its host when it starts (and on
// every topology change). Inventory is only written to a provider the
// agent created (see RegistrationResult.OwnsInventory).
type Registration struct {
	Host             string `json:"host"`
	AgentURL         string `json:"agent_url"`
	AvailabilityZone string `json:"availability_zone,omitempty"`
	Cells            []Cell `json:"cells"`
	DedicatedCPUs    string `json:"dedicated_cpus"`
	SharedCPUs       string `json:"shared_cpus"`
	// DiskGB is the host's disk for containers (DISK_GB inventory when the
	// agent owns the provider).
	DiskGB int64 `json:"disk_gb"`
	// Allocation ratios and reserved amounts for the inventory the agent
	// owns; zero ratios take Nova's defaults (VCPU 4.0, MEMORY_MB 1.0,
	// DISK_GB 1.0; PCPU is never overcommitted).
	CPUAllocationRatio  float64 `json:"cpu_allocation_ratio,omitempty"`
	RAMAllocationRatio  float64 `json:"ram_allocation_ratio,omitempty"`
	DiskAllocationRatio float64 `json:"disk_allocation_ratio,omitempty"`
	ReservedMemoryMB    int64   `json:"reserved_host_memory_mb,omitempty"`
	// OS, KernelVersion and Architecture describe the machine for the
	// container API's host view (optional).
	OS            string `json:"os,omitempty"`
	KernelVersion string `json:"kernel_version,omitempty"`
	Architecture  string `json:"architecture,omitempty"`
}

// RegistrationResult tells the agent which provider its host is.
type RegistrationResult struct {
	ProviderUUID string `json:"provider_uuid"`
	// OwnsInventory is false when the provider was created by someone
	// else (Nova's compute): its inventory is left as it is.
	OwnsInventory bool `json:"owns_inventory"`
}

// Desired is every container the ledger places on a host, with its desired
// state: an agent that restarts (or lost events) converges on it, removing
// unisched-labelled containers of its host that are not listed.
type Desired struct {
	Host       string      `json:"host"`
	Containers []Container `json:"containers"`
	// SharedCPUs is the host's current free shared pool.
	SharedCPUs string `json:"shared_cpus"`
}

// ExecRequest runs a command in a container (Zun's execute, run=true and
// interactive=false only).
type ExecRequest struct {
	Command []string `json:"command"`
}

// ExecResult is the command's output and exit code.
type ExecResult struct {
	Output   string `json:"output"`
	ExitCode int    `json:"exit_code"`
}

// Stats is Zun's stats view of one container.
type Stats struct {
	CPUPercent float64 `json:"CPU %"`
	MemUsage   float64 `json:"MEM USAGE(MiB)"`
	MemLimit   float64 `json:"MEM LIMIT(MiB)"`
	MemPercent float64 `json:"MEM %"`
	BlockIO    string  `json:"BLOCK I/O(B)"`
	NetIO      string  `json:"NET I/O(B)"`
}

// Top is `docker top`: column titles and one row per process.
type Top struct {
	Titles    []string   `json:"Titles"`
	Processes [][]string `json:"Processes"`
}

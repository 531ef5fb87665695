package config

import "time"

// Agent configures `unisched agent`, the per-host agent (zunext/agent).
type Agent struct {
	// Host is the host name the agent speaks for; "" takes the machine's.
	Host string `mapstructure:"host"`
	// Listen is the agent's address for serve's events and calls.
	Listen string `mapstructure:"listen"`
	// AdvertiseURL is the URL serve reaches the agent at; "" derives it
	// from Listen.
	AdvertiseURL string `mapstructure:"advertise_url"`
	// ServeURL is serve's container API; Token the X-Auth-Token sent to it.
	ServeURL string `mapstructure:"serve_url"`
	Token    string `mapstructure:"token"`
	// DockerHost is the dockerd address; "" takes DOCKER_HOST, else
	// Docker's default socket.
	DockerHost  string `mapstructure:"docker_host"`
	NetworkMode string `mapstructure:"network_mode"`
	// ClampCpusets drops CPUs and memory nodes the machine lacks from the
	// cpusets given to Docker (for configured, simulated topologies).
	ClampCpusets bool `mapstructure:"clamp_cpusets"`
	// Cells is the host's NUMA topology; empty reads it from sysfs.
	Cells            []AgentCell `mapstructure:"cells"`
	DedicatedCPUs    string      `mapstructure:"dedicated_cpus"`
	SharedCPUs       string      `mapstructure:"shared_cpus"`
	DiskGB           int64       `mapstructure:"disk_gb"`
	AvailabilityZone string      `mapstructure:"availability_zone"`
	// Inventory ratios and reserved memory (0: serve's defaults).
	CPUAllocationRatio  float64 `mapstructure:"cpu_allocation_ratio"`
	RAMAllocationRatio  float64 `mapstructure:"ram_allocation_ratio"`
	DiskAllocationRatio float64 `mapstructure:"disk_allocation_ratio"`
	ReservedMemoryMB    int64   `mapstructure:"reserved_host_memory_mb"`
	// StateFile keeps applied event ids across restarts ("" memory only).
	StateFile         string        `mapstructure:"state_file"`
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
	RetryInterval     time.Duration `mapstructure:"retry_interval"`
	RequestTimeout    time.Duration `mapstructure:"request_timeout"`
}

// AgentCell is one configured NUMA cell.
type AgentCell struct {
	ID       int      `mapstructure:"id"`
	CPUs     string   `mapstructure:"cpus"`
	Siblings []string `mapstructure:"siblings"`
	MemoryMB int64    `mapstructure:"memory_mb"`
}

var agentDefaults = map[string]any{
	"agent.host":                    "",
	"agent.listen":                  "127.0.0.1:9518",
	"agent.advertise_url":           "",
	"agent.serve_url":               "http://127.0.0.1:9517",
	"agent.token":                   "admin:admin",
	"agent.docker_host":             "",
	"agent.network_mode":            "none",
	"agent.clamp_cpusets":           true,
	"agent.cells":                   []any{},
	"agent.dedicated_cpus":          "",
	"agent.shared_cpus":             "",
	"agent.disk_gb":                 int64(0),
	"agent.availability_zone":       "",
	"agent.cpu_allocation_ratio":    0.0,
	"agent.ram_allocation_ratio":    0.0,
	"agent.disk_allocation_ratio":   0.0,
	"agent.reserved_host_memory_mb": int64(0),
	"agent.state_file":              "",
	"agent.heartbeat_interval":      30 * time.Second,
	"agent.retry_interval":          time.Second,
	"agent.request_timeout":         30 * time.Second,
}

// init adds the agent's keys to the defaults (kept in this file so the
// agent's section stays apart from serve's).
func init() {
	for k, v := range agentDefaults {
		defaults[k] = v
	}
}

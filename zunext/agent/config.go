// Package agent is the per-host agent: it registers its host with serve,
// applies the events serve's relay posts to it through the Docker driver,
// answers serve's synchronous calls (logs, execute, stats, top), reports
// every container's observed state back, and after a restart of itself or
// of Docker converges on what serve says should run on the host.
//
// Rules that keep replays and restarts safe:
//   - An event is answered 202 once it is held durably: appended to the
//     journal beside the state file and fsynced. "Delivered", for the
//     relay and its notify-lag histogram, means exactly that; the event is
//     applied afterwards, and its outcome (Running, or Error "image ...
//     not found") reaches serve as a report, i.e. the container's status.
//     Docker or serve being away makes the agent retry the event itself
//     with backoff, holding the later events of the workload, so the
//     relay's per-workload order holds; a restarted agent applies what its
//     journal still holds first. An id journaled, applying or applied is
//     answered 202 and dropped. Applied ids are remembered (bounded,
//     optionally in a file), and since every event carries the whole
//     desired container a replay converges anyway.
//   - A create event starts only a container that never ran, so a replay
//     does not rerun one that exited. A convergence (agent start, Docker
//     back after a failure) brings every container to its desired Running,
//     restarting those Docker stopped while it was down.
//   - Docker is listed before serve's desired state is read, so a container
//     created by an event meanwhile is never taken for an orphan; orphans
//     (labelled with this host, not desired) are removed and reported
//     Deleted. Containers of other hosts on the same dockerd are never
//     touched.
//   - Docker's own lifecycle events (die, start, pause, destroy ...) become
//     reports without an event id; a container removed outside unisched is
//     reported Deleted.
package agent

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/zunext/docker"
)

// Config is everything an agent needs. Zero values take the defaults
// documented per field (see Defaults).
type Config struct {
	// Host is the host name the agent speaks for (default: the machine's).
	// Several agents may share a dockerd as different hosts.
	Host string
	// Listen is the agent's own address (default 127.0.0.1:9518).
	Listen string
	// AdvertiseURL is the agent URL given to serve (default http://Listen,
	// with 127.0.0.1 for an unspecified address).
	AdvertiseURL string
	// ServeURL is the container API of `unisched serve` (default
	// http://127.0.0.1:9517); Token its X-Auth-Token (default admin:admin).
	ServeURL string
	Token    string
	// DockerHost is the dockerd address (default: DOCKER_HOST, else
	// Docker's default socket); NetworkMode of containers (default none).
	DockerHost  string
	NetworkMode string
	// ClampCpusets: see docker.Options.
	ClampCpusets bool

	// Cells is the host's NUMA topology; empty reads it from
	// /sys/devices/system/node (a test or simulated host configures it).
	Cells []agentproto.Cell
	// DedicatedCPUs and SharedCPUs split the cells' CPUs into pools
	// (Linux list form). Neither set: every CPU is shared. Only one set:
	// the other pool is the rest.
	DedicatedCPUs, SharedCPUs string
	// DiskGB offered to containers (default: the size of the filesystem
	// holding StateFile, else /).
	DiskGB           int64
	AvailabilityZone string
	// Allocation ratios and reserved memory for the inventory the agent
	// owns (zero: serve's defaults).
	CPUAllocationRatio, RAMAllocationRatio, DiskAllocationRatio float64
	ReservedMemoryMB                                            int64

	// StateFile keeps the ids of applied events across restarts (empty:
	// memory only; replays still converge because events carry the whole
	// desired container). Beside it, StateFile + ".journal" holds the
	// events acknowledged to the relay and not applied yet (empty
	// StateFile: in memory only, so an agent killed with events in it
	// relies on its convergence at restart instead).
	StateFile string
	// AppliedIDs is how many applied event ids are remembered (default 10000).
	AppliedIDs int
	// ApplyWorkers bounds the workloads whose events are applied at once
	// (default 8).
	ApplyWorkers int
	// HeartbeatInterval between re-registrations and periodic
	// convergences, which start what a transient Docker failure left
	// unstarted (default 30s);
	// RetryInterval between attempts to reach serve or Docker (default 1s,
	// backing off to 10x).
	HeartbeatInterval time.Duration
	RetryInterval     time.Duration
	// RequestTimeout bounds each call to serve (default 30s).
	RequestTimeout time.Duration

	Logger *slog.Logger
	// Wrap, when set, wraps the agent's HTTP handler (`unisched agent`
	// puts its probes, /metrics and request logs in front).
	Wrap func(http.Handler) http.Handler
}

// Defaults fills the zero fields and derives the topology and pools.
func (c *Config) Defaults() error {
	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("agent host name: %w", err)
		}
		c.Host = h
	}
	if !validHost.MatchString(c.Host) {
		return fmt.Errorf("agent host name %q: letters, digits, '.', '_' and '-' only", c.Host)
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9518"
	}
	if c.ServeURL == "" {
		c.ServeURL = "http://127.0.0.1:9517"
	}
	c.ServeURL = strings.TrimRight(c.ServeURL, "/")
	if c.Token == "" {
		c.Token = "admin:admin"
	}
	if c.AppliedIDs <= 0 {
		c.AppliedIDs = 10000
	}
	if c.ApplyWorkers <= 0 {
		c.ApplyWorkers = 8
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 30 * time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.Cells) == 0 {
		cells, err := SysfsCells("/sys/devices/system")
		if err != nil {
			return err
		}
		c.Cells = cells
	}
	return c.pools()
}

var validHost = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)

// pools checks the cells and splits their CPUs into the two pools.
func (c *Config) pools() error {
	var all []int
	for i := range c.Cells {
		cell := &c.Cells[i]
		ids, err := docker.ParseList(cell.CPUs)
		if err != nil || len(ids) == 0 {
			return fmt.Errorf("cell %d: cpus %q: not a non-empty CPU list", cell.ID, cell.CPUs)
		}
		for _, id := range ids {
			if slices.Contains(all, id) {
				return fmt.Errorf("cell %d: cpu %d is in two cells", cell.ID, id)
			}
		}
		for _, s := range cell.Siblings {
			sib, err := docker.ParseList(s)
			if err != nil {
				return fmt.Errorf("cell %d: siblings %q: %v", cell.ID, s, err)
			}
			for _, id := range sib {
				if !slices.Contains(ids, id) {
					return fmt.Errorf("cell %d: sibling cpu %d is not in the cell", cell.ID, id)
				}
			}
		}
		if cell.MemoryMB < 0 {
			return fmt.Errorf("cell %d: negative memory", cell.ID)
		}
		cell.CPUs = docker.FormatList(ids)
		all = append(all, ids...)
	}
	parse := func(what, s string) ([]int, error) {
		ids, err := docker.ParseList(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", what, err)
		}
		for _, id := range ids {
			if !slices.Contains(all, id) {
				return nil, fmt.Errorf("%s: cpu %d is in no cell", what, id)
			}
		}
		return ids, nil
	}
	ded, err := parse("dedicated_cpus", c.DedicatedCPUs)
	if err != nil {
		return err
	}
	shared, err := parse("shared_cpus", c.SharedCPUs)
	if err != nil {
		return err
	}
	rest := func(minus []int) []int {
		var out []int
		for _, id := range all {
			if !slices.Contains(minus, id) {
				out = append(out, id)
			}
		}
		return out
	}
	switch {
	case c.DedicatedCPUs == "" && c.SharedCPUs == "":
		shared = all
	case c.SharedCPUs == "":
		shared = rest(ded)
	case c.DedicatedCPUs == "":
		ded = rest(shared)
	}
	// The pools may overlap (unlike Nova's cpu_dedicated_set and
	// cpu_shared_set): a CPU in both floats shared containers until a
	// dedicated workload pins it, and the agent then moves them off it
	// (EventHostCPUs). The ledger and the scheduler's thresholds are built
	// for that; disjoint pools remain the strict partition.
	c.DedicatedCPUs, c.SharedCPUs = docker.FormatList(ded), docker.FormatList(shared)
	return nil
}

// SysfsCells reads the machine's NUMA cells from sysfs (root is normally
// /sys/devices/system): each node's CPUs, their hyperthread sibling
// groups and its memory. A machine without node directories is one cell
// holding every online CPU and all of /proc/meminfo's memory.
func SysfsCells(root string) ([]agentproto.Cell, error) {
	nodes, _ := filepath.Glob(filepath.Join(root, "node", "node[0-9]*"))
	var cells []agentproto.Cell
	for _, n := range nodes {
		id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(n), "node"))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(n, "cpulist"))
		if err != nil {
			return nil, fmt.Errorf("reading the cpus of NUMA node %d: %w", id, err)
		}
		cpus := strings.TrimSpace(string(b))
		if cpus == "" {
			continue // memory-only node
		}
		mem, err := meminfoMB(filepath.Join(n, "meminfo"), fmt.Sprintf("Node %d MemTotal:", id))
		if err != nil {
			return nil, err
		}
		cells = append(cells, agentproto.Cell{ID: id, CPUs: docker.NormalizeList(cpus), MemoryMB: mem})
	}
	if len(cells) == 0 {
		b, err := os.ReadFile(filepath.Join(root, "cpu", "online"))
		if err != nil {
			return nil, fmt.Errorf("reading the online cpus: %w", err)
		}
		mem, err := meminfoMB("/proc/meminfo", "MemTotal:")
		if err != nil {
			return nil, err
		}
		cells = []agentproto.Cell{{ID: 0, CPUs: docker.NormalizeList(string(b)), MemoryMB: mem}}
	}
	slices.SortFunc(cells, func(a, b agentproto.Cell) int { return a.ID - b.ID })
	for i := range cells {
		cells[i].Siblings = siblings(root, cells[i].CPUs)
	}
	return cells, nil
}

// siblings groups a cell's CPUs by their thread_siblings_list; CPUs
// without hyperthreads make no group.
func siblings(root, cpus string) []string {
	ids, _ := docker.ParseList(cpus)
	var groups []string
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(root, "cpu", fmt.Sprintf("cpu%d", id), "topology", "thread_siblings_list"))
		if err != nil {
			continue
		}
		g := docker.NormalizeList(strings.TrimSpace(string(b)))
		if ids, _ := docker.ParseList(g); len(ids) > 1 && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return groups
}

func meminfoMB(path, prefix string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("reading memory size: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				break
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no %q line in %s", prefix, path)
}

// diskGB is the size of the filesystem holding path.
func diskGB(path string) int64 {
	var st syscall.Statfs_t
	if path == "" || syscall.Statfs(path, &st) != nil {
		if syscall.Statfs("/", &st) != nil {
			return 0
		}
	}
	return int64(st.Blocks) * int64(st.Bsize) >> 30
}

// journalPath is the event journal's file ("" in memory only).
func (c *Config) journalPath() string {
	if c.StateFile == "" {
		return ""
	}
	return c.StateFile + ".journal"
}

// registration is what the agent tells serve of its host.
func (c *Config) registration(agentURL string) agentproto.Registration {
	disk := c.DiskGB
	if disk <= 0 {
		dir := ""
		if c.StateFile != "" {
			dir = filepath.Dir(c.StateFile)
		}
		disk = diskGB(dir)
	}
	return agentproto.Registration{
		Host:                c.Host,
		AgentURL:            agentURL,
		AvailabilityZone:    c.AvailabilityZone,
		Cells:               c.Cells,
		DedicatedCPUs:       c.DedicatedCPUs,
		SharedCPUs:          c.SharedCPUs,
		DiskGB:              disk,
		CPUAllocationRatio:  c.CPUAllocationRatio,
		RAMAllocationRatio:  c.RAMAllocationRatio,
		DiskAllocationRatio: c.DiskAllocationRatio,
		ReservedMemoryMB:    c.ReservedMemoryMB,
		OS:                  osName(),
		KernelVersion:       readTrim("/proc/sys/kernel/osrelease"),
		Architecture:        arch(),
	}
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// osName is os-release's PRETTY_NAME ("Debian GNU/Linux 12 (bookworm)").
func osName() string {
	for _, line := range strings.Split(readTrim("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return runtime.GOOS
}

// arch is uname's machine name (x86_64, aarch64), as Zun shows it.
func arch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	}
	return runtime.GOARCH
}

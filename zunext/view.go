package zunext

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/openstack"
)

// Zun's container statuses (zun/common/consts.py).
const (
	statusCreating   = "Creating"
	statusCreated    = "Created"
	statusRunning    = "Running"
	statusStopped    = "Stopped"
	statusPaused     = "Paused"
	statusRestarting = "Restarting"
	statusDeleting   = "Deleting"
	statusDeleted    = "Deleted"
	statusError      = "Error"
	statusDead       = "Dead"
	statusUnknown    = "Unknown"
)

// zunSpec is what the container API keeps with a workload
// (bridge.CreateRequest.Spec): the Zun fields the ledger does not model,
// rendered back in the container view. Live values (name, cpu, memory,
// command...) come from the workload's desired container when present.
type zunSpec struct {
	Image            string            `json:"image"`
	Command          []string          `json:"command"`
	Entrypoint       []string          `json:"entrypoint"`
	Environment      map[string]string `json:"environment"`
	Labels           map[string]string `json:"labels"`
	Workdir          *string           `json:"workdir"`
	Hostname         *string           `json:"hostname"`
	RestartPolicy    map[string]string `json:"restart_policy"`
	Interactive      bool              `json:"interactive"`
	TTY              bool              `json:"tty"`
	ImageDriver      string            `json:"image_driver"`
	ImagePullPolicy  *string           `json:"image_pull_policy"`
	AutoRemove       *bool             `json:"auto_remove"`
	Runtime          *string           `json:"runtime"`
	Disk             *int64            `json:"disk"`
	AutoHeal         *bool             `json:"auto_heal"`
	Privileged       bool              `json:"privileged"`
	Healthcheck      map[string]any    `json:"healthcheck"`
	CPUPolicy        string            `json:"cpu_policy"`
	CPU              float64           `json:"cpu"`
	Memory           string            `json:"memory"`
	AvailabilityZone *string           `json:"availability_zone"`
	Hints            map[string]any    `json:"hints"`
	RequestedHost    string            `json:"requested_host,omitempty"`
}

func decodeSpec(raw json.RawMessage) zunSpec {
	var s zunSpec
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &s) // a workload created elsewhere renders with defaults
	}
	return s
}

// pyFloat marshals as Python's json does a float: "1.0", not "1".
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return []byte("null"), nil
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e16 {
		return []byte(strconv.FormatFloat(v, 'f', 1, 64)), nil
	}
	return []byte(strconv.FormatFloat(v, 'g', -1, 64)), nil
}

// pyTime renders a timestamp as pecan's JSON encoder renders Zun's
// timezone-aware datetimes: str(datetime), e.g. "2026-01-02 03:04:05+00:00".
func pyTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	s := t.Format("2006-01-02 15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += "." + strconv.Itoa(1000000 + us)[1:]
	}
	return s + "+00:00"
}

// zunStatus maps the ledger's state and the agent's last report onto
// Zun's status, status_reason and task_state.
func zunStatus(w bridge.Workload) (status string, reason, task any) {
	observed := w.Runtime.Status
	switch w.State {
	case ledger.StateDeleting:
		return statusDeleting, nil, "container_deleting"
	case ledger.StateError:
		r := w.StatusReason
		if r == "" {
			r = w.Runtime.Reason
		}
		return statusError, nilIfEmpty(r), nil
	case ledger.StatePending:
		return statusCreating, nil, nil
	}
	switch observed {
	case "":
		return statusCreating, nil, "container_creating"
	case agentproto.StatusError:
		r := w.Runtime.Reason
		if r == "" {
			r = w.StatusReason
		}
		return statusError, nilIfEmpty(r), nil
	case agentproto.StatusDeleted:
		return statusDeleted, nil, nil
	case agentproto.StatusCreated, agentproto.StatusRunning, agentproto.StatusStopped,
		agentproto.StatusPaused, agentproto.StatusRestarting, agentproto.StatusDead:
		status = observed
	default:
		status = statusUnknown
	}
	// A stop not yet carried out shows as Zun's task. (The reverse cannot
	// be told apart: a container wanted running and seen stopped may have
	// exited by itself.)
	if w.Container != nil && !w.Container.Running && (status == statusRunning || status == statusPaused) {
		task = "container_stopping"
	}
	return status, nilIfEmpty(w.Runtime.Reason), task
}

// statusDetail is Docker's word for a container that ended, as Zun shows
// it ("Exited(0)").
func statusDetail(w bridge.Workload) any {
	if w.Runtime.ExitCode == nil || (w.Runtime.Status != agentproto.StatusStopped && w.Runtime.Status != agentproto.StatusDead) {
		return nil
	}
	return "Exited(" + strconv.Itoa(*w.Runtime.ExitCode) + ")"
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// containerView is Zun's format_container: every field of the container
// object, less the ones policy hides from the caller (host,
// image_pull_policy, privileged and runtime are admin-only by default).
func containerView(r *http.Request, w bridge.Workload) map[string]any {
	s := decodeSpec(w.Spec)
	c := w.Container
	name, image, command, entrypoint := w.Name, s.Image, s.Command, s.Entrypoint
	cpu, memory := s.CPU, s.Memory
	env, labels := s.Environment, s.Labels
	if c != nil {
		name, image = c.Name, c.Image
		if c.Command != nil {
			command = c.Command
		}
		if c.Entrypoint != nil {
			entrypoint = c.Entrypoint
		}
		if c.CPU > 0 {
			cpu = c.CPU
		}
		if c.MemoryMB > 0 {
			memory = strconv.FormatInt(c.MemoryMB, 10)
		}
		if c.Env != nil {
			env = c.Env
		}
		if c.Labels != nil {
			labels = c.Labels
		}
	}
	if name == "" {
		name = w.Name
	}
	if memory == "" && w.Resources.MemoryMB > 0 {
		memory = strconv.FormatInt(w.Resources.MemoryMB, 10)
	}
	if env == nil {
		env = map[string]string{}
	}
	if labels == nil {
		labels = map[string]string{}
	}
	cpuPolicy := s.CPUPolicy
	if cpuPolicy == "" {
		cpuPolicy = string(w.CPUPolicy)
	}
	if cpuPolicy == "" {
		cpuPolicy = "shared"
	}
	status, reason, task := zunStatus(w)
	var host any
	if w.Host != "" {
		host = w.Host
	}
	var cmd, ep any
	if command != nil {
		cmd = command
	}
	if entrypoint != nil {
		ep = entrypoint
	}
	var restart any
	if s.RestartPolicy != nil {
		restart = s.RestartPolicy
	}
	var health any
	if s.Healthcheck != nil {
		health = s.Healthcheck
	}
	imageDriver := s.ImageDriver
	if imageDriver == "" {
		imageDriver = "docker"
	}
	v := map[string]any{
		"uuid":              w.ID,
		"links":             selfLinks(hostURL(r), "containers", w.ID),
		"user_id":           w.UserID,
		"project_id":        w.ProjectID,
		"name":              name,
		"image":             image,
		"command":           cmd,
		"status":            status,
		"status_reason":     reason,
		"status_detail":     statusDetail(w),
		"task_state":        task,
		"cpu":               pyFloat(cpu),
		"memory":            nilIfEmpty(memory),
		"environment":       env,
		"workdir":           s.Workdir,
		"ports":             []int{},
		"hostname":          s.Hostname,
		"labels":            labels,
		"addresses":         map[string]any{},
		"image_pull_policy": s.ImagePullPolicy,
		"host":              host,
		"restart_policy":    restart,
		"interactive":       s.Interactive,
		"tty":               s.TTY,
		"image_driver":      imageDriver,
		"security_groups":   []string{},
		"auto_remove":       s.AutoRemove,
		"runtime":           s.Runtime,
		"disk":              diskOf(s, w),
		"auto_heal":         s.AutoHeal,
		"privileged":        s.Privileged,
		"healthcheck":       health,
		"cpu_policy":        cpuPolicy,
		"registry_id":       nil,
		"entrypoint":        ep,
		"created_at":        pyTime(w.CreatedAt),
		"updated_at":        pyTime(w.UpdatedAt),
	}
	for _, field := range []string{"host", "image_pull_policy", "privileged", "runtime"} {
		if !allowed(r, "container:get_one:"+field, "") {
			delete(v, field)
		}
	}
	return v
}

func diskOf(s zunSpec, w bridge.Workload) any {
	if s.Disk != nil {
		return *s.Disk
	}
	if w.Resources.DiskGB > 0 {
		return w.Resources.DiskGB
	}
	return int64(0)
}

// hostView is Zun's format_host over a registered host: sizes in MiB and
// GiB, CPU counts from the host's pools, usage from Placement.
func hostView(r *http.Request, h bridge.HostInfo) map[string]any {
	cpus := h.DedicatedCPUs.Union(h.SharedCPUs).Size()
	var memTotal int64
	for _, c := range h.Cells {
		memTotal += c.MemoryMB
		if cpus == 0 {
			cpus += c.CPUs.Size()
		}
	}
	if mem, ok := h.Resources["MEMORY_MB"]; ok && memTotal == 0 {
		memTotal = mem.Total
	}
	var cpuUsed float64
	for _, rc := range []string{"VCPU", "PCPU"} {
		cpuUsed += float64(h.Resources[rc].Used)
	}
	pinning := !h.DedicatedCPUs.IsEmpty()
	return map[string]any{
		"uuid":                 h.ProviderUUID,
		"links":                selfLinks(hostURL(r), "hosts", h.ProviderUUID),
		"hostname":             h.Name,
		"mem_total":            memTotal,
		"mem_used":             h.Resources["MEMORY_MB"].Used,
		"cpus":                 cpus,
		"cpu_used":             pyFloat(cpuUsed),
		"disk_total":           h.Resources["DISK_GB"].Total,
		"disk_used":            h.Resources["DISK_GB"].Used,
		"disk_quota_supported": false,
		"total_containers":     h.Workloads,
		"architecture":         nilIfEmpty(h.Architecture),
		"os_type":              "linux",
		"os":                   nilIfEmpty(h.OS),
		"kernel_version":       nilIfEmpty(h.KernelVersion),
		"labels":               map[string]string{},
		"runtimes":             []string{"runc"},
		"enable_cpu_pinning":   pinning,
	}
}

// serviceDownTime is Zun's service_down_time: a zun-compute whose last
// heartbeat is older is reported down.
const serviceDownTime = 180 * time.Second

// serviceView is Zun's format_service for a host's zun-compute.
func serviceView(h bridge.HostInfo, id int, now time.Time) map[string]any {
	state := "down"
	if !h.HeartbeatAt.IsZero() && now.Sub(h.HeartbeatAt).Abs() <= serviceDownTime {
		state = "up"
	}
	az := h.AvailabilityZone
	if az == "" {
		az = "nova"
	}
	return map[string]any{
		"id":                id,
		"host":              h.Name,
		"binary":            "zun-compute",
		"disabled":          false,
		"disabled_reason":   nil,
		"forced_down":       false,
		"last_seen_up":      strTime(h.HeartbeatAt),
		"report_count":      0,
		"state":             state,
		"availability_zone": az,
		"created_at":        strTime(h.CreatedAt),
		"updated_at":        strTime(h.UpdatedAt),
	}
}

// strTime is zun.common.utils.strtime ("%Y-%m-%dT%H:%M:%S.%f").
func strTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000")
}

func writeJSON(w http.ResponseWriter, status int, v any) { openstack.WriteJSON(w, status, v) }

package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// ErrDpkg: the guest's dpkg failed (a maintainer script, a dependency, a
// broken package); the message carries the end of its output.
var ErrDpkg = errors.New("the guest's dpkg failed")

// SandboxHostname is the sandbox's host name (uname -n inside it), so that
// a maintainer script's output shows where it ran.
const SandboxHostname = "unisched-upgrade-sandbox"

// debMount is where the .debs appear inside the guest root.
const debMount = "/var/cache/unisched-upgrade"

// Sandbox runs commands for an upgrade in a Docker container with no
// network: the helper image (a static busybox: chroot, mknod, rm) is the
// container's own filesystem, the extracted guest root is bind-mounted at
// /guest, and the guest's programs run chrooted there. So the guest's dpkg
// and its maintainer scripts run only in the container's namespaces (no
// network but loopback, own pid and mount namespaces, a reduced capability
// set, no new privileges), never on the host. The guest root is bound
// rather than imported as an image: an import and an export would copy the
// whole root twice for the same isolation.
type Sandbox struct {
	Client *client.Client
	// Image is the helper image (EnsureImage makes one).
	Image string
	// Timeout bounds one run (default 10 minutes).
	Timeout time.Duration
}

// caps are what dpkg needs as root over files of other owners, chroot and
// the /dev/null node; everything else (net admin, raw sockets, mounts,
// ptrace, ...) is dropped.
var caps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "SETFCAP", "SYS_CHROOT", "MKNOD", "KILL"}

// Run runs a shell script (busybox sh) in a new sandbox with root bound at
// /guest (and debs, when not empty, read-only at /guest/var/cache/
// unisched-upgrade); it returns the combined output and the exit code.
func (s *Sandbox) Run(ctx context.Context, root, debs, script string) (string, int, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	mounts := []mount.Mount{{Type: mount.TypeBind, Source: root, Target: "/guest"}}
	if debs != "" {
		mp := filepath.Join(root, debMount)
		if _, err := os.Lstat(mp); err == nil {
			return "", 0, fmt.Errorf("the guest already has %s: refusing to bind over it", debMount)
		}
		// Remove afterwards exactly the directories made here.
		top := mp
		for {
			parent := filepath.Dir(top)
			if _, err := os.Lstat(parent); err == nil || parent == root {
				break
			}
			top = parent
		}
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return "", 0, err
		}
		defer os.RemoveAll(top)
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: debs, Target: "/guest" + debMount, ReadOnly: true})
	}
	pids := int64(512)
	cfg := &container.Config{
		Image:           s.Image,
		Cmd:             []string{"/bin/sh", "-c", script},
		Hostname:        SandboxHostname,
		Env:             []string{"PATH=/bin"},
		NetworkDisabled: true,
		Labels:          map[string]string{"org.unisched.role": "imagesec-upgrade-sandbox"},
	}
	hc := &container.HostConfig{
		NetworkMode:    "none",
		Mounts:         mounts,
		CapDrop:        []string{"ALL"},
		CapAdd:         caps,
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Resources:      container.Resources{PidsLimit: &pids},
	}
	created, err := s.Client.ContainerCreate(ctx, cfg, hc, nil, nil, "")
	if err != nil {
		return "", 0, fmt.Errorf("creating the sandbox container: %w", err)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
		defer rcancel()
		_ = s.Client.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true})
	}()
	waitC, errC := s.Client.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := s.Client.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", 0, fmt.Errorf("starting the sandbox container: %w", err)
	}
	var code int
	select {
	case w := <-waitC:
		if w.Error != nil {
			return "", 0, fmt.Errorf("waiting for the sandbox: %s", w.Error.Message)
		}
		code = int(w.StatusCode)
	case err := <-errC:
		return "", 0, fmt.Errorf("waiting for the sandbox: %w", err)
	}
	rc, err := s.Client.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", code, fmt.Errorf("reading the sandbox's output: %w", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return buf.String(), code, fmt.Errorf("reading the sandbox's output: %w", err)
	}
	return buf.String(), code, nil
}

// dpkgScript installs the given .debs (file names under debMount) with the
// guest's own dpkg, chrooted into the guest: `dpkg --unpack` of them all,
// then `dpkg --configure --pending`, with a clean environment. A missing
// /dev/null is made for the run and removed after.
func dpkgScript(debs []string) string {
	var q []string
	for _, d := range debs {
		q = append(q, shellQuote(debMount+"/"+d))
	}
	return `made=
if [ ! -e /guest/dev/null ]; then mkdir -p /guest/dev && mknod -m 666 /guest/dev/null c 1 3 && made=1; fi
guest() { chroot /guest /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 HOME=/root "$@"; }
rc=0
guest /usr/bin/dpkg --force-confold --force-confdef --unpack ` + strings.Join(q, " ") + ` || rc=$?
if [ "$rc" = 0 ]; then guest /usr/bin/dpkg --force-confold --force-confdef --configure --pending || rc=$?; fi
[ -n "$made" ] && rm -f /guest/dev/null
exit $rc
`
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

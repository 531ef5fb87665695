package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

const (
	// ImageName is the tiny image every container test runs: Debian's
	// static busybox and nothing else (no registry is reachable here).
	ImageName = "unisched/busybox:latest"
	// VersionLabel carries the busybox-static package version the image
	// was built from; an image with the current version is not rebuilt.
	VersionLabel = "org.debian.busybox-static.version"
	// BusyboxPath is where Debian's busybox-static installs the binary.
	BusyboxPath = "/bin/busybox"
)

// BusyboxVersion is the installed busybox-static package version
// (dpkg-query), or, off Debian, a hash of the binary.
func BusyboxVersion(ctx context.Context, busybox string) (string, error) {
	if out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", "busybox-static").Output(); err == nil && len(out) > 0 {
		return strings.TrimSpace(string(out)), nil
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		return "", fmt.Errorf("%w: busybox-static is not installed (Debian: apt-get install busybox-static): %v", ErrUnavailable, err)
	}
	sum := sha256.Sum256(b)
	return "sha256-" + hex.EncodeToString(sum[:8]), nil
}

// checkStatic refuses a dynamically linked busybox: in an image without
// libc it would not run (Debian's `busybox` package replaces busybox-static).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: reading %s: %v", ErrUnavailable, path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is dynamically linked (install busybox-static)", ErrUnavailable, path)
		}
	}
	return nil
}

// Rootfs builds the image's root filesystem as a tar stream: /bin/busybox,
// a symlink per applet, /etc/passwd and /etc/group (root, nobody), /tmp
// (1777) and the usual empty mount points, all owned by root.
func Rootfs(ctx context.Context, busybox string) ([]byte, error) {
	if err := checkStatic(busybox); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", busybox, err)
	}
	list, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	add := func(h *tar.Header, body []byte) error {
		h.Uid, h.Gid, h.ModTime, h.Format = 0, 0, mtime, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing %s to the rootfs tar: %w", h.Name, err)
		}
		if len(body) > 0 {
			if _, err := tw.Write(body); err != nil {
				return fmt.Errorf("writing %s to the rootfs tar: %w", h.Name, err)
			}
		}
		return nil
	}
	dirs := []struct {
		name string
		mode int64
	}{{"bin", 0o755}, {"etc", 0o755}, {"tmp", 0o1777}, {"root", 0o700}, {"proc", 0o755},
		{"sys", 0o755}, {"dev", 0o755}, {"var", 0o755}, {"var/run", 0o755}}
	for _, dir := range dirs {
		if err := add(&tar.Header{Typeflag: tar.TypeDir, Name: dir.name + "/", Mode: dir.mode}, nil); err != nil {
			return nil, err
		}
	}
	if err := add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}, bin); err != nil {
		return nil, err
	}
	seen := map[string]bool{"busybox": true}
	for _, applet := range strings.Fields(string(list)) {
		if seen[applet] || strings.Contains(applet, "/") {
			continue
		}
		seen[applet] = true
		if err := add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}, nil); err != nil {
			return nil, err
		}
	}
	files := []struct{ name, body string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
	}
	for _, f := range files {
		if err := add(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.body))}, []byte(f.body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the rootfs tar: %w", err)
	}
	return buf.Bytes(), nil
}

// EnsureImage makes sure ImageName exists on the daemon behind cli, built
// from the installed busybox-static: it does nothing when an image with
// that version label is there, and imports it (docker import with ENV
// PATH=/bin and CMD ["/bin/sh"]) otherwise. It returns the image id.
func EnsureImage(ctx context.Context, cli *client.Client) (string, error) {
	version, err := BusyboxVersion(ctx, BusyboxPath)
	if err != nil {
		return "", err
	}
	if inspect, err := cli.ImageInspect(ctx, ImageName); err == nil {
		if inspect.Config != nil && inspect.Config.Labels[VersionLabel] == version {
			return inspect.ID, nil
		}
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspecting %s: %w", ImageName, err)
	}
	rootfs, err := Rootfs(ctx, BusyboxPath)
	if err != nil {
		return "", err
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, ImageName, image.ImportOptions{
		Changes: []string{
			"ENV PATH=/bin",
			`CMD ["/bin/sh"]`,
			"LABEL " + VersionLabel + "=" + version,
			"LABEL org.opencontainers.image.title=unisched/busybox",
		},
		Message: "busybox-static " + version + " from Debian, imported by internal/dockertest",
	})
	if err != nil {
		return "", fmt.Errorf("importing %s: %w", ImageName, err)
	}
	defer rc.Close()
	if err := readProgress(rc); err != nil {
		return "", fmt.Errorf("importing %s: %w", ImageName, err)
	}
	inspect, err := cli.ImageInspect(ctx, ImageName)
	if err != nil {
		return "", fmt.Errorf("inspecting %s after the import: %w", ImageName, err)
	}
	if inspect.Config == nil || inspect.Config.Labels[VersionLabel] != version {
		return "", fmt.Errorf("imported %s lacks label %s=%s", ImageName, VersionLabel, version)
	}
	return inspect.ID, nil
}

// readProgress drains Docker's JSON message stream and returns the first
// error it reports (the import's HTTP status is 200 even when it fails).
func readProgress(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading the daemon's progress: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

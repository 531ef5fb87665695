package upgrade

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
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Busybox is Debian's busybox-static binary, the sandbox's only program of
// its own.
const Busybox = "/bin/busybox"

// helperApplets are the busybox applets the sandbox's scripts use.
var helperApplets = []string{"sh", "chroot", "mknod", "mkdir", "rm", "cat", "hostname", "wget", "echo", "env"}

// EnsureImage makes sure the sandbox's helper image exists on the daemon:
// "unisched/upgrade-sandbox:<sha256 prefix of busybox>", a static busybox
// and links to the applets the sandbox uses, imported from a tar (no
// registry). It returns the image name.
func EnsureImage(ctx context.Context, cli *client.Client, busybox string) (string, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return "", fmt.Errorf("the sandbox needs a static busybox (Debian: busybox-static): %w", err)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return "", fmt.Errorf("%s: %w", busybox, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: the sandbox needs busybox-static", busybox)
		}
	}
	sum := sha256.Sum256(bin)
	name := "unisched/upgrade-sandbox:" + hex.EncodeToString(sum[:6])
	if _, err := cli.ImageInspect(ctx, name); err == nil {
		return name, nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, d := range []string{"bin/", "guest/", "proc/", "sys/", "dev/", "etc/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return "", err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch}); err != nil {
		return "", err
	}
	if _, err := tw.Write(bin); err != nil {
		return "", err
	}
	for _, a := range helperApplets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch}); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, name, image.ImportOptions{
		Changes: []string{"ENV PATH=/bin", `CMD ["/bin/sh"]`},
		Message: "imagesec upgrade sandbox: busybox-static from the host",
	})
	if err != nil {
		return "", fmt.Errorf("importing %s: %w", name, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", fmt.Errorf("importing %s: %w", name, err)
		}
		if m.Error != "" {
			return "", fmt.Errorf("importing %s: %s", name, m.Error)
		}
	}
	return name, nil
}

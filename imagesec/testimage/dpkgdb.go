package testimage

import (
	"archive/tar"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// writeInfo writes what dpkg keeps in /var/lib/dpkg/info for an unpacked
// package (its file list, md5sums, maintainer scripts, conffiles, triggers),
// so that the guest's own dpkg can later upgrade it as on an installed
// system. It returns the status file's Conffiles field ("" when none), the
// md5 of each conffile as unpacked.
func writeInfo(ctx context.Context, deb, root string, f map[string]string) (string, error) {
	info := filepath.Join(root, "var/lib/dpkg/info")
	if err := os.MkdirAll(info, 0o755); err != nil {
		return "", err
	}
	name := f["Package"]
	if f["Multi-Arch"] == "same" {
		name += ":" + f["Architecture"]
	}
	ctrl, err := os.MkdirTemp("", "testimage-control-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(ctrl)
	if _, err := output(ctx, "", "dpkg-deb", "-e", deb, ctrl); err != nil {
		return "", err
	}
	ents, err := os.ReadDir(ctrl)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.Name() == "control" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(ctrl, e.Name()))
		if err != nil {
			return "", err
		}
		st, err := e.Info()
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(info, name+"."+e.Name()), b, st.Mode().Perm()); err != nil {
			return "", err
		}
	}
	list, err := fileList(ctx, deb)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(info, name+".list"), []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var field strings.Builder
	for _, cf := range strings.Fields(string(b)) {
		if !strings.HasPrefix(cf, "/") {
			continue // "remove-on-upgrade" and other flags
		}
		data, err := os.ReadFile(filepath.Join(root, cf))
		if err != nil {
			return "", fmt.Errorf("conffile %s: %w", cf, err)
		}
		sum := md5.Sum(data)
		if field.Len() == 0 {
			field.WriteString("Conffiles:\n")
		}
		fmt.Fprintf(&field, " %s %s\n", cf, hex.EncodeToString(sum[:]))
	}
	return field.String(), nil
}

// fileList is the package's paths as dpkg lists them: "/." then every
// entry of the data archive, absolute, without a trailing slash.
func fileList(ctx context.Context, deb string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var list []string
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = cmd.Wait()
			return nil, fmt.Errorf("reading the data of %s: %w", deb, err)
		}
		p := strings.TrimSuffix(strings.TrimPrefix(h.Name, "."), "/")
		if p == "" {
			p = "/."
		}
		list = append(list, p)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", deb, err)
	}
	return list, nil
}

// dpkgDirs makes the rest of dpkg's database directory, as an installed
// system has it.
func dpkgDirs(root string) error {
	db := filepath.Join(root, "var/lib/dpkg")
	for _, d := range []string{"info", "updates", "triggers", "alternatives", "parts"} {
		if err := os.MkdirAll(filepath.Join(db, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"available", "diversions", "statoverride"} {
		if err := os.WriteFile(filepath.Join(db, f), nil, 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/alternatives"), 0o755); err != nil {
		return err
	}
	// dash's postinst makes /bin/sh on a real install; the unpacked root
	// needs it for the maintainer scripts dpkg runs.
	sh := filepath.Join(root, "usr/bin/sh")
	if _, err := os.Lstat(sh); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Lstat(filepath.Join(root, "usr/bin/dash")); err == nil {
			return os.Symlink("dash", sh)
		}
	}
	return nil
}

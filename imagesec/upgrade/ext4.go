package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// fsParams are what a rebuilt filesystem keeps of the original.
type fsParams struct {
	UUID, Label       string
	BlockSize, Blocks int64
	InodeSize, Inodes int64
	Features          []string
}

// readParams reads the superblock with dumpe2fs -h (a host tool reading
// the file; nothing of the guest runs).
func readParams(ctx context.Context, img string) (*fsParams, error) {
	out, err := run(ctx, "", "dumpe2fs", "-h", img)
	if err != nil {
		return nil, err
	}
	p := &fsParams{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "Filesystem UUID":
			p.UUID = v
		case "Filesystem volume name":
			if v != "<none>" {
				p.Label = v
			}
		case "Block size":
			p.BlockSize = n
		case "Block count":
			p.Blocks = n
		case "Inode size":
			p.InodeSize = n
		case "Inode count":
			p.Inodes = n
		case "Filesystem features":
			for _, f := range strings.Fields(v) {
				// State, not layout: never asked of mke2fs.
				if f != "needs_recovery" && f != "orphan_present" && f != "orphan_file" {
					p.Features = append(p.Features, f)
				}
			}
		}
	}
	if p.BlockSize == 0 || p.Blocks == 0 || p.UUID == "" {
		return nil, fmt.Errorf("dumpe2fs -h %s: no block size, block count or UUID in its output", img)
	}
	return p, nil
}

// extract copies the filesystem's tree into dir without mounting it:
// debugfs rdump, then the owners and full modes (setuid, setgid, sticky,
// which rdump drops) set again from debugfs's own listing.
func extract(ctx context.Context, img, dir string) error {
	if _, err := run(ctx, "", "debugfs", "-R", "rdump / "+dir, img); err != nil {
		return fmt.Errorf("extracting the root filesystem: %w", err)
	}
	var cmds bytes.Buffer
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			fmt.Fprintf(&cmds, "ls -l \"/%s\"\n", strings.TrimPrefix(filepath.ToSlash(rel), "."))
		}
		return nil
	})
	if err != nil {
		return err
	}
	cf := filepath.Join(filepath.Dir(dir), "debugfs-ls.cmds")
	if err := os.WriteFile(cf, cmds.Bytes(), 0o600); err != nil {
		return err
	}
	defer os.Remove(cf)
	out, err := run(ctx, "", "debugfs", "-f", cf, img)
	if err != nil {
		return fmt.Errorf("listing the root filesystem: %w", err)
	}
	return fixModes(dir, out)
}

var lsLine = regexp.MustCompile(`^\s*\d+\s+([0-7]+)\s+\(\d+\)\s+(\d+)\s+(\d+)\s+.*?\d{1,2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2} (.*)$`)

// fixModes applies owners and modes from debugfs `ls -l` output to the
// extracted tree.
func fixModes(dir, listing string) error {
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(listing))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "debugfs: ls -l "); ok {
			cur = strings.Trim(rest, "\"")
			continue
		}
		m := lsLine.FindStringSubmatch(line)
		if m == nil || m[4] == "." || m[4] == ".." {
			continue
		}
		mode, _ := strconv.ParseUint(m[1], 8, 32)
		uid, _ := strconv.Atoi(m[2])
		gid, _ := strconv.Atoi(m[3])
		p := filepath.Join(dir, cur, m[4])
		st, err := os.Lstat(p)
		if err != nil {
			continue // a device node or fifo rdump does not make
		}
		if st.Mode()&os.ModeSymlink != 0 {
			_ = os.Lchown(p, uid, gid)
			continue
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("restoring the owner of %s: %w", p, err)
		}
		perm := os.FileMode(mode & 0o777)
		if mode&0o4000 != 0 {
			perm |= os.ModeSetuid
		}
		if mode&0o2000 != 0 {
			perm |= os.ModeSetgid
		}
		if mode&0o1000 != 0 {
			perm |= os.ModeSticky
		}
		if err := os.Chmod(p, perm); err != nil {
			return fmt.Errorf("restoring the mode of %s: %w", p, err)
		}
	}
	return sc.Err()
}

// rebuild writes dir into a new ext4 image with the original's size, UUID,
// label, block and inode sizes, inode count and features (mke2fs -d: no
// mount).
func rebuild(ctx context.Context, dir, img string, p *fsParams) error {
	args := []string{"-q", "-F", "-t", "ext4", "-b", strconv.FormatInt(p.BlockSize, 10), "-U", p.UUID}
	if p.Label != "" {
		args = append(args, "-L", p.Label)
	}
	if p.InodeSize > 0 {
		args = append(args, "-I", strconv.FormatInt(p.InodeSize, 10))
	}
	if p.Inodes > 0 {
		args = append(args, "-N", strconv.FormatInt(p.Inodes, 10))
	}
	if len(p.Features) > 0 {
		args = append(args, "-O", strings.Join(p.Features, ","))
	}
	args = append(args, "-d", dir, img, strconv.FormatInt(p.Blocks, 10))
	if _, err := run(ctx, "", "mke2fs", args...); err != nil {
		return fmt.Errorf("rebuilding the root filesystem (it must fit in the original's %d blocks): %w", p.Blocks, err)
	}
	return nil
}

func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(b), nil
}

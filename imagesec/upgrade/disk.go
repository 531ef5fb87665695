package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// toRaw makes the working raw disk: qemu-img convert for qcow2, a sparse
// copy for raw. The source is only read.
func toRaw(ctx context.Context, src, format, dst string) error {
	switch format {
	case "qcow2":
		if _, err := run(ctx, "", "qemu-img", "convert", "-f", "qcow2", "-O", "raw", src, dst); err != nil {
			return fmt.Errorf("converting the qcow2 to raw: %w", err)
		}
		return nil
	case "raw":
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		return copyRegion(src, 0, st.Size(), dst, 0, true)
	}
	return fmt.Errorf("image format %q cannot be upgraded (raw or qcow2)", format)
}

// copyRegion copies size bytes of src at from into dst at to, skipping
// all-zero blocks (dst keeps holes). create makes dst (truncated to size).
func copyRegion(src string, from, size int64, dst string, to int64, create bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	flags := os.O_WRONLY
	if create {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	out, err := os.OpenFile(dst, flags, 0o644)
	if err != nil {
		return err
	}
	if create {
		if err := out.Truncate(size); err != nil {
			out.Close()
			return err
		}
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for pos := int64(0); pos < size; {
		n := int64(len(buf))
		if size-pos < n {
			n = size - pos
		}
		got, err := in.ReadAt(buf[:n], from+pos)
		if got > 0 && !bytes.Equal(buf[:got], zero[:got]) {
			if _, werr := out.WriteAt(buf[:got], to+pos); werr != nil {
				out.Close()
				return werr
			}
		}
		pos += int64(got)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// replaceRegion puts img into disk at off: the region (size bytes) is first
// deallocated (a hole reads as zeros, so nothing of the old filesystem
// survives where the new one has zeros), then img is copied sparsely.
func replaceRegion(disk string, off, size int64, img string) error {
	st, err := os.Stat(img)
	if err != nil {
		return err
	}
	if st.Size() > size {
		return fmt.Errorf("the rebuilt filesystem (%d bytes) is larger than its partition (%d bytes)", st.Size(), size)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, size); err != nil {
		// No hole punching here (some filesystems): write zeros.
		zero := make([]byte, 1<<20)
		for pos := int64(0); pos < size; {
			n := int64(len(zero))
			if size-pos < n {
				n = size - pos
			}
			if _, err := f.WriteAt(zero[:n], off+pos); err != nil {
				f.Close()
				return err
			}
			pos += n
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return copyRegion(img, 0, st.Size(), disk, off, false)
}

// partitionTable is sfdisk's dump of a disk's table, to show the rebuilt
// disk kept the layout (sfdisk reads the file; nothing is changed).
func partitionTable(ctx context.Context, disk string) (string, error) {
	out, err := run(ctx, "", "sfdisk", "--dump", disk)
	if err != nil {
		return "", err
	}
	// The first lines name the device (the file path): compare the rest.
	var keep []string
	for _, l := range bytes.Split([]byte(out), []byte("\n")) {
		if bytes.HasPrefix(l, []byte("device:")) {
			continue
		}
		if i := bytes.IndexByte(l, ':'); i > 0 && bytes.HasPrefix(l, []byte("/")) {
			l = l[i:]
		}
		keep = append(keep, string(l))
	}
	return fmt.Sprint(keep), nil
}

package inspect

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// disk is the raw view of an image: a qcow2 is converted to a sparse raw
// file in the work directory (removed by close), a raw image is read in place.
type disk struct {
	f      *os.File
	size   int64
	format string
	tmp    string
}

func (d *disk) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

func (d *disk) close() {
	d.f.Close()
	if d.tmp != "" {
		os.Remove(d.tmp)
	}
}

// magics of image formats that are not raw. Only qcow2 is read (through
// qemu-img); the others are named in the error.
var magics = []struct {
	format string
	off    int
	magic  string
}{
	{"qcow2", 0, "QFI\xfb"},
	{"vmdk", 0, "KDMV"},
	{"vmdk (descriptor)", 0, "# Disk DescriptorFile"},
	{"vhdx", 0, "vhdxfile"},
	{"vdi", 64, "\x7f\x10\xda\xbe"},
	{"vpc", 0, "conectix"},
}

// detectFormat reads the first bytes of the file; anything not recognised
// is raw (as qemu-img's probing also concludes).
func detectFormat(f *os.File) (string, error) {
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading image header: %w", err)
	}
	head = head[:n]
	for _, m := range magics {
		if len(head) >= m.off+len(m.magic) && string(head[m.off:m.off+len(m.magic)]) == m.magic {
			return m.format, nil
		}
	}
	return "raw", nil
}

// qemuInfo is the part of `qemu-img info --output=json` that matters here.
type qemuInfo struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
	DirtyFlag       bool   `json:"dirty-flag"`
	Encrypted       bool   `json:"encrypted"`
	FormatSpecific  struct {
		Data struct {
			Corrupt bool `json:"corrupt"`
		} `json:"data"`
	} `json:"format-specific"`
}

// openDisk opens path as a raw disk, converting a qcow2 first. progress,
// when not nil, gets the conversion's percentage.
func openDisk(ctx context.Context, path, workDir string, progress func(pct float64)) (*disk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	format, err := detectFormat(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	switch format {
	case "raw":
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("opening image: %w", err)
		}
		if !st.Mode().IsRegular() {
			f.Close()
			return nil, invalid("%s is not a regular file", path)
		}
		return &disk{f: f, size: st.Size(), format: "raw"}, nil
	case "qcow2":
		f.Close()
		return convertQcow2(ctx, path, workDir, progress)
	default:
		f.Close()
		return nil, &UnsupportedError{What: "image format", Name: format, Hint: "supported: raw, qcow2; convert with qemu-img convert -O qcow2"}
	}
}

func convertQcow2(ctx context.Context, path, workDir string, progress func(float64)) (*disk, error) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return nil, errors.New("reading qcow2 needs qemu-img: install the Debian package qemu-utils")
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", "-f", "qcow2", path).Output()
	if err != nil {
		return nil, invalid("qemu-img info: %s", exitText(err))
	}
	var info qemuInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("reading qemu-img info output: %w", err)
	}
	// A backing file would be opened on this host by the path the image
	// names: never follow it for an image from outside.
	if info.BackingFilename != "" {
		return nil, &UnsupportedError{What: "image format", Name: "qcow2 with a backing file (" + info.BackingFilename + ")", Hint: "flatten it first: qemu-img convert -O qcow2"}
	}
	if info.Encrypted {
		return nil, &UnsupportedError{What: "image format", Name: "encrypted qcow2", Hint: "an encrypted image cannot be inspected without its key"}
	}
	if info.FormatSpecific.Data.Corrupt {
		return nil, invalid("the qcow2 image is marked corrupt")
	}
	// check finds truncation and broken tables before convert reads
	// garbage: exit 0 clean, 3 only leaked clusters (harmless); anything
	// else is damage.
	chk := exec.CommandContext(ctx, "qemu-img", "check", "-f", "qcow2", path)
	var chkOut bytes.Buffer
	chk.Stdout, chk.Stderr = &chkOut, &chkOut
	if err := chk.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			return nil, invalid("qemu-img check found the qcow2 damaged: %s", firstLines(chkOut.String(), 3))
		}
	}
	if workDir == "" {
		workDir = os.TempDir()
	}
	tf, err := os.CreateTemp(workDir, "imagesec-*.raw")
	if err != nil {
		return nil, fmt.Errorf("creating the raw copy: %w", err)
	}
	tmp := tf.Name()
	tf.Close()
	fail := func(err error) (*disk, error) { os.Remove(tmp); return nil, err }
	// -p prints "(12.34/100%)" updates separated by carriage returns.
	cmd := exec.CommandContext(ctx, "qemu-img", "convert", "-p", "-f", "qcow2", "-O", "raw", path, tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("running qemu-img convert: %w", err))
	}
	sc := bufio.NewScanner(stdout)
	sc.Split(splitCR)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(t, "("); ok {
			if v, _, ok := strings.Cut(p, "/"); ok && progress != nil {
				if pct, err := strconv.ParseFloat(v, 64); err == nil {
					progress(pct)
				}
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return fail(invalid("qemu-img convert: %v: %s", err, firstLines(stderr.String(), 3)))
	}
	f, err := os.Open(tmp)
	if err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(err)
	}
	if st.Size() != info.VirtualSize {
		f.Close()
		return fail(invalid("converted size %d differs from the qcow2 virtual size %d", st.Size(), info.VirtualSize))
	}
	return &disk{f: f, size: st.Size(), format: "qcow2", tmp: tmp}, nil
}

func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return firstLines(string(ee.Stderr), 3)
	}
	return err.Error()
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "; ")
}

// fileChecksum is the sha256 of the file as given, which identifies the
// image across inspections (Glance's os_hash_value can be sha256 too).
func fileChecksum(path string) (string, int64, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return "", 0, fmt.Errorf("opening image: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("reading image for its checksum: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

package collect

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
)

// ErrChecksum: the downloaded data does not have the checksum Glance
// recorded for the image.
var ErrChecksum = errors.New("checksum mismatch")

// Hash is the checksum Glance records for an image's data: its multihash
// (os_hash_algo, os_hash_value), else the legacy md5 checksum.
type Hash struct {
	Algo  string `json:"algo"`
	Value string `json:"value"`
}

func (h Hash) String() string { return h.Algo + ":" + h.Value }

func newHash(algo string) (hash.Hash, error) {
	switch algo {
	case "sha512":
		return sha512.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha256":
		return sha256.New(), nil
	case "md5":
		return md5.New(), nil
	}
	return nil, fmt.Errorf("hash algorithm %q is not supported (sha512, sha384, sha256, md5)", algo)
}

// Download stores the data of Glance image id at path, verified against
// want. A partial file already at path is resumed with an HTTP Range
// request (when Glance answers the range with 206; a 200 starts over);
// the hash covers the whole file either way. A mismatch removes the file.
// progress, when set, gets the bytes on disk and the total after each
// chunk. It returns the bytes transferred by this call.
func Download(ctx context.Context, c *gophercloud.ServiceClient, id, path string, size int64, want Hash, progress func(done, total int64)) (int64, error) {
	h, err := newHash(want.Algo)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	have, err := io.Copy(h, f) // the partial file's prefix, hashed
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	if size > 0 && have > size {
		// longer than the image: not a prefix of it
		if err := restart(f, &have, h); err != nil {
			return 0, err
		}
	}
	var got int64
	if size <= 0 || have < size {
		hdr := map[string]string{}
		if have > 0 {
			hdr["Range"] = "bytes=" + strconv.FormatInt(have, 10) + "-"
		}
		resp, err := c.Get(ctx, c.ServiceURL("images", id, "file"), nil, &gophercloud.RequestOpts{
			MoreHeaders: hdr, KeepResponseBody: true, OkCodes: []int{http.StatusOK, http.StatusPartialContent}})
		if err != nil {
			return 0, fmt.Errorf("downloading glance image %s: %w", id, err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent && contentRangeStart(resp.Header.Get("Content-Range")) == have:
		default:
			// the whole image (no range support, or not from where we are)
			if err := restart(f, &have, h); err != nil {
				return 0, err
			}
		}
		if size <= 0 && resp.ContentLength > 0 {
			size = have + resp.ContentLength
		}
		if _, err := f.Seek(have, io.SeekStart); err != nil {
			return 0, err
		}
		buf := make([]byte, 1<<20)
		for {
			n, rerr := resp.Body.Read(buf)
			if n > 0 {
				if _, err := f.Write(buf[:n]); err != nil {
					return got, fmt.Errorf("writing %s: %w", path, err)
				}
				h.Write(buf[:n])
				got += int64(n)
				if progress != nil {
					progress(have+got, size)
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return got, fmt.Errorf("downloading glance image %s after %d bytes: %w", id, have+got, rerr)
			}
		}
	}
	if err := f.Sync(); err != nil {
		return got, err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(sum, want.Value) {
		f.Close()
		os.Remove(path)
		return got, fmt.Errorf("glance image %s: %w: %s of the %d bytes downloaded is %s, glance says %s",
			id, ErrChecksum, want.Algo, have+got, sum, want.Value)
	}
	return got, nil
}

func restart(f *os.File, have *int64, h hash.Hash) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("truncating %s: %w", f.Name(), err)
	}
	*have = 0
	h.Reset()
	return nil
}

// contentRangeStart is the first byte of "bytes 100-199/200"; -1 if none.
func contentRangeStart(v string) int64 {
	v, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return -1
	}
	start, _, ok := strings.Cut(v, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

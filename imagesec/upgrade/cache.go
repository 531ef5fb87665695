package upgrade

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/unisched/unisched/imagesec/advise"
)

// ErrChecksum: a downloaded .deb is not what the feed's index says.
var ErrChecksum = errors.New("package checksum mismatch")

// Cache keeps downloaded .debs by (name, version, architecture, sha256 from
// the index), so images sharing a base download each fix once. A file is
// only ever in the cache under the sha256 it was checked against; entries
// are re-hashed when used (a few MB, cheap next to an upgrade) so a
// damaged cache is refetched rather than installed.
type Cache struct {
	Dir string

	mu     sync.Mutex
	hits   int
	misses int
	bytes  int64
}

// NewCache opens (creating) a cache directory.
func NewCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the package cache %s: %w", dir, err)
	}
	return &Cache{Dir: dir}, nil
}

// Stats returns the hits, misses and downloaded bytes so far.
func (c *Cache) Stats() (hits, misses int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses, c.bytes
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9.+~_-]`)

// path is where an entry lives: <sha256>/<name>_<version>_<arch>.deb.
func (c *Cache) path(e *advise.Entry) string {
	name := safeName.ReplaceAllString(fmt.Sprintf("%s_%s_%s", e.Name, e.Version, e.Architecture), "_")
	return filepath.Join(c.Dir, e.SHA256, name+".deb")
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Get returns the local path of the entry's .deb, downloading it when the
// cache does not hold it. The download goes to a temporary file, is checked
// against the index's sha256 and size, and only then renamed into place.
// progress, when set, gets the bytes read so far.
func (c *Cache) Get(ctx context.Context, e *advise.Entry, progress func(n int64)) (string, error) {
	if !hexSHA256.MatchString(e.SHA256) {
		return "", fmt.Errorf("%w: the feed gives %s %s no SHA256 (%q): refusing an unverifiable package", ErrChecksum, e.Name, e.Version, e.SHA256)
	}
	if e.URL == "" {
		return "", fmt.Errorf("the feed gives %s %s no Filename", e.Name, e.Version)
	}
	p := c.path(e)
	if sum, err := fileSHA256(p); err == nil && sum == e.SHA256 {
		c.mu.Lock()
		c.hits++
		c.mu.Unlock()
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("package cache: %w", err)
	}
	rc, err := advise.Open(ctx, e.URL)
	if err != nil {
		return "", fmt.Errorf("downloading %s %s: %w", e.Name, e.Version, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".download-")
	if err != nil {
		return "", fmt.Errorf("package cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	var r io.Reader = rc
	if e.Size > 0 {
		r = io.LimitReader(rc, e.Size+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h, progressWriter(progress)), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("downloading %s from %s: %w", e.Name, e.URL, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != e.SHA256 || (e.Size > 0 && n != e.Size) {
		return "", fmt.Errorf("%w: %s from %s: sha256 %s and %d bytes, the index says %s and %d bytes", ErrChecksum,
			e.Name, e.URL, sum, n, e.SHA256, e.Size)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("package cache: %w", err)
	}
	c.mu.Lock()
	c.misses++
	c.bytes += n
	c.mu.Unlock()
	return p, nil
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) {
	if p != nil {
		p(int64(len(b)))
	}
	return len(b), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

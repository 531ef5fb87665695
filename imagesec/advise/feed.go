package advise

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// ErrFeed marks a fix feed that could not be read or makes no sense (no
// index, a malformed index, a suite for another release): bad input, not
// an internal failure.
var ErrFeed = errors.New("fix feed")

// Feed is an apt repository's binary package index, as advise needs it.
type Feed struct {
	// URL is where the index was read (the Packages file, after choosing
	// among Packages.xz, Packages.gz and Packages).
	URL string `json:"url"`
	// Base is what the entries' Filename is relative to.
	Base     string `json:"base"`
	Suite    string `json:"suite,omitempty"`    // Release's Suite, when there is a Release
	Codename string `json:"codename,omitempty"` // Release's Codename
	// Packages by name, every version the index lists.
	Packages map[string][]Entry `json:"-"`
}

// Entry is one paragraph of a Packages index.
type Entry struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	Architecture  string `json:"architecture"`
	Source        string `json:"source"`
	SourceVersion string `json:"source_version"`
	Filename      string `json:"filename"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256"`
	// URL is Filename resolved against the feed's base.
	URL string `json:"url"`
}

// Count is the number of entries.
func (f *Feed) Count() int {
	n := 0
	for _, es := range f.Packages {
		n += len(es)
	}
	return n
}

// LoadFeed reads a fix feed. The location is a local path, a file:// URL
// or an http(s):// URL of either a Packages file (plain, .gz or .xz) or the
// directory holding one: a flat repository, or a suite's
// dists/<suite>/<component>/binary-<arch>/ directory (Filename is then
// relative to the part before /dists/). The Release file beside the index
// (flat) or of the suite (dists/<suite>/Release) gives Suite and Codename
// when there is one.
func LoadFeed(ctx context.Context, location string) (*Feed, error) {
	u, err := parseLocation(location)
	if err != nil {
		return nil, err
	}
	var candidates []*url.URL
	base := path.Base(u.Path)
	if base == "Packages" || base == "Packages.gz" || base == "Packages.xz" {
		candidates = []*url.URL{u}
	} else {
		dir := *u
		dir.Path = strings.TrimSuffix(dir.Path, "/") + "/"
		for _, n := range []string{"Packages.xz", "Packages.gz", "Packages"} {
			c := dir
			c.Path += n
			candidates = append(candidates, &c)
		}
	}
	var data []byte
	var used *url.URL
	var tried []string
	for _, c := range candidates {
		b, err := fetch(ctx, c)
		if errors.Is(err, errNotFound) {
			tried = append(tried, c.String())
			continue
		}
		if err != nil {
			return nil, err
		}
		data, used = b, c
		break
	}
	if used == nil {
		return nil, fmt.Errorf("%w: no package index at %s (tried %s)", ErrFeed, location, strings.Join(tried, ", "))
	}
	switch path.Ext(used.Path) {
	case ".gz":
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFeed, used, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFeed, used, err)
		}
	case ".xz":
		xr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFeed, used, err)
		}
		if data, err = io.ReadAll(xr); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFeed, used, err)
		}
	}
	dir := *used
	dir.Path = path.Dir(used.Path) + "/"
	feed := &Feed{URL: used.String(), Packages: map[string][]Entry{}}
	baseURL := dir
	releaseURL := dir
	releaseURL.Path += "Release"
	if i := strings.LastIndex(dir.Path, "/dists/"); i >= 0 {
		baseURL.Path = dir.Path[:i+1]
		rest := strings.SplitN(dir.Path[i+len("/dists/"):], "/", 2)
		releaseURL.Path = dir.Path[:i] + "/dists/" + rest[0] + "/Release"
	}
	feed.Base = baseURL.String()
	if err := parseIndex(data, &baseURL, feed); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFeed, used, err)
	}
	rel, err := fetch(ctx, &releaseURL)
	switch {
	case errors.Is(err, errNotFound):
	case err != nil:
		return nil, err
	default:
		f := paragraphFields(string(rel))
		feed.Suite, feed.Codename = f["Suite"], f["Codename"]
	}
	return feed, nil
}

func parseLocation(location string) (*url.URL, error) {
	if location == "" {
		return nil, fmt.Errorf("%w: no location given", ErrFeed)
	}
	if !strings.Contains(location, "://") {
		abs, err := filepath.Abs(location)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFeed, location, err)
		}
		return &url.URL{Scheme: "file", Path: abs}, nil
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFeed, location, err)
	}
	switch u.Scheme {
	case "file", "http", "https":
		return u, nil
	}
	return nil, fmt.Errorf("%w: %s: scheme %q not supported (a path, file://, http:// or https://)", ErrFeed, location, u.Scheme)
}

var errNotFound = errors.New("not found")

// maxIndex bounds what is read of one file (a Debian main Packages index
// is ~50 MB uncompressed; security suites are far smaller).
const maxIndex = 256 << 20

// fetch reads a whole feed file; errNotFound when it does not exist.
func fetch(ctx context.Context, u *url.URL) ([]byte, error) {
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, errNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrFeed, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxIndex+1))
		if err == nil && len(b) > maxIndex {
			err = fmt.Errorf("larger than %d bytes", maxIndex)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading %s: %v", ErrFeed, u.Path, err)
		}
		return b, nil
	}
	rc, err := Open(ctx, u.String())
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxIndex+1))
	if err == nil && len(b) > maxIndex {
		err = fmt.Errorf("larger than %d bytes", maxIndex)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrFeed, u, err)
	}
	return b, nil
}

// Open opens a file of a feed (an index or a .deb) by URL: file:// or
// http(s)://. A missing file wraps errNotFound; an unreachable server is
// an ErrFeed error naming the URL.
func Open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFeed, rawURL, err)
	}
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s: %w", ErrFeed, rawURL, errNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrFeed, err)
		}
		return f, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFeed, rawURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %s: %v", ErrFeed, rawURL, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrFeed, rawURL, errNotFound)
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: fetching %s: HTTP %s", ErrFeed, rawURL, resp.Status)
	}
	return resp.Body, nil
}

// parseIndex reads the paragraphs of a Packages file into feed.
func parseIndex(data []byte, base *url.URL, feed *Feed) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var para strings.Builder
	line := 0
	flush := func() error {
		if para.Len() == 0 {
			return nil
		}
		f := paragraphFields(para.String())
		para.Reset()
		e := Entry{Name: f["Package"], Version: f["Version"], Architecture: f["Architecture"],
			Filename: f["Filename"], SHA256: strings.ToLower(f["SHA256"])}
		if e.Name == "" || e.Version == "" {
			return fmt.Errorf("paragraph ending at line %d has no Package or Version", line)
		}
		if _, err := Compare(FormatDeb, e.Version, e.Version); err != nil {
			return fmt.Errorf("package %s: %v", e.Name, err)
		}
		if s := f["Size"]; s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("package %s: bad Size %q", e.Name, s)
			}
			e.Size = n
		}
		e.Source, e.SourceVersion = e.Name, e.Version
		if s := f["Source"]; s != "" {
			name, ver, ok := strings.Cut(s, " (")
			e.Source = strings.TrimSpace(name)
			if ok {
				e.SourceVersion = strings.TrimSuffix(strings.TrimSpace(ver), ")")
			}
		}
		if e.Filename != "" {
			ref, err := url.Parse(e.Filename)
			if err != nil || ref.IsAbs() || strings.HasPrefix(e.Filename, "/") || strings.Contains(e.Filename, "..") {
				return fmt.Errorf("package %s: Filename %q is not a path inside the repository", e.Name, e.Filename)
			}
			e.URL = base.ResolveReference(&url.URL{Path: e.Filename}).String()
		}
		feed.Packages[e.Name] = append(feed.Packages[e.Name], e)
		return nil
	}
	for sc.Scan() {
		line++
		l := sc.Text()
		if strings.TrimSpace(l) == "" {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		para.WriteString(l)
		para.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

// paragraphFields reads the single-line fields of a deb822 paragraph
// (continuation lines are skipped: none of the fields used has them).
func paragraphFields(para string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(para, "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			f[k] = strings.TrimSpace(v)
		}
	}
	return f
}

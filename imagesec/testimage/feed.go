package testimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/ulikunitz/xz"
)

// FixSuffix is appended to the version of each package the test fix feed
// upgrades: "<version>+unisched1" sorts after "<version>" by dpkg's rules.
const FixSuffix = "+unisched1"

// Feed is the test fix feed: a flat apt repository (Packages, Packages.gz,
// Packages.xz, Release; .debs under pool/) of real .debs of the image
// repacked with higher versions, the same versions of some packages (already
// current) and a lower one, plus an advisory file.
type Feed struct {
	Dir        string `json:"dir"`        // the repository: a file:// feed is this path
	Advisories string `json:"advisories"` // advisories.yaml in Dir
	// Fixes are the packages the feed upgrades (zlib1g, libzstd1, tar).
	Fixes []Fix `json:"fixes"`
	// Current are in the feed at the version the image has (never
	// advised); Older at a lower version ("~old1").
	Current []string `json:"current"`
	Older   []string `json:"older"`
	// BadPostinst is a second repository whose only package (libmd0,
	// bumped) has a postinst that exits 1.
	BadPostinst    string `json:"bad_postinst"`
	BadPostinstFix Fix    `json:"bad_postinst_fix"`
}

// Fix is one upgraded package of the feed.
type Fix struct {
	Name         string `json:"name"`
	Architecture string `json:"architecture"`
	From         string `json:"from"`
	To           string `json:"to"`
	Filename     string `json:"filename"` // relative to the repository
	SHA256       string `json:"sha256"`
	Advisory     string `json:"advisory,omitempty"` // the advisory file's id for it, if any
	Severity     string `json:"severity,omitempty"`
}

// PostinstMarker starts the line the libzstd1 fix's postinst prints, with
// the host name it runs on (uname -n): the upgrade tests read it in dpkg's
// output to see the script ran in the sandbox.
const PostinstMarker = "unisched-postinst: configured on "

// buildFeed makes the feed under out/feed and out/feed-badpostinst from the
// downloaded .debs.
func buildFeed(ctx context.Context, tmp, out string, debs []string, pkgs []Package) (*Feed, error) {
	byName := map[string]string{}
	for _, d := range debs {
		name, _, _ := strings.Cut(filepath.Base(d), "_")
		byName[name] = d
	}
	version := map[string]Package{}
	for _, p := range pkgs {
		version[p.Name] = p
	}
	feed := &Feed{Dir: "feed", Advisories: "feed/advisories.yaml", BadPostinst: "feed-badpostinst"}
	dir := filepath.Join(out, "feed")
	pool := filepath.Join(dir, "pool")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return nil, err
	}
	work := filepath.Join(tmp, "repack")
	fixes := []struct{ name, postinst, advisory, severity string }{
		{"zlib1g", "", "DSA-9001-1", "high"},
		{"libzstd1", "#!/bin/sh\nset -e\necho \"" + PostinstMarker + "$(uname -n)\"\n", "", ""},
		{"tar", "", "DSA-9002-1", "medium"},
	}
	for _, f := range fixes {
		p, ok := version[f.name]
		if !ok || byName[f.name] == "" {
			return nil, fmt.Errorf("feed: %s is not in the image", f.name)
		}
		to := p.Version + FixSuffix
		rel, sum, err := repack(ctx, work, byName[f.name], pool, to, f.postinst)
		if err != nil {
			return nil, err
		}
		feed.Fixes = append(feed.Fixes, Fix{Name: f.name, Architecture: p.Architecture, From: p.Version, To: to,
			Filename: rel, SHA256: sum, Advisory: f.advisory, Severity: f.severity})
	}
	for _, name := range []string{"bash", "base-files"} {
		if err := copyFile(byName[name], filepath.Join(pool, filepath.Base(byName[name]))); err != nil {
			return nil, err
		}
		feed.Current = append(feed.Current, name)
	}
	if _, _, err := repack(ctx, work, byName["dash"], pool, version["dash"].Version+"~old1", ""); err != nil {
		return nil, err
	}
	feed.Older = []string{"dash"}
	if err := writeRepo(ctx, dir); err != nil {
		return nil, err
	}
	var adv strings.Builder
	adv.WriteString("# Test advisories for imagesec's fix feed (made by imagesec/testimage).\nadvisories:\n")
	zlib, tarp, bash := version["zlib1g"], version["tar"], version["bash"]
	fmt.Fprintf(&adv, "  - id: DSA-9001-1\n    source: %s\n    fixed: %q\n    severity: high\n    distro: debian\n    release: bookworm\n", zlib.Source, zlib.Version+FixSuffix)
	fmt.Fprintf(&adv, "  - id: DSA-9002-1\n    package: tar\n    fixed: %q\n    severity: medium\n    distro: debian\n    release: \"12\"\n", tarp.Version+FixSuffix)
	// Fixed in the version the image has: not advised.
	fmt.Fprintf(&adv, "  - id: DSA-9003-1\n    package: bash\n    fixed: %q\n    severity: critical\n    distro: debian\n    release: bookworm\n", bash.Version)
	// Another release: not advised.
	fmt.Fprintf(&adv, "  - id: DSA-9004-1\n    package: libzstd1\n    fixed: \"9.9\"\n    severity: low\n    distro: debian\n    release: bullseye\n")
	if err := os.WriteFile(filepath.Join(dir, "advisories.yaml"), []byte(adv.String()), 0o644); err != nil {
		return nil, err
	}

	bad := filepath.Join(out, "feed-badpostinst")
	if err := os.MkdirAll(filepath.Join(bad, "pool"), 0o755); err != nil {
		return nil, err
	}
	md := version["libmd0"]
	rel, sum, err := repack(ctx, work, byName["libmd0"], filepath.Join(bad, "pool"), md.Version+FixSuffix, "#!/bin/sh\necho 'unisched test: this postinst fails' >&2\nexit 1\n")
	if err != nil {
		return nil, err
	}
	feed.BadPostinstFix = Fix{Name: "libmd0", Architecture: md.Architecture, From: md.Version, To: md.Version + FixSuffix, Filename: rel, SHA256: sum}
	if err := writeRepo(ctx, bad); err != nil {
		return nil, err
	}
	return feed, nil
}

// repack rebuilds a .deb with another version (and, when postinst is not
// empty, that postinst) into pool; it returns the new file's path relative
// to pool's parent and its sha256.
func repack(ctx context.Context, work, deb, pool, version, postinst string) (string, string, error) {
	dir := filepath.Join(work, filepath.Base(deb))
	if err := os.RemoveAll(dir); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", "", err
	}
	if _, err := output(ctx, "", "dpkg-deb", "-R", deb, dir); err != nil {
		return "", "", err
	}
	ctl := filepath.Join(dir, "DEBIAN", "control")
	b, err := os.ReadFile(ctl)
	if err != nil {
		return "", "", err
	}
	re := regexp.MustCompile(`(?m)^Version: .*$`)
	if !re.Match(b) {
		return "", "", fmt.Errorf("%s: no Version field", deb)
	}
	b = re.ReplaceAll(b, []byte("Version: "+version))
	if err := os.WriteFile(ctl, b, 0o644); err != nil {
		return "", "", err
	}
	if postinst != "" {
		if err := os.WriteFile(filepath.Join(dir, "DEBIAN", "postinst"), []byte(postinst), 0o755); err != nil {
			return "", "", err
		}
	}
	name, _, _ := strings.Cut(filepath.Base(deb), "_")
	arch := strings.TrimSuffix(filepath.Base(deb)[strings.LastIndex(filepath.Base(deb), "_")+1:], ".deb")
	file := fmt.Sprintf("%s_%s_%s.deb", name, strings.ReplaceAll(version, ":", "%3a"), arch)
	outDeb := filepath.Join(pool, file)
	if _, err := output(ctx, "", "dpkg-deb", "-b", dir, outDeb); err != nil {
		return "", "", err
	}
	sum, err := fileSHA256(outDeb)
	return "pool/" + file, sum, err
}

// writeRepo writes a flat repository's Packages (plain, gzip, xz) for the
// .debs under dir/pool, and its Release, as apt-ftparchive would.
func writeRepo(ctx context.Context, dir string) error {
	debs, err := filepath.Glob(filepath.Join(dir, "pool", "*.deb"))
	if err != nil {
		return err
	}
	sort.Strings(debs)
	var idx bytes.Buffer
	for _, deb := range debs {
		control, err := output(ctx, "", "dpkg-deb", "-f", deb)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(deb)
		if err != nil {
			return err
		}
		m, s := md5.Sum(data), sha256.Sum256(data)
		idx.WriteString(strings.TrimRight(control, "\n") + "\n")
		fmt.Fprintf(&idx, "Filename: pool/%s\nSize: %d\nMD5sum: %s\nSHA256: %s\n\n", filepath.Base(deb), len(data),
			hex.EncodeToString(m[:]), hex.EncodeToString(s[:]))
	}
	var gz, xzb bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(idx.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		return err
	}
	if _, err := xw.Write(idx.Bytes()); err != nil {
		return err
	}
	if err := xw.Close(); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{{"Packages", idx.Bytes()}, {"Packages.gz", gz.Bytes()}, {"Packages.xz", xzb.Bytes()}}
	var rel strings.Builder
	rel.WriteString("Origin: unisched-test\nLabel: unisched test fixes\nSuite: stable-security\nCodename: bookworm-security\n")
	rel.WriteString("Date: Sat, 01 Jan 2000 00:00:00 UTC\nArchitectures: amd64 arm64 all\nComponents: main\nSHA256:\n")
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
		s := sha256.Sum256(f.data)
		fmt.Fprintf(&rel, " %s %d %s\n", hex.EncodeToString(s[:]), len(f.data), f.name)
	}
	return os.WriteFile(filepath.Join(dir, "Release"), []byte(rel.String()), 0o644)
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

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

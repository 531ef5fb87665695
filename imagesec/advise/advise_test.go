package advise_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/testimage"
)

// serve serves dir over HTTP on loopback (a port of 20500-20599, this
// package's range) until the test ends; it returns the base URL.
func serve(t testing.TB, dir string) string {
	t.Helper()
	var ln net.Listener
	var err error
	for port := 20500; port < 20600; port++ {
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
	}
	if ln == nil {
		t.Fatalf("no free port in 20500-20599: %v", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

func inspected(t testing.TB, path string) *inspect.Report {
	t.Helper()
	r, err := inspect.Inspect(context.Background(), path, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func target(r *inspect.Report) advise.Target {
	return advise.Target{PackageFormat: r.PackageFormat, Distro: r.OS.Distro, Version: r.OS.Version, Codename: r.OS.Codename}
}

// TestAdviseTestFeed advises the real test image against the test feed in
// every form a feed location takes: exactly the repacked packages are
// upgrades, those the feed has at the image's version (bash, base-files)
// or lower (dash) are not, and the advisories land on the right packages.
func TestAdviseTestFeed(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	r := inspected(t, im.RawGPT)
	advs, err := advise.LoadAdvisories(im.Feed.Advisories)
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, im.Feed.Dir)
	for _, loc := range []string{
		im.Feed.Dir, "file://" + im.Feed.Dir, "file://" + filepath.Join(im.Feed.Dir, "Packages.gz"),
		filepath.Join(im.Feed.Dir, "Packages"), base, base + "Packages.gz", base + "Packages",
	} {
		t.Run(loc, func(t *testing.T) {
			feed, err := advise.LoadFeed(ctx, loc)
			if err != nil {
				t.Fatal(err)
			}
			if feed.Codename != "bookworm-security" || feed.Suite != "stable-security" {
				t.Errorf("Release: suite %q codename %q", feed.Suite, feed.Codename)
			}
			if strings.HasSuffix(loc, "/") && !strings.HasSuffix(feed.URL, "Packages.xz") {
				t.Errorf("index read from %s, want Packages.xz first", feed.URL)
			}
			plan, err := advise.Advise(target(r), r.Packages, feed, advs)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Upgrades) != len(im.Feed.Fixes) {
				t.Fatalf("%d upgrades %+v, want %d", len(plan.Upgrades), plan.Upgrades, len(im.Feed.Fixes))
			}
			want := map[string]testimage.Fix{}
			for _, f := range im.Feed.Fixes {
				want[f.Name] = f
			}
			for _, u := range plan.Upgrades {
				f, ok := want[u.Name]
				if !ok {
					t.Errorf("unexpected upgrade %+v", u)
					continue
				}
				if u.From != f.From || u.To != f.To || u.Architecture != f.Architecture || !u.Available || u.Deb == nil ||
					u.Deb.SHA256 != f.SHA256 || !strings.HasSuffix(u.Deb.URL, strings.ReplaceAll(f.Filename, "%", "%25")) {
					t.Errorf("upgrade %+v (deb %+v), want %+v", u, u.Deb, f)
				}
				var ids []string
				for _, a := range u.Advisories {
					ids = append(ids, a.ID)
				}
				if strings.Join(ids, ",") != f.Advisory || u.Severity != f.Severity {
					t.Errorf("%s: advisories %v severity %q, want %q %q", u.Name, ids, u.Severity, f.Advisory, f.Severity)
				}
			}
			if plan.Checked != len(im.Packages) || plan.Current != len(im.Feed.Current)+len(im.Feed.Older) {
				t.Errorf("checked %d current %d, want %d and %d", plan.Checked, plan.Current, len(im.Packages), len(im.Feed.Current)+len(im.Feed.Older))
			}
		})
	}
}

// TestAdvisoriesOnly: without a feed the advisories alone name the fixes,
// not available for upgrade; those of another release or already fixed
// are left out.
func TestAdvisoriesOnly(t *testing.T) {
	im := testimage.ForTest(t)
	r := inspected(t, im.QcowMBR)
	advs, err := advise.LoadAdvisories(im.Feed.Advisories)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := advise.Advise(target(r), r.Packages, nil, advs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range plan.Upgrades {
		if u.Available || u.Deb != nil {
			t.Errorf("%s: available without a feed", u.Name)
		}
		got = append(got, u.Name+"="+u.To+"/"+u.Advisories[0].ID)
	}
	var want []string
	for _, f := range im.Feed.Fixes {
		if f.Advisory != "" {
			want = append(want, f.Name+"="+f.To+"/"+f.Advisory)
		}
	}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("upgrades %v, want %v", got, want)
	}
}

// TestAdviseRPM applies rpm's rules (epochs) to the rpm test image.
func TestAdviseRPM(t *testing.T) {
	im := testimage.ForTest(t)
	if im.RPM == "" {
		t.Skip("no rpm test image (rpmbuild missing)")
	}
	r := inspected(t, im.RPM)
	advs := []advise.Advisory{
		{ID: "RHSA-1", Package: "imagesec-hello", Fixed: "2:1.2.3-5", Severity: "high"},
		{ID: "RHSA-2", Package: "imagesec-hello", Fixed: "1:9.9-9"},         // lower epoch: already fixed
		{ID: "RHSA-3", Package: "imagesec-tools", Fixed: "0.9-1.el9~rc1"},   // ~ sorts first: fixed
		{ID: "RHSA-4", Package: "imagesec-tools", Fixed: "0.9-1.el9^post1"}, // ^ sorts after: needed
	}
	plan, err := advise.Advise(target(r), r.Packages, nil, advs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range plan.Upgrades {
		got = append(got, u.Name+" "+u.From+" -> "+u.To)
	}
	want := "imagesec-hello 2:1.2.3-4 -> 2:1.2.3-5,imagesec-tools 0.9-1.el9 -> 0.9-1.el9^post1"
	if strings.Join(got, ",") != want {
		t.Errorf("got %q, want %q", strings.Join(got, ","), want)
	}
	feed := &advise.Feed{Packages: map[string][]advise.Entry{}}
	if _, err := advise.Advise(target(r), r.Packages, feed, nil); !errors.Is(err, advise.ErrMismatch) {
		t.Errorf("apt feed for an rpm image: %v", err)
	}
}

// TestBadFeeds: an unreachable server, a missing index, a feed for another
// release, a malformed index and bad advisory files are clear errors.
func TestBadFeeds(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	r := inspected(t, im.RawMBR)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()
	if _, err := advise.LoadFeed(ctx, closed); !errors.Is(err, advise.ErrFeed) || !strings.Contains(err.Error(), "connect") {
		t.Errorf("unreachable feed: %v", err)
	}
	empty := t.TempDir()
	if _, err := advise.LoadFeed(ctx, empty); !errors.Is(err, advise.ErrFeed) || !strings.Contains(err.Error(), "no package index") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := advise.LoadFeed(ctx, serve(t, empty)); !errors.Is(err, advise.ErrFeed) {
		t.Errorf("empty http dir: %v", err)
	}
	if _, err := advise.LoadFeed(ctx, "ftp://127.0.0.1/x"); !errors.Is(err, advise.ErrFeed) {
		t.Errorf("ftp: %v", err)
	}

	other := t.TempDir()
	idx, err := os.ReadFile(filepath.Join(im.Feed.Dir, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(dir, name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(other, "Packages", string(idx))
	write(other, "Release", "Suite: oldstable-security\nCodename: bullseye-security\n")
	feed, err := advise.LoadFeed(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := advise.Advise(target(r), r.Packages, feed, nil); !errors.Is(err, advise.ErrMismatch) || !strings.Contains(err.Error(), "bullseye") {
		t.Errorf("bullseye feed for a bookworm image: %v", err)
	}

	bad := t.TempDir()
	write(bad, "Packages", "Package: x\nVersion: 1.0\nFilename: ../../etc/passwd\n")
	if _, err := advise.LoadFeed(ctx, bad); !errors.Is(err, advise.ErrFeed) || !strings.Contains(err.Error(), "not a path inside") {
		t.Errorf("escaping Filename: %v", err)
	}
	write(bad, "Packages", "Package: x\nVersion: not a version\n")
	if _, err := advise.LoadFeed(ctx, bad); !errors.Is(err, advise.ErrFeed) {
		t.Errorf("bad version: %v", err)
	}
	write(bad, "Packages.gz", "not gzip")
	if _, err := advise.LoadFeed(ctx, bad); !errors.Is(err, advise.ErrFeed) {
		t.Errorf("bad gzip: %v", err)
	}

	for name, body := range map[string]string{
		"nofixed.yaml": "advisories:\n  - id: X\n    package: tar\n",
		"nopkg.json":   `{"advisories": [{"id": "X", "fixed": "1"}]}`,
		"badsev.yaml":  "advisories:\n  - {id: X, package: tar, fixed: '1', severity: apocalyptic}\n",
		"unknown.yaml": "advisories:\n  - {id: X, package: tar, fixed: '1', cve: CVE-1}\n",
		"notyaml.yaml": "advisories: [",
		"missing.yaml": "",
	} {
		p := filepath.Join(bad, name)
		if name != "missing.yaml" {
			write(bad, name, body)
		}
		if _, err := advise.LoadAdvisories(p); !errors.Is(err, advise.ErrAdvisories) {
			t.Errorf("%s: %v", name, err)
		}
	}
	write(bad, "ok.json", `[{"id": "J-1", "source": "tar", "fixed": "9:1", "severity": "Low"}]`)
	advs, err := advise.LoadAdvisories(filepath.Join(bad, "ok.json"))
	if err != nil || len(advs) != 1 || advs[0].Severity != "low" {
		t.Fatalf("JSON list: %+v %v", advs, err)
	}
	plan, err := advise.Advise(target(r), r.Packages, nil, advs)
	if err != nil || len(plan.Upgrades) != 1 || plan.Upgrades[0].Name != "tar" || plan.Upgrades[0].To != "9:1" {
		t.Errorf("JSON advisory by source: %+v %v", plan, err)
	}
}

// BenchmarkAdvise is one image's advice against the test feed, the index
// read and parsed each time (what `unisched images advise` does).
func BenchmarkAdvise(b *testing.B) {
	ctx := context.Background()
	im := testimage.ForTest(b)
	r := inspected(b, im.RawGPT)
	advs, err := advise.LoadAdvisories(im.Feed.Advisories)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		feed, err := advise.LoadFeed(ctx, im.Feed.Dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := advise.Advise(target(r), r.Packages, feed, advs); err != nil {
			b.Fatal(err)
		}
	}
}

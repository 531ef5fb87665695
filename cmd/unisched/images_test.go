package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
)

// TestMain (serve_test.go) drops pgtest's template after the run.

// imagesTest gives `unisched images` a fresh database (and no
// configuration file) and returns a runner of the CLI: stdout, stderr and
// the command's error.
func imagesTest(t *testing.T) func(args ...string) (string, string, error) {
	t.Helper()
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_CONFIG", "")
	return func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := imagesCLI{stdout: &out, stderr: &errOut}.run(context.Background(), args)
		return out.String(), errOut.String(), err
	}
}

// TestImagesCLI runs `unisched images` inspect, list, show and packages on
// a real image and a real database, in both output formats.
func TestImagesCLI(t *testing.T) {
	im := testimage.ForTest(t)
	run := imagesTest(t)

	out, progress, err := run("inspect", im.QcowGPT, "--work-dir", t.TempDir())
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, progress)
	}
	for _, want := range []string{"id:               1", "format:           qcow2", "distro:           debian " + im.DebianVersion,
		"kernels:          " + im.Kernel, "partition table:  gpt", "ext4        rootfs"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"checksum: computing sha256", "convert: 100%", "packages: 100% "} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}

	out, _, err = run("list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || strings.Join(strings.Fields(lines[1])[:3], " ") != "1 gpt.qcow2 qcow2" {
		t.Errorf("list:\n%s", out)
	}

	out, _, err = run("packages", "1")
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(im.Packages)+1 {
		t.Errorf("packages table has %d rows, want %d:\n%s", len(lines)-1, len(im.Packages), out)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	for _, p := range im.Packages {
		if r := rows[p.Name]; len(r) < 3 || r[1] != p.Version || r[2] != p.Architecture {
			t.Errorf("package %s %s %s: row %v", p.Name, p.Version, p.Architecture, r)
		}
	}

	out, _, err = run("packages", "1", "-f", "json")
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []inspect.Package
	if err := json.Unmarshal([]byte(out), &pkgs); err != nil || len(pkgs) != len(im.Packages) {
		t.Errorf("packages -f json: %d packages, %v", len(pkgs), err)
	}

	out, _, err = run("show", "-f", "json", "1")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		ID   int64 `json:"id"`
		Info struct {
			OS inspect.OS `json:"os"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.ID != 1 || d.Info.OS.Version != im.OSVersionID || d.Info.OS.Distro != "debian" {
		t.Errorf("show -f json: %+v %v\n%s", d, err, out)
	}

	errCases := []struct {
		args []string
		msg  string
	}{
		{[]string{"show", "2"}, "image 2: image not found"},
		{[]string{"packages", "x"}, `image id "x" is not a positive integer`},
		{[]string{"inspect", im.XFS, "-q"}, "partition 1: filesystem xfs is not supported yet"},
		{[]string{"inspect", im.Truncate, "-q"}, "qemu-img check found the qcow2 damaged"},
		{[]string{"inspect", "/nonexistent.qcow2"}, "no such file"},
		{[]string{"list", "-f", "yaml"}, `unknown output format "yaml"`},
		{[]string{"frobnicate"}, `unknown images command "frobnicate"`},
		{[]string{"show"}, "images show takes 1 argument(s), got 0"},
	}
	for _, c := range errCases {
		if _, _, err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("images %v: error %v, want %q", c.args, err, c.msg)
		}
	}
	// The failed inspections stored nothing.
	if out, _, _ := run("list"); strings.Count(strings.TrimSpace(out), "\n") != 1 {
		t.Errorf("after failed inspections, list:\n%s", out)
	}
}

// TestImagesResolveCLI: `images resolve` prints the Glance id to boot,
// the image itself until a patched image is published from it.
func TestImagesResolveCLI(t *testing.T) {
	run := imagesTest(t)
	const parent, patched = "5e1a0c2d-0000-4000-8000-000000000001", "5e1a0c2d-0000-4000-8000-000000000002"
	if out, _, err := run("resolve", parent); err != nil || out != parent+"\n" {
		t.Errorf("before any publish: %q, %v", out, err)
	}
	if _, _, err := run("resolve", "--family", parent); err == nil || !strings.Contains(err.Error(), "no patched image") {
		t.Errorf("family before any publish: %v", err)
	}
	pool, err := pgxpool.New(context.Background(), os.Getenv("UNISCHED_DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := store.SaveLineage(context.Background(), pool, store.Lineage{GlanceID: patched, ParentGlanceID: parent,
		Family: parent, Name: "p", PatchedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"resolve", parent}, {"resolve", "--family", parent}, {"resolve", patched}} {
		if out, _, err := run(args...); err != nil || out != patched+"\n" {
			t.Errorf("%v: %q, %v", args, out, err)
		}
	}
	out, _, err := run("resolve", parent, "-f", "json")
	var res map[string]any
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res["glance_id"] != patched || res["patched"] != true {
		t.Errorf("-f json: %s, %v", out, err)
	}
	if _, _, err := run("resolve"); err == nil || !strings.Contains(err.Error(), "takes 1 argument") {
		t.Errorf("no argument: %v", err)
	}
}

package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/imagesec/upgrade/upgradetest"
)

// TestImagesAdviseCLI runs `unisched images advise` on a real image.
func TestImagesAdviseCLI(t *testing.T) {
	im := testimage.ForTest(t)
	run := imagesTest(t)
	if _, progress, err := run("inspect", im.RawGPT, "-q"); err != nil {
		t.Fatalf("inspect: %v\n%s", err, progress)
	}
	if _, _, err := run("advise", "1"); err == nil || !strings.Contains(err.Error(), "--feed") {
		t.Errorf("advise without sources: %v", err)
	}
	out, summary, err := run("advise", "1", "--feed", "file://"+im.Feed.Dir, "--advisories", im.Feed.Advisories)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(im.Feed.Fixes)+1 || !strings.HasPrefix(lines[0], "PACKAGE") {
		t.Fatalf("advise table:\n%s", out)
	}
	for _, f := range im.Feed.Fixes {
		adv := f.Advisory
		sev := f.Severity
		if adv == "" {
			adv, sev = "-", "-"
		}
		want := strings.Join([]string{f.Name, f.Architecture, f.From, f.To, sev, adv, "yes"}, " ")
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("advise output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(summary, "3 of ") {
		t.Errorf("summary: %s", summary)
	}
	out, _, err = run("advise", "1", "--feed", im.Feed.Dir, "-f", "json")
	if err != nil {
		t.Fatal(err)
	}
	var plan advise.Plan
	if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan.Upgrades) != len(im.Feed.Fixes) {
		t.Errorf("advise -f json: %v\n%s", err, out)
	}
}

// TestImagesUpgradeCLI runs `unisched images upgrade` on a real image
// against a private dockerd, then lists the new image.
func TestImagesUpgradeCLI(t *testing.T) {
	im := testimage.ForTest(t)
	run := imagesTest(t)
	d := upgradetest.Daemon(t)
	if _, progress, err := run("inspect", im.QcowMBR, "-q"); err != nil {
		t.Fatalf("inspect: %v\n%s", err, progress)
	}
	out := filepath.Join(t.TempDir(), "fixed.qcow2")
	common := []string{"--docker-host", d.Host, "--cache-dir", t.TempDir(), "--work-dir", t.TempDir()}
	if _, _, err := run(append([]string{"upgrade", "1", "--feed", im.Feed.BadPostinst, "--out", out}, common...)...); err == nil ||
		!strings.Contains(err.Error(), "this postinst fails") {
		t.Errorf("upgrade with a failing postinst: %v", err)
	}
	stdout, progress, err := run(append([]string{"upgrade", "1", "--feed", im.Feed.Dir, "--out", out}, common...)...)
	if err != nil {
		t.Fatalf("upgrade: %v\n%s", err, progress)
	}
	for _, want := range []string{"upgrade [1/9] inspect", "upgrade [5/9] dpkg", "upgrade [9/9] verify", "upgraded image 1 in "} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}
	for _, f := range im.Feed.Fixes {
		if !strings.Contains(strings.Join(strings.Fields(stdout), " "), f.Name+" "+f.Architecture+" "+f.From+" "+f.To) {
			t.Errorf("upgrade output lacks %s:\n%s", f.Name, stdout)
		}
	}
	if !strings.Contains(stdout, "new image 2: "+out) {
		t.Errorf("upgrade output:\n%s", stdout)
	}
	list, _, err := run("list")
	if err != nil || !strings.Contains(list, "fixed.qcow2") {
		t.Errorf("list after upgrade: %v\n%s", err, list)
	}
}

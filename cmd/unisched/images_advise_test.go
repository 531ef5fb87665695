package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
)

// TestImagesAdviseCLI runs `unisched images advise` on a real image.
func TestImagesAdviseCLI(t *testing.T) {
	im := testimage.ForTest(t)
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_CONFIG", "")
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := imagesCLI{stdout: &out, stderr: &errOut}.run(context.Background(), args)
		return out.String(), errOut.String(), err
	}
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

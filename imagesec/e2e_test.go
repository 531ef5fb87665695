package imagesec_test

// The end-to-end test of issue 6 lives in package imagesec (external test
// package) so it drives everything through the public surfaces: Glance
// over HTTP, /v1/images over HTTP, the job runner, PostgreSQL.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/unisched/unisched/imagesec"
	"github.com/unisched/unisched/imagesec/api"
	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/imagesec/upgrade"
	"github.com/unisched/unisched/imagesec/upgrade/upgradetest"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/tests/novaharness"
)

// e2eDocker starts a private dockerd and returns the upgrade sandbox env.
func e2eDocker(t *testing.T) imagesec.UpgradeEnv {
	t.Helper()
	opts := upgradetest.Options(t)
	return func(context.Context) (upgrade.Options, func(), error) { return opts, func() {}, nil }
}

type apiClient struct {
	t   *testing.T
	url string
}

func (a apiClient) call(method, path string, body any, out any) int {
	a.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, a.url+path, rd)
	req.Header.Set("X-Auth-Token", "admin")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	if resp.StatusCode >= 300 {
		a.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// job posts an action and follows its job to the end, logging progress.
func (a apiClient) job(path string, body any) (*store.Job, time.Duration) {
	a.t.Helper()
	var sub struct{ Job store.Job }
	if st := a.call("POST", path, body, &sub); st != http.StatusAccepted {
		a.t.Fatalf("POST %s: %d", path, st)
	}
	t0 := time.Now()
	deadline := t0.Add(10 * time.Minute)
	last := ""
	for {
		var got struct{ Job store.Job }
		if st := a.call("GET", fmt.Sprintf("/v1/images/jobs/%d", sub.Job.ID), nil, &got); st != 200 {
			a.t.Fatalf("job %d: %d", sub.Job.ID, st)
		}
		j := got.Job
		if p := j.Progress.Step; p != last {
			last = p
			a.t.Logf("job %d %s: %s %s [%d/%d] %d/%d bytes", j.ID, j.Kind, j.State, p, j.Progress.StepsDone, j.Progress.StepsTotal, j.Progress.BytesDone, j.Progress.BytesTotal)
		}
		if j.Done() {
			if j.State != store.JobSucceeded {
				a.t.Fatalf("job %d (%s) %s: %s", j.ID, j.Kind, j.State, j.Error)
			}
			return &j, time.Since(t0)
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("job %d still %s after 10 minutes", j.ID, j.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func pkgSet(pkgs []struct{ Name, Version, Architecture string }) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.Name+"="+p.Version+"/"+p.Architecture)
	}
	sort.Strings(out)
	return out
}

// TestEndToEnd is issue 6's whole pipeline on real data: a real Debian
// image in a real Glance is collected, inspected (its OS and exact
// package list), advised against the test fix feed, upgraded offline in
// the Docker sandbox, re-inspected (the fixed versions, nothing else
// changed) and published back to Glance as a new image with its lineage;
// the parent is hidden, the family resolves to the patched image, and a
// second collection finds the published image with the fixed packages.
// Every action goes through /v1/images and the job runner.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	env := e2eDocker(t)
	db := pgtest.Pool(t)
	g, err := novaharness.StartGlance(ctx, novaharness.GlanceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("glance log:\n%s", g.Log(30))
		}
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	}()
	t.Logf("glance started in %v", g.Took.Round(time.Millisecond))
	c, err := collect.NewClient(ctx, collect.Auth{Endpoint: g.URL})
	if err != nil {
		t.Fatal(err)
	}
	parent, err := images.Create(ctx, c, images.CreateOpts{Name: "debian-12-base", DiskFormat: "qcow2", ContainerFormat: "bare",
		Properties: map[string]string{"hw_disk_bus": "virtio", "os_distro": "debian"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(im.QcowGPT)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagedata.Upload(ctx, c, parent.ID, f).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r := imagesec.NewRunner(imagesec.RunnerConfig{DB: db, WorkDir: t.TempDir(), UpgradeEnv: env,
		Glance: func(context.Context) (*gophercloud.ServiceClient, error) { return c, nil }})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	srv := httptest.NewServer(api.New(api.Config{DB: db, Runner: r}))
	defer srv.Close()
	a := apiClient{t: t, url: srv.URL}
	times := map[string]time.Duration{}

	// collect + inspect
	j, took := a.job("/v1/images/collect", nil)
	times["collect (download + inspect)"] = took
	var res collect.Result
	if err := json.Unmarshal(j.Result, &res); err != nil || res.Inspected != 1 || res.Images[0].GlanceID != parent.ID {
		t.Fatalf("collect: %s", j.Result)
	}
	id := res.Images[0].ImageID
	var show struct{ Image store.Detail }
	a.call("GET", fmt.Sprintf("/v1/images/%d", id), nil, &show)
	if show.Image.Source != "glance:"+parent.ID || show.Image.Info.OS.Distro != im.OSID || show.Image.Info.OS.Release != im.DebianVersion ||
		show.Image.Info.PartitionTable != "gpt" || show.Image.Info.RootPartition != im.RootPartitionGPT {
		t.Errorf("collected image: %+v", show.Image)
	}
	var pk struct {
		Packages []struct{ Name, Version, Architecture string }
	}
	a.call("GET", fmt.Sprintf("/v1/images/%d/packages", id), nil, &pk)
	var want []string
	for _, p := range im.Packages {
		want = append(want, p.Name+"="+p.Version+"/"+p.Architecture)
	}
	sort.Strings(want)
	if got := pkgSet(pk.Packages); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("packages of the collected image:\n got %v\nwant %v", got, want)
	}

	// advise
	t0 := time.Now()
	if _, err := imagesec.AdviseImage(ctx, db, id, imagesec.AdviseOptions{Feed: im.Feed.Dir, Advisories: im.Feed.Advisories}); err != nil {
		t.Fatal(err)
	}
	times["advise"] = time.Since(t0)
	var adv struct{ Advice store.Advice }
	a.call("GET", fmt.Sprintf("/v1/images/%d/advice", id), nil, &adv)
	fixTo := map[string]string{}
	for _, fx := range im.Feed.Fixes {
		fixTo[fx.Name] = fx.To
	}
	var advised []string
	for _, u := range adv.Advice.Upgrades {
		if u.Available {
			advised = append(advised, u.Name)
			if fixTo[u.Name] != u.To {
				t.Errorf("advised %s -> %s, the feed fixes it in %s", u.Name, u.To, fixTo[u.Name])
			}
		}
	}
	if len(advised) != len(im.Feed.Fixes) {
		t.Fatalf("advised %v, the feed fixes %+v", advised, im.Feed.Fixes)
	}

	// upgrade offline (a Glance image: the runner downloads it again)
	j, took = a.job(fmt.Sprintf("/v1/images/%d/upgrade", id), map[string]any{})
	times["upgrade (download, sandboxed dpkg, rebuild, re-inspect)"] = took
	patched := j.ResultImage
	if patched == 0 || patched == id {
		t.Fatalf("upgrade job: %+v", j)
	}
	a.call("GET", fmt.Sprintf("/v1/images/%d/packages", patched), nil, &pk)
	var wantFixed []string
	for _, p := range im.Packages {
		v := p.Version
		if to, ok := fixTo[p.Name]; ok {
			v = to
		}
		wantFixed = append(wantFixed, p.Name+"="+v+"/"+p.Architecture)
	}
	sort.Strings(wantFixed)
	if got := pkgSet(pk.Packages); strings.Join(got, " ") != strings.Join(wantFixed, " ") {
		t.Fatalf("packages of the upgraded image:\n got %v\nwant %v", got, wantFixed)
	}

	// publish, hiding the parent
	j, took = a.job(fmt.Sprintf("/v1/images/%d/publish", patched), map[string]any{"hide_parent": true})
	times["publish (upload)"] = took
	newID := j.GlanceID
	img, err := images.Get(ctx, c, newID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	prop := func(k string) string { s, _ := img.Properties[k].(string); return s }
	if img.Status != images.ImageStatusActive || img.DiskFormat != "qcow2" || !strings.HasPrefix(img.Name, "debian-12-base (patched ") ||
		prop("unisched_parent_image") != parent.ID || prop("unisched_family") != parent.ID || prop("hw_disk_bus") != "virtio" ||
		prop("unisched_patched_at") == "" {
		t.Errorf("published image: %+v", img)
	}
	for _, fx := range im.Feed.Fixes {
		if s := fx.Name + " " + fx.From + "->" + fx.To; !strings.Contains(prop("unisched_fixes"), s) {
			t.Errorf("unisched_fixes %q lacks %q", prop("unisched_fixes"), s)
		}
		if fx.Advisory != "" && !strings.Contains(prop("unisched_advisories"), fx.Advisory) {
			t.Errorf("unisched_advisories %q lacks %q", prop("unisched_advisories"), fx.Advisory)
		}
	}
	if p, _ := images.Get(ctx, c, parent.ID).Extract(); !p.Hidden {
		t.Error("parent not hidden")
	}
	if got, err := imagesec.ResolveImage(ctx, db, parent.ID); err != nil || got != newID {
		t.Errorf("ResolveImage(parent) = %s, %v; want %s", got, err, newID)
	}
	lin, err := store.ListLineage(ctx, db, parent.ID)
	if err != nil || len(lin) != 1 || lin[0].ImageID != patched || lin[0].ParentImageID != id || len(lin[0].Fixes) != len(im.Feed.Fixes) {
		t.Errorf("lineage: %+v, %v", lin, err)
	}

	// the next collection sees only the published image (the parent is
	// hidden) and finds the fixed packages in what Glance now serves
	j, took = a.job("/v1/images/collect", nil)
	times["collect of the published image"] = took
	res = collect.Result{}
	if err := json.Unmarshal(j.Result, &res); err != nil || res.Listed != 1 || res.Inspected != 1 || res.Images[0].GlanceID != newID {
		t.Fatalf("second collect: %s", j.Result)
	}
	a.call("GET", fmt.Sprintf("/v1/images/%d/packages", res.Images[0].ImageID), nil, &pk)
	if got := pkgSet(pk.Packages); strings.Join(got, " ") != strings.Join(wantFixed, " ") {
		t.Errorf("packages of the published image as collected back:\n got %v\nwant %v", got, wantFixed)
	}
	var keys []string
	for k := range times {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("measured: %-55s %v", k, times[k].Round(time.Millisecond))
	}
}

// Package packaging builds unisched the release way
// (packaging/docker/build-static.sh: a static binary and the image's root
// file system), checks the binary is static and runs, and builds the
// Dockerfile's runtime-prebuilt image from it on the test's private dockerd
// (no registry: the image is FROM scratch) and runs it. The Dockerfile's
// default target, which compiles in golang:1.26, needs a registry and is not
// built here.
package packaging

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/unisched/unisched/internal/dockertest"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

const version = "pkgtest-1"

func TestStaticBinaryAndImage(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "packaging/docker/build-static.sh", out)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "VERSION="+version)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build-static.sh: %v\n%s", err, b)
	}
	rootfs := filepath.Join(out, "rootfs")
	bin := filepath.Join(rootfs, "usr/bin/unisched")

	// static, by both tools, and it runs
	if f, err := exec.Command("file", "-b", bin).Output(); err == nil && !strings.Contains(string(f), "statically linked") {
		t.Errorf("file says %s", f)
	}
	if l, err := exec.Command("ldd", bin).CombinedOutput(); err == nil || !strings.Contains(string(l), "not a dynamic executable") {
		t.Errorf("ldd says %s (%v)", l, err)
	}
	if v, err := exec.Command(bin, "version").Output(); err != nil || string(v) != "unisched "+version+"\n" {
		t.Errorf("version: %q %v", v, err)
	}
	// no build paths in it (-trimpath)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := filepath.Abs("../..")
	if bytes.Contains(data, []byte(wd+"/")) {
		t.Errorf("the binary holds the build path %s", wd)
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "etc/unisched/unisched.conf.sample", "etc/unisched/unisched.yaml"} {
		if st, err := os.Stat(filepath.Join(rootfs, f)); err != nil || st.Size() == 0 {
			t.Errorf("rootfs lacks %s: %v", f, err)
		}
	}
	if p, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd")); !strings.Contains(string(p), "unisched:x:10001:10001:") {
		t.Errorf("passwd: %s", p)
	}

	// the image, on the private dockerd
	cli := dockertest.Client(t)
	tag := "unisched-pkgtest:" + version
	buildImage(t, cli, rootfs, tag)
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	ins, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if ins.Config.User != "10001:10001" || strings.Join(ins.Config.Entrypoint, " ") != "/usr/bin/unisched" || strings.Join(ins.Config.Cmd, " ") != "serve" {
		t.Errorf("image config: user %q entrypoint %q cmd %q", ins.Config.User, ins.Config.Entrypoint, ins.Config.Cmd)
	}
	for _, p := range []string{"8778/tcp", "9517/tcp", "9518/tcp"} {
		if _, ok := ins.Config.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed: %v", p, ins.Config.ExposedPorts)
		}
	}
	cases := []struct {
		cmd  []string
		want string
	}{
		{[]string{"version"}, "unisched " + version + "\n"},
		// the samples are in the image and read as serve reads them
		{[]string{"config", "check", "--config", "/etc/unisched/unisched.conf.sample"}, "configuration ok"},
		// the listeners' addresses the image sets
		{[]string{"config", "sample", "--format", "ini"}, "[database]"},
	}
	for _, tc := range cases {
		got, code := run(t, cli, tag, tc.cmd)
		if code != 0 || !strings.Contains(got, tc.want) {
			t.Errorf("%v in the image: exit %d, output %q, want %q", tc.cmd, code, got, tc.want)
		}
	}
	// without a database serve stops at once with the configuration error,
	// as the unprivileged user
	got, code := run(t, cli, tag, nil)
	if code == 0 || !strings.Contains(got, "no database configured") {
		t.Errorf("serve without a database: exit %d, %q", code, got)
	}
}

// buildImage builds the Dockerfile's runtime-prebuilt target from a
// context holding the Dockerfile and _build/rootfs.
func buildImage(t *testing.T, cli *client.Client, rootfs, tag string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string, mode int64, typ byte, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("Dockerfile", 0o644, tar.TypeReg, df)
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, p)
		name := filepath.ToSlash(filepath.Join("_build/rootfs", rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			add(name+"/", int64(info.Mode().Perm()|info.Mode()&fs.ModeSticky), tar.TypeDir, nil)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		add(name, int64(info.Mode().Perm()), tar.TypeReg, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rootArg := "_build/rootfs"
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{tag}, Target: "runtime-prebuilt", Remove: true, ForceRemove: true,
		BuildArgs: map[string]*string{"ROOTFS": &rootArg}, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	defer resp.Body.Close()
	var log strings.Builder
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("reading the build's output: %v\n%s", err, log.String())
		}
		log.WriteString(msg.Stream)
		if msg.Error != "" {
			t.Fatalf("docker build: %s\n%s", msg.Error, log.String())
		}
	}
	t.Logf("docker build --target runtime-prebuilt:\n%s", log.String())
}

// run runs the image with cmd (nil: its CMD) and returns its output.
func run(t *testing.T, cli *client.Client, img string, cmd []string) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: cmd}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatalf("creating container: %v", err)
	}
	defer func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	}()
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting container: %v", err)
	}
	waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		t.Fatalf("waiting for container: %v", err)
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, logs); err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

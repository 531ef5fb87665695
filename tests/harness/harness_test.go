package harness

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/internal/proctest"
)

func TestSQLAlchemyURL(t *testing.T) {
	tests := []struct {
		admin, want string
		wantErr     bool
	}{
		{"postgres://postgres@/postgres?host=/var/run/postgresql", "postgresql+psycopg2://postgres@/bench_db?host=/var/run/postgresql", false},
		{"postgresql://u:pw@127.0.0.1:5440/x", "postgresql+psycopg2://u:pw@127.0.0.1:5440/bench_db", false},
		{"mysql://u@h/x", "", true},
	}
	for _, tt := range tests {
		got, err := sqlalchemyURL(tt.admin, "bench_db")
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("sqlalchemyURL(%q) = %q, %v; want %q (error %v)", tt.admin, got, err, tt.want, tt.wantErr)
		}
	}
}

// checkServer asserts the server answers, reports memory, and leaves no
// process behind once stopped.
func checkServer(t *testing.T, s *Server) {
	t.Helper()
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"max_version"`) {
		t.Fatalf("GET / = %d %s", resp.StatusCode, body)
	}
	mem, err := s.Memory()
	if err != nil || mem["VmRSS"] <= 0 || mem["processes"] < 1 {
		t.Fatalf("Memory() = %v, %v", mem, err)
	}
	pid := s.Pid()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if left, _ := proctest.GroupMembers(pid); len(left) > 0 {
		t.Fatalf("processes left after Stop: %v", left)
	}
	if Get(context.Background(), s.URL+"/", 0) == nil {
		t.Fatalf("%s still answers after Stop", s.URL)
	}
}

func TestUnischedStartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "unisched")
	if err := BuildUnisched(ctx, root, bin); err != nil {
		t.Fatal(err)
	}
	s, err := StartUnisched(ctx, UnischedOptions{Bin: bin, DB: "harness_test_unisched", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	checkServer(t, s)
}

func TestUpstreamStartStop(t *testing.T) {
	if err := UpstreamAvailable(); errors.Is(err, ErrNoUpstream) {
		t.Skip(err)
	}
	if testing.Short() {
		t.Skip("starting upstream placement takes a while")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s, err := StartUpstream(ctx, UpstreamOptions{Workers: 2, DB: "harness_test_upstream", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	if mem, _ := s.Memory(); mem["processes"] != 3 {
		t.Errorf("want uwsgi master + 2 workers, got %v", mem)
	}
	checkServer(t, s)
}

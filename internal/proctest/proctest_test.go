package proctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestGroupMembersAndAlive(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	var members []int
	for range 200 { // the shell forks its two sleeps
		var err error
		if members, err = GroupMembers(pid); err != nil {
			t.Fatal(err)
		}
		if len(members) == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(members) != 3 || !slices.Contains(members, pid) {
		t.Fatalf("group %d: %v, want the shell and its two sleeps", pid, members)
	}
	if !Alive(pid) || !Alive(os.Getpid()) {
		t.Errorf("Alive: shell %v, self %v", Alive(pid), Alive(os.Getpid()))
	}
	if own, _ := GroupMembers(syscall.Getpgrp()); slices.Contains(own, pid) {
		t.Errorf("the shell %d is listed in the test's own group", pid)
	}

	// killed but not yet reaped: a zombie, neither alive nor a member
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if state, _, ok := stat(pid); ok && state == "Z" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if Alive(pid) {
		t.Errorf("killed shell %d still alive", pid)
	}
	if m, _ := GroupMembers(pid); slices.Contains(m, pid) || len(m) != 2 {
		t.Errorf("group after killing the shell: %v, want its two sleeps only", m)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = cmd.Wait()
	if Alive(pid) {
		t.Errorf("reaped shell %d alive", pid)
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		lines         int
		want          string
	}{
		{"short", "a\nb\n", 5, "a\nb"},
		{"cut", "a\nb\nc\nd\n", 2, "c\nd"},
		{"no final newline", "a\nb\nc", 1, "c"},
		{"empty", "", 3, ""},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := Tail(path, tc.lines); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := Tail(filepath.Join(dir, "missing"), 3); got != "" {
		t.Errorf("missing file: %q", got)
	}
}

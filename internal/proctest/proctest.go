// Package proctest reads what the test harnesses need to know about the
// processes they start (dockerd, serve, agents, uwsgi) from /proc, so that
// each stops exactly what it started, by pid or process group, and shows
// the end of a log when one fails to start. Process starts and stops them;
// FreePort and RetryPorts give them ports that stay theirs.
package proctest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// stat reads a process's state and process group from /proc/PID/stat.
// The command name may hold spaces and parentheses, so the fields are
// read after its last ')'.
func stat(pid int) (state string, pgrp int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+1:])) // state ppid pgrp ...
	if len(f) < 3 {
		return "", 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0], pgrp, true
}

func live(state string) bool { return state != "Z" && state != "X" }

// Alive reports whether pid is a process that is not a zombie.
func Alive(pid int) bool {
	state, _, ok := stat(pid)
	return ok && live(state)
}

// GroupMembers lists the live (non-zombie) processes of process group pgid.
func GroupMembers(pgid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing /proc: %w", err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, g, ok := stat(pid); ok && live(state) && g == pgid {
			out = append(out, pid)
		}
	}
	return out, nil
}

// Tail is the last lines of the file at path ("" if it cannot be read),
// for the error of a process that failed to start.
func Tail(path string, lines int) string { return TailFrom(path, 0, lines) }

// TailFrom is Tail of what was written to path from offset on (what one
// run of a process appended to a log kept across its restarts).
func TailFrom(path string, offset int64, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if offset > 0 && offset <= int64(len(b)) {
		b = b[offset:]
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

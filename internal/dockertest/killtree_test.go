package dockertest

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/internal/proctest"
)

// An orphaned shim is ended with its container: killTree must take the
// children too, or they would run on, reparented to init.
func TestKillTreeTakesChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 600 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, err := out.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("child pid %q: %v", buf[:n], err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	killTree(cmd.Process.Pid)
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for proctest.Alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the killed process still runs", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

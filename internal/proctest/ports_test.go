package proctest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestFreePortOutsideEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if low > portLow+100 && (p < portLow || p >= low) {
			t.Errorf("port %d outside %d-%d", p, portLow, low-1)
		}
	}
}

func TestAddrInUse(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("serve exited (exit status 1); last lines:\nplacement: listening on 127.0.0.1:29001: listen tcp 127.0.0.1:29001: bind: address already in use"), true},
		{errors.New("uwsgi: bind(): Address already in use [core/socket.c line 769]"), true},
		{errors.New("OSError: [Errno 98] Address already in use"), true},
		{errors.New("{listen_error,eaddrinuse}"), true},
		{errors.New("{failed_to_start_child,prelaunch,{dist_port_already_used,38665,not_erlang,\"localhost\"}}"), true},
		{errors.New("RuntimeError: Could not bind to 127.0.0.1:29002 after trying for 30 seconds"), true},
		{fmt.Errorf("listening: %w", syscall.EADDRINUSE), true},
		{errors.New("serve not ready after 1m0s (connection refused)"), false},
	} {
		if got := AddrInUse(tc.err); got != tc.want {
			t.Errorf("AddrInUse(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestRetryPorts takes the first port it is given before the process can
// bind it: the start fails with the process's own words, and the retry on
// a new port succeeds.
func TestRetryPorts(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "listener.log")
	var taken net.Listener
	attempts := 0
	var got *Process
	err := RetryPorts(1, func(ps []int) error {
		attempts++
		if attempts == 1 {
			var err error
			if taken, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ps[0])); err != nil {
				return err
			}
		}
		script := fmt.Sprintf(`import socket,time
s=socket.socket()
s.bind(("127.0.0.1",%d))
s.listen()
time.sleep(60)`, ps[0])
		cmd := exec.Command("/usr/bin/python3", "-c", script)
		p, err := Start(context.Background(), "listener", log, cmd, 30*time.Second, func(context.Context) error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(ps[0]), time.Second)
			if err == nil {
				c.Close()
				if attempts == 1 {
					return errors.New("the harness's own listener answers, not the process's")
				}
			}
			return err
		})
		got = p
		return err
	})
	if taken != nil {
		taken.Close()
	}
	if err != nil {
		t.Fatalf("after %d attempts: %v", attempts, err)
	}
	defer got.Stop(5 * time.Second)
	if attempts != 2 {
		t.Errorf("%d attempts, want 2 (the first port taken)", attempts)
	}
	// the failure of the first start is in the log, but not in what the
	// second run wrote
	if AddrInUse(got.Failed()) {
		t.Errorf("the second run's own output says address in use:\n%v", got.Failed())
	}
}

func TestMovePorts(t *testing.T) {
	a, b := 31999, 0
	var seen [][2]int
	err := MovePorts([]*int{&a, &b}, func() error {
		seen = append(seen, [2]int{a, b})
		if len(seen) < 3 {
			return errors.New("bind: address already in use")
		}
		return nil
	})
	if err != nil || len(seen) != 3 {
		t.Fatalf("err %v after %v", err, seen)
	}
	if seen[0][0] != 31999 || seen[0][1] == 0 {
		t.Errorf("first attempt %v: want the given port kept and the zero one picked", seen[0])
	}
	if seen[1][0] == 31999 || seen[1] == seen[0] || seen[2] == seen[1] {
		t.Errorf("attempts %v: want new ports after each failure", seen)
	}
	n := 0
	err = MovePorts([]*int{&a}, func() error { n++; return errors.New("address already in use") })
	if err == nil || n != PortAttempts {
		t.Errorf("always taken: %d attempts, err %v", n, err)
	}
	n = 0
	err = MovePorts([]*int{&a}, func() error { n++; return errors.New("boom") })
	if err == nil || n != 1 {
		t.Errorf("other failure: %d attempts, err %v; want one", n, err)
	}
}

package proctest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// A harness must tell a process its port before the process binds it, so
// the port can be taken in between. Two defences: ports are picked below
// the kernel's ephemeral range, where no outgoing connection (and none of
// its TIME_WAIT leftovers, which a listener cannot bind over) ever lands,
// the cause of "address already in use" on a busy machine; and RetryPorts
// starts again on new ports when it happens anyway.

// portLow is the bottom of the range FreePort picks from, above the
// engineers' fixed ranges (21000-28999); the top is the kernel's first
// ephemeral port.
const portLow = 29000

var ports = struct {
	sync.Mutex
	given map[int]bool
}{given: map[int]bool{}}

// FreePort is a loopback TCP port nothing is bound to now, below the
// kernel's ephemeral range, and never one this process handed out before
// (a port given to a process that has not bound it yet looks free). When
// that range is used up it is a port the kernel picks.
func FreePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	high := ephemeralLow() - 1
	for range 200 {
		if high <= portLow {
			break
		}
		p := portLow + rand.IntN(high-portLow+1)
		if ports.given[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports.given[p] = true
		return p, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	ports.given[p] = true
	return p, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// FreePorts is n different FreePort ports.
func FreePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// AddrInUse reports whether err (a start failure carrying the process's
// output, as Start's and Failed's do) says a listener's port was taken:
// Go's and Python's "address already in use", Erlang's eaddrinuse,
// RabbitMQ's dist_port_already_used, and Glance's "Could not bind to" (it
// retries EADDRINUSE for 30 s first).
func AddrInUse(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return true
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "address already in use") || strings.Contains(s, "eaddrinuse") ||
		strings.Contains(s, "dist_port_already_used") || strings.Contains(s, "could not bind to")
}

// PortAttempts is how many times RetryPorts calls start at most.
const PortAttempts = 5

// RetryPorts calls start with n FreePorts and, while it fails with
// AddrInUse (a port picked free was taken before the process bound it),
// again with n new ones, PortAttempts times at most. start must leave
// nothing running when it fails.
func RetryPorts(n int, start func(ports []int) error) error {
	ps := make([]int, n)
	ptrs := make([]*int, n)
	for i := range ps {
		ptrs[i] = &ps[i]
	}
	return MovePorts(ptrs, func() error { return start(ps) })
}

// MovePorts is RetryPorts for ports chosen already (written into
// configuration before the process starts): start runs on them, zero ones
// picked first, and while it fails with AddrInUse, new FreePorts are
// written into ports and start runs again (start must then update
// whatever refers to the old ones).
func MovePorts(ports []*int, start func() error) (err error) {
	for attempt := range PortAttempts {
		for _, p := range ports {
			if *p != 0 && attempt == 0 {
				continue
			}
			if *p, err = FreePort(); err != nil {
				return err
			}
		}
		if err = start(); !AddrInUse(err) {
			return err
		}
	}
	return fmt.Errorf("ports taken %d times in a row: %w", PortAttempts, err)
}

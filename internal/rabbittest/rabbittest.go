package rabbittest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables the package reads.
const (
	// EnvRequire=1 turns every skip for a missing RabbitMQ into a failure.
	EnvRequire = "UNISCHED_REQUIRE_RABBITMQ"
	// EnvPortBase, when set, gives the shared node its ports: AMQP at the
	// base, Erlang distribution at base+1, epmd at base+2 (an engineer's
	// own range on a shared machine; a binary finding them taken picks
	// free ones); unset picks free ports.
	EnvPortBase = "UNISCHED_TEST_RABBIT_PORT_BASE"
)

// Required reports whether a missing RabbitMQ must fail the tests.
func Required() bool {
	v := os.Getenv(EnvRequire)
	return v == "1" || strings.EqualFold(v, "true")
}

var shared struct {
	sync.Mutex
	mainCalled bool
	node       *Node
	dir        string
	err        error
}

// Main runs the tests, then stops the binary's node if one was started;
// it returns m.Run's code (1 when stopping failed). When the tests failed
// and ARTIFACTS is set, the node's logs are copied to $ARTIFACTS/rabbitmq/.
func Main(m *testing.M) int {
	shared.Lock()
	shared.mainCalled = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	n, dir := shared.node, shared.dir
	shared.node = nil
	shared.Unlock()
	if n == nil {
		return code
	}
	if code != 0 {
		keepLogs(n)
	}
	if err := n.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "rabbittest: stopping the node: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.RemoveAll(dir)
	return code
}

func keepLogs(n *Node) {
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		return
	}
	dst := filepath.Join(dir, "rabbitmq", filepath.Base(os.Args[0])+"-"+filepath.Base(n.Dir))
	if os.MkdirAll(dst, 0o755) != nil {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(n.Dir, "logs", "*"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644)
		}
	}
	fmt.Fprintf(os.Stderr, "rabbittest: node logs kept in %s\n", dst)
}

// Shared is the test binary's node, started on first use. A machine
// without RabbitMQ skips the test (fails it when Required).
func Shared(t testing.TB) *Node {
	t.Helper()
	n, err := sharedNode()
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			if Required() {
				t.Fatalf("RabbitMQ is required (%s=1) but unusable: %v", EnvRequire, err)
			}
			t.Skipf("RabbitMQ unusable, skipping (set %s=1 to fail instead): %v", EnvRequire, err)
		}
		t.Fatal(err)
	}
	return n
}

// URL is the AMQP URL of the binary's node.
func URL(t testing.TB) string {
	t.Helper()
	return Shared(t).URL
}

func sharedNode() (*Node, error) {
	shared.Lock()
	defer shared.Unlock()
	if shared.node != nil || shared.err != nil {
		return shared.node, shared.err
	}
	if err := Available(); err != nil {
		shared.err = err
		return nil, err
	}
	if !shared.mainCalled {
		return nil, errors.New("rabbittest: the package must run its tests through rabbittest.Main: func TestMain(m *testing.M) { os.Exit(rabbittest.Main(m)) }")
	}
	dir, err := os.MkdirTemp("", "rabbittest-")
	if err != nil {
		shared.err = err
		return nil, err
	}
	opts := Options{Dir: dir}
	if b := os.Getenv(EnvPortBase); b != "" {
		base, err := strconv.Atoi(b)
		if err != nil {
			shared.err = fmt.Errorf("rabbittest: %s=%q: %w", EnvPortBase, b, err)
			return nil, shared.err
		}
		// Another test binary running at the same time may hold them:
		// then this one takes free ports.
		if portsFree(base, base+1, base+2) {
			opts.AMQPPort, opts.DistPort, opts.EpmdPort = base, base+1, base+2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, err := StartNode(ctx, opts)
	if err != nil {
		shared.err = err
		os.RemoveAll(dir)
		return nil, err
	}
	shared.node, shared.dir = n, dir
	return n, nil
}

func portsFree(ports ...int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

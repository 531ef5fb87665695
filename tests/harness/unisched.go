package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// BuildUnisched compiles ./cmd/unisched of the module at root into out.
func BuildUnisched(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/unisched")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/unisched: %w\n%s", err, b)
	}
	return nil
}

// UnischedOptions configures one unisched server.
type UnischedOptions struct {
	Bin string // built by BuildUnisched
	// Port on 127.0.0.1; 0 picks a free one (and another if it is taken
	// before serve binds it).
	Port  int
	DB    string // database to (re)create; serve migrates it
	Dir   string // the log goes here
	Admin string // PostgreSQL admin URL (default AdminURL())
	// Env adds UNISCHED_* settings (e.g. UNISCHED_DATABASE_MAX_CONNS=40).
	Env []string
}

// StartUnisched creates a fresh database and runs `unisched serve` on it,
// returning once GET / answers.
func StartUnisched(ctx context.Context, o UnischedOptions) (*Server, error) {
	if o.Admin == "" {
		o.Admin = AdminURL()
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	dbURL, err := DatabaseURL(o.Admin, o.DB)
	if err != nil {
		return nil, err
	}
	if err := CreateDatabase(ctx, o.Admin, o.DB); err != nil {
		return nil, err
	}
	s := &Server{Name: "unisched", DB: o.DB, LogPath: filepath.Join(o.Dir, "unisched.log"), admin: o.Admin}
	launch := func(port int) (*exec.Cmd, error) {
		cmd := exec.Command(o.Bin, "serve")
		cmd.Env = append(os.Environ(),
			"UNISCHED_DATABASE_URL="+dbURL,
			fmt.Sprintf("UNISCHED_PLACEMENT_LISTEN=127.0.0.1:%d", port),
			"UNISCHED_LOG_LEVEL=warn",
			"UNISCHED_TEST_RESET=false",
			// placement only unless o.Env says otherwise: the container API's
			// default port would clash between servers
			"UNISCHED_CONTAINER_API_LISTEN=off",
		)
		cmd.Env = append(cmd.Env, o.Env...)
		return cmd, nil
	}
	if err := startOnPort(ctx, s, o.Port, time.Minute, launch, func(ctx context.Context) bool { return Get(ctx, s.URL+"/", http.StatusOK) == nil }); err != nil {
		return nil, err
	}
	return s, nil
}

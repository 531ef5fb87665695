package config

import "time"

// Leader configures the election among serve's replicas of one database:
// the outbox relay and the periodic reconciler each run on one replica
// only, the holder of a PostgreSQL session advisory lock.
type Leader struct {
	// RetryInterval is how often a standby tries a lock: with the time
	// PostgreSQL takes to end a dead leader's session, the bound on a
	// failover.
	RetryInterval time.Duration `mapstructure:"retry_interval"`
	// KeepaliveIdle, KeepaliveInterval and KeepaliveCount are the TCP
	// keepalives PostgreSQL keeps on a leader's session: a leader whose
	// host vanished (no FIN ever sent) loses its locks after about
	// idle + interval * count. A killed process's connection is closed by
	// its kernel and noticed at once; unix sockets ignore these.
	KeepaliveIdle     time.Duration `mapstructure:"keepalive_idle"`
	KeepaliveInterval time.Duration `mapstructure:"keepalive_interval"`
	KeepaliveCount    int           `mapstructure:"keepalive_count"`
}

var leaderDefaults = map[string]any{
	"leader.retry_interval":     time.Second,
	"leader.keepalive_idle":     5 * time.Second,
	"leader.keepalive_interval": 2 * time.Second,
	"leader.keepalive_count":    3,
}

// init adds the leader keys to the defaults.
func init() {
	for k, v := range leaderDefaults {
		defaults[k] = v
	}
}

package main

import (
	"log/slog"

	"github.com/unisched/unisched/internal/sdnotify"
)

// notifySystemd tells systemd (Type=notify, packaging/systemd) that serve
// is ready, once every listener is bound and the schema is migrated, or
// that it is stopping; outside systemd it does nothing.
func notifySystemd(log *slog.Logger, state string) {
	sent, err := sdnotify.Notify(state)
	if err != nil {
		log.Warn("telling systemd", "state", state, "err", err)
	} else if sent {
		log.Debug("told systemd", "state", state)
	}
}

package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/scheduler"
)

// NotificationTopicPrefix starts the outbox topic of every container
// notification: "notification.container.<action>.<phase>". They are
// written in the transaction of the change they tell (so none is told
// that did not happen, and none is lost while the bus is down) and a
// publisher routed by this prefix puts them on the bus.
const NotificationTopicPrefix = "notification."

// Notification is an OpenStack versioned notification of a container as
// the outbox keeps it: the inner message of oslo.messaging's envelope but
// for publisher_id, which the publisher adds. MessageID and Timestamp are
// fixed at write time, so a notification published twice (the relay
// delivers at least once) can be deduped by its consumers.
type Notification struct {
	MessageID string             `json:"message_id"`
	EventType string             `json:"event_type"`
	Priority  string             `json:"priority"`
	Timestamp string             `json:"timestamp"`
	Payload   ContainerPayloadV1 `json:"payload"`
}

// ContainerPayloadV1 is the versioned object of a container notification,
// Zun's ContainerPayload in oslo.versionedobjects' serialization.
type ContainerPayloadV1 struct {
	Name      string           `json:"versioned_object.name"`
	Namespace string           `json:"versioned_object.namespace"`
	Version   string           `json:"versioned_object.version"`
	Data      ContainerPayload `json:"versioned_object.data"`
}

// ContainerPayload is what a notification says of the container, with
// Zun's field names and forms (memory in MB as a string, status as Zun
// shows it).
type ContainerPayload struct {
	UUID         string   `json:"uuid"`
	Name         string   `json:"name"`
	ProjectID    string   `json:"project_id"`
	UserID       string   `json:"user_id"`
	Image        string   `json:"image"`
	Command      []string `json:"command"`
	Status       string   `json:"status"`
	StatusReason *string  `json:"status_reason"`
	Host         *string  `json:"host"`
	CPU          float64  `json:"cpu"`
	CPUPolicy    string   `json:"cpu_policy"`
	Memory       string   `json:"memory"`
	CreatedAt    string   `json:"created_at"`
}

// oslo's timestamp form (str of a naive UTC datetime).
const osloTimestamp = "2006-01-02 15:04:05.000000"

// notifyContainer writes one container notification in tx, when the
// coordinator publishes them. ct nil loads the workload's container.
// Notifications of a workload share the key "notify:<id>": they keep their
// order, and a bus that is down never holds up the agents' events.
func (c *Coordinator) notifyContainer(ctx context.Context, tx pgx.Tx, lw ledger.Workload, ct *agentproto.Container, action, phase, status, reason string) error {
	m, err := c.containerNotification(ctx, tx, lw, ct, action, phase, status, reason)
	if err != nil {
		return err
	}
	return writeNotification(ctx, tx, m)
}

// writeNotification writes a notification made by containerNotification;
// nil is none.
func writeNotification(ctx context.Context, tx pgx.Tx, m *outbox.Message) error {
	if m == nil {
		return nil
	}
	if _, err := outbox.Insert(ctx, tx, *m); err != nil {
		return fmt.Errorf("writing the %s notification of %s: %w", strings.TrimPrefix(m.Topic, NotificationTopicPrefix), strings.TrimPrefix(m.Key, "notify:"), err)
	}
	return nil
}

// containerNotification makes the notification notifyContainer writes,
// nil when the coordinator publishes none for lw. A transaction that must
// say what the workload was before it changes it makes the message first
// and writes it last: the notify lag runs from the write, and what the
// transaction does after its writes (waiting for a provider's lock, say)
// would count in it.
func (c *Coordinator) containerNotification(ctx context.Context, tx pgx.Tx, lw ledger.Workload, ct *agentproto.Container, action, phase, status, reason string) (*outbox.Message, error) {
	if !c.opts.Notifications || lw.Kind != scheduler.KindContainer {
		return nil, nil
	}
	if ct == nil {
		var err error
		if ct, err = loadContainer(ctx, tx, lw.ID); err != nil {
			return nil, err
		}
		if ct == nil {
			ct = &agentproto.Container{}
		}
	}
	priority := "INFO"
	if phase == "error" {
		priority = "ERROR"
	}
	p := ContainerPayload{
		UUID: lw.ID, Name: lw.Name, ProjectID: lw.ProjectID, UserID: lw.UserID, Image: ct.Image,
		Command: ct.Command, Status: status, CPU: ct.CPU, CPUPolicy: string(lw.CPUPolicy),
		Memory: strconv.FormatInt(lw.Resources.MemoryMB, 10),
	}
	if p.Command == nil {
		p.Command = []string{}
	}
	if !lw.CreatedAt.IsZero() {
		p.CreatedAt = lw.CreatedAt.UTC().Format(time.RFC3339)
	}
	if reason != "" {
		p.StatusReason = &reason
	}
	if lw.Host != "" {
		h := lw.Host
		p.Host = &h
	}
	n := Notification{
		MessageID: uuid.NewString(),
		EventType: "container." + action + "." + phase,
		Priority:  priority,
		Timestamp: time.Now().UTC().Format(osloTimestamp),
		Payload:   ContainerPayloadV1{Name: "ContainerPayload", Namespace: "zun", Version: "1.0", Data: p},
	}
	return &outbox.Message{Topic: NotificationTopicPrefix + n.EventType, Key: "notify:" + lw.ID, Payload: n}, nil
}

// reportNotification makes the notification an agent's report means,
// given the workload as it was before the report: the end (or error) of
// its create at its first report, the end of its delete, or the end of the
// action the report answers; nil when it means none.
func (c *Coordinator) reportNotification(ctx context.Context, tx pgx.Tx, lw ledger.Workload, r agentproto.Report) (*outbox.Message, error) {
	if !c.opts.Notifications || lw.Kind != scheduler.KindContainer {
		return nil, nil
	}
	switch {
	case r.Status == agentproto.StatusDeleted:
		return c.containerNotification(ctx, tx, lw, nil, "delete", "end", "Deleted", "")
	case lw.State == ledger.StateClaimed && r.Status == agentproto.StatusError:
		return c.containerNotification(ctx, tx, lw, nil, "create", "error", "Error", r.Reason)
	case lw.State == ledger.StateClaimed:
		return c.containerNotification(ctx, tx, lw, nil, "create", "end", r.Status, r.Reason)
	case r.EventID != 0 && lw.State != ledger.StateDeleting:
		var typ, action string
		err := tx.QueryRow(ctx, sqlAnsweredEvent, r.EventID, AgentTopic).Scan(&typ, &action)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil // trimmed long ago, or not ours
		}
		if err != nil {
			return nil, fmt.Errorf("reading event %d answered by a report on workload %s: %w", r.EventID, lw.ID, err)
		}
		if typ != agentproto.EventAction || action == "" {
			return nil, nil
		}
		phase := "end"
		if r.Status == agentproto.StatusError {
			phase = "error"
		}
		return c.containerNotification(ctx, tx, lw, nil, action, phase, r.Status, r.Reason)
	}
	return nil, nil
}

// stateStatus is the Zun status a notification shows for a ledger state
// when no report says more.
func stateStatus(s ledger.State) string {
	switch s {
	case ledger.StatePending, ledger.StateClaimed:
		return "Creating"
	case ledger.StateActive:
		return agentproto.StatusRunning
	case ledger.StateStopped:
		return agentproto.StatusStopped
	case ledger.StateDeleting:
		return "Deleting"
	case ledger.StateError:
		return agentproto.StatusError
	}
	return string(s)
}

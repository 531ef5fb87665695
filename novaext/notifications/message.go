// Package notifications connects unisched to OpenStack's notification bus
// (RabbitMQ through oslo.messaging's wire format): the Consumer takes
// Nova's versioned notifications and tells the ledger what happened to
// its VMs; the Publisher puts the coordinator's container notifications
// on the bus.
package notifications

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Message is one notification out of its envelope.
type Message struct {
	MessageID   string          `json:"message_id"`
	PublisherID string          `json:"publisher_id"`
	EventType   string          `json:"event_type"`
	Priority    string          `json:"priority"`
	Timestamp   string          `json:"timestamp"`
	Payload     json.RawMessage `json:"payload"`
}

// errMalformed marks a message that can never be handled: it is dropped.
var errMalformed = errors.New("malformed notification")

// ParseMessage reads an AMQP body: oslo.messaging's envelope 2.0
// ({"oslo.version": "2.0", "oslo.message": "<the message as a JSON
// string>"}) or a bare message (a notifier without the envelope).
func ParseMessage(body []byte) (Message, error) {
	var env struct {
		Version *string `json:"oslo.version"`
		Message *string `json:"oslo.message"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return Message{}, fmt.Errorf("%w: not a JSON object: %v", errMalformed, err)
	}
	inner := body
	if env.Version != nil || env.Message != nil {
		if env.Version == nil || !strings.HasPrefix(*env.Version, "2.") || env.Message == nil {
			return Message{}, fmt.Errorf("%w: an oslo envelope needs oslo.version 2.x and oslo.message", errMalformed)
		}
		inner = []byte(*env.Message)
	}
	var m Message
	if err := json.Unmarshal(inner, &m); err != nil {
		return Message{}, fmt.Errorf("%w: the message is not a JSON object: %v", errMalformed, err)
	}
	if m.EventType == "" {
		return Message{}, fmt.Errorf("%w: no event_type", errMalformed)
	}
	return m, nil
}

// versioned is a Nova versioned object as notifications carry it.
type versioned[T any] struct {
	Name string `json:"nova_object.name"`
	Data *T     `json:"nova_object.data"`
}

// instanceData is what the consumer reads of Nova's InstancePayload
// family (InstanceCreatePayload, InstanceActionPayload, ...).
type instanceData struct {
	UUID  string                    `json:"uuid"`
	Host  *string                   `json:"host"`
	Node  *string                   `json:"node"`
	State string                    `json:"state"`
	Fault *versioned[exceptionData] `json:"fault"`
	// ComputeTaskPayload (compute_task.*.error from the conductor) names
	// the instance and the reason differently.
	InstanceUUID string                    `json:"instance_uuid"`
	Reason       *versioned[exceptionData] `json:"reason"`
}

// exceptionData is Nova's ExceptionPayload.
type exceptionData struct {
	Exception        string `json:"exception"`
	ExceptionMessage string `json:"exception_message"`
}

// Action is what the ledger is told of one notification.
type Action struct {
	Kind ActionKind
	// ServerID is the instance uuid.
	ServerID string
	// Host is the Placement provider name of the server's node (Nova's
	// node, else its compute host), for Created.
	Host string
	// Reason is the fault, for Failed.
	Reason string
	// RealPins, for Moved: the server has landed (on its new host, or back
	// on its old one), so the VM is active again and Nova's topology there
	// is read after the allocations and replaces the pins the bridge
	// expected.
	RealPins bool
}

// ActionKind says what happened to a VM.
type ActionKind string

// Kinds of actions; Ignored notifications are acknowledged and counted.
const (
	Created ActionKind = "created"
	Failed  ActionKind = "failed"
	Deleted ActionKind = "deleted"
	Moved   ActionKind = "moved"
	Ignored ActionKind = "ignored"
)

// movingOps are the instance operations whose end leaves the server's
// allocations on another provider, or changed, or gone (shelve offload):
// the ledger re-reads them.
var movingOps = map[string]bool{
	"resize": true, "resize_prep": true, "resize_finish": true, "resize_confirm": true, "resize_revert": true,
	"live_migration_post": true, "live_migration_post_dest": true, "live_migration_rollback": true,
	"live_migration_rollback_dest": true, "live_migration_abort": true, "live_migration_force_complete": true,
	"rebuild": true, "evacuate": true, "shelve_offload": true, "unshelve": true,
}

// landingOps are the moves whose end leaves the server running where its
// allocations now are, with a NUMA topology Nova has settled there. A live
// migration's rollback lands it back on its source: the source compute
// gives the instance its allocations there back before rollback.end.
var landingOps = map[string]bool{
	"resize_finish": true, "resize_revert": true, "live_migration_post": true, "live_migration_post_dest": true,
	"live_migration_rollback": true, "rebuild": true, "evacuate": true, "unshelve": true,
}

// Classify maps a notification to the ledger's action: instance.create.end
// is Created; instance.create.error, compute_task.build_instances.error
// (the conductor's NoValidHost) and any other instance.*.error that left
// the instance in state error are Failed; instance.delete.end is Deleted;
// the end of a resize, migration, live migration, evacuation, rebuild,
// shelve offload or unshelve (and a failed migrate or rebuild task) is
// Moved; the rest is Ignored. A notification the ledger needs but cannot
// identify the server of is malformed.
func Classify(m Message) (Action, error) {
	et := m.EventType
	parts := strings.Split(et, ".")
	if len(parts) < 2 || (parts[0] != "instance" && parts[0] != "compute_task") {
		return Action{Kind: Ignored}, nil
	}
	var p versioned[instanceData]
	if len(m.Payload) == 0 || json.Unmarshal(m.Payload, &p) != nil || p.Data == nil {
		return Action{}, fmt.Errorf("%w: %s without a versioned payload", errMalformed, et)
	}
	d := p.Data
	id := d.UUID
	if id == "" {
		id = d.InstanceUUID
	}
	op, phase := parts[1], parts[len(parts)-1]
	a := Action{Kind: Ignored, ServerID: strings.ToLower(id)}
	switch {
	case parts[0] == "compute_task" && op == "build_instances" && phase == "error":
		a.Kind, a.Reason = Failed, reason(d.Reason, "the build failed")
	case parts[0] == "compute_task" && phase == "error" && (op == "migrate_server" || op == "rebuild_server"):
		// The task's rollback gave the instance its allocations back
		// before the conductor notified: a server left active or stopped
		// is where it was, as it was (active in the ledger, Nova's pins).
		a.Kind = Moved
		a.RealPins = strings.EqualFold(d.State, "active") || strings.EqualFold(d.State, "stopped")
	case parts[0] == "compute_task":
	case et == "instance.create.end":
		a.Kind = Created
		if d.Node != nil && *d.Node != "" {
			a.Host = *d.Node
		} else if d.Host != nil {
			a.Host = *d.Host
		}
	case et == "instance.create.error":
		a.Kind, a.Reason = Failed, reason(d.Fault, "the create failed")
	case phase == "error" && strings.EqualFold(d.State, "error"):
		a.Kind, a.Reason = Failed, reason(d.Fault, op+" failed")
	case et == "instance.delete.end":
		a.Kind = Deleted
	case (phase == "end" || len(parts) == 2) && movingOps[op]:
		a.Kind, a.RealPins = Moved, landingOps[op]
	}
	if a.Kind != Ignored && !isUUID(a.ServerID) {
		return Action{}, fmt.Errorf("%w: %s names no instance uuid (%q)", errMalformed, et, id)
	}
	if a.Kind == Created && a.Host == "" {
		return Action{}, fmt.Errorf("%w: %s of %s names no host", errMalformed, et, id)
	}
	return a, nil
}

func reason(e *versioned[exceptionData], def string) string {
	if e == nil || e.Data == nil {
		return def
	}
	switch {
	case e.Data.ExceptionMessage != "" && e.Data.Exception != "":
		return e.Data.Exception + ": " + e.Data.ExceptionMessage
	case e.Data.ExceptionMessage != "":
		return e.Data.ExceptionMessage
	case e.Data.Exception != "":
		return e.Data.Exception
	}
	return def
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

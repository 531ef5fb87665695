package outbox_test

import (
	"context"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge/outbox"
)

func TestRouter(t *testing.T) {
	var got []string
	to := func(name string) outbox.Deliverer {
		return outbox.DelivererFunc(func(_ context.Context, ev outbox.Event) error {
			got = append(got, name+":"+ev.Topic)
			return nil
		})
	}
	var r outbox.Router
	r.Handle("agent", to("agents"))
	r.Handle("notification.", to("bus"))
	r.Handle("notification.container.delete.", to("deletes"))
	for _, tc := range []struct {
		topic, want string
		discard     bool
	}{
		{"agent", "agents:agent", false},
		{"notification.container.create.end", "bus:notification.container.create.end", false},
		{"notification.container.delete.end", "deletes:notification.container.delete.end", false},
		{"workload.claimed", "", true},
	} {
		got = nil
		err := r.Deliver(context.Background(), outbox.Event{ID: 1, Topic: tc.topic})
		isDiscard := err != nil && strings.HasPrefix(err.Error(), "discarded: ")
		if isDiscard != tc.discard || (!tc.discard && (len(got) != 1 || got[0] != tc.want)) {
			t.Errorf("%s: delivered %v, err %v", tc.topic, got, err)
		}
	}
}

package novaharness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// startRabbit starts an epmd of the environment's own (on its port, so a
// foreign epmd or RabbitMQ on the machine is never shared) and a RabbitMQ
// node with its own name, ports and data, and waits until AMQP answers.
func (e *Env) startRabbit(ctx context.Context) error {
	t0 := time.Now()
	dir, err := e.writeRabbitConf()
	if err != nil {
		return err
	}
	logs := filepath.Join(e.Dir, "logs")
	epmd, err := startProcess("epmd", filepath.Join(logs, "epmd.log"),
		exec.Command("/usr/bin/epmd", "-address", "127.0.0.1", "-port", fmt.Sprint(e.ports.epmd)))
	if err != nil {
		return err
	}
	e.addProcess(epmd)
	if err := e.waitFor(ctx, epmd, 20*time.Second, func(context.Context) error { return dialTCP(e.ports.epmd) }); err != nil {
		return err
	}
	cmd := exec.Command("/usr/lib/rabbitmq/bin/rabbitmq-server")
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + dir,
		"LANG=C.UTF-8",
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "rabbitmq-env.conf"),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		fmt.Sprintf("ERL_EPMD_PORT=%d", e.ports.epmd),
	}
	cmd.Dir = dir
	p, err := startProcess("rabbitmq", filepath.Join(logs, "rabbitmq.out"), cmd)
	if err != nil {
		return err
	}
	e.addProcess(p)
	if err := e.waitFor(ctx, p, 2*time.Minute, func(context.Context) error {
		c, err := amqp.DialConfig(e.AMQPURL, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		return err
	}
	e.timed("rabbitmq", t0)
	return nil
}

// queueConsumers returns each named queue's consumer count (0 when the
// queue does not exist yet).
func (e *Env) queueConsumers(queues []string) (map[string]int, error) {
	c, err := amqp.DialConfig(e.AMQPURL, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := map[string]int{}
	for _, q := range queues {
		// A passive declare of a missing queue closes the channel (404):
		// one channel per queue.
		ch, err := c.Channel()
		if err != nil {
			return nil, err
		}
		info, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
		if err == nil {
			out[q] = info.Consumers
			_ = ch.Close()
		} else {
			out[q] = 0
		}
	}
	return out, nil
}

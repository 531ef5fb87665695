package novaharness

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// logLevels are oslo.log's defaults plus nova's, with "Using RPCClient
// manually" silenced (Zed logs it hundreds of times per process).
const logLevels = "amqp=WARN,amqplib=WARN,boto=WARN,qpid=WARN,sqlalchemy=WARN,suds=INFO," +
	"oslo.messaging=INFO,oslo_messaging=INFO,iso8601=WARN,requests.packages.urllib3.connectionpool=WARN," +
	"urllib3.connectionpool=WARN,websocket=WARN,requests.packages.urllib3.util.retry=WARN," +
	"urllib3.util.retry=WARN,keystonemiddleware=WARN,routes.middleware=WARN,stevedore=WARN," +
	"taskflow=WARN,keystoneauth=WARN,oslo.cache=INFO,oslo_policy=INFO,dogpile.core.dogpile=INFO," +
	"glanceclient=WARN,oslo.privsep.daemon=INFO,oslo_messaging.rpc.client=ERROR"

// sqlalchemyURL turns a libpq-style PostgreSQL URL (the one the Go tests
// use, possibly with host=/socket/dir in the query) into the URL oslo.db
// gives SQLAlchemy's psycopg2 dialect for database db; psycopg2 passes the
// query parameters on to libpq unchanged.
func sqlalchemyURL(admin, db string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", fmt.Errorf("parsing database url: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("database url %q: want a postgres:// URL", admin)
	}
	q := u.Query()
	// pgx-only parameters psycopg2 would refuse
	for k := range q {
		if strings.HasPrefix(k, "pool_") || k == "default_query_exec_mode" || k == "statement_cache_capacity" {
			q.Del(k)
		}
	}
	out := url.URL{Scheme: "postgresql+psycopg2", User: u.User, Host: u.Host, Path: "/" + db, RawQuery: q.Encode()}
	return out.String(), nil
}

// placementRetries are keystoneauth's retries in Nova's [placement], as
// docs/operations.md advises for any deployment: Nova gives up a boot
// (leaving it in BUILD for good when even its reschedule's clean-up fails)
// on the first refused or 503 Placement request, so a restart or a
// replica's failover must be ridden out by retrying for a few seconds.
var placementRetries = []string{
	"connect_retries", "20", "connect_retry_delay", "0.5",
	"status_code_retries", "20", "status_code_retry_delay", "0.5",
}

type ini struct{ b strings.Builder }

func (c *ini) section(name string, kv ...string) {
	fmt.Fprintf(&c.b, "[%s]\n", name)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&c.b, "%s = %s\n", kv[i], kv[i+1])
	}
}

func (c *ini) raw(s string) { c.b.WriteString(s) }

func (c *ini) write(path string) error { return os.WriteFile(path, []byte(c.b.String()), 0o644) }

// commonNova are the sections every nova process reads: where Glance,
// Placement (through the wire recorder) and the Neutron stand-in are, and
// versioned notifications on the bus.
func (e *Env) commonNova(c *ini) {
	c.section("glance", "endpoint_override", e.GlanceURL)
	if e.Keystone != nil {
		e.keystoneNova(c)
	} else {
		c.section("placement", append([]string{"auth_type", "admin_token", "endpoint", e.PlacementWireURL, "token", "admin"},
			placementRetries...)...)
	}
	c.section("neutron", "auth_type", "admin_token", "endpoint", e.NeutronURL, "endpoint_override", e.NeutronURL, "token", "admin")
	c.section("cinder", "os_region_name", "RegionOne")
	c.section("notifications", "notification_format", "versioned")
	c.section("oslo_messaging_notifications", "driver", "messagingv2")
	c.section("oslo_policy", "enforce_scope", "false", "enforce_new_defaults", "false")
	c.section("vnc", "enabled", "false")
}

func (e *Env) defaultNova(c *ini, host, state string) {
	c.section("DEFAULT",
		"host", host,
		"transport_url", e.TransportURL,
		"my_ip", "127.0.0.1",
		"state_path", state,
		"use_rootwrap_daemon", "false",
		"debug", fmt.Sprint(e.opts.Debug),
		"default_log_levels", logLevels,
		// periodic tasks (the scheduler's host discovery) start at once,
		// not after a random 0-60 s
		"periodic_fuzzy_delay", "0",
		// a stop waits at most this long for in-flight work
		"graceful_shutdown_timeout", "5",
		// a resize may stay on its host: with one host able to take a
		// flavor (compute-2 alone has dedicated CPUs) it could not be
		// resized otherwise; shared flavors fit both default computes
		"allow_resize_to_same_host", "true",
	)
}

// writeNovaConf writes nova.conf for nova-api, -conductor, -scheduler and
// nova-manage, and api-paste.ini with the token stand-in after noauth2.
func (e *Env) writeNovaConf() error {
	dir := filepath.Join(e.Dir, "nova")
	for _, d := range []string{"state", "lock"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	var c ini
	e.defaultNova(&c, ControllerHost, filepath.Join(dir, "state"))
	c.raw(fmt.Sprintf("enabled_apis = osapi_compute\nosapi_compute_listen = 127.0.0.1\nosapi_compute_listen_port = %d\nosapi_compute_workers = 1\n", e.ports.nova))
	if e.Keystone != nil {
		c.section("api", "auth_strategy", "keystone")
	} else {
		c.section("api", "auth_strategy", "noauth2")
	}
	// a burst of 40 API calls must not wait out the pool (30 s): room to
	// overflow, connections closed again when idle
	pool := []string{"max_pool_size", "5", "max_overflow", "35"}
	c.section("api_database", append([]string{"connection", e.novaAPIConn}, pool...)...)
	c.section("database", append([]string{"connection", e.novaCellConn}, pool...)...)
	c.section("conductor", "workers", "1")
	c.section("scheduler", "workers", "1", "discover_hosts_in_cells_interval", "2")
	c.section("quota", "driver", "nova.quota.NoopQuotaDriver")
	c.section("wsgi", "api_paste_config", filepath.Join(dir, "api-paste.ini"))
	c.section("oslo_concurrency", "lock_path", filepath.Join(dir, "lock"))
	// Pinned servers: the scheduler checks host NUMA cells and never falls
	// back to asking Placement for VCPU instead of PCPU.
	c.section("filter_scheduler", "enabled_filters",
		"ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,NUMATopologyFilter")
	c.section("workarounds", "disable_fallback_pcpu_query", "true")
	e.commonNova(&c)
	c.raw(e.opts.ExtraNovaConf)
	if err := c.write(filepath.Join(dir, "nova.conf")); err != nil {
		return err
	}
	paste, err := os.ReadFile("/etc/nova/api-paste.ini")
	if err != nil {
		return fmt.Errorf("reading nova's paste config: %w", err)
	}
	const from, to = "osprofiler noauth2 osapi_compute_app_v21", "osprofiler noauth2 unischedtoken osapi_compute_app_v21"
	if !strings.Contains(string(paste), from) {
		return fmt.Errorf("/etc/nova/api-paste.ini has no %q pipeline to insert the token stand-in into", from)
	}
	out := strings.Replace(string(paste), from, to, 1) +
		"\n[filter:unischedtoken]\npaste.filter_factory = nova_token_standin:filter_factory\n"
	return os.WriteFile(filepath.Join(dir, "api-paste.ini"), []byte(out), 0o644)
}

// writeComputeConf writes compute-N.conf: no database sections (computes
// reach the database through the conductor).
func (e *Env) writeComputeConf(i int, spec ComputeSpec) (string, error) {
	dir := filepath.Join(e.Dir, "nova", spec.Host)
	for _, d := range []string{"state", "instances", "lock"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	var c ini
	e.defaultNova(&c, spec.Host, filepath.Join(dir, "state"))
	c.raw(fmt.Sprintf("compute_driver = %s\ninstances_path = %s\n", spec.driver(), filepath.Join(dir, "instances")))
	c.section("oslo_concurrency", "lock_path", filepath.Join(dir, "lock"))
	e.commonNova(&c)
	c.raw(e.opts.ExtraNovaConf)
	path := filepath.Join(e.Dir, "nova", fmt.Sprintf("compute-%d.conf", i+1))
	return path, c.write(path)
}

// writeGlanceConf: no Keystone (paste flavor "" = an unauthenticated,
// admin context for every request), file store under the environment.
func (e *Env) writeGlanceConf() (string, error) {
	dir := filepath.Join(e.Dir, "glance")
	for _, d := range []string{"images", "staging", "tasks", "lock"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	var c ini
	c.section("DEFAULT", "bind_host", "127.0.0.1", "bind_port", fmt.Sprint(e.ports.glance), "workers", "1",
		"enabled_backends", "fs:file", "log_file", filepath.Join(e.Dir, "logs", "glance-api.log"))
	c.section("database", "connection", e.glanceConn, "max_pool_size", "3")
	c.section("glance_store", "default_backend", "fs")
	c.section("fs", "filesystem_store_datadir", filepath.Join(dir, "images"))
	c.section("os_glance_staging_store", "filesystem_store_datadir", filepath.Join(dir, "staging"))
	c.section("os_glance_tasks_store", "filesystem_store_datadir", filepath.Join(dir, "tasks"))
	c.section("oslo_concurrency", "lock_path", filepath.Join(dir, "lock"))
	c.raw("[paste_deploy]\nflavor =\nconfig_file = /etc/glance/glance-api-paste.ini\n")
	c.section("oslo_policy", "enforce_scope", "false", "enforce_new_defaults", "false")
	path := filepath.Join(dir, "glance-api.conf")
	return path, c.write(path)
}

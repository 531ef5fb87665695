package config

import "time"

// Nova configures serve's view of the compute cloud: the Nova API client
// (real pins from GET /servers/{id}/topology, reconciliation) and the
// consumer of Nova's versioned notifications.
type Nova struct {
	// Keystone: AuthURL with the credentials below gets a token and the
	// compute endpoint from the catalog.
	AuthURL           string `mapstructure:"auth_url"`
	Username          string `mapstructure:"username"`
	Password          string `mapstructure:"password"`
	ProjectName       string `mapstructure:"project_name"`
	UserDomainName    string `mapstructure:"user_domain_name"`
	ProjectDomainName string `mapstructure:"project_domain_name"`
	RegionName        string `mapstructure:"region_name"`
	// Interface is the catalog endpoint used (public, internal, admin).
	Interface string `mapstructure:"interface"`
	// Endpoint is the compute API (http://host:8774/v2.1) used as it is,
	// with Token as X-Auth-Token: Nova's noauth2 takes "user:project".
	// Set when AuthURL is not.
	Endpoint string `mapstructure:"endpoint"`
	Token    string `mapstructure:"token"`
	// Timeout bounds one call to Nova.
	Timeout time.Duration `mapstructure:"timeout"`
	// Candidates is what the bridge does to Nova's allocation candidates
	// on its ledger's hosts: first (its choice first), only (its choice
	// alone) or off (Placement's answer).
	Candidates    string            `mapstructure:"candidates"`
	Notifications NovaNotifications `mapstructure:"notifications"`
}

// Configured says whether a Nova API client can be built.
func (n Nova) Configured() bool { return n.AuthURL != "" || n.Endpoint != "" }

// NovaNotifications configures the consumer of Nova's versioned
// notifications.
type NovaNotifications struct {
	// URL is the AMQP URL of Nova's bus (amqp://user:pass@host:5672/vhost);
	// "" or "off": no consumer.
	URL string `mapstructure:"url"`
	// Exchange is Nova's control exchange; Queue the durable queue of
	// unisched's own, bound to versioned_notifications.info and .error.
	Exchange string `mapstructure:"exchange"`
	Queue    string `mapstructure:"queue"`
}

// Enabled says whether serve consumes Nova's notifications.
func (n NovaNotifications) Enabled() bool { return n.URL != "" && n.URL != "off" }

// Notifications configures what unisched publishes itself: OpenStack-style
// versioned notifications of its containers.
type Notifications struct {
	// PublishURL is the AMQP URL to publish to; "" or "off": none are
	// written.
	PublishURL string `mapstructure:"publish_url"`
	// Exchange is the topic exchange published to (Zun's control exchange).
	Exchange string `mapstructure:"exchange"`
	// PublisherHost is the host in publisher_id "container-api:<host>";
	// "" takes the machine's host name.
	PublisherHost string `mapstructure:"publisher_host"`
}

// Enabled says whether serve publishes container notifications.
func (n Notifications) Enabled() bool { return n.PublishURL != "" && n.PublishURL != "off" }

var novaDefaults = map[string]any{
	"nova.auth_url":                "",
	"nova.username":                "",
	"nova.password":                "",
	"nova.project_name":            "",
	"nova.user_domain_name":        "Default",
	"nova.project_domain_name":     "Default",
	"nova.region_name":             "",
	"nova.interface":               "public",
	"nova.endpoint":                "",
	"nova.token":                   "admin:admin",
	"nova.timeout":                 30 * time.Second,
	"nova.candidates":              "first",
	"nova.notifications.url":       "",
	"nova.notifications.exchange":  "nova",
	"nova.notifications.queue":     "unisched-notifications",
	"notifications.publish_url":    "",
	"notifications.exchange":       "zun",
	"notifications.publisher_host": "",
}

// init adds the Nova and notification keys to the defaults.
func init() {
	for k, v := range novaDefaults {
		defaults[k] = v
	}
}

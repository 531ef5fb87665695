package config

import "time"

// NovaProxy configures serve's Nova API proxy listener (novaext): clients
// pointed at it reach nova-api unchanged, and their server creates are
// recorded as intents for the bridge's scheduling.
type NovaProxy struct {
	// Listen is the proxy's address; "off" (or "") runs no proxy.
	Listen string `mapstructure:"listen"`
	// Upstream is nova-api's base URL, e.g. http://127.0.0.1:8774.
	Upstream string `mapstructure:"upstream"`
	// IntentRetention is how long a recorded intent is kept; older ones
	// are deleted periodically (an intent matters only until Nova has
	// scheduled the create, seconds after it).
	IntentRetention time.Duration `mapstructure:"intent_retention"`
	// LookupTimeout bounds the flavor lookup and each intent write of a
	// create before it is forwarded anyway.
	LookupTimeout time.Duration `mapstructure:"lookup_timeout"`
}

// Enabled says whether serve runs the Nova API proxy.
func (n NovaProxy) Enabled() bool { return n.Listen != "" && n.Listen != "off" }

var novaProxyDefaults = map[string]any{
	"nova_proxy.listen":           "off",
	"nova_proxy.upstream":         "",
	"nova_proxy.intent_retention": time.Hour,
	"nova_proxy.lookup_timeout":   5 * time.Second,
}

func init() {
	for k, v := range novaProxyDefaults {
		defaults[k] = v
	}
}

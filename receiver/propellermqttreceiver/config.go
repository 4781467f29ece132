package propellermqttreceiver

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/fleet"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// Config is the propeller_mqtt receiver's configuration.
type Config struct {
	// The broker connection: endpoint, client_id, username, password, tls, keep_alive,
	// connect_timeout, max_reconnect_interval, protocol_version and max_packet_size, the same
	// keys as the mqtt exporter's. Set a client_id unless session is clean: the broker keeps a
	// persistent session by that id.
	mqttconn.ClientConfig `mapstructure:",squash"`
	// Session is the session asked of the broker: prefer_persistent (default: persistent, and
	// clean with a warning when the broker refuses persistent sessions, as FluxMQ does with its
	// cluster disabled), persistent (only: a refusal fails the start), or clean.
	Session mqttconn.SessionPolicy `mapstructure:"session"`
	// SessionExpiry is how long an MQTT 5 broker keeps a persistent session while the gateway
	// is away (MQTT 3.1.1 brokers decide this themselves). Default 1h.
	SessionExpiry time.Duration `mapstructure:"session_expiry"`
	// AcceptRetained takes in retained messages. Default false: a retained message is sent
	// again at every (re)connection, so it would become a fresh sample each time; it is
	// counted as ignored instead.
	AcceptRetained bool `mapstructure:"accept_retained"`
	// Topics are the MQTT topic filters subscribed to at QoS 1. Default: every domain's and
	// channel's task_metrics and proplet metrics.
	Topics []string `mapstructure:"topics"`
	// SharedGroup, when set, subscribes to $share/<group>/<filter> for every filter, so the
	// gateways of one group split the stream (MQTT 5, and over 3.1.1 with brokers that accept
	// it there: Mosquitto, FluxMQ).
	SharedGroup string `mapstructure:"shared_group"`
	// RepairRustProplet corrects the Rust proplet's messages: memory_bytes / 1024, and its
	// always-zero memory_percent dropped. Default true.
	RepairRustProplet bool `mapstructure:"repair_rust_proplet"`
	// MaxAge drops messages whose timestamp is older than this. Default 168h.
	MaxAge time.Duration `mapstructure:"max_age"`
	// MaxAhead drops messages whose timestamp is further in the future than this. Default 1h.
	MaxAhead time.Duration `mapstructure:"max_ahead"`
	// MaxTasks is the most tasks tracked at once (by domain, channel, proplet and task id):
	// messages of a new task past it are dropped (counted as too_many_tasks) until tracked
	// tasks expire. Every task is a dozen series in Prometheus. Default 10000.
	MaxTasks int `mapstructure:"max_tasks"`
	// MaxProplets is the most proplets tracked at once (by domain, channel, proplet id and
	// namespace), dropped past it as too_many_proplets. Default 1000.
	MaxProplets int `mapstructure:"max_proplets"`
	// TrackingExpiration forgets a task or proplet without a message for this long, making room
	// for new ones; set it to the backend's expiration of series (the prometheus exporter's
	// metric_expiration). Default 5m.
	TrackingExpiration time.Duration `mapstructure:"tracking_expiration"`
}

// DefaultTopics are the two metrics topics of every domain and channel.
var DefaultTopics = propeller.MetricsFilters()

// Validate checks the configuration; every error names the key and the value.
func (c *Config) Validate() error {
	errs := []error{c.Check("")}
	switch c.Session {
	case mqttconn.SessionPreferPersistent, mqttconn.SessionPersistent:
		if c.ClientID == "" {
			// A random id would leave a session on the broker at every restart, queueing
			// messages for a client that never comes back.
			errs = append(errs, fmt.Errorf("client_id: must be set with session %s: the broker keeps a persistent session by this id (for example gateway-1); or set session: clean", c.Session))
		}
	case mqttconn.SessionClean:
	default:
		errs = append(errs, fmt.Errorf("session: must be prefer_persistent, persistent or clean, got %q", c.Session))
	}
	if c.SessionExpiry < time.Second || c.SessionExpiry > math.MaxUint32*time.Second {
		errs = append(errs, fmt.Errorf("session_expiry: must be from 1s to %d s, got %s", uint32(math.MaxUint32), c.SessionExpiry))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("topics: must list at least one topic filter"))
	}
	for i, t := range c.Topics {
		switch {
		case strings.HasPrefix(t, "$share/"):
			errs = append(errs, fmt.Errorf("topics[%d]: %q: write the filter alone and the group in shared_group", i, t))
		default:
			if err := propeller.CheckFilter(t); err != nil {
				errs = append(errs, fmt.Errorf("topics[%d]: not a topic filter of Propeller ids: %w", i, err))
			}
		}
	}
	if c.SharedGroup != "" {
		if reason := propeller.CheckValue(c.SharedGroup); reason != "" || strings.TrimSpace(c.SharedGroup) != c.SharedGroup {
			errs = append(errs, fmt.Errorf("shared_group: %q must be one topic level without /, +, #, spaces around it, control characters or noncharacters", c.SharedGroup))
		}
	}
	if c.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("max_age: must be positive, got %s", c.MaxAge))
	}
	if c.MaxAhead <= 0 {
		errs = append(errs, fmt.Errorf("max_ahead: must be positive, got %s", c.MaxAhead))
	}
	if c.MaxTasks <= 0 {
		errs = append(errs, fmt.Errorf("max_tasks: must be positive, got %d", c.MaxTasks))
	}
	if c.MaxProplets <= 0 {
		errs = append(errs, fmt.Errorf("max_proplets: must be positive, got %d", c.MaxProplets))
	}
	if c.TrackingExpiration < time.Second {
		errs = append(errs, fmt.Errorf("tracking_expiration: must be at least 1s, got %s", c.TrackingExpiration))
	}
	return errors.Join(errs...)
}

// filters returns the filters to subscribe to, with the shared group when there is one.
func (c *Config) filters() []string {
	out := make([]string, len(c.Topics))
	for i, t := range c.Topics {
		if c.SharedGroup != "" {
			t = "$share/" + c.SharedGroup + "/" + t
		}
		out[i] = t
	}
	return out
}

func (c *Config) options() propeller.DecodeOptions {
	return propeller.DecodeOptions{Repair: c.RepairRustProplet, MaxAge: c.MaxAge, MaxAhead: c.MaxAhead}
}

func (c *Config) limits() fleet.Limits {
	return fleet.Limits{MaxTasks: c.MaxTasks, MaxProplets: c.MaxProplets, Expiration: c.TrackingExpiration}
}

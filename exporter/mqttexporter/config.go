package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// Config is the MQTT exporter's configuration.
type Config struct {
	TimeoutConfig exporterhelper.TimeoutConfig                             `mapstructure:",squash"`
	QueueConfig   configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	BackOffConfig configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`

	// ClientConfig is the broker connection: endpoint, client_id, username, password, tls,
	// keep_alive, connect_timeout, max_reconnect_interval, protocol_version ("3.1.1" or "5")
	// and max_packet_size, the same keys as the receivers'.
	mqttconn.ClientConfig `mapstructure:",squash"`
	// QoS of published messages: 0, 1 or 2.
	QoS byte `mapstructure:"qos"`
	// Retain sets the retain flag (Propeller never retains metrics).
	Retain bool `mapstructure:"retain"`

	// DomainID is Propeller's domain (tenant) id, the {domain_id} of topics.
	DomainID string `mapstructure:"domain_id"`
	// ChannelID is Propeller's channel id, the {channel_id} of topics.
	ChannelID string `mapstructure:"channel_id"`
	// PropletID is used for resources without a propeller.proplet.id attribute.
	PropletID string `mapstructure:"proplet_id"`
	// Namespace is the proplet message's namespace field.
	Namespace string `mapstructure:"namespace"`
	// DefaultHistorySize is the aggregated window of tasks whose resource carries no
	// propeller.monitoring_profile.history_size (metrics from other sources). Default: the
	// history_size of Propeller's standard profile.
	DefaultHistorySize int `mapstructure:"default_history_size"`
	// Topics lists the topic templates of each message kind.
	Topics TopicsConfig `mapstructure:"topics"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// TopicsConfig lists topic templates. Templates take {domain_id}, {channel_id}, {proplet_id}
// and, for task messages, {task_id}.
type TopicsConfig struct {
	// TaskMetrics receive a task message per task sample (metrics pipelines).
	TaskMetrics []string `mapstructure:"task_metrics"`
	// PropletMetrics receive a proplet message per proplet sample (metrics pipelines).
	PropletMetrics []string `mapstructure:"proplet_metrics"`
	// TaskUsage receive a task usage message per ended task, from the propeller.task.end log
	// records (logs pipelines).
	TaskUsage []string `mapstructure:"task_usage"`
	// TaskAlerts receive a task alert message per memory warning, from the
	// propeller.task.memory.high and propeller.task.memory.recovered log records (logs
	// pipelines).
	TaskAlerts []string `mapstructure:"task_alerts"`
}

// Validate checks the configuration. Errors name the key and the value.
func (cfg *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := cfg.ClientConfig.Check(""); err != nil {
		errs = append(errs, err)
	}
	if cfg.QoS > 2 {
		add("qos: must be 0, 1 or 2, got %d", cfg.QoS)
	}
	if cfg.DefaultHistorySize < 0 {
		add("default_history_size: must not be negative, got %d", cfg.DefaultHistorySize)
	}
	if len(cfg.Topics.TaskMetrics) == 0 && len(cfg.Topics.PropletMetrics) == 0 && len(cfg.Topics.TaskUsage) == 0 && len(cfg.Topics.TaskAlerts) == 0 {
		add("topics: at least one task_metrics, proplet_metrics, task_usage or task_alerts topic is needed")
	}
	if _, err := cfg.templates(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// templates parses the topic templates, checking the placeholders each kind may use, and that
// the configured values a topic uses ({domain_id}, {channel_id}, {proplet_id}) are set and can
// be part of a topic. A value's problem is said once, naming every topic that uses it.
func (cfg *Config) templates() (tpl topicTemplates, err error) {
	var errs []error
	usedBy := map[string][]string{} // placeholder -> keys of the topics that use it
	parse := func(key string, list []string, allowed ...string) []propeller.Template {
		var out []propeller.Template
		for i, text := range list {
			t, err := propeller.ParseTemplate(text, allowed...)
			if err != nil {
				errs = append(errs, fmt.Errorf("topics.%s[%d]: %w", key, i, err))
				continue
			}
			for _, name := range []string{propeller.DomainID, propeller.ChannelID, propeller.PropletID} {
				if strings.Contains(text, "{"+name+"}") {
					usedBy[name] = append(usedBy[name], fmt.Sprintf("topics.%s[%d]", key, i))
				}
			}
			out = append(out, t)
		}
		return out
	}
	tpl.task = parse("task_metrics", cfg.Topics.TaskMetrics, propeller.DomainID, propeller.ChannelID, propeller.PropletID, propeller.TaskID)
	tpl.proplet = parse("proplet_metrics", cfg.Topics.PropletMetrics, propeller.DomainID, propeller.ChannelID, propeller.PropletID)
	tpl.usage = parse("task_usage", cfg.Topics.TaskUsage, propeller.DomainID, propeller.ChannelID, propeller.PropletID, propeller.TaskID)
	tpl.alerts = parse("task_alerts", cfg.Topics.TaskAlerts, propeller.DomainID, propeller.ChannelID, propeller.PropletID, propeller.TaskID)
	for _, v := range []struct {
		key, value string
		required   bool // proplet_id is only the fallback of resources without propeller.proplet.id
	}{{propeller.DomainID, cfg.DomainID, true}, {propeller.ChannelID, cfg.ChannelID, true}, {propeller.PropletID, cfg.PropletID, false}} {
		users := usedBy[v.key]
		switch {
		case len(users) == 0:
		case v.value == "" && v.required:
			errs = append(errs, fmt.Errorf("%s: must be set: %s {%s}", v.key, listUsers(users), v.key))
		case v.value == "":
		default:
			check := propeller.CheckID // Propeller's domain and channel ids
			if v.key == propeller.PropletID {
				check = propeller.CheckValue // only the fallback of resources without one
			}
			if reason := check(v.value); reason != "" {
				errs = append(errs, fmt.Errorf("%s: %q cannot be part of a topic: %s", v.key, v.value, reason))
			}
		}
	}
	return tpl, errors.Join(errs...)
}

// listUsers says which topics use a value: "topics.a[0] uses", "topics.a[0] and topics.b[0]
// use", "topics.a[0], topics.a[1] and topics.b[0] use".
func listUsers(keys []string) string {
	if len(keys) == 1 {
		return keys[0] + " uses"
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " and " + keys[len(keys)-1] + " use"
}

type topicTemplates struct {
	task, proplet, usage, alerts []propeller.Template
}

package mqttexporter

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig()
	id := component.NewID(metadata.Type)
	if name != "" {
		id = component.NewIDWithName(metadata.Type, name)
	}
	sub, err := cm.Sub(id.String())
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg.(*Config)
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, "")
	require.NoError(t, confmap.Validate(cfg))
	want := createDefaultConfig().(*Config)
	want.Endpoint = "ssl://broker.example.com:8883"
	want.ClientID = "proplet-7c9e6679"
	want.Username = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	want.Password = "s3cret-api-key"
	want.TLS.CAFile = "/etc/propeller/ca.pem"
	want.ProtocolVersion = "5"
	want.QoS = 2
	want.DomainID, want.ChannelID = "d6a1", "c9b2"
	want.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	want.Namespace = "edge"
	want.Topics = TopicsConfig{
		TaskMetrics:    []string{"m/{domain_id}/c/{channel_id}/control/proplet/task_metrics"},
		PropletMetrics: []string{"m/{domain_id}/c/{channel_id}/control/proplet/metrics"},
		TaskUsage:      []string{"m/{domain_id}/c/{channel_id}/control/proplet/task_usage", "usage/{proplet_id}/{task_id}"},
		TaskAlerts:     []string{"m/{domain_id}/c/{channel_id}/control/proplet/task_alerts", "alerts/{proplet_id}/{task_id}"},
	}
	want.TimeoutConfig.Timeout = 10 * time.Second
	want.QueueConfig.Get().Sizer = exporterhelper.RequestSizerTypeRequests
	want.QueueConfig.Get().QueueSize = 5000
	want.BackOffConfig.MaxElapsedTime = 0
	assert.Equal(t, want, cfg)
	assert.Equal(t, "[REDACTED]", cfg.Password.String(), "the password never prints")
}

// TestLoadConnectionKeys decodes every key of the embedded mqttconn.ClientConfig from YAML, as
// the Collector does: squashed into the exporter's top level, next to the exporter's own keys.
func TestLoadConnectionKeys(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, "connection")
	require.NoError(t, confmap.Validate(cfg))
	want := createDefaultConfig().(*Config)
	want.ClientConfig = mqttconn.ClientConfig{
		Endpoint: "mqtts://broker.example.com:8883",
		ClientID: "proplet-1",
		Username: "proplet",
		Password: "s3cret-api-key",
		TLS: configtls.ClientConfig{
			Config: configtls.Config{
				CAFile: "/etc/propeller/ca.pem", CertFile: "/etc/propeller/client.pem", KeyFile: "/etc/propeller/client-key.pem",
			},
			ServerName: "broker.internal",
		},
		KeepAlive:            45 * time.Second,
		ConnectTimeout:       7 * time.Second,
		MaxReconnectInterval: time.Minute,
		ProtocolVersion:      "3.1.1",
		MaxPacketSize:        mqttconn.DefaultMaxPacketSize,
	}
	want.Retain = true
	want.DomainID, want.ChannelID = "d", "c"
	assert.Equal(t, want, cfg)
}

func TestDefaultHistorySizeIsTheStandardProfiles(t *testing.T) {
	t.Parallel()
	std, ok := profile.Builtin(profile.Standard)
	require.True(t, ok)
	assert.Equal(t, std.HistorySize, createDefaultConfig().(*Config).DefaultHistorySize)
}

func TestValidateNamesKeysAndValues(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"wildcard": {
			`topics.task_metrics[0]: topic "m/+/c/{channel_id}/control/proplet/task_metrics" contains an MQTT wildcard`,
			`topics.task_metrics[1]: topic "m//x" has an empty level`,
			`topics.proplet_metrics[0]: topic "m/{domain_id}/{task_id}" uses {task_id}`,
			`topics.task_usage[0]: topic "m/{domain_id}/usage/#" contains an MQTT wildcard`,
			`topics.task_usage[1]: topic "m/{domain_id}/{job_id}" uses {job_id}; allowed here: {domain_id}, {channel_id}, {proplet_id}, {task_id}`,
			`topics.task_alerts[0]: topic "m/{domain_id}/alerts/+" contains an MQTT wildcard`,
		},
		"bad": {
			`endpoint: scheme "http" is not one of tcp, mqtt, ssl, tls, mqtts, ws, wss`,
			`protocol_version: must be "3.1.1" or "5", got "4"`,
			"qos: must be 0, 1 or 2, got 3",
			"keep_alive: must be at least 1s (brokers reject 0), got 0s",
			"connect_timeout: must be positive, got -1s",
			"max_reconnect_interval: must be at least 1s, got 100ms",
		},
		"plaintls": {`tls.ca_file: is set but endpoint "tcp://broker:1883" does not use TLS`},
		"plainskipverify": {
			`tls.insecure_skip_verify: is set but endpoint "tcp://broker:1883" does not use TLS, so the connection would be plaintext`,
			`tls.server_name_override: is set but endpoint "tcp://broker:1883" does not use TLS`,
		},
		"nodomain": {"domain_id: must be set: topics.task_metrics[0], topics.task_metrics[1], topics.proplet_metrics[0], topics.task_usage[0] and topics.task_alerts[0] use {domain_id}"},
		"notopics": {"topics: at least one task_metrics, proplet_metrics, task_usage or task_alerts topic is needed"},
	}
	for name, wants := range tests {
		t.Run(name, func(t *testing.T) {
			err := confmap.Validate(loadConfig(t, name))
			require.Error(t, err)
			for _, w := range wants {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}

func TestDefaultsAreValidOnceIDsAreSet(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig().(*Config)
	assert.ErrorContains(t, confmap.Validate(cfg), "domain_id: must be set")
	cfg.DomainID, cfg.ChannelID = "d", "c"
	assert.NoError(t, confmap.Validate(cfg))
	cfg.DomainID = "a/b"
	assert.ErrorContains(t, confmap.Validate(cfg), `domain_id: "a/b" cannot be part of a topic: '/', '+' or '#'`)
	cfg.DomainID, cfg.ChannelID = "d", "c\x01"
	assert.ErrorContains(t, confmap.Validate(cfg), `channel_id: "c\x01" cannot be part of a topic: control character`)
	// Checked as the fleet gateway checks the ids of a topic it receives: Propeller's limit.
	cfg.ChannelID = strings.Repeat("c", 37)
	assert.ErrorContains(t, confmap.Validate(cfg), `cannot be part of a topic: longer than 36 bytes, Propeller's limit on ids`)
	cfg.ChannelID = "c"
	cfg.PropletID = "p\uffff"
	assert.NoError(t, confmap.Validate(cfg), "no default topic uses {proplet_id}")
	cfg.Topics.PropletMetrics = []string{"proplets/{proplet_id}"}
	assert.ErrorContains(t, confmap.Validate(cfg), `proplet_id: "p\uffff" cannot be part of a topic: Unicode noncharacter`)
}

// TestTaskUsageAloneIsEnough: an exporter that only sends usage reports (a logs pipeline) needs
// no metrics topic.
func TestTaskUsageAloneIsEnough(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, "usageonly")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, []string{"m/{domain_id}/c/{channel_id}/control/proplet/task_usage"}, cfg.Topics.TaskUsage, "the default stays")
	assert.Empty(t, cfg.Topics.TaskMetrics)
}

// TestTaskAlertsDefaultAndAlone: task_alerts has its default topic, with the same placeholders
// as task_usage, and an exporter that only sends alerts needs no other topic.
func TestTaskAlertsDefaultAndAlone(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"m/{domain_id}/c/{channel_id}/control/proplet/task_alerts"}, createDefaultConfig().(*Config).Topics.TaskAlerts)
	cfg := loadConfig(t, "alertsonly")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, []string{propeller.TaskAlertsTopic}, cfg.Topics.TaskAlerts, "the default stays")
	assert.Empty(t, cfg.Topics.TaskUsage)
	cfg.Topics.TaskAlerts = []string{"alerts/{domain_id}/{channel_id}/{proplet_id}/{task_id}"}
	cfg.PropletID = "p"
	require.NoError(t, confmap.Validate(cfg))
}

// TestSchemelessEndpoint: endpoint without a scheme says to add tcp://, once.
func TestSchemelessEndpoint(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig().(*Config)
	cfg.DomainID, cfg.ChannelID = "d", "c"
	for _, endpoint := range []string{"127.0.0.1:1883", "localhost:1883"} {
		cfg.Endpoint = endpoint
		err := confmap.Validate(cfg)
		require.Error(t, err)
		assert.Equal(t, fmt.Sprintf("endpoint: %q has no scheme: write tcp://%s (or ssl:// for a TLS broker)", endpoint, endpoint), err.Error())
	}
}

// TestEachProblemIsSaidOnce: a domain_id or channel_id that is missing or cannot be part of a
// topic is one error, however many topics use it.
func TestEachProblemIsSaidOnce(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig().(*Config)
	require.Len(t, cfg.Topics.TaskMetrics, 2)
	require.Len(t, cfg.Topics.PropletMetrics, 1)
	require.Len(t, cfg.Topics.TaskUsage, 1)
	require.Len(t, cfg.Topics.TaskAlerts, 1)
	assert.Equal(t,
		"domain_id: must be set: topics.task_metrics[0], topics.task_metrics[1], topics.proplet_metrics[0], topics.task_usage[0] and topics.task_alerts[0] use {domain_id}\n"+
			"channel_id: must be set: topics.task_metrics[0], topics.task_metrics[1], topics.proplet_metrics[0], topics.task_usage[0] and topics.task_alerts[0] use {channel_id}",
		confmap.Validate(cfg).Error())

	cfg.DomainID, cfg.ChannelID = "d/x", "c"
	assert.Equal(t, `domain_id: "d/x" cannot be part of a topic: '/', '+' or '#'`, confmap.Validate(cfg).Error())

	cfg.DomainID, cfg.ChannelID = "", "c"
	cfg.Topics.PropletMetrics = []string{"proplets/{proplet_id}"}
	cfg.Topics.TaskAlerts = nil
	assert.Equal(t, "domain_id: must be set: topics.task_metrics[0], topics.task_metrics[1] and topics.task_usage[0] use {domain_id}", confmap.Validate(cfg).Error())
	cfg.Topics.TaskUsage = nil
	assert.Equal(t, "domain_id: must be set: topics.task_metrics[0] and topics.task_metrics[1] use {domain_id}", confmap.Validate(cfg).Error())
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	assert.Equal(t, "domain_id: must be set: topics.task_metrics[0] uses {domain_id}", confmap.Validate(cfg).Error())
}

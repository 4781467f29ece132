package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/taskapi"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

// NewFactory returns the factory of the proplet receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
		receiver.WithLogs(createLogs, metadata.LogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		MetricsBuilderConfig: metadata.NewDefaultMetricsBuilderConfig(),
		ProcRoot:             "/proc",
		CgroupRoot:           "/sys/fs/cgroup",
		DefaultProfile:       profile.Standard,
		DaemonProfile:        profile.LongRunningDaemon,
		Proplet:              PropletConfig{Interval: propletIntervalFromEnv()},
		DiscoveryInterval:    time.Second,
		MaxConcurrency:       min(4, max(runtime.NumCPU(), 1)),
		StartJitter:          500 * time.Millisecond,
		MaxTasks:             monitor.DefaultMaxTasks,
		MaxPendingTasks:      monitor.DefaultMaxPendingTasks,
		PendingTimeout:       10 * time.Minute,
		ProcessEvents:        monitor.EventsAuto,
		API:                  configoptional.Default(defaultAPIConfig()),
		Propeller:            configoptional.Default(defaultPropellerConfig()),
	}
}

// defaultPropellerConfig has the broker defaults the mqtt exporter has. Its task_match is
// unset: a rule the user writes replaces controlplane.DefaultTaskMatch whole instead of being
// merged with it.
func defaultPropellerConfig() PropellerConfig {
	return PropellerConfig{ClientConfig: mqttconn.DefaultClientConfig(), ExportToMQTT: ExportAsRequested}
}

// maxAPIConnections bounds api.max_connections: far more than any client of the task API
// needs, and still a small share of a collector's descriptors.
const maxAPIConnections = 4096

// defaultAPIConfig bounds what a client without a token can hold: taskapi.DefaultMaxConnections
// connections, each closed when its request header has not arrived within 5 s, its request not
// within 10 s, or when idle for 30 s (the server defaults are one minute each, no read limit).
func defaultAPIConfig() APIConfig {
	s := confighttp.NewDefaultServerConfig()
	s.NetAddr.Endpoint = "localhost:8990"
	s.MaxRequestBodySize = 64 << 10
	s.ReadHeaderTimeout = 5 * time.Second
	s.ReadTimeout = 10 * time.Second
	ka := confighttp.NewDefaultKeepaliveServerConfig()
	ka.IdleTimeout = 30 * time.Second
	s.Keepalive = configoptional.Some(ka)
	return APIConfig{Server: s, MaxConnections: taskapi.DefaultMaxConnections}
}

// propletIntervalFromEnv honours Propeller's PROPLET_METRICS_INTERVAL (whole seconds).
func propletIntervalFromEnv() time.Duration {
	if v, err := strconv.Atoi(os.Getenv("PROPLET_METRICS_INTERVAL")); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return 10 * time.Second
}

// createMetrics and createLogs return the one receiver of a configuration: it samples once
// and feeds the metrics pipelines its samples and the logs pipelines its task usage reports.
func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return useReceiver(set, cfg.(*Config), func(r *propletReceiver) { r.next = next })
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	return useReceiver(set, cfg.(*Config), func(r *propletReceiver) { r.logs = next })
}

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

	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

// NewFactory returns the factory of the proplet receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		MetricsBuilderConfig: metadata.NewDefaultMetricsBuilderConfig(),
		ProcRoot:             "/proc",
		CgroupRoot:           "/sys/fs/cgroup",
		DefaultProfile:       profile.Standard,
		Proplet:              PropletConfig{Interval: propletIntervalFromEnv()},
		DiscoveryInterval:    time.Second,
		MaxConcurrency:       min(4, max(runtime.NumCPU(), 1)),
		StartJitter:          500 * time.Millisecond,
		API:                  configoptional.Default(defaultAPIConfig()),
		Propeller:            configoptional.Default(defaultPropellerConfig()),
	}
}

// defaultPropellerConfig finds a started task as a child of the proplet whose command line
// contains the task id (Propeller passes it to wasmtime in the environment it sets).
func defaultPropellerConfig() PropellerConfig {
	return PropellerConfig{Endpoint: "tcp://127.0.0.1:1883", TaskMatch: procmatch.Spec{Cmdline: "{task_id}"}}
}

func defaultAPIConfig() APIConfig {
	s := confighttp.NewDefaultServerConfig()
	s.NetAddr.Endpoint = "localhost:8990"
	s.MaxRequestBodySize = 64 << 10
	return APIConfig{ServerConfig: s}
}

// propletIntervalFromEnv honours Propeller's PROPLET_METRICS_INTERVAL (whole seconds).
func propletIntervalFromEnv() time.Duration {
	if v, err := strconv.Atoi(os.Getenv("PROPLET_METRICS_INTERVAL")); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return 10 * time.Second
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return newReceiver(set, cfg.(*Config), next)
}

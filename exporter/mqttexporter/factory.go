package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

// NewFactory returns the factory of the MQTT exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		metadata.Type,
		createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		TimeoutConfig:      exporterhelper.TimeoutConfig{Timeout: 5 * time.Second},
		QueueConfig:        configoptional.Some(exporterhelper.NewDefaultQueueConfig()),
		BackOffConfig:      configretry.NewDefaultBackOffConfig(),
		ClientConfig:       mqttconn.DefaultClientConfig(),
		ProtocolVersion:    "3.1.1",
		QoS:                1,
		Namespace:          "default",
		DefaultHistorySize: standardProfile().HistorySize,
		Topics: TopicsConfig{
			TaskMetrics: []string{
				"m/{domain_id}/c/{channel_id}/control/proplet/task_metrics",
				"m/{domain_id}/c/{channel_id}/metrics/proplet",
			},
			PropletMetrics: []string{"m/{domain_id}/c/{channel_id}/control/proplet/metrics"},
		},
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	e, err := newExporter(set, c)
	if err != nil {
		return nil, err
	}
	return exporterhelper.NewMetrics(ctx, set, cfg, e.pushMetrics,
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithQueue(c.QueueConfig),
		exporterhelper.WithRetry(c.BackOffConfig),
	)
}

// standardProfile is Propeller's standard profile: its settings apply to tasks whose resource
// does not carry them (metrics from other sources).
func standardProfile() profile.Profile {
	p, _ := profile.Builtin(profile.Standard)
	return p
}

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
	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/sharedcomponent"
)

// NewFactory returns the factory of the MQTT exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		metadata.Type,
		createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability),
		exporter.WithLogs(createLogs, metadata.LogsStability),
	)
}

// The default sending queue holds a broker outage of 10 minutes on a proplet running 1,000
// tasks sampled every second, without dropping a sample, in well under 400 MB. It holds the
// messages to send in their compact form, not the pdata they came from, and is sized in bytes
// (sizer: bytes), so queue_size says what it may take: queueBytesPerMessage a task sample (a
// full sample with its aggregated block and UUID ids, whatever the number of topics;
// TestDefaultQueueHoldsTenMinutesOfAThousandTasks), where the pdata took about 5.4 KB of heap
// (BENCHMARKS.md).
const queueBytesPerMessage = 130

// defaultQueueSize is the default queue_size in bytes: 128 MiB, 17 minutes of 1,000 tasks at
// 1 s, so 10 minutes (78,000,000 bytes) fit with room for longer ids.
const defaultQueueSize = 128 << 20

func defaultQueueConfig() exporterhelper.QueueBatchConfig {
	q := exporterhelper.NewDefaultQueueConfig()
	q.Sizer = exporterhelper.RequestSizerTypeBytes
	q.QueueSize = defaultQueueSize
	return q
}

// defaultBackOffConfig retries a batch until it is delivered: during an outage the batches
// wait in the queue, which alone bounds what is kept (exporterhelper's default gives up after
// 5 minutes and drops the batches being retried). A message that can never be delivered is
// refused, not retried.
func defaultBackOffConfig() configretry.BackOffConfig {
	b := configretry.NewDefaultBackOffConfig()
	b.MaxElapsedTime = 0
	return b
}

func createDefaultConfig() component.Config {
	return &Config{
		TimeoutConfig:      exporterhelper.TimeoutConfig{Timeout: 5 * time.Second},
		QueueConfig:        configoptional.Some(defaultQueueConfig()),
		BackOffConfig:      defaultBackOffConfig(),
		ClientConfig:       mqttconn.DefaultClientConfig(),
		QoS:                1,
		Namespace:          "default",
		DefaultHistorySize: standardProfile().HistorySize,
		Topics: TopicsConfig{
			TaskMetrics:    []string{propeller.TaskMetricsTopic, propeller.TaskMetricsAltTopic},
			PropletMetrics: []string{propeller.PropletMetricsTopic},
			TaskUsage:      []string{propeller.TaskUsageTopic},
			TaskAlerts:     []string{propeller.TaskAlertsTopic},
		},
	}
}

// createMetrics is the metrics signal. Both signals map a batch to Propeller messages before
// it is queued (exporterhelper's request exporters), so the sending queue, in memory or
// persistent, holds what will be sent.
func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	u, err := useExporter(set, c)
	if err != nil {
		return nil, err
	}
	exp, err := xexporterhelper.NewMetricsRequest(ctx, set, u.e.convertMetrics, u.e.pushQueued, helperOptions(c, u, u.e.legacyMetrics)...)
	if err != nil {
		_ = u.shutdown(ctx)
	}
	return exp, err
}

// createLogs is the logs signal: each propeller.task.end record becomes a task usage message,
// each memory warning record a task alert message, through its own exporterhelper queue, on
// the connection the metrics signal of the same exporter uses.
func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	u, err := useExporter(set, c)
	if err != nil {
		return nil, err
	}
	u.e.logsLogger(set.Logger)
	exp, err := xexporterhelper.NewLogsRequest(ctx, set, u.e.convertLogs, u.e.pushQueuedLogs, helperOptions(c, u, u.e.legacyLogs)...)
	if err != nil {
		_ = u.shutdown(ctx)
	}
	return exp, err
}

func helperOptions(c *Config, u *exporterUse, legacy func([]byte) (xexporterhelper.Request, error)) []exporterhelper.Option {
	return []exporterhelper.Option{
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithStart(u.start),
		exporterhelper.WithShutdown(u.shutdown),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		xexporterhelper.WithQueueBatch(c.QueueConfig, xexporterhelper.QueueBatchSettings{Encoding: queueEncoding{legacy: legacy}}),
		exporterhelper.WithRetry(c.BackOffConfig),
	}
}

// exporters holds the one exporter of each configuration, shared by its metrics and logs
// signals: one broker connection, one set of counters and one refusal log.
var exporters sharedcomponent.Map[*Config, *mqttExporter]

// exporterUse is one signal's hold on the shared exporter.
type exporterUse struct {
	*sharedcomponent.Use[*Config, *mqttExporter]
	e *mqttExporter
}

func useExporter(set exporter.Settings, cfg *Config) (*exporterUse, error) {
	u, err := exporters.Get(cfg, func() (*mqttExporter, error) { return newExporter(set, cfg) })
	if err != nil {
		return nil, err
	}
	return &exporterUse{Use: u, e: u.Value()}, nil
}

// start connects on the first signal's start; the others get its result.
func (u *exporterUse) start(ctx context.Context, host component.Host) error {
	return u.Start(func() error { return u.e.start(ctx, host) })
}

// shutdown releases the signal's hold; the last one disconnects. exporterhelper calls it
// after draining the signal's queue, so a signal shut down first never cuts the other's
// connection while that one still has messages to send.
func (u *exporterUse) shutdown(ctx context.Context) error {
	return u.Shutdown(func() error { return u.e.shutdown(ctx) })
}

// standardProfile is Propeller's standard profile: its settings apply to tasks whose resource
// does not carry them (metrics from other sources).
func standardProfile() profile.Profile {
	p, _ := profile.Builtin(profile.Standard)
	return p
}

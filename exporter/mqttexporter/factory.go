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

// The default sending queue holds a broker outage of queueOutage on a proplet running
// queueTasks tasks sampled every queueSampleInterval, without dropping a sample. It counts data
// points (sizer: items), not requests: the receiver sends a round of samples as several small
// batches (start jitter spreads the tasks), about 6 a second, so exporterhelper's default of
// 1,000 requests was full within three minutes whatever the number of tasks.
const (
	queueOutage         = 10 * time.Minute
	queueTasks          = 1000
	queueSampleInterval = time.Second
	// queuePointsPerSample is a task sample of the proplet receiver with every collect flag
	// on (the golden output in internal/schema/testdata): one resource, 17 data points.
	queuePointsPerSample = 17
)

// defaultQueueSize is the default queue_size in data points: 10,200,000.
const defaultQueueSize = int64(queueOutage/queueSampleInterval) * queueTasks * queuePointsPerSample

func defaultQueueConfig() exporterhelper.QueueBatchConfig {
	q := exporterhelper.NewDefaultQueueConfig()
	q.Sizer = exporterhelper.RequestSizerTypeItems
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
		},
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	u, err := useExporter(set, c)
	if err != nil {
		return nil, err
	}
	exp, err := exporterhelper.NewMetrics(ctx, set, cfg, u.e.pushMetrics, helperOptions(c, u)...)
	if err != nil {
		_ = u.shutdown(ctx)
	}
	return exp, err
}

// createLogs is the logs signal: each propeller.task.end record becomes a task usage message,
// through its own exporterhelper queue (the items sizer counts log records: one message per
// record), on the connection the metrics signal of the same exporter uses.
func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	u, err := useExporter(set, c)
	if err != nil {
		return nil, err
	}
	u.e.logsLogger(set.Logger)
	exp, err := exporterhelper.NewLogs(ctx, set, cfg, u.e.pushLogs, helperOptions(c, u)...)
	if err != nil {
		_ = u.shutdown(ctx)
	}
	return exp, err
}

func helperOptions(c *Config, u *exporterUse) []exporterhelper.Option {
	return []exporterhelper.Option{
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithStart(u.start),
		exporterhelper.WithShutdown(u.shutdown),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithQueue(c.QueueConfig),
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

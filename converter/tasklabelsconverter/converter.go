// Package tasklabelsconverter is a confmap converter that changes nothing in the configuration:
// it logs a warning, naming the fix, when the proplet (or propeller_mqtt) receiver's metrics reach a prometheus
// exporter that would serve every task's metrics as one series.
//
// The Prometheus exporter labels a series with its data point attributes only, and a task's
// identity is in its resource (propeller.task.id). Without resource_constant_labels, every
// task's process_memory_usage_bytes is one series whose value flips between tasks on each
// scrape, and rate() over it invents I/O no process did. Only the whole configuration tells
// which receiver feeds which exporter, and a converter is the one place a distribution sees it
// before the pipelines start: a component sees neither its pipeline nor another component's
// configuration.
package tasklabelsconverter // import "github.com/otelcol-propeller/otelcol-propeller/converter/tasklabelsconverter"

import (
	"context"

	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
)

// NewFactory returns the converter's factory, for the distribution's builder configuration.
func NewFactory() confmap.ConverterFactory {
	return confmap.NewConverterFactory(newConverter)
}

type converter struct {
	log *zap.Logger
}

func newConverter(set confmap.ConverterSettings) confmap.Converter {
	log := set.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return converter{log: log}
}

// Convert logs one warning per prometheus exporter where tasks would collide.
func (c converter) Convert(_ context.Context, conf *confmap.Conf) error {
	for _, col := range collisions(conf.ToStringMap()) {
		c.log.Warn("Tasks collide in Prometheus: every task's metrics are served as one series per name, "+
			"whose value flips between tasks on every scrape. Add resource_constant_labels to the exporter "+
			"(the fix field; README: Prometheus and Grafana)",
			zap.String("exporter", col.Exporter),
			zap.Strings("pipelines", col.Pipelines),
			zap.String("reason", col.Reason),
			zap.String("fix", col.Fix()))
	}
	return nil
}

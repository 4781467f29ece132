// Package edgetelemetry is the Collector telemetry of the edge build (builder-config-edge.yaml):
// the service's own logs through zap, as the default telemetry writes them, and no internal
// metrics or traces. The default telemetry (otelconftelemetry) links the OpenTelemetry SDK, its
// OTLP, Prometheus and stdout exporters and its cloud resource detectors (a Kubernetes client,
// gRPC), which the edge build pays for in binary size and, since most of a Go collector's
// resident memory is the binary's own pages, in RSS (BENCHMARKS.md, "Architectures and the
// edge build").
//
// Configuration, under service::telemetry:
//
//	logs:
//	  level: info            # debug, info, warn, error
//	  encoding: console      # or json
//	  output_paths: [stderr]
//	  error_output_paths: [stderr]
//	metrics:
//	  level: none            # the only level: the edge build has no internal metrics
package edgetelemetry // import "github.com/otelcol-propeller/otelcol-propeller/telemetry/edgetelemetry"

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtelemetry"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config is service::telemetry in the edge build.
type Config struct {
	Logs    LogsConfig    `mapstructure:"logs"`
	Metrics MetricsConfig `mapstructure:"metrics"`
}

// LogsConfig is the subset of the default telemetry's logs settings the edge build keeps.
type LogsConfig struct {
	Level            zapcore.Level `mapstructure:"level"`
	Encoding         string        `mapstructure:"encoding"`
	OutputPaths      []string      `mapstructure:"output_paths"`
	ErrorOutputPaths []string      `mapstructure:"error_output_paths"`
}

// MetricsConfig accepts `level: none` only, so a configuration written for the full build says
// clearly what the edge build does not have.
type MetricsConfig struct {
	Level configtelemetry.Level `mapstructure:"level"`
}

var errMetrics = errors.New("metrics: the edge build has no internal metrics: set level: none (or leave service::telemetry::metrics out), or run the full build (otelcol-propeller)")

// Validate checks the encoding and the metrics level.
func (c *Config) Validate() error {
	var errs []error
	if c.Logs.Encoding != "console" && c.Logs.Encoding != "json" {
		errs = append(errs, fmt.Errorf("logs: encoding %q: want console or json", c.Logs.Encoding))
	}
	if c.Metrics.Level != configtelemetry.LevelNone {
		errs = append(errs, errMetrics)
	}
	return errors.Join(errs...)
}

// NewFactory returns the edge build's telemetry factory.
func NewFactory() telemetry.Factory {
	return telemetry.NewFactory(createDefaultConfig, telemetry.WithCreateLogger(createLogger))
}

func createDefaultConfig() component.Config {
	return &Config{
		Logs: LogsConfig{
			Level:            zapcore.InfoLevel,
			Encoding:         "console",
			OutputPaths:      []string{"stderr"},
			ErrorOutputPaths: []string{"stderr"},
		},
		Metrics: MetricsConfig{Level: configtelemetry.LevelNone},
	}
}

// createLogger builds the logger as otelconftelemetry does (zap's production settings, ISO 8601
// times), through the service's BuildZapLogger so its hooks apply.
func createLogger(_ context.Context, set telemetry.LoggerSettings, cfg component.Config) (*zap.Logger, component.ShutdownFunc, error) {
	c := cfg.(*Config)
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	zc := zap.Config{
		Level:            zap.NewAtomicLevelAt(c.Logs.Level),
		Encoding:         c.Logs.Encoding,
		EncoderConfig:    ec,
		OutputPaths:      c.Logs.OutputPaths,
		ErrorOutputPaths: c.Logs.ErrorOutputPaths,
	}
	build := set.BuildZapLogger
	if build == nil {
		build = zap.Config.Build
	}
	logger, err := build(zc)
	if err != nil {
		return nil, nil, err
	}
	return logger, func(context.Context) error { _ = logger.Sync(); return nil }, nil
}

package edgetelemetry

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtelemetry"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap/zapcore"
)

func decode(t *testing.T, raw map[string]any) (*Config, error) {
	t.Helper()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := confmap.NewFromStringMap(raw).Unmarshal(cfg); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return cfg, cfg.Validate()
}

func TestDefaultAndLevelNone(t *testing.T) {
	cfg, err := decode(t, map[string]any{"logs": map[string]any{"level": "warn"}, "metrics": map[string]any{"level": "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logs.Level != zapcore.WarnLevel || cfg.Logs.Encoding != "console" || cfg.Metrics.Level != configtelemetry.LevelNone {
		t.Fatalf("config: %+v", cfg)
	}
}

func TestMetricsRefused(t *testing.T) {
	_, err := decode(t, map[string]any{"metrics": map[string]any{"level": "basic"}})
	if err == nil || !strings.Contains(err.Error(), "no internal metrics") {
		t.Fatalf("level basic: %v", err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	err = confmap.NewFromStringMap(map[string]any{"metrics": map[string]any{"readers": []any{}}}).Unmarshal(cfg)
	if err == nil || !strings.Contains(err.Error(), "readers") {
		t.Fatalf("readers: %v", err)
	}
}

func TestProviders(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	ctx := context.Background()
	logger, shutdown, err := f.CreateLogger(ctx, telemetry.LoggerSettings{}, cfg)
	if err != nil || logger == nil {
		t.Fatalf("logger: %v", err)
	}
	logger.Debug("not written at info")
	if err := shutdown.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mp, err := f.CreateMeterProvider(ctx, telemetry.MeterSettings{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mp.Meter("x") // no-op
	if err := mp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var _ component.Config = cfg
}

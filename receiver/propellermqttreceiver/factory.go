package propellermqttreceiver

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-propeller/otelcol-propeller/internal/fleet"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propellermqttreceiver/internal/metadata"
)

// NewFactory returns the factory of the propeller_mqtt receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createDefaultConfig() component.Config {
	o, l := propeller.DefaultDecodeOptions(), fleet.DefaultLimits()
	return &Config{
		ClientConfig:       mqttconn.DefaultClientConfig(),
		Topics:             slices.Clone(DefaultTopics),
		Session:            mqttconn.SessionPreferPersistent,
		SessionExpiry:      time.Hour,
		RepairRustProplet:  o.Repair,
		MaxAge:             o.MaxAge,
		MaxAhead:           o.MaxAhead,
		MaxTasks:           l.MaxTasks,
		MaxProplets:        l.MaxProplets,
		TrackingExpiration: l.Expiration,
	}
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return newReceiver(set, cfg.(*Config), next)
}

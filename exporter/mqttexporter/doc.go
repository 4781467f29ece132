// Package mqttexporter turns OTLP metric batches into Propeller's JSON task and proplet
// metrics messages and publishes them to Propeller's MQTT topics, with at-least-once delivery
// through the exporterhelper queue and retry.
//
//go:generate mdatagen metadata.yaml
package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

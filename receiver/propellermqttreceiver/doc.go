// Package propellermqttreceiver subscribes to the metrics Propeller's proplets publish on MQTT
// (task_metrics and proplet metrics, from any proplet) and turns every message into OTLP
// metrics with the proplet receiver's names, so a gateway collector bridges a whole fleet to
// Prometheus or any OTLP backend.
//
//go:generate mdatagen metadata.yaml
package propellermqttreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propellermqttreceiver"

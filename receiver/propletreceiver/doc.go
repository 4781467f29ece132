// Package propletreceiver samples the tasks a Propeller proplet runs, each on its own
// monitoring profile, and the proplet process itself, and emits OTLP metrics with
// OpenTelemetry semantic-convention names.
//
//go:generate mdatagen metadata.yaml
package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

package tasklabelsconverter

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func conf(t *testing.T, y string) *confmap.Conf {
	t.Helper()
	r, err := confmap.NewRetrievedFromYAML([]byte(y))
	require.NoError(t, err)
	c, err := r.AsConf()
	require.NoError(t, err)
	return c
}

const noneReason = "neither resource_constant_labels nor resource_to_telemetry_conversion is set, so no resource attribute becomes a label"

func TestCollisions(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []Collision
	}{
		{
			name: "no option: the tasks collide",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters: { prometheus: { endpoint: 127.0.0.1:9464 } }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`,
			want: []Collision{{Exporter: "prometheus", Pipelines: []string{"metrics"}, Reason: noneReason}},
		},
		{
			name: "a fleet gateway without the option: the bridged tasks collide",
			yaml: `
receivers: { propeller_mqtt: { client_id: g } }
exporters: { prometheus: { endpoint: 127.0.0.1:9464 } }
service: { pipelines: { metrics: { receivers: [propeller_mqtt], exporters: [prometheus] } } }`,
			want: []Collision{{Exporter: "prometheus", Pipelines: []string{"metrics"}, Reason: noneReason}},
		},
		{
			name: "the documented include list",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters:
  prometheus:
    endpoint: 127.0.0.1:9464
    resource_constant_labels: { included: [propeller.task.id, propeller.task.name, propeller.proplet.id] }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`,
		},
		{
			name: "a wildcard that covers the task id",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters: { prometheus: { resource_constant_labels: { included: ["propeller.task.*"] } } }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`,
		},
		{
			name: "excluded only: everything else is included",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters: { prometheus: { resource_constant_labels: { excluded: [process.pid] } } }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`,
		},
		{
			name: "the task id excluded",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters: { prometheus: { resource_constant_labels: { included: ["propeller.*"], excluded: [propeller.task.id] } } }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`,
			want: []Collision{{Exporter: "prometheus", Pipelines: []string{"metrics"}, Reason: "resource_constant_labels does not include propeller.task.id"}},
		},
		{
			name: "an include list without the task id",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters: { prometheus/x: { resource_constant_labels: { included: [propeller.proplet.id, "service.*"] } } }
service: { pipelines: { metrics/x: { receivers: [proplet/a], exporters: [prometheus/x] } } }`,
			want: []Collision{{Exporter: "prometheus/x", Pipelines: []string{"metrics/x"}, Reason: "resource_constant_labels does not include propeller.task.id"}},
		},
		{
			name: "the deprecated conversion keeps tasks apart",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters: { prometheus: { resource_to_telemetry_conversion: { enabled: true } } }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`,
		},
		{
			name: "the deprecated conversion turned off",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters: { prometheus: { resource_to_telemetry_conversion: { enabled: false } } }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`,
			want: []Collision{{Exporter: "prometheus", Pipelines: []string{"metrics"}, Reason: noneReason}},
		},
		{
			name: "a prometheus exporter the receiver does not reach",
			yaml: `
receivers: { proplet: { proplet_id: p }, hostmetrics: {} }
exporters: { prometheus: {}, debug: {} }
service:
  pipelines:
    metrics/proplet: { receivers: [proplet], exporters: [debug] }
    metrics/host: { receivers: [hostmetrics], exporters: [prometheus] }`,
		},
		{
			name: "reached through a connector",
			yaml: `
receivers: { proplet: { proplet_id: p } }
connectors: { forward: {} }
exporters: { prometheus: {}, mqtt: {} }
service:
  pipelines:
    metrics/in: { receivers: [proplet], exporters: [mqtt, forward] }
    metrics/out: { receivers: [forward], exporters: [prometheus] }`,
			want: []Collision{{Exporter: "prometheus", Pipelines: []string{"metrics/out"}, Reason: noneReason}},
		},
		{
			name: "one exporter through two pipelines, another one right",
			yaml: `
receivers: { proplet: { proplet_id: p } }
exporters:
  prometheus: {}
  prometheus/ok: { resource_constant_labels: { included: [propeller.task.id] } }
service:
  pipelines:
    metrics/b: { receivers: [proplet], exporters: [prometheus, prometheus/ok] }
    metrics/a: { receivers: [proplet/2], exporters: [prometheus] }`,
			want: []Collision{{Exporter: "prometheus", Pipelines: []string{"metrics/a", "metrics/b"}, Reason: noneReason}},
		},
		{
			name: "not a configuration this check understands",
			yaml: `
service: { pipelines: [1, 2] }`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, collisions(conf(t, tc.yaml).ToStringMap()))
		})
	}
}

func TestConvertWarnsNamingTheFix(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	c := NewFactory().Create(confmap.ConverterSettings{Logger: zap.New(core)})
	cfg := conf(t, `
receivers: { proplet: { proplet_id: p } }
exporters: { prometheus: { endpoint: 127.0.0.1:9464 } }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`)
	before := cfg.ToStringMap()
	require.NoError(t, c.Convert(context.Background(), cfg))
	assert.Equal(t, before, cfg.ToStringMap(), "the converter changes nothing")

	require.Equal(t, 1, logs.Len())
	e := logs.All()[0]
	assert.Equal(t, zapcore.WarnLevel, e.Level)
	assert.Contains(t, e.Message, "resource_constant_labels")
	fields := e.ContextMap()
	assert.Equal(t, "prometheus", fields["exporter"])
	assert.Equal(t, "exporters: { prometheus: { resource_constant_labels: { included: [propeller.task.id, propeller.task.name, propeller.proplet.id] } } }", fields["fix"])
}

// The example configurations are the ones users copy: none of them may collide.
func TestExamplesDoNotCollide(t *testing.T) {
	for _, f := range []string{"../../examples/agent.yaml", "../../examples/agent-complement.yaml", "../../examples/gateway.yaml", "../../examples/fleet-gateway.yaml"} {
		t.Run(f, func(t *testing.T) {
			c, err := confmaptest.LoadConf(f)
			require.NoError(t, err)
			assert.Empty(t, collisions(c.ToStringMap()))
		})
	}
}

func TestConvertWithoutLogger(t *testing.T) {
	c := NewFactory().Create(confmap.ConverterSettings{})
	require.NoError(t, c.Convert(context.Background(), conf(t, `
exporters: { prometheus: {} }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [prometheus] } } }`)))
}

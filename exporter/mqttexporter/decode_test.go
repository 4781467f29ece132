package mqttexporter

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// oneMetric is a resource with a single metric: a data point per value of the metric's data
// point attribute, or one data point without attributes.
func oneMetric(name, key string, values []string) pmetric.ResourceMetrics {
	rm := pmetric.NewResourceMetrics()
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	dps := m.SetEmptySum().DataPoints()
	point := func() pmetric.NumberDataPoint {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(t0))
		dp.SetDoubleValue(3)
		return dp
	}
	if key == "" {
		point()
	}
	for _, v := range values {
		point().Attributes().PutStr(key, v)
	}
	return rm
}

// TestEverySchemaNameIsReadOrNotCarried holds the exporter to internal/schema: each resource
// attribute and metric the receiver writes is either read by the decoder (reading it changes
// what the decoder returns) or listed in notCarried, never both. A name added to the schema
// that the exporter neither reads nor lists fails here.
func TestEverySchemaNameIsReadOrNotCarried(t *testing.T) {
	t.Parallel()
	listed := map[string]bool{}
	for _, a := range schema.ResourceAttributes {
		listed[a.Name] = true
	}
	for _, m := range schema.Metrics {
		listed[m.Name] = true
	}
	for name := range notCarried {
		assert.True(t, listed[name], "notCarried lists %s, which internal/schema does not have", name)
	}

	check := func(name string, read bool) {
		t.Helper()
		reason, skipped := notCarried[name]
		switch {
		case read && skipped:
			t.Errorf("%s is read, yet listed as not carried (%s)", name, reason)
		case !read && !skipped:
			t.Errorf("%s is in internal/schema but the exporter neither reads it nor lists it in notCarried", name)
		}
	}

	none := readAttributes(pcommon.NewMap(), taskProfile{})
	for _, a := range schema.ResourceAttributes {
		res := pcommon.NewMap()
		switch a.Type {
		case schema.String:
			res.PutStr(a.Name, "x")
		case schema.Int:
			res.PutInt(a.Name, 7)
		case schema.Double:
			res.PutDouble(a.Name, 2.5)
		case schema.Bool:
			res.PutBool(a.Name, true)
		default:
			t.Fatalf("%s: unknown type %q", a.Name, a.Type)
		}
		check(a.Name, readAttributes(res, taskProfile{}) != none)
	}

	empty := sample{ts: pcommon.NewTimestampFromTime(t0)}
	for _, m := range schema.Metrics {
		samples := readResource(oneMetric(m.Name, m.Attr, m.Values))
		require.Len(t, samples, 1, m.Name)
		check(m.Name, !reflect.DeepEqual(*samples[0], empty))
	}
}

func TestReadAttributes(t *testing.T) {
	t.Parallel()
	defaults := taskProfile{historySize: 100, retain: true, export: true, interval: 10 * time.Second}
	assert.Equal(t, attributes{profile: defaults}, readAttributes(pcommon.NewMap(), defaults), "defaults when the resource carries nothing")

	res := pcommon.NewMap()
	res.PutStr(schema.TaskID, "t1")
	res.PutStr(schema.PropletID, "p1")
	res.PutInt(schema.ProcessPID, 42)
	res.PutInt(schema.ProfileHistorySize, 5)
	res.PutBool(schema.ProfileRetainHistory, false)
	res.PutBool(schema.ProfileExportToMQTT, false)
	res.PutDouble(schema.ProfileInterval, 0.5)
	assert.Equal(t, attributes{
		taskID: "t1", propletID: "p1", hasPropletID: true, hasPID: true,
		profile: taskProfile{historySize: 5, interval: 500 * time.Millisecond},
	}, readAttributes(res, defaults))

	res = pcommon.NewMap()
	res.PutStr(schema.PropletID, "")
	res.PutDouble(schema.ProfileInterval, 0)
	a := readAttributes(res, defaults)
	assert.True(t, a.hasPropletID, "an empty proplet id still marks a proplet resource")
	assert.Equal(t, defaults.interval, a.profile.interval, "interval 0 keeps the default")
}

// TestReadResourceUnderBothNames reads the receiver's names and the older ones of the contrib
// process scraper.
func TestReadResourceUnderBothNames(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		name, key string
		values    []string
		want      sample
	}{
		"cpu time":        {schema.ProcessCPUTime, schema.CPUMode, []string{"user", "system"}, sample{cpuTime: 6, cpuUser: 3, cpuSystem: 3, hasCPUTime: true}},
		"cpu time, state": {schema.ProcessCPUTime, oldCPUState, []string{"user", "system", "wait"}, sample{cpuTime: 9, cpuUser: 3, cpuSystem: 3, hasCPUTime: true}},
		"rss":             {schema.ProcessMemoryUsage, "", nil, sample{rss: 3, hasRSS: true}},
		"rss, old":        {oldMemoryPhysicalUsage, "", nil, sample{rss: 3, hasRSS: true}},
		"disk":            {schema.ProcessDiskIO, schema.DiskIODirection, []string{"read", "write"}, sample{diskRead: 3, diskWrite: 3, hasDisk: true}},
		"disk, direction": {schema.ProcessDiskIO, oldDirection, []string{"read", "write"}, sample{diskRead: 3, diskWrite: 3, hasDisk: true}},
		"network":         {schema.ProcessNetworkIO, schema.NetworkIODirection, []string{"receive", "transmit"}, sample{netRx: 3, netTx: 3, hasNet: true}},
		"threads, old":    {oldThreads, "", nil, sample{threads: 3, hasThreads: true}},
		"fds, old":        {oldOpenFileDescriptors, "", nil, sample{fds: 3, hasFDs: true}},
		"system cpu":      {schema.SystemCPUUtilization, schema.CPUMode, []string{"user", "idle", "iowait"}, sample{sysBusy: 3, sysIdle: 6, sysN: map[string]int{"user": 1, "idle": 1, "iowait": 1}, hasSysCPU: true}},
		"system cpu, old": {schema.SystemCPUUtilization, oldCPUState, []string{"user", "idle", "wait"}, sample{sysBusy: 3, sysIdle: 6, sysN: map[string]int{"user": 1, "idle": 1, "wait": 1}, hasSysCPU: true}},
		"unknown":         {"process.paging.faults", "", nil, sample{}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			samples := readResource(oneMetric(tt.name, tt.key, tt.values))
			require.Len(t, samples, 1)
			tt.want.ts = pcommon.NewTimestampFromTime(t0)
			assert.Equal(t, tt.want, *samples[0])
		})
	}
}

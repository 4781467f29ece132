package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

const (
	testProplet = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	busyID      = "eaedc1bb-1111-4222-8333-444444444444"
	topicPrefix = "m/demo-domain/c/demo-channel/"
)

// taskMessage is a task message as the mqtt exporter publishes it.
func taskMessage(taskID, propletID string, agg *propeller.Aggregated) []byte {
	m := propeller.TaskMessage{
		TaskID: taskID, PropletID: propletID,
		Metrics: propeller.TaskMetrics{
			Has:        propeller.HasCPU | propeller.HasMemory | propeller.HasUptime | propeller.HasThreads | propeller.HasFDs,
			CPUPercent: 100.2, MemoryBytes: 9646899, UptimeSeconds: 9, ThreadCount: 5, FileDescriptorCount: 9,
			Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		},
		Aggregated: agg,
	}
	return m.AppendJSON(nil)
}

func TestLine(t *testing.T) {
	names := map[string]string{busyID: "busy"}
	agg := &propeller.Aggregated{Has: propeller.HasCPU, AvgCPUUsage: 99.98, MaxCPUUsage: 101, SampleCount: 9}
	proplet := propeller.PropletMessage{
		Has: propeller.HasCPUPercent | propeller.HasRSS, PropletID: testProplet, Namespace: "default",
		Percent: 51.44, RSSBytes: 45088768, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	tests := map[string]struct {
		topic   string
		payload []byte
		want    string // "" when the line is not printed
	}{
		"task by name, counts as integers": {
			topicPrefix + "control/proplet/task_metrics", taskMessage(busyID, testProplet, agg),
			"control/proplet/task_metrics  task busy (eaedc1bb) cpu=100.2% mem=9.2MiB threads=5 fds=9 uptime=9s aggregated{n=9 avg_cpu=100.0%}",
		},
		"a task the demo did not start": {
			topicPrefix + "control/proplet/task_metrics", taskMessage("30fc17e9-aaaa-4bbb-8ccc-dddddddddddd", testProplet, nil),
			"control/proplet/task_metrics  task 30fc17e9 cpu=100.2% mem=9.2MiB threads=5 fds=9 uptime=9s aggregated{null}",
		},
		"proplet": {
			topicPrefix + "control/proplet/metrics", proplet.AppendJSON(nil),
			"control/proplet/metrics       proplet 7c9e6679 machine_cpu=51.4% rss=43.0MiB",
		},
		"another demo's task": {
			topicPrefix + "control/proplet/task_metrics", taskMessage(busyID, "0d1e2f3a-0000-4000-8000-000000000000", agg), "",
		},
		"missing fields": {
			topicPrefix + "control/proplet/task_metrics", []byte(`{"task_id":"t1","proplet_id":"` + testProplet + `","metrics":{},"aggregated":null}`),
			"control/proplet/task_metrics  task t1 cpu=- mem=- threads=- fds=- uptime=-s aggregated{null}",
		},
		"not JSON": {
			topicPrefix + "control/proplet/metrics", []byte("{"),
			"control/proplet/metrics       not JSON: unexpected end of JSON input",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := line(tt.topic, tt.payload, testProplet, names)
			assert.Equal(t, tt.want != "", ok)
			assert.Equal(t, tt.want, got)
		})
	}

	got, ok := line(topicPrefix+"control/proplet/task_metrics", taskMessage(busyID, "another", nil), "", nil)
	assert.True(t, ok, "watch prints every proplet's messages")
	assert.Contains(t, got, "task eaedc1bb cpu=")
}

func TestBanner(t *testing.T) {
	b := bannerInfo{CollectorPID: 42, Config: "/tmp/c.yaml", PromPort: 9464, TelemetryPort: 40001, Endpoint: "tcp://127.0.0.1:1883"}
	got := banner(b)
	assert.Contains(t, got, "Ctrl-C stops the collector and the tasks (the MQTT broker on 127.0.0.1:1883 is not the demo's: it keeps running).")
	assert.NotContains(t, got, "demo's MQTT broker")
	assert.Contains(t, got, "curl -s http://127.0.0.1:9464/metrics | grep propeller_task_name")
	assert.Contains(t, got, "curl -s http://127.0.0.1:40001/metrics | grep otelcol_receiver_proplet")
	assert.Contains(t, got, "mosquitto_sub -h 127.0.0.1 -p 1883 -t")

	b.OwnBroker, b.Endpoint = true, "tcp://127.0.0.1:35001"
	got = banner(b)
	assert.Contains(t, got, "Ctrl-C stops the collector, the tasks and the demo's MQTT broker.")
	assert.Contains(t, got, "mosquitto_sub -h 127.0.0.1 -p 35001 -t")
}

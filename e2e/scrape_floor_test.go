package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The series a task has in the distribution's Prometheus scrape with the receiver's default
// metrics and examples/agent.yaml's resource_constant_labels: 13 a task, each labelled with the
// task's id and name, the proplet's id and the instrumentation scope.
var floorFamilies = []struct {
	name, help string
	kind       prometheus.ValueType
	attr       string   // the data point attribute, if any
	values     []string // its values, one series each
}{
	{"process_cpu_time_seconds_total", "Total CPU seconds broken down by different states.", prometheus.CounterValue, "state", []string{"user", "system"}},
	{"process_cpu_utilization_ratio", "Percentage of total CPU time used by the process since last scrape.", prometheus.GaugeValue, "state", []string{"user", "system"}},
	{"process_disk_io_bytes_total", "Disk bytes transferred.", prometheus.CounterValue, "direction", []string{"read", "write"}},
	{"process_memory_usage_bytes", "The amount of physical memory in use.", prometheus.GaugeValue, "", nil},
	{"process_memory_virtual_bytes", "Virtual memory size.", prometheus.GaugeValue, "", nil},
	{"process_memory_utilization_ratio", "The share of the task's memory limit in use.", prometheus.GaugeValue, "", nil},
	{"process_thread_count", "Process threads count.", prometheus.GaugeValue, "", nil},
	{"process_unix_file_descriptor_count", "Number of unix file descriptors in use by the process.", prometheus.GaugeValue, "", nil},
	{"process_uptime_seconds", "The time the process has been running.", prometheus.GaugeValue, "", nil},
	{"propeller_task_lookup", "Whether the task's process was found at the last sample.", prometheus.GaugeValue, "", nil},
}

const floorScope = "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

// floorCollector gives a registry the series of n tasks. keepDescs: one description a family,
// made once (what a Prometheus client instrumenting its own code does); otherwise a new
// description for every series at every scrape, as an exporter that converts stored OTLP points
// at scrape time without keeping descriptions does.
type floorCollector struct {
	n         int
	keepDescs bool
	descs     []*prometheus.Desc
}

func newFloorCollector(n int, keepDescs bool) *floorCollector {
	c := &floorCollector{n: n, keepDescs: keepDescs}
	for _, f := range floorFamilies {
		c.descs = append(c.descs, prometheus.NewDesc(f.name, f.help, floorLabels(f.attr), nil))
	}
	return c
}

func floorLabels(attr string) []string {
	l := []string{"propeller_task_id", "propeller_task_name", "propeller_proplet_id", "otel_scope_name", "otel_scope_version"}
	if attr != "" {
		l = append(l, attr)
	}
	return l
}

func (c *floorCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.keepDescs {
		for _, d := range c.descs {
			ch <- d
		}
	}
	// Otherwise unchecked, as such an exporter's collector is: it describes nothing.
}

func (c *floorCollector) Collect(ch chan<- prometheus.Metric) {
	const proplet = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	for t := range c.n {
		id := fmt.Sprintf("550e8400-e29b-41d4-a716-%012d", t)
		name := fmt.Sprintf("task-%05d", t)
		for i, f := range floorFamilies {
			d := c.descs[i]
			if !c.keepDescs {
				d = prometheus.NewDesc(f.name, f.help, floorLabels(f.attr), nil)
			}
			if f.attr == "" {
				ch <- prometheus.MustNewConstMetric(d, f.kind, float64(t), id, name, proplet, floorScope, "1.0.0")
				continue
			}
			for _, v := range f.values {
				ch <- prometheus.MustNewConstMetric(d, f.kind, float64(t), id, name, proplet, floorScope, "1.0.0", v)
			}
		}
	}
}

// BenchmarkScrapeFloor measures what the Prometheus client library itself needs to answer one
// scrape of 10,000 tasks' series (130,000), on this machine: gathering, sorting and checking
// them (a registry), and writing them as text. Each iteration is one scrape.
//
//	go test -run '^$' -bench ScrapeFloor -benchmem -benchtime 3x ./e2e/
func BenchmarkScrapeFloor(b *testing.B) {
	const tasks = 10000
	scrape := func(b *testing.B, reg *prometheus.Registry) {
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{DisableCompression: true})
		var size int
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if w.Code != http.StatusOK {
				b.Fatalf("scrape: %d %s", w.Code, w.Body.String()[:200])
			}
			size = w.Body.Len()
		}
		b.ReportMetric(float64(size), "bytes/scrape")
	}
	b.Run("gather and write, descriptions kept", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(newFloorCollector(tasks, true))
		scrape(b, reg)
	})
	b.Run("gather and write, a description a series", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(newFloorCollector(tasks, false))
		scrape(b, reg)
	})
	b.Run("write only", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(newFloorCollector(tasks, true))
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		series := 0
		for _, mf := range mfs {
			series += len(mf.GetMetric())
		}
		if series != tasks*13 {
			b.Fatalf("%d series, want %d", series, tasks*13)
		}
		for b.Loop() {
			if err := writeText(io.Discard, mfs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func writeText(w io.Writer, mfs []*dto.MetricFamily) error {
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return err
		}
	}
	return nil
}

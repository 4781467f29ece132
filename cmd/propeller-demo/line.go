package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// line is the one line printed for a Propeller message: the topic from control/ on, the task's
// name (from names, by task id) and id prefix or the proplet's id prefix, and the numbers, counts
// as integers. With propletID set, a message of another proplet (another demo on the same
// broker) is not for us: ok is false.
func line(topic string, payload []byte, propletID string, names map[string]string) (_ string, ok bool) {
	short := topic
	if i := strings.Index(topic, "/control/"); i >= 0 {
		short = topic[i+1:]
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Sprintf("%-29s not JSON: %v", short, err), true
	}
	if propletID != "" && m["proplet_id"] != propletID {
		return "", false
	}
	if id, isTask := m["task_id"].(string); isTask {
		metrics, _ := m["metrics"].(map[string]any)
		agg := "null"
		if a, ok := m["aggregated"].(map[string]any); ok {
			agg = fmt.Sprintf("n=%s avg_cpu=%s", count(a, "sample_count"), percent(a, "avg_cpu_usage"))
		}
		return fmt.Sprintf("%-29s task %s cpu=%s mem=%s threads=%s fds=%s uptime=%ss aggregated{%s}",
			short, taskLabel(id, names), percent(metrics, "cpu_percent"), mib(metrics, "memory_bytes"),
			count(metrics, "thread_count"), count(metrics, "file_descriptor_count"), count(metrics, "uptime_seconds"), agg), true
	}
	cpu, _ := m["cpu_metrics"].(map[string]any)
	mem, _ := m["memory_metrics"].(map[string]any)
	id, _ := m["proplet_id"].(string)
	return fmt.Sprintf("%-29s proplet %s machine_cpu=%s rss=%s", short, prefix(id), percent(cpu, "percent"), mib(mem, "rss_bytes")), true
}

// taskLabel is "busy (eaedc1bb)" for a task the demo started, else the id's prefix.
func taskLabel(id string, names map[string]string) string {
	if name, ok := names[id]; ok {
		return fmt.Sprintf("%s (%s)", name, prefix(id))
	}
	return prefix(id)
}

// prefix is the first 8 characters of an id, enough to tell the demo's apart.
func prefix(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func number(o map[string]any, key string) (float64, bool) {
	v, ok := o[key].(float64)
	return v, ok
}

// count prints an integer field as one: 5, not 5.0.
func count(o map[string]any, key string) string {
	v, ok := number(o, key)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func percent(o map[string]any, key string) string {
	v, ok := number(o, key)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", v)
}

func mib(o map[string]any, key string) string {
	v, ok := number(o, key)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", v/(1<<20))
}

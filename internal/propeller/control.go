package propeller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

// NanosecondThreshold decides the unit of a wire interval. Propeller proplets read `interval`
// as whole seconds, but Go clients that build a profile with the manager's time.Duration type
// send nanoseconds (10000000000 for 10 s). The two readings never overlap for a valid profile:
// 1,000,000 seconds is 11.6 days, 1,000,000 nanoseconds is 1 ms (below the 100 ms minimum).
// So a value below 1,000,000 is seconds (fractions allowed), one at or above it is nanoseconds
// (a whole number).
const NanosecondThreshold = 1_000_000

// parseInterval reads a wire interval by the rule of NanosecondThreshold.
func parseInterval(v float64) (time.Duration, error) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("interval: not a number")
	case v <= 0:
		return 0, fmt.Errorf("interval: must be positive, got %v", v)
	case v < NanosecondThreshold:
		return time.Duration(math.Round(v * float64(time.Second))), nil
	case v != math.Trunc(v):
		return 0, fmt.Errorf("interval: %v reads as nanoseconds and must be a whole number", v)
	case v > math.MaxInt64:
		return 0, fmt.Errorf("interval: %v is too large", v)
	default:
		return time.Duration(v), nil
	}
}

// DecodeProfile decodes a monitoring_profile object. Missing keys stay unset (they take the
// defaults), unknown keys are ignored, and a known key of the wrong type is an error naming it.
// The result is not validated: apply it to a base profile and call Validate.
func DecodeProfile(raw []byte) (profile.Overrides, error) {
	var o profile.Overrides
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return o, fmt.Errorf("monitoring_profile: must be a JSON object: %w", err)
	}
	if fields == nil {
		return o, errors.New("monitoring_profile: must be a JSON object, got null")
	}
	bools := map[string]**bool{
		"enabled": &o.Enabled, "collect_cpu": &o.CollectCPU, "collect_memory": &o.CollectMemory,
		"collect_disk_io": &o.CollectDiskIO, "collect_network_io": &o.CollectNetworkIO,
		"collect_threads": &o.CollectThreads, "collect_file_descriptors": &o.CollectFileDescriptors,
		"export_to_mqtt": &o.ExportToMQTT, "retain_history": &o.RetainHistory,
		"collect_waits": &o.CollectWaits, // this distribution's own key: Propeller's manager sends none
	}
	var errs []error
	for key, v := range fields {
		switch {
		case bools[key] != nil:
			var b bool
			if err := strictUnmarshal(v, &b); err != nil {
				errs = append(errs, fmt.Errorf("%s: must be true or false, got %s", key, v))
				continue
			}
			*bools[key] = &b
		case key == "interval":
			var f float64
			if err := strictUnmarshal(v, &f); err != nil {
				errs = append(errs, fmt.Errorf("interval: must be a number (seconds, or nanoseconds from %d on), got %s", NanosecondThreshold, v))
				continue
			}
			d, err := parseInterval(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			o.Interval = &d
		case key == "history_size":
			var f float64
			if err := strictUnmarshal(v, &f); err != nil || f != math.Trunc(f) || f < 0 || f > math.MaxInt32 {
				errs = append(errs, fmt.Errorf("history_size: must be a whole number, 0 or more, got %s", v))
				continue
			}
			n := int(f)
			o.HistorySize = &n
		}
	}
	return o, errors.Join(errs...)
}

// strictUnmarshal rejects null, which encoding/json would silently accept as "no change".
func strictUnmarshal(raw json.RawMessage, v any) error {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return errors.New("null")
	}
	return json.Unmarshal(raw, v)
}

// StartRequest is what a task start request (control/manager/start) says about monitoring.
type StartRequest struct {
	ID        string
	Name      string
	Daemon    bool
	PropletID string // empty: any proplet
	// Profile is the request's monitoring_profile; nil when it has none.
	Profile *profile.Overrides
}

// DecodeStart decodes a start request. Besides Propeller's snake_case keys it accepts the
// camelCase spellings older senders used (functionName, monitoringProfile, propletId).
func DecodeStart(b []byte) (StartRequest, error) {
	var r StartRequest
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return r, fmt.Errorf("start request: not a JSON object")
	}
	str := func(keys ...string) (string, error) {
		for _, k := range keys {
			if v, ok := fields[k]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return "", fmt.Errorf("start request: %s must be a string, got %s", k, v)
				}
				return s, nil
			}
		}
		return "", nil
	}
	var err error
	if r.ID, err = str("id"); err != nil {
		return r, err
	}
	if r.ID == "" {
		return r, errors.New("start request: id must be a non-empty string")
	}
	if r.Name, err = str("name", "functionName", "function_name"); err != nil {
		return r, err
	}
	if r.PropletID, err = str("proplet_id", "propletId", "propletID"); err != nil {
		return r, err
	}
	if v, ok := fields["daemon"]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		if err := json.Unmarshal(v, &r.Daemon); err != nil {
			return r, fmt.Errorf("start request: daemon must be true or false, got %s", v)
		}
	}
	for _, k := range []string{"monitoring_profile", "monitoringProfile"} {
		v, ok := fields[k]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			continue
		}
		p, err := DecodeProfile(v)
		if err != nil {
			return r, fmt.Errorf("start request %s: %w", r.ID, err)
		}
		r.Profile = &p
		break
	}
	return r, nil
}

// StopRequest is a task stop request (control/manager/stop).
type StopRequest struct {
	ID        string
	PropletID string
}

// DecodeStop decodes a stop request.
func DecodeStop(b []byte) (StopRequest, error) {
	var r struct {
		ID        *string `json:"id"`
		PropletID *string `json:"proplet_id"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return StopRequest{}, fmt.Errorf("stop request: %w", err)
	}
	if r.ID == nil || *r.ID == "" {
		return StopRequest{}, errors.New("stop request: id must be a non-empty string")
	}
	out := StopRequest{ID: *r.ID}
	if r.PropletID != nil {
		out.PropletID = *r.PropletID
	}
	return out, nil
}

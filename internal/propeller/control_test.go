package propeller

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

func TestParseInterval(t *testing.T) {
	tests := []struct {
		in   float64
		want time.Duration
		err  string
	}{
		{in: 10, want: 10 * time.Second},
		{in: 0.5, want: 500 * time.Millisecond},
		{in: 120, want: 2 * time.Minute},
		{in: 999_999, want: 999_999 * time.Second},
		{in: 10_000_000_000, want: 10 * time.Second, err: ""},
		{in: 5_000_000_000, want: 5 * time.Second},
		{in: 1_000_000, want: time.Millisecond},
		{in: 0, err: "must be positive, got 0"},
		{in: -5, err: "must be positive, got -5"},
		{in: 1_000_000.5, err: "must be a whole number"},
	}
	for _, tt := range tests {
		got, err := parseInterval(tt.in)
		if tt.err != "" {
			assert.ErrorContains(t, err, tt.err, "%v", tt.in)
			continue
		}
		require.NoError(t, err, "%v", tt.in)
		assert.Equal(t, tt.want, got, "%v", tt.in)
	}
}

func TestDecodeProfile(t *testing.T) {
	std, _ := profile.Builtin(profile.Standard)

	o, err := DecodeProfile([]byte(`{"enabled":true,"interval":10,"collect_cpu":true,"collect_memory":true,"collect_disk_io":false,"collect_threads":true,"collect_file_descriptors":true,"export_to_mqtt":true,"retain_history":true,"history_size":100,"future_key":"ignored"}`))
	require.NoError(t, err)
	p := o.Apply(std)
	assert.Equal(t, 10*time.Second, p.Interval)
	assert.False(t, p.CollectDiskIO)
	assert.NoError(t, p.Validate())

	o, err = DecodeProfile([]byte(`{"interval": 5000000000, "history_size": 200}`))
	require.NoError(t, err, "the seed's nanosecond interval, a partial profile")
	p = o.Apply(std)
	assert.Equal(t, 5*time.Second, p.Interval)
	assert.Equal(t, 200, p.HistorySize)
	assert.True(t, p.CollectCPU, "missing keys take the defaults")

	o, err = DecodeProfile([]byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, std, o.Apply(std))

	o, err = DecodeProfile([]byte(`{"collect_waits": false}`))
	require.NoError(t, err)
	assert.False(t, o.Apply(std).CollectWaits, "collect_waits, this distribution's own key")
	_, err = DecodeProfile([]byte(`{"collect_waits": 1}`))
	require.ErrorContains(t, err, "collect_waits: must be true or false")

	for in, want := range map[string]string{
		`{"interval": 0}`:               "interval: must be positive, got 0",
		`{"interval": -10}`:             "interval: must be positive",
		`{"interval": "10s"}`:           "interval: must be a number",
		`{"interval": null}`:            "interval: must be a number",
		`{"enabled": "yes"}`:            "enabled: must be true or false",
		`{"history_size": -1}`:          "history_size: must be a whole number",
		`{"history_size": 2.5}`:         "history_size: must be a whole number",
		`[1,2]`:                         "must be a JSON object",
		`null`:                          "must be a JSON object",
		`{"interval": 0, "enabled": 1}`: "enabled: must be true or false",
	} {
		_, err := DecodeProfile([]byte(in))
		assert.ErrorContains(t, err, want, in)
	}
	// 0.05 s decodes, but the profile is then invalid.
	o, err = DecodeProfile([]byte(`{"interval": 0.05}`))
	require.NoError(t, err)
	assert.ErrorContains(t, o.Apply(std).Validate(), "interval: must be at least 100ms, got 50ms")
}

func TestDecodeStartAndStop(t *testing.T) {
	r, err := DecodeStart([]byte(`{"id":"550e8400-e29b-41d4-a716-446655440001","name":"compute","state":0,"cli_args":[],"daemon":true,"proplet_id":"p1","monitoring_profile":{"interval":30}}`))
	require.NoError(t, err)
	assert.Equal(t, "550e8400-e29b-41d4-a716-446655440001", r.ID)
	assert.Equal(t, "compute", r.Name)
	assert.True(t, r.Daemon)
	assert.Equal(t, "p1", r.PropletID)
	require.NotNil(t, r.Profile)
	assert.Equal(t, 30*time.Second, *r.Profile.Interval)

	r, err = DecodeStart([]byte(`{"id":"t","functionName":"f","monitoringProfile":{"interval":10}}`))
	require.NoError(t, err, "older camelCase senders")
	assert.Equal(t, "f", r.Name)
	require.NotNil(t, r.Profile)

	r, err = DecodeStart([]byte(`{"id":"t","monitoring_profile":null}`))
	require.NoError(t, err)
	assert.Nil(t, r.Profile, "no profile: the default for daemon or not applies")

	for in, want := range map[string]string{
		`{"name":"x"}`:              "id must be a non-empty string",
		`{"id":5}`:                  "id must be a string",
		`{"id":"t","daemon":"yes"}`: "daemon must be true or false",
		`{"id":"t","monitoring_profile":{"interval":0}}`: "start request t: interval: must be positive",
		`not json`: "not a JSON object",
	} {
		_, err := DecodeStart([]byte(in))
		assert.ErrorContains(t, err, want, in)
	}

	s, err := DecodeStop([]byte(`{"id":"t","proplet_id":"p1"}`))
	require.NoError(t, err)
	assert.Equal(t, StopRequest{ID: "t", PropletID: "p1"}, s)
	_, err = DecodeStop([]byte(`{"proplet_id":"p1"}`))
	assert.ErrorContains(t, err, "id must be a non-empty string")
}

func FuzzDecodeStart(f *testing.F) {
	f.Add([]byte(`{"id":"t","name":"n","daemon":true,"monitoring_profile":{"interval":10000000000,"history_size":5}}`))
	f.Add([]byte(`{"id":"t","monitoring_profile":{"interval":0}}`))
	f.Add([]byte(`{"id":"","monitoringProfile":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeStart(b)
		if err != nil {
			return
		}
		if r.ID == "" {
			t.Fatalf("accepted a start request without an id: %q", b)
		}
		if r.Profile != nil && r.Profile.Interval != nil && *r.Profile.Interval <= 0 {
			t.Fatalf("accepted a non-positive interval: %q", b)
		}
	})
}

func FuzzDecodeProfile(f *testing.F) {
	f.Add([]byte(`{"interval":10,"collect_cpu":false}`))
	f.Add([]byte(`{"interval":1e300}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeProfile(b)
		if err == nil && o.Interval != nil && *o.Interval <= 0 {
			t.Fatalf("non-positive interval from %q", b)
		}
	})
}

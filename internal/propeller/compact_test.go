package propeller

import (
	"encoding"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fill sets every field of v (a pointer to a struct) to a distinct non-zero value, following
// pointers, so a field added to a message and forgotten by the compact form fails the
// round trip below.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1736937322+int64(*n), 123456789).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.String:
		v.SetString("id-" + string(rune('a'+*n%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n) * 1000)
	case reflect.Uint16, reflect.Uint64:
		v.SetUint(uint64(*n) * 100000)
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.1234)
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

type compact interface {
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
	AppendJSON([]byte) []byte
}

func TestCompactFormRoundTrips(t *testing.T) {
	for _, c := range []struct {
		name     string
		in, out  compact
		variants []func(compact)
	}{
		{"task", &TaskMessage{}, &TaskMessage{}, []func(compact){func(m compact) { m.(*TaskMessage).Aggregated = nil }}},
		{"proplet", &PropletMessage{}, &PropletMessage{}, nil},
		{"usage", &TaskUsage{}, &TaskUsage{}, []func(compact){
			func(m compact) { u := m.(*TaskUsage); u.HasNetwork, u.Exact, u.StartedAt = false, false, time.Time{} },
			func(m compact) { u := m.(*TaskUsage); u.HasBlkioDelay, u.BlkioDelaySeconds = false, 0 },
			func(m compact) {
				u := m.(*TaskUsage)
				u.HasCPUDelay, u.HasSwapinDelay, u.HasMemoryReclaimDelay = false, false, false
				u.CPUDelaySeconds, u.SwapinDelaySeconds, u.MemoryReclaimDelaySeconds = 0, 0, 0
			},
		}},
		{"alert", &TaskAlert{}, &TaskAlert{}, []func(compact){func(m compact) { a := m.(*TaskAlert); a.HasSecondsToLimit, a.SecondsToLimit = false, 0 }}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := 0
			fill(reflect.ValueOf(c.in).Elem(), &n)
			for i := -1; i < len(c.variants); i++ {
				if i >= 0 {
					c.variants[i](c.in)
				}
				b, err := c.in.AppendBinary([]byte("prefix"))
				require.NoError(t, err)
				require.NoError(t, c.out.UnmarshalBinary(b[len("prefix"):]))
				assert.Equal(t, c.in, c.out, "every field comes back")
				assert.Equal(t, string(c.in.AppendJSON(nil)), string(c.out.AppendJSON(nil)), "the same JSON")
				assert.Less(t, len(b)-len("prefix"), len(c.in.AppendJSON(nil)), "smaller than the JSON")

				for cut := range len(b) - len("prefix") {
					assert.Error(t, c.out.UnmarshalBinary(b[len("prefix"):len("prefix")+cut]), "cut at %d", cut)
				}
				assert.ErrorContains(t, c.out.UnmarshalBinary(append(b[len("prefix"):], 0)), "after its last field")
			}
		})
	}
}

// TestCompactTaskMessageSize: a task message of a full sample with its aggregated block and
// UUID ids, as the exporter queues it, and its JSON.
func TestCompactTaskMessageSize(t *testing.T) {
	m := TaskMessage{
		TaskID: "550e8400-e29b-41d4-a716-446655440001", PropletID: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		Metrics: TaskMetrics{
			Has: HasCPU | HasMemory | HasMemoryPercent | HasDisk | HasNetwork | HasUptime | HasThreads | HasFDs, CPUPercent: 12.3456,
			MemoryBytes: 52428800, MemoryPercent: 2.4414, DiskReadBytes: 4096, DiskWriteBytes: 8388608, NetworkRxBytes: 65536,
			NetworkTxBytes: 32768, UptimeSeconds: 3600, ThreadCount: 4, FileDescriptorCount: 12, Timestamp: time.Unix(1736937322, 123456789),
		},
		Aggregated: &Aggregated{Has: HasCPU | HasMemory | HasDisk | HasNetwork, AvgCPUUsage: 10.5, MaxCPUUsage: 25.25, AvgMemoryUsage: 5.0e7,
			MaxMemoryUsage: 52428800, TotalDiskRead: 4096, TotalDiskWrite: 8388608, TotalNetworkRx: 65536, TotalNetworkTx: 32768, SampleCount: 100},
	}
	b, _ := m.AppendBinary(nil)
	j := m.AppendJSON(nil)
	t.Logf("compact %d bytes, JSON %d bytes", len(b), len(j))
	assert.LessOrEqual(t, len(b), 200)
}

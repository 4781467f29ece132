package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// controlPlaneDoc is the page an operator copies start and stop requests from.
const controlPlaneDoc = "../docs/control-plane.md"

// docRequest is one mosquitto_pub line of a page: the topic (with its shell variables) and the
// payload.
type docRequest struct {
	topic   string
	payload string
}

var (
	mosquittoPub = regexp.MustCompile(`(?m)^mosquitto_pub .*-t "([^"]+)" .*-m '([^']+)'$`)
	jsonBlock    = regexp.MustCompile("(?s)```json\n(.*?)```")
)

// docRequests reads every mosquitto_pub line of path.
func docRequests(t *testing.T, path string) []docRequest {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []docRequest
	for _, m := range mosquittoPub.FindAllStringSubmatch(string(b), -1) {
		out = append(out, docRequest{topic: m[1], payload: m[2]})
	}
	return out
}

// TestControlPlaneDocDecodes: every request the page shows is read by the receiver's decoder as
// the page says, and every JSON block is exactly one of the payloads its mosquitto_pub lines send.
func TestControlPlaneDocDecodes(t *testing.T) {
	reqs := docRequests(t, controlPlaneDoc)
	require.Len(t, reqs, 3, "the page shows two start requests and a stop request")

	const propletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	std, ok := profile.Builtin(profile.Standard)
	require.True(t, ok)
	var starts, stops int
	for _, r := range reqs {
		require.True(t, strings.HasPrefix(r.topic, "m/$PROPLET_TENANT_ID/c/$PROPLET_CHANNEL_ID/control/manager/"), r.topic)
		switch {
		case strings.HasSuffix(r.topic, "/start"):
			starts++
			s, err := propeller.DecodeStart([]byte(r.payload))
			require.NoError(t, err, r.payload)
			require.NotNil(t, s.Profile, "every start request of the page has a monitoring profile")
			p := s.Profile.Apply(std)
			require.NoError(t, p.Validate(), r.payload)
			switch s.ID {
			case "550e8400-e29b-41d4-a716-446655440042": // the manager's form: nanoseconds, all ten keys
				assert.Equal(t, "compute", s.Name)
				assert.Equal(t, propletID, s.PropletID)
				assert.Equal(t, time.Second, p.Interval)
				assert.False(t, p.ExportToMQTT)
				assert.Equal(t, 60, p.HistorySize)
			case "550e8400-e29b-41d4-a716-446655440043": // by hand: seconds, partial
				assert.Equal(t, "by-hand", s.Name)
				assert.Empty(t, s.PropletID, "a broadcast")
				assert.Equal(t, 2*time.Second, p.Interval)
				assert.Equal(t, 20, p.HistorySize)
				assert.True(t, p.CollectDiskIO, "missing keys are standard's")
			default:
				t.Errorf("a start request the test does not know: %s", s.ID)
			}
		case strings.HasSuffix(r.topic, "/stop"):
			stops++
			s, err := propeller.DecodeStop([]byte(r.payload))
			require.NoError(t, err, r.payload)
			assert.Equal(t, "550e8400-e29b-41d4-a716-446655440042", s.ID, "the page stops the task it started")
			assert.Equal(t, propletID, s.PropletID)
		default:
			t.Errorf("not a manager topic: %s", r.topic)
		}
	}
	assert.Equal(t, 2, starts)
	assert.Equal(t, 1, stops)

	// The JSON the page shows is what its mosquitto_pub lines send.
	b, err := os.ReadFile(controlPlaneDoc)
	require.NoError(t, err)
	sent := map[string]bool{}
	for _, r := range reqs {
		sent[r.payload] = true
	}
	blocks := jsonBlock.FindAllStringSubmatch(string(b), -1)
	require.Len(t, blocks, 3)
	for _, m := range blocks {
		var compact bytes.Buffer
		require.NoError(t, json.Compact(&compact, []byte(m[1])), m[1])
		assert.True(t, sent[compact.String()], "a JSON block that no mosquitto_pub line sends:\n%s", m[1])
	}
}

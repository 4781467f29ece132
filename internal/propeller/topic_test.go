package propeller

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// poisonValues are task ids a buggy or hostile manager may send, with why a topic cannot hold
// them. U+0001, U+FFFF and U+FDD0 made Mosquitto drop the exporter's connection.
var poisonValues = []struct {
	name, value string
	reason      Reason
}{
	{"empty", "", ReasonEmpty},
	{"slash", "a/b", ReasonSeparator},
	{"plus", "x+y", ReasonSeparator},
	{"hash", "evil#", ReasonSeparator},
	{"NUL", "nul\x00", ReasonControl},
	{"U+0001", "task\x01", ReasonControl},
	{"tab", "a\tb", ReasonControl},
	{"U+001F", "\x1f", ReasonControl},
	{"DEL U+007F", "a\x7f", ReasonControl},
	{"C1 U+0080", "a\u0080", ReasonControl},
	{"NEL U+0085", "a\u0085b", ReasonControl},
	{"C1 U+009F", "\u009f", ReasonControl},
	{"U+FDD0", "t\ufdd0", ReasonNoncharacter},
	{"U+FDEF", "\ufdef", ReasonNoncharacter},
	{"U+FFFE", "\ufffe", ReasonNoncharacter},
	{"U+FFFF", "task-\uffff", ReasonNoncharacter},
	{"U+1FFFE", "\U0001fffe", ReasonNoncharacter},
	{"U+10FFFF", "x\U0010ffff", ReasonNoncharacter},
	{"invalid byte", "bad\xff", ReasonInvalidUTF8},
	{"overlong '/'", "\xc0\xaf", ReasonInvalidUTF8},
	{"surrogate U+D800", "\xed\xa0\x80", ReasonInvalidUTF8},
	{"truncated", "\xe2\x82", ReasonInvalidUTF8},
}

// fineValues are unusual but valid in a topic.
var fineValues = []string{
	"550e8400-e29b-41d4-a716-446655440001", "ünïcödé", "\u00a0", "\ufdcf", "\ufdf0", "\ufffd", "\ufffc",
	"\U0001f600", "\u2028", "\U0010fffd", "a.b_c-d:e",
}

func TestTopicValuesRefused(t *testing.T) {
	tpl, err := ParseTemplate("m/{domain_id}/tasks/{task_id}/metrics", DomainID, TaskID)
	require.NoError(t, err)
	for _, tt := range poisonValues {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.reason, CheckValue(tt.value))
			v := Values{DomainID: "d", TaskID: tt.value}
			got, err := tpl.AppendTopic([]byte("kept"), &v)
			require.ErrorIs(t, err, ErrUnsafeValue)
			var te *TopicError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, TopicError{Placeholder: TaskID, Value: tt.value, Length: len(tt.value), Reason: tt.reason}, *te)
			assert.Equal(t, "kept", string(got), "nothing of the refused topic is left in the buffer")
			assert.Contains(t, err.Error(), "{task_id} = ")
			assert.Contains(t, err.Error(), string(tt.reason))
			assert.True(t, utf8.ValidString(err.Error()), "the error is safe to log: %q", err.Error())
		})
	}
	for _, s := range fineValues {
		assert.Empty(t, CheckValue(s), "%q", s)
		v := Values{DomainID: "d", TaskID: s}
		got, err := tpl.AppendTopic(nil, &v)
		require.NoError(t, err, "%q", s)
		assert.Equal(t, "m/d/tasks/"+s+"/metrics", string(got))
	}

	// The domain is checked like the task id.
	v := Values{DomainID: "d\uffff", TaskID: "t"}
	_, err = tpl.AppendTopic(nil, &v)
	var te *TopicError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, DomainID, te.Placeholder)
}

func TestTopicLongerThanMQTTAllowsIsRefused(t *testing.T) {
	tpl, err := ParseTemplate("tasks/{task_id}/metrics", TaskID)
	require.NoError(t, err)
	fixed := len("tasks//metrics")

	v := Values{TaskID: strings.Repeat("a", MaxTopicLength-fixed)}
	got, err := tpl.AppendTopic(nil, &v)
	require.NoError(t, err, "exactly the limit")
	assert.Len(t, got, MaxTopicLength)

	for _, n := range []int{MaxTopicLength - fixed + 1, 70000} {
		v.TaskID = strings.Repeat("a", n)
		got, err = tpl.AppendTopic(nil, &v)
		require.ErrorIs(t, err, ErrUnsafeValue, "%d bytes", n)
		var te *TopicError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, ReasonTooLong, te.Reason)
		assert.Equal(t, n+fixed, te.Length)
		assert.Empty(t, got, "never cut to the limit")
	}

	// A long refused value is cut in the error, which stays short enough to log.
	v.TaskID = strings.Repeat("b", 70000) + "\x01"
	_, err = tpl.AppendTopic(nil, &v)
	require.ErrorIs(t, err, ErrUnsafeValue)
	assert.Less(t, len(err.Error()), 200)
	assert.Contains(t, err.Error(), "(70001 bytes)")
}

func TestTemplateTextIsCheckedLikeValues(t *testing.T) {
	for text, msg := range map[string]string{
		"m/\x01/c":                         "control character",
		"m/\u0085/c":                       "control character",
		"m/\ufdd0/c":                       "Unicode noncharacter",
		"m/\xff/c":                         "invalid UTF-8",
		"m/x\x00":                          "control character",
		strings.Repeat("a", 65536):         "longer than MQTT allows",
		"m/{task_id}/" + "\uffff" + "/end": "Unicode noncharacter",
	} {
		_, err := ParseTemplate(text, TaskID)
		if assert.Error(t, err, "%q", text) {
			assert.Contains(t, err.Error(), msg, "%q", text)
		}
	}
	_, err := ParseTemplate("m/ünï/{task_id}/\u00a0", TaskID)
	assert.NoError(t, err, "non-ASCII text is fine")
}

// TestPoisonIDsEncodeAsValidJSON: a value refused in a topic may still reach a payload (a
// template without {task_id}); the JSON must stay valid and carry the same id.
func TestPoisonIDsEncodeAsValidJSON(t *testing.T) {
	values := append([]string{strings.Repeat("x", 70000), "q\"uo\\te", "\u2028\u2029"}, fineValues...)
	for _, p := range poisonValues {
		values = append(values, p.value)
	}
	for _, id := range values {
		m := TaskMessage{TaskID: id, PropletID: id, Metrics: TaskMetrics{Has: HasMemory, MemoryBytes: 1, Timestamp: ts}}
		b := m.AppendJSON(nil)
		require.True(t, json.Valid(b), "%q: %s", id, b)
		require.True(t, utf8.Valid(b), "%q: the payload is UTF-8", id)
		for _, c := range b {
			require.GreaterOrEqual(t, c, byte(0x20), "%q: no raw control byte in the payload", id)
		}
		assert.NotContains(t, string(b), "\u2028", "escaped for JavaScript readers")
		var v map[string]any
		require.NoError(t, json.Unmarshal(b, &v))
		// encoding/json is the reference: every invalid byte becomes U+FFFD.
		ref, err := json.Marshal(id)
		require.NoError(t, err)
		var want string
		require.NoError(t, json.Unmarshal(ref, &want))
		if utf8.ValidString(id) {
			require.Equal(t, id, want)
		}
		assert.Equal(t, want, v["task_id"], "%q decodes to itself, or with U+FFFD for invalid bytes as encoding/json has it", id)
		assert.Equal(t, want, v["proplet_id"])
	}
}

func TestCheckIDIsCheckValueWithPropellersLimit(t *testing.T) {
	assert.Equal(t, Reason(""), CheckID(strings.Repeat("d", MaxIDLength)))
	assert.Equal(t, ReasonIDTooLong, CheckID(strings.Repeat("d", MaxIDLength+1)))
	assert.Equal(t, ReasonIDTooLong, CheckID(strings.Repeat("d", 59<<10)))
	for _, v := range []string{"", "a/b", "d\x01", "d\uFFFE", "d\xff"} {
		assert.Equal(t, CheckValue(v), CheckID(v), "%q", v)
		assert.NotEmpty(t, CheckID(v), "%q", v)
	}
}

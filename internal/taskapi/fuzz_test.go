package taskapi

import (
	"testing"

	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

func FuzzDecodeCreate(f *testing.F) {
	f.Add([]byte(`{"id":"t","pid":1,"monitoring_profile":{"interval":5000000000}}`))
	f.Add([]byte(`{"id":"t","match":{"cmdline":"x","parent":{"executable":"y"}}}`))
	f.Add([]byte(`{"id":"t","pid":-1,"profile":"intensive"}`))
	set := profile.NewSet(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := DecodeCreate(b, set, profile.Standard)
		if err != nil {
			return
		}
		if spec.ID == "" || spec.Profile.Validate() != nil {
			t.Fatalf("accepted an invalid task: %q", b)
		}
	})
}

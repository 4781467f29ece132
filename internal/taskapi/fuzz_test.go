package taskapi

import (
	"testing"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

func FuzzDecodeCreate(f *testing.F) {
	f.Add([]byte(`{"id":"t","pid":1,"monitoring_profile":{"interval":5000000000}}`))
	f.Add([]byte(`{"id":"t","match":{"cmdline":"x","parent":{"executable":"y"}}}`))
	f.Add([]byte(`{"id":"t","pid":-1,"profile":"intensive"}`))
	f.Add([]byte(`{"id":"t","daemon":true,"cgroup":"a/../b"}`))
	policy, _, err := admission.NewPolicy(nil, profile.Standard, profile.LongRunningDaemon)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeCreate(b)
		if err != nil {
			return
		}
		spec, _, err := policy.Admit(req)
		if err != nil {
			return
		}
		if admission.CheckID(spec.ID) != nil || spec.Profile.Validate() != nil || admission.CheckCgroup(spec.Cgroup) != nil {
			t.Fatalf("accepted an invalid task: %q", b)
		}
		if spec.Locator.IsZero() && spec.Cgroup == "" {
			t.Fatalf("accepted a task with no way to find it: %q", b)
		}
	})
}

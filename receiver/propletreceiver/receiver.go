package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/controlplane"
	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/taskapi"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

const (
	// maxBatch bounds how many samples go into one pmetric.Metrics.
	maxBatch = 1000
	// batchLinger is how long the first sample of a batch waits for the rest of its round.
	batchLinger = 5 * time.Millisecond
)

type propletReceiver struct {
	cfg     *Config
	set     receiver.Settings
	next    consumer.Metrics // nil when no metrics pipeline uses the receiver
	logs    consumer.Logs    // nil when no logs pipeline uses it
	obsrecv *receiverhelper.ObsReport
	tel     *metadata.TelemetryBuilder
	monCfg  monitor.Config
	policy  admission.Policy

	mon     *monitor.Monitor
	api     *http.Server
	cp      *controlplane.Follower
	runCtx  context.Context
	samples chan monitor.Sample
	mb      *metadata.MetricsBuilder
	cancel  context.CancelFunc
	done    chan struct{}

	pendingLogs plog.Logs // usage reports of the batch being built (emitLoop only)
}

func newReceiver(set receiver.Settings, cfg *Config) (*propletReceiver, error) {
	monCfg, policy, err := cfg.monitorConfig(set.Logger)
	if err != nil {
		return nil, err
	}
	obsrecv, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              "proc",
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	return &propletReceiver{cfg: cfg, set: set, obsrecv: obsrecv, monCfg: monCfg, policy: policy}, nil
}

// monitorConfig turns the user's configuration into the monitor's: tasks admitted, rules
// compiled, the proplet located. Admission notes (history sizes capped) are logged.
func (cfg *Config) monitorConfig(log *zap.Logger) (monitor.Config, admission.Policy, error) {
	mc := monitor.Config{
		ProcRoot:          cfg.ProcRoot,
		CgroupRoot:        cfg.CgroupRoot,
		PropletInterval:   cfg.Proplet.Interval,
		DiscoveryInterval: cfg.DiscoveryInterval,
		MaxConcurrency:    cfg.MaxConcurrency,
		StartJitter:       cfg.StartJitter,
		KeptOpenProcesses: cfg.MaxKeptOpenProcesses,
		MaxTasks:          cfg.MaxTasks,
		MaxPendingTasks:   cfg.MaxPendingTasks,
		PendingTimeout:    cfg.PendingTimeout,
		Events:            cfg.ProcessEvents,
		Proplet:           admission.Locator{PID: cfg.Proplet.PID, PIDFile: cfg.Proplet.PIDFile, Self: cfg.Proplet.Self},
	}
	policy, notes, err := cfg.policy()
	if err != nil {
		return mc, policy, err
	}
	warn := func(where string, notes []string) {
		for _, n := range notes {
			log.Warn("Configuration adjusted", zap.String("where", where), zap.String("change", n))
		}
	}
	warn("profiles", notes)
	if cfg.Proplet.Match != nil {
		if mc.Proplet.Match, err = procmatch.Compile(*cfg.Proplet.Rule()); err != nil {
			return mc, policy, admission.Under("proplet.match", err)
		}
	}
	for i, t := range cfg.Tasks {
		spec, notes, err := policy.Admit(t.request())
		if err != nil {
			return mc, policy, admission.Under(fmt.Sprintf("tasks[%d]", i), err)
		}
		warn(fmt.Sprintf("tasks[%d]", i), notes)
		mc.Tasks = append(mc.Tasks, spec)
	}
	for i, r := range cfg.Discovery {
		rule, err := cfg.rule(policy, r)
		if err != nil {
			return mc, policy, admission.Under(fmt.Sprintf("discovery[%d]", i), err)
		}
		mc.Rules = append(mc.Rules, rule)
	}
	return mc, policy, nil
}

// start starts the receiver, once for all its pipelines (shared.go).
func (r *propletReceiver) start(ctx context.Context, host component.Host) error {
	tel, err := metadata.NewTelemetryBuilder(r.set.TelemetrySettings)
	if err != nil {
		return err
	}
	r.tel = tel
	r.samples = make(chan monitor.Sample, 256)
	mon, err := monitor.New(r.monCfg, r.set.Logger, telemetry{tel}, r.samples)
	if err != nil {
		tel.Shutdown()
		return err
	}
	r.mon = mon
	r.mb = metadata.NewMetricsBuilder(r.cfg.MetricsBuilderConfig, r.set)
	r.pendingLogs = plog.NewLogs()
	runCtx, cancel := context.WithCancel(context.Background())
	r.runCtx, r.cancel = runCtx, cancel
	r.done = make(chan struct{})
	go r.emitLoop(runCtx)
	if err := mon.Start(runCtx); err != nil {
		cancel()
		return err
	}
	if err := r.startAPI(ctx, host); err != nil {
		return errors.Join(err, r.shutdown(ctx))
	}
	if err := r.startControlPlane(); err != nil {
		return errors.Join(err, r.shutdown(ctx))
	}
	r.set.Logger.Info("Proplet receiver started", zap.Int("tasks", len(r.monCfg.Tasks)), zap.Int("discovery_rules", len(r.monCfg.Rules)))
	return nil
}

// shutdown stops the receiver, when the last of its pipelines shuts it down (shared.go).
func (r *propletReceiver) shutdown(ctx context.Context) error {
	if r.mon == nil {
		return nil
	}
	var err error
	if r.cp != nil {
		r.cp.Stop()
		r.cp = nil
	}
	if r.api != nil {
		err = r.api.Shutdown(ctx)
		r.api = nil
	}
	err = errors.Join(err, r.mon.Shutdown(ctx))
	r.cancel()
	select {
	case <-r.done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	r.tel.Shutdown()
	r.mon = nil
	return err
}

// startAPI serves the task API when it is configured. Tasks registered through it live in
// memory: a restart forgets them.
func (r *propletReceiver) startAPI(ctx context.Context, host component.Host) error {
	if !r.cfg.API.HasValue() {
		return nil
	}
	cfg := r.cfg.API.Get()
	token := string(cfg.BearerToken)
	if cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("api.bearer_token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	ln, err := cfg.Server.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", cfg.Server.NetAddr.Endpoint, err)
	}
	ln = taskapi.LimitListener(ln, cfg.MaxConnections, r.set.Logger, func() {
		r.tel.ReceiverPropletAPIConnectionLimitReached.Add(context.Background(), 1)
	})
	refusals := admission.NewRefusals("api", r.set.Logger, func(reason string) { telemetry{r.tel}.refused("api", reason) })
	handler := taskapi.New(taskapi.Config{Registry: r.mon, Policy: r.policy, Token: token, Refused: refusals.Refuse})
	srv, err := cfg.Server.ToServer(ctx, host.GetExtensions(), r.set.TelemetrySettings, handler)
	if err != nil {
		_ = ln.Close()
		return err
	}
	r.api = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.set.Logger.Error("Task API stopped", zap.Error(err))
		}
	}()
	r.set.Logger.Info("Task API listening", zap.String("endpoint", ln.Addr().String()))
	return nil
}

// startControlPlane follows the Propeller manager's start and stop requests when it is
// configured.
func (r *propletReceiver) startControlPlane() error {
	if !r.cfg.Propeller.HasValue() {
		return nil
	}
	refused := func(reason string) {
		r.tel.ReceiverPropletControlErrors.Add(context.Background(), 1)
		telemetry{r.tel}.refused("propeller", reason)
	}
	r.cp = controlplane.New(r.cfg.controlPlane(r.policy), r.mon, r.set.Logger, refused)
	if err := r.cp.Start(r.runCtx, r.cfg.Propeller.Get().ClientConfig); err != nil {
		return fmt.Errorf("propeller: %w", err)
	}
	return nil
}

// emitLoop turns samples into pdata. Samples of tasks due in the same scheduling round
// arrive within a few milliseconds of each other; the loop lingers that long after the first
// one so the round becomes one batch and one ConsumeMetrics call.
func (r *propletReceiver) emitLoop(ctx context.Context) {
	defer close(r.done)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-r.samples:
			r.record(&s)
			linger.Reset(batchLinger)
		collect:
			for n := 1; n < maxBatch; n++ {
				select {
				case s = <-r.samples:
					r.record(&s)
				case <-linger.C:
					break collect
				case <-ctx.Done():
					break collect
				}
			}
			linger.Stop()
			r.flush(ctx)
		}
	}
}

func (r *propletReceiver) flush(ctx context.Context) {
	r.flushLogs(ctx)
	md := r.mb.Emit()
	n := md.DataPointCount()
	if n == 0 || r.next == nil {
		return
	}
	ctx = r.obsrecv.StartMetricsOp(ctx)
	err := r.next.ConsumeMetrics(ctx, md)
	r.obsrecv.EndMetricsOp(ctx, metadata.Type.String(), n, err)
	if err != nil {
		r.set.Logger.Debug("Next consumer refused proplet metrics", zap.Error(err))
	}
}

// record adds one sample to the metrics builder as a resource of its own.
func (r *propletReceiver) record(s *monitor.Sample) {
	ts := pcommon.NewTimestampFromTime(s.Time)
	mb := r.mb
	rb := mb.NewResourceBuilder()
	rb.SetPropellerPropletID(r.cfg.PropletID)
	if s.Kind == monitor.KindTask {
		rb.SetPropellerTaskID(s.TaskID)
		if s.TaskName != "" {
			rb.SetPropellerTaskName(s.TaskName)
		}
		rb.SetPropellerMonitoringProfileName(s.ProfileName)
		rb.SetPropellerMonitoringProfileInterval(s.Profile.Interval.Seconds())
		rb.SetPropellerMonitoringProfileHistorySize(int64(s.Profile.HistorySize))
		rb.SetPropellerMonitoringProfileRetainHistory(s.Profile.RetainHistory)
		rb.SetPropellerMonitoringProfileExportToMqtt(s.Profile.ExportToMQTT)
		found := int64(1)
		if s.Pending {
			found = 0
		}
		mb.RecordPropellerTaskLookupDataPoint(ts, found)
	}
	if s.HasProcess {
		rb.SetProcessPid(int64(s.PID))
		rb.SetProcessParentPid(int64(s.PPID))
		rb.SetProcessExecutableName(s.Executable)
		if s.Owner != "" {
			rb.SetProcessOwner(s.Owner)
		}
		if s.Cmdline != "" {
			rb.SetProcessCommandLine(s.Cmdline)
		}
		mb.RecordProcessUptimeDataPoint(ts, s.Uptime)
	}
	if s.Got&process.FieldCPU != 0 {
		mb.RecordProcessCPUTimeDataPoint(ts, s.CPUUser, metadata.AttributeCPUModeUser)
		mb.RecordProcessCPUTimeDataPoint(ts, s.CPUSystem, metadata.AttributeCPUModeSystem)
		if s.HasUtil {
			mb.RecordProcessCPUUtilizationDataPoint(ts, s.UtilUser, metadata.AttributeCPUModeUser)
			mb.RecordProcessCPUUtilizationDataPoint(ts, s.UtilSystem, metadata.AttributeCPUModeSystem)
		}
	}
	if s.Got&process.FieldMemory != 0 {
		mb.RecordProcessMemoryUsageDataPoint(ts, int64(s.RSS))
		mb.RecordProcessMemoryVirtualDataPoint(ts, int64(s.VMS))
		if s.Kind == monitor.KindTask {
			mb.RecordProcessMemoryUtilizationDataPoint(ts, s.MemUtil)
		}
	}
	if s.Got&process.FieldDisk != 0 {
		mb.RecordProcessDiskIoDataPoint(ts, int64(s.ReadBytes), metadata.AttributeDiskIoDirectionRead)
		mb.RecordProcessDiskIoDataPoint(ts, int64(s.WriteBytes), metadata.AttributeDiskIoDirectionWrite)
	}
	if s.Got&process.FieldNetwork != 0 {
		mb.RecordProcessNetworkIoDataPoint(ts, int64(s.RxBytes), metadata.AttributeNetworkIoDirectionReceive)
		mb.RecordProcessNetworkIoDataPoint(ts, int64(s.TxBytes), metadata.AttributeNetworkIoDirectionTransmit)
	}
	if s.Got&process.FieldThreads != 0 {
		mb.RecordProcessThreadCountDataPoint(ts, s.Threads)
	}
	if s.Got&process.FieldFDs != 0 {
		mb.RecordProcessUnixFileDescriptorCountDataPoint(ts, s.FDs)
	}
	if s.HasCgroupUsage {
		mb.RecordPropellerPropletCgroupMemoryUsageDataPoint(ts, int64(s.CgroupUsage))
	}
	if s.HasCgroupLimit {
		mb.RecordPropellerPropletCgroupMemoryLimitDataPoint(ts, int64(s.CgroupLimit))
	}
	if s.HasMemoryPeak {
		mb.RecordPropellerTaskMemoryPeakDataPoint(ts, int64(s.MemoryPeak))
	}
	if s.HasProcesses {
		mb.RecordPropellerTaskProcessCountDataPoint(ts, s.Processes)
	}
	if s.HasMachineCPU {
		for mode, v := range s.MachineCPU {
			mb.RecordSystemCPUUtilizationDataPoint(ts, v, systemModes[mode])
		}
	}
	recordWaits(mb, ts, s)
	res := rb.Emit()
	if s.Usage != nil {
		r.recordUsage(s, res)
	}
	if s.Memory != nil {
		r.recordMemory(s, res)
	}
	opts := []metadata.ResourceMetricsOption{metadata.WithResource(res)}
	if s.HasProcess {
		opts = append(opts, metadata.WithStartTimeOverride(pcommon.NewTimestampFromTime(s.Start)))
	}
	mb.EmitForResource(opts...)
}

// recordWaits writes what a task waited for: each figure only when the sample has it (a
// kernel or cgroup that lacks it gives no point, never a 0).
func recordWaits(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, s *monitor.Sample) {
	if s.HasCPUWait {
		mb.RecordPropellerTaskCPUWaitTimeDataPoint(ts, s.CPUWait)
	}
	if s.HasDiskIOWait {
		mb.RecordPropellerTaskDiskIoWaitTimeDataPoint(ts, s.DiskIOWait)
	}
	for res, p := range s.Pressure {
		if p.HasSome {
			mb.RecordPropellerTaskPressureStallTimeDataPoint(ts, p.Some, pressureResources[res], metadata.AttributePropellerPressureStallSome)
		}
		if p.HasFull {
			mb.RecordPropellerTaskPressureStallTimeDataPoint(ts, p.Full, pressureResources[res], metadata.AttributePropellerPressureStallFull)
		}
	}
	if s.HasThrottling {
		mb.RecordPropellerTaskCPUThrottledTimeDataPoint(ts, s.ThrottledTime)
		mb.RecordPropellerTaskCPUThrottledPeriodsDataPoint(ts, float64(s.ThrottledPeriods))
		mb.RecordPropellerTaskCPUPeriodsDataPoint(ts, float64(s.Periods))
	}
}

var pressureResources = [...]metadata.AttributePropellerPressureResource{
	process.PressureCPU:    metadata.AttributePropellerPressureResourceCPU,
	process.PressureMemory: metadata.AttributePropellerPressureResourceMemory,
	process.PressureIO:     metadata.AttributePropellerPressureResourceIo,
}

var systemModes = [...]metadata.AttributeSystemCPUMode{
	monitor.ModeUser:      metadata.AttributeSystemCPUModeUser,
	monitor.ModeNice:      metadata.AttributeSystemCPUModeNice,
	monitor.ModeSystem:    metadata.AttributeSystemCPUModeSystem,
	monitor.ModeIdle:      metadata.AttributeSystemCPUModeIdle,
	monitor.ModeIOWait:    metadata.AttributeSystemCPUModeIowait,
	monitor.ModeInterrupt: metadata.AttributeSystemCPUModeInterrupt,
	monitor.ModeSteal:     metadata.AttributeSystemCPUModeSteal,
}

// telemetry reports the monitor's observations as the receiver's own metrics.
type telemetry struct{ tb *metadata.TelemetryBuilder }

var (
	kindTask    = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "task")))
	kindProplet = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "proplet")))
)

func kindOpt(k monitor.Kind) metric.AddOption {
	if k == monitor.KindProplet {
		return kindProplet
	}
	return kindTask
}

func (t telemetry) Sampled(k monitor.Kind) {
	t.tb.ReceiverPropletSamples.Add(context.Background(), 1, kindOpt(k))
}

func (t telemetry) SampleError(k monitor.Kind) {
	t.tb.ReceiverPropletSampleErrors.Add(context.Background(), 1, kindOpt(k))
}

// TaskState keeps otelcol_receiver_proplet_tasks{state}: one series per state, moved by every
// change the monitor's state machine makes.
func (t telemetry) TaskState(from, to monitor.State) {
	if from != "" {
		t.tb.ReceiverPropletTasks.Add(context.Background(), -1, stateOpt(from))
	}
	if to != "" {
		t.tb.ReceiverPropletTasks.Add(context.Background(), 1, stateOpt(to))
	}
}

// stateOpt is the state attribute; a task changes state rarely, so it is built each time.
func stateOpt(s monitor.State) metric.AddOption {
	return metric.WithAttributeSet(attribute.NewSet(attribute.String("state", string(s))))
}

func (t telemetry) Refused(reason string) { t.refused("monitor", reason) }

func (t telemetry) EventsLost() {
	t.tb.ReceiverPropletProcessEventsLost.Add(context.Background(), 1)
}

// refused counts a task refused at a door, by reason.
func (t telemetry) refused(door, reason string) {
	t.tb.ReceiverPropletRefusedTasks.Add(context.Background(), 1,
		metric.WithAttributeSet(attribute.NewSet(attribute.String("door", door), attribute.String("reason", reason))))
}

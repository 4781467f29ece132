package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// controlPlane follows the manager's task start and stop requests, as the proplet does.
type controlPlane struct {
	r        *propletReceiver
	cfg      PropellerConfig
	profiles profile.Set
	client   paho.Client
	ctx      context.Context
}

func (r *propletReceiver) startControlPlane(ctx context.Context) error {
	if !r.cfg.Propeller.HasValue() {
		return nil
	}
	cfg := *r.cfg.Propeller.Get()
	cp := &controlPlane{r: r, cfg: cfg, profiles: profile.NewSet(r.cfg.Profiles), ctx: r.runCtx}
	opts := paho.NewClientOptions().AddBroker(cfg.Endpoint).
		SetClientID(cfg.ClientID).SetUsername(cfg.Username).SetPassword(string(cfg.Password)).
		SetKeepAlive(30 * time.Second).SetConnectTimeout(5 * time.Second).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(30 * time.Second).
		SetCleanSession(true).
		SetOnConnectHandler(cp.subscribe).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			r.set.Logger.Warn("Connection to the Propeller broker lost; reconnecting", zap.Error(err))
		})
	if cfg.ClientID == "" {
		opts.SetClientID(mqttconn.ClientID("otelcol-propeller-cp-"))
	}
	if mqttconn.Secure(cfg.Endpoint) {
		tlsCfg, err := cfg.TLS.LoadTLSConfig(ctx)
		if err != nil {
			return fmt.Errorf("propeller.tls: %w", err)
		}
		if tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		opts.SetTLSConfig(tlsCfg)
	}
	cp.client = paho.NewClient(opts)
	// With connect-retry on, this does not block: the client keeps trying in the background.
	cp.client.Connect()
	r.cp = cp
	return nil
}

func (cp *controlPlane) stop() {
	if cp != nil && cp.client != nil {
		cp.client.Disconnect(250)
	}
}

func (cp *controlPlane) topic(path string) string {
	return "m/" + cp.cfg.DomainID + "/c/" + cp.cfg.ChannelID + "/control/manager/" + path
}

func (cp *controlPlane) subscribe(c paho.Client) {
	log := cp.r.set.Logger
	for path, handler := range map[string]paho.MessageHandler{"start": cp.onStart, "stop": cp.onStop} {
		topic := cp.topic(path)
		if t := c.Subscribe(topic, 1, handler); t.WaitTimeout(10*time.Second) && t.Error() != nil {
			log.Error("Cannot subscribe to the Propeller control plane", zap.String("topic", topic), zap.Error(t.Error()))
		}
	}
	log.Info("Following the Propeller control plane", zap.String("start", cp.topic("start")), zap.String("stop", cp.topic("stop")))
}

func (cp *controlPlane) reject(what string, err error) {
	cp.r.tel.ReceiverPropletControlErrors.Add(context.Background(), 1)
	cp.r.set.Logger.Warn("Propeller "+what+" request rejected", zap.Error(err))
}

// forUs says whether a request addressed to propletID concerns this proplet.
func (cp *controlPlane) forUs(propletID string) bool {
	return propletID == "" || propletID == cp.r.cfg.PropletID
}

func (cp *controlPlane) onStart(_ paho.Client, msg paho.Message) {
	req, err := propeller.DecodeStart(msg.Payload())
	if err != nil {
		cp.reject("start", err)
		return
	}
	if !cp.forUs(req.PropletID) {
		return
	}
	name := profile.Default(req.Daemon)
	p := cp.profiles[name]
	if req.Profile != nil {
		p, name = req.Profile.Apply(p), profile.Inline
	}
	if err := p.Validate(); err != nil {
		cp.reject("start", fmt.Errorf("task %q: monitoring_profile: %w", req.ID, err))
		return
	}
	p, _ = p.Capped()
	mon := cp.r.mon
	if _, exists := mon.Task(req.ID); exists {
		mon.SetProfile(req.ID, name, p)
		return
	}
	spec := monitor.TaskSpec{ID: req.ID, Name: req.Name, ProfileName: name, Profile: p}
	if cp.cfg.TaskCgroup != "" {
		spec.Cgroup = strings.NewReplacer("{task_id}", req.ID, "{task_name}", req.Name).Replace(cp.cfg.TaskCgroup)
	}
	if cp.cfg.InProcess && spec.Cgroup == "" {
		spec.Locator.InProcess = true
	} else if spec.Cgroup == "" {
		m, err := procmatch.Compile(cp.childOfProplet(cp.cfg.TaskMatch.Fill(req.ID, req.Name)))
		if err != nil {
			cp.reject("start", fmt.Errorf("task %q: task_match: %w", req.ID, err))
			return
		}
		spec.Locator.Match = m
	}
	if err := mon.AddTask(spec); err != nil {
		cp.reject("start", err)
		return
	}
	cp.r.set.Logger.Info("Task started by the manager", zap.String("task_id", req.ID), zap.String("task_name", req.Name),
		zap.String("profile", name), zap.Duration("interval", p.Interval))
}

// childOfProplet restricts a rule that names no parent to children of the proplet process.
func (cp *controlPlane) childOfProplet(s procmatch.Spec) procmatch.Spec {
	if s.ParentPID != 0 || s.ParentPIDFile != "" || s.Parent != nil {
		return s
	}
	pl := cp.r.cfg.Proplet
	switch {
	case pl.PID != 0:
		s.ParentPID = pl.PID
	case pl.PIDFile != "":
		s.ParentPIDFile = pl.PIDFile
	case pl.Match != nil:
		parent := *pl.Match
		s.Parent = &parent
	case pl.Self:
		s.ParentPID = int32(os.Getpid())
	}
	return s
}

func (cp *controlPlane) onStop(_ paho.Client, msg paho.Message) {
	req, err := propeller.DecodeStop(msg.Payload())
	if err != nil {
		cp.reject("stop", err)
		return
	}
	if !cp.forUs(req.PropletID) {
		return
	}
	if cp.r.mon.StopTask(cp.ctx, req.ID) {
		cp.r.set.Logger.Info("Task stopped by the manager", zap.String("task_id", req.ID))
	}
}

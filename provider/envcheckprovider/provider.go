// Package envcheckprovider is the distribution's `env` configuration provider: the Collector's
// own (go.opentelemetry.io/collector/confmap/provider/envprovider), with the same values,
// defaults (`${env:NAME:-default}`) and errors, which also says which variables a configuration
// references but finds unset or empty, so that an error such as
// `propeller.domain_id: must be set ..., got ""` comes with the variable behind it.
//
// The Collector's own provider logs an unset variable at warning, but `otelcol-propeller
// validate` discards every log line (the Collector's logger is not built in a dry run), so the
// one command meant to check a configuration never said it. This provider logs a warning at
// start, and during `validate` also writes it to standard error. A reference with an empty
// default (`${env:PROPLET_MQTT_TLS_CA_CERT:-}`) declares the variable optional and is not
// reported.
package envcheckprovider // import "github.com/otelcol-propeller/otelcol-propeller/provider/envcheckprovider"

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.uber.org/zap"
)

const scheme = "env"

// renamed lists variables by their older names: Propeller's proplet read PROPLET_DOMAIN_ID
// before it read PROPLET_TENANT_ID (the same value: the first segment of every topic).
var renamed = map[string]string{"PROPLET_TENANT_ID": "PROPLET_DOMAIN_ID"}

// NewFactory returns the factory of the provider, for the `env` scheme. It replaces the
// Collector's env provider in a distribution (two providers may not share a scheme).
func NewFactory() confmap.ProviderFactory {
	return confmap.NewProviderFactory(func(ps confmap.ProviderSettings) confmap.Provider {
		return newProvider(ps, os.Stderr, Validating(os.Args[1:]), os.LookupEnv)
	})
}

type provider struct {
	inner  confmap.Provider
	log    *zap.Logger
	stderr io.Writer // nil: say nothing there
	lookup func(string) (string, bool)

	mu   sync.Mutex
	said map[string]bool
}

func newProvider(ps confmap.ProviderSettings, stderr io.Writer, validating bool, lookup func(string) (string, bool)) *provider {
	log := ps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if !validating {
		stderr = nil
	}
	// The wrapped provider's own messages would repeat ours, less precisely.
	inner := envprovider.NewFactory().Create(confmap.ProviderSettings{Logger: zap.NewNop()})
	return &provider{inner: inner, log: log, stderr: stderr, lookup: lookup, said: map[string]bool{}}
}

// Validating reports whether the command line runs the `validate` subcommand, whose log the
// Collector discards.
func Validating(args []string) bool {
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[:i]
	}
	return slices.Contains(args, "validate")
}

func (p *provider) Retrieve(ctx context.Context, uri string, watcher confmap.WatcherFunc) (*confmap.Retrieved, error) {
	ret, err := p.inner.Retrieve(ctx, uri, watcher)
	if err != nil {
		return nil, err
	}
	if msg, hint := p.problem(strings.TrimPrefix(uri, scheme+":")); msg != "" {
		p.say(uri, msg, hint)
	}
	return ret, nil
}

// problem says why a reference resolves to an empty value, or "" when it does not, or when
// its empty default says the variable is optional; hint names the variable's older name when
// that one is set.
func (p *provider) problem(ref string) (msg, hint string) {
	name, def, hasDefault := strings.Cut(ref, ":-")
	val, set := p.lookup(name)
	switch {
	case !set && !hasDefault:
		msg = name + " is not set"
	case set && val == "" && !(hasDefault && def == ""):
		msg = name + " is set but empty"
		if hasDefault {
			msg += fmt.Sprintf(" (its default %q applies only when it is not set)", def)
		}
	default:
		return "", ""
	}
	if old, ok := renamed[name]; ok {
		if v, _ := p.lookup(old); v != "" {
			hint = fmt.Sprintf("%s, its name in older Propeller releases, is set: set %s to the same value", old, name)
		}
	}
	return msg, hint
}

// say reports a variable once per provider.
func (p *provider) say(uri, msg, hint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.said[uri] {
		return
	}
	p.said[uri] = true
	ref := "${" + uri + "}"
	fields := []zap.Field{zap.String("reference", ref), zap.String("problem", msg)}
	line := fmt.Sprintf("Warning: %s, so %s in the configuration is empty", msg, ref)
	if hint != "" {
		fields = append(fields, zap.String("hint", hint))
		line += " (" + hint + ")"
	}
	p.log.Warn("Configuration references an environment variable that is not set or empty: its value is empty", fields...)
	if p.stderr != nil {
		_, _ = fmt.Fprintln(p.stderr, line)
	}
}

func (*provider) Scheme() string { return scheme }

func (p *provider) Shutdown(ctx context.Context) error { return p.inner.Shutdown(ctx) }

package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/agnivade/levenshtein"
	"go.opentelemetry.io/collector/confmap"
)

// Unmarshal decodes the receiver's configuration and reports every mistake at once: unknown
// keys, with the nearest known key for a misspelt one (`defualt_profile: unknown key; did you
// mean "default_profile"?`), together with the values that cannot be decoded or that Validate
// refuses. A plain decode stops at the unknown keys, and the Collector validates only what
// decoded, so the user would fix the typo and only then learn that a value was wrong too.
func (cfg *Config) Unmarshal(conf *confmap.Conf) error {
	type plain Config // no Unmarshal method: confmap decodes the fields
	unknown := unknownKeys(reflect.TypeFor[Config](), conf.ToStringMap(), keyPath{})
	if len(unknown) == 0 {
		// Strict, as the Collector decodes: a key the walk cannot see (inside a type that
		// decodes itself) is still refused.
		return conf.Unmarshal((*plain)(cfg))
	}
	var errs []error
	for _, u := range unknown {
		errs = append(errs, u.err)
		if u.at.addressable() {
			// Said already: a block that refuses unknown keys itself (api) must not say it
			// again, without the path.
			conf.Delete(strings.Join(u.at.segs, confmap.KeyDelimiter))
		}
	}
	if err := conf.Unmarshal((*plain)(cfg), confmap.WithIgnoreUnused()); err != nil {
		errs = append(errs, err)
	} else if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// maxHintDistance is the most edits between a misspelt key and the key suggested for it.
const maxHintDistance = 2

// keyPath is where a key is: its segments, and whether a list lies on the way.
type keyPath struct {
	segs   []string
	shown  string // as users write it: propeller.tls.ca_file, tasks[0].pid
	inList bool
}

func (p keyPath) key(k string) keyPath {
	shown := k
	if p.shown != "" {
		shown = p.shown + "." + k
	}
	return keyPath{segs: append(slices.Clip(p.segs), k), shown: shown, inList: p.inList}
}

func (p keyPath) index(i int) keyPath {
	return keyPath{segs: p.segs, shown: p.shown + "[" + strconv.Itoa(i) + "]", inList: true}
}

// addressable reports whether confmap can name the key (no list on the way).
func (p keyPath) addressable() bool { return !p.inList }

// unknownKey is a key the configuration does not have, and the error that says so.
type unknownKey struct {
	at  keyPath
	err error
}

// unknownKeys returns each key of raw (as confmap holds it: maps of string keys, slices) that
// the type t does not have, walking nested blocks, lists and maps of blocks. It does not look
// inside a type of another module that decodes itself: its keys are its own, and the strict
// decode judges them.
func unknownKeys(t reflect.Type, raw any, at keyPath) []unknownKey {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch v := raw.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			return unknownStructKeys(t, v, at)
		case reflect.Map:
			var out []unknownKey
			for _, k := range slices.Sorted(maps.Keys(v)) {
				out = append(out, unknownKeys(t.Elem(), v[k], at.key(k))...)
			}
			return out
		}
	case []any:
		if t.Kind() == reflect.Slice {
			var out []unknownKey
			for i, e := range v {
				out = append(out, unknownKeys(t.Elem(), e, at.index(i))...)
			}
			return out
		}
	}
	return nil
}

func unknownStructKeys(t reflect.Type, raw map[string]any, at keyPath) []unknownKey {
	known := map[string]reflect.Type{}
	if inner, ok := optionalValue(t); ok {
		// configoptional.Optional: the value's keys, and `enabled`.
		for inner.Kind() == reflect.Pointer {
			inner = inner.Elem()
		}
		if inner.Kind() != reflect.Struct {
			return nil
		}
		t = inner
		known["enabled"] = reflect.TypeFor[bool]()
	}
	if decodesItself(t) {
		return nil
	}
	fieldKeys(t, known)
	var out []unknownKey
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		ft, ok := known[k]
		if !ok {
			out = append(out, unknownKey{at: at.key(k), err: unknownKeyError(at.key(k).shown, k, known)})
			continue
		}
		out = append(out, unknownKeys(ft, raw[k], at.key(k))...)
	}
	return out
}

// unknownKeyError says that a key is unknown and, when one known key is the nearest within
// maxHintDistance edits, which was meant.
func unknownKeyError(shown, key string, known map[string]reflect.Type) error {
	var nearest []string
	bestD := maxHintDistance + 1
	for _, name := range slices.Sorted(maps.Keys(known)) {
		switch d := levenshtein.ComputeDistance(key, name); {
		case d < bestD:
			nearest, bestD = []string{name}, d
		case d == bestD:
			nearest = append(nearest, name)
		}
	}
	if len(nearest) > 1 {
		// Two letters swapped cost two edits, as much as an unrelated key may: the key
		// with the same letters is the one meant (pdi: pid, not id).
		nearest = slices.DeleteFunc(nearest, func(name string) bool { return !sameLetters(key, name) })
	}
	if len(nearest) != 1 || bestD >= len(key) {
		return fmt.Errorf("%s: unknown key", shown)
	}
	return fmt.Errorf("%s: unknown key; did you mean %q?", shown, nearest[0])
}

func sameLetters(a, b string) bool {
	x, y := []byte(a), []byte(b)
	slices.Sort(x)
	slices.Sort(y)
	return string(x) == string(y)
}

// fieldKeys adds the mapstructure keys of a struct type and their types, descending into
// squashed fields.
func fieldKeys(t reflect.Type, keys map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		switch {
		case strings.Contains(opts, "squash"):
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				fieldKeys(ft, keys)
			}
		case name == "-" || !f.IsExported():
		case name != "":
			keys[name] = f.Type
		default:
			keys[strings.ToLower(f.Name)] = f.Type
		}
	}
}

// optionalValue reports whether t is a configoptional.Optional, and the type it holds.
func optionalValue(t reflect.Type) (reflect.Type, bool) {
	if !strings.HasPrefix(t.Name(), "Optional[") || !strings.HasSuffix(t.PkgPath(), "/configoptional") {
		return nil, false
	}
	f, ok := t.FieldByName("value")
	if !ok {
		return nil, false
	}
	return f.Type, true
}

var unmarshalerType = reflect.TypeFor[confmap.Unmarshaler]()

// decodesItself reports whether t is another module's type with its own Unmarshal.
func decodesItself(t reflect.Type) bool {
	ours := strings.HasPrefix(t.PkgPath(), "github.com/otelcol-propeller/otelcol-propeller/")
	return !ours && reflect.PointerTo(t).Implements(unmarshalerType)
}

package propeller

import (
	"errors"
	"fmt"
	"strings"
)

// Placeholders a topic template may use.
const (
	DomainID  = "domain_id"
	ChannelID = "channel_id"
	PropletID = "proplet_id"
	TaskID    = "task_id"
)

// Values fills a template's placeholders.
type Values struct {
	DomainID, ChannelID, PropletID, TaskID string
}

func (v *Values) get(name string) string {
	switch name {
	case DomainID:
		return v.DomainID
	case ChannelID:
		return v.ChannelID
	case PropletID:
		return v.PropletID
	default:
		return v.TaskID
	}
}

// ErrUnsafeValue is returned when a value substituted into a topic could redirect or widen it:
// it contains '/', '+', '#' or NUL, or is empty (an empty topic level).
var ErrUnsafeValue = errors.New("value not allowed in a topic")

// Template is a parsed topic template such as "m/{domain_id}/c/{channel_id}/control/proplet/task_metrics".
type Template struct {
	text  string
	parts []part
}

type part struct {
	literal     string
	placeholder string // set for a placeholder part
}

// ParseTemplate parses and checks a topic template. A template with a wildcard ('+', '#'), an
// empty level, a NUL, an unknown or unclosed placeholder is rejected; allowed restricts which
// placeholders it may use.
func ParseTemplate(text string, allowed ...string) (Template, error) {
	t := Template{text: text}
	switch {
	case text == "":
		return t, errors.New("topic is empty")
	case strings.ContainsAny(text, "+#"):
		return t, fmt.Errorf("topic %q contains an MQTT wildcard ('+' or '#'); publish topics must be exact", text)
	case strings.ContainsRune(text, 0):
		return t, fmt.Errorf("topic %q contains a NUL character", text)
	}
	for _, level := range strings.Split(text, "/") {
		if level == "" {
			return t, fmt.Errorf("topic %q has an empty level (leading, trailing or double '/')", text)
		}
	}
	rest := text
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return t, fmt.Errorf("topic %q has an unmatched '}'", text)
			}
			t.parts = append(t.parts, part{literal: rest})
			break
		}
		if open > 0 {
			if strings.IndexByte(rest[:open], '}') >= 0 {
				return t, fmt.Errorf("topic %q has an unmatched '}'", text)
			}
			t.parts = append(t.parts, part{literal: rest[:open]})
		}
		closeIdx := strings.IndexByte(rest[open:], '}')
		if closeIdx < 0 {
			return t, fmt.Errorf("topic %q has an unclosed '{'", text)
		}
		name := rest[open+1 : open+closeIdx]
		if !contains(allowed, name) {
			return t, fmt.Errorf("topic %q uses {%s}; allowed here: %s", text, name, braces(allowed))
		}
		t.parts = append(t.parts, part{placeholder: name})
		rest = rest[open+closeIdx+1:]
	}
	return t, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func braces(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "{" + n + "}"
	}
	return strings.Join(out, ", ")
}

// String returns the template text.
func (t Template) String() string { return t.text }

// AppendTopic appends the topic for v to b. A value that is empty or contains '/', '+', '#' or
// NUL makes it fail with ErrUnsafeValue: no value can redirect or widen a topic.
func (t Template) AppendTopic(b []byte, v *Values) ([]byte, error) {
	for _, p := range t.parts {
		if p.placeholder == "" {
			b = append(b, p.literal...)
			continue
		}
		s := v.get(p.placeholder)
		if s == "" || strings.ContainsAny(s, "/+#\x00") {
			return b, fmt.Errorf("{%s} = %q: %w", p.placeholder, s, ErrUnsafeValue)
		}
		b = append(b, s...)
	}
	return b, nil
}

package propeller

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
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

// ErrUnsafeValue is what every refused topic wraps: a value substituted into it, or the
// topic as a whole, that could redirect or widen it, that a broker would treat as a malformed
// packet and drop the connection for, or that MQTT cannot carry. The error is a *TopicError
// that says which placeholder and why.
var ErrUnsafeValue = errors.New("value not allowed in a topic")

// MaxTopicLength is the longest topic MQTT can carry, in bytes: topics are UTF-8 strings with a
// 16-bit length. A client would silently cut a longer one.
const MaxTopicLength = 65535

// Reason is why a topic was refused. The values are short and few, so they can key a
// rate-limited log line.
type Reason string

// The reasons a topic is refused.
const (
	// ReasonEmpty: an empty value would make an empty topic level.
	ReasonEmpty Reason = "empty value"
	// ReasonSeparator: '/' would add a level, '+' and '#' are wildcards.
	ReasonSeparator Reason = "'/', '+' or '#'"
	// ReasonControl: U+0000-U+001F, U+007F-U+009F. MQTT forbids U+0000; brokers (Mosquitto)
	// drop the connection for the others.
	ReasonControl Reason = "control character"
	// ReasonNoncharacter: U+FDD0-U+FDEF and the last two code points of every plane
	// (U+FFFE, U+FFFF, U+1FFFE, ...). Mosquitto drops the connection for them.
	ReasonNoncharacter Reason = "Unicode noncharacter"
	// ReasonInvalidUTF8: MQTT topics must be well-formed UTF-8 (no surrogates, no overlong
	// forms).
	ReasonInvalidUTF8 Reason = "invalid UTF-8"
	// ReasonTooLong: the topic is longer than MaxTopicLength bytes.
	ReasonTooLong Reason = "topic longer than 65535 bytes"
	// ReasonIDTooLong: a domain or channel id longer than MaxIDLength bytes (CheckID).
	ReasonIDTooLong Reason = "longer than 36 bytes, Propeller's limit on ids"
)

// TopicError is a topic refused for one message.
type TopicError struct {
	// Placeholder is the placeholder whose value was refused, without braces; empty when the
	// topic as a whole is too long.
	Placeholder string
	// Value is the refused value, cut to its first 64 bytes.
	Value string
	// Length is the refused value's length in bytes, or the topic's for ReasonTooLong.
	Length int
	// Reason is why.
	Reason Reason
}

func (e *TopicError) Error() string {
	if e.Placeholder == "" {
		return fmt.Sprintf("topic of %d bytes: %s: %v", e.Length, e.Reason, ErrUnsafeValue)
	}
	v := strconv.Quote(e.Value)
	if e.Length > len(e.Value) {
		v += fmt.Sprintf("... (%d bytes)", e.Length)
	}
	return fmt.Sprintf("{%s} = %s: %s: %v", e.Placeholder, v, e.Reason, ErrUnsafeValue)
}

// Unwrap makes every TopicError match ErrUnsafeValue.
func (e *TopicError) Unwrap() error { return ErrUnsafeValue }

func refuse(placeholder, value string, reason Reason) *TopicError {
	shown := value
	if len(shown) > 64 {
		shown = shown[:64]
	}
	// A copy: the error must not keep a large value alive.
	return &TopicError{Placeholder: placeholder, Value: strings.Clone(shown), Length: len(value), Reason: reason}
}

// CheckValue reports why s cannot be substituted into a topic, or "" when it can: it must be
// non-empty, well-formed UTF-8, without '/', '+', '#', control characters or noncharacters.
func CheckValue(s string) Reason {
	if s == "" {
		return ReasonEmpty
	}
	return scan(s, false)
}

// CheckID reports why s cannot be a Propeller domain or channel id in a topic, or "" when it
// can: what CheckValue refuses, and more than MaxIDLength bytes. Every component checks the
// domain and channel ids it is configured with, and the fleet gateway those of a topic it
// receives, with it.
func CheckID(s string) Reason {
	if len(s) > MaxIDLength {
		return ReasonIDTooLong
	}
	return CheckValue(s)
}

// scan finds the first character of s that a topic cannot hold; slash allows '/' (in a
// template's own text, where it separates levels).
func scan(s string, slash bool) Reason {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20 || c == 0x7f:
				return ReasonControl
			case c == '+' || c == '#' || (c == '/' && !slash):
				return ReasonSeparator
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return ReasonInvalidUTF8
		case r <= 0x9f:
			return ReasonControl
		case unicode.Is(unicode.Noncharacter_Code_Point, r):
			return ReasonNoncharacter
		}
		i += size
	}
	return ""
}

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
// empty level, a control character, a noncharacter, invalid UTF-8, more than MaxTopicLength
// bytes, an unknown or unclosed placeholder is rejected; allowed restricts which placeholders it
// may use.
func ParseTemplate(text string, allowed ...string) (Template, error) {
	t := Template{text: text}
	switch {
	case text == "":
		return t, errors.New("topic is empty")
	case strings.ContainsAny(text, "+#"):
		return t, fmt.Errorf("topic %q contains an MQTT wildcard ('+' or '#'); publish topics must be exact", text)
	case len(text) > MaxTopicLength:
		return t, fmt.Errorf("topic of %d bytes is longer than MQTT allows (%d)", len(text), MaxTopicLength)
	}
	if reason := scan(text, true); reason != "" {
		return t, fmt.Errorf("topic %q: %s; MQTT topics must be well-formed UTF-8 without control characters or noncharacters", text, reason)
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

// AppendTopic appends the topic for v to b. A value that CheckValue refuses, or a topic longer
// than MaxTopicLength, makes it fail with a *TopicError (which wraps ErrUnsafeValue): no value
// can redirect or widen a topic, or make the broker drop the connection.
func (t Template) AppendTopic(b []byte, v *Values) ([]byte, error) {
	start := len(b)
	for _, p := range t.parts {
		if p.placeholder == "" {
			b = append(b, p.literal...)
			continue
		}
		s := v.get(p.placeholder)
		if reason := CheckValue(s); reason != "" {
			return b[:start], refuse(p.placeholder, s, reason)
		}
		b = append(b, s...)
	}
	if n := len(b) - start; n > MaxTopicLength {
		return b[:start], &TopicError{Length: n, Reason: ReasonTooLong}
	}
	return b, nil
}

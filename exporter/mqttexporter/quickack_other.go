//go:build !linux

package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import "net"

// quickAck has no portable equivalent; elsewhere ACKs follow the kernel's defaults.
func quickAck(net.Conn) func() { return func() {} }
